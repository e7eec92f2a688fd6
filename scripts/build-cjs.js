// The CommonJS build, run by `npm run build` after tsc: what `require("tsgi")`
// and `require("tsgi/cgi")` load (package.json "exports", "require" condition).
// Node before 20.19 cannot require() an ES module, so each entry gets its own
// esbuild bundle (dist/index.cjs, dist/cgi/gateway.cjs), and each declaration
// file an entry reaches gets a .d.cts twin. TypeScript reads a .d.ts in this
// "type": "module" package as an ES module and refuses to let CommonJS code
// require it (TS1479 under `module: node16`); a .d.cts is CommonJS.

import { build } from "esbuild";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ENTRIES = ["index", "cgi/gateway"];

await build({
  entryPoints: ENTRIES.map((entry) => join(ROOT, "src", `${entry}.ts`)),
  outdir: join(ROOT, "dist"),
  outbase: join(ROOT, "src"),
  outExtension: { ".js": ".cjs" },
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  packages: "external",
  // CommonJS has no import.meta: its url becomes the bundle's own file URL, and
  // any other use of import.meta fails the build instead of becoming undefined.
  define: { "import.meta.url": "import_meta_url" },
  inject: [join(ROOT, "scripts", "import-meta-url.js")],
  logOverride: { "empty-import-meta": "error" },
  logLevel: "warning",
});

for (const entry of ENTRIES) writeCommonJsDeclarations(join(ROOT, "dist", `${entry}.d.ts`));

/**
 * Writes `x.d.cts` beside `x.d.ts` for `entry` and every declaration file it
 * imports, relative imports renamed from `./y.js` to `./y.cjs` (which
 * TypeScript resolves to `./y.d.cts`), so the whole graph is CommonJS.
 * @param {string} entry
 */
function writeCommonJsDeclarations(entry) {
  const pending = [entry];
  const written = new Set();
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (written.has(file)) continue;
    written.add(file);
    const text = readFileSync(file, "utf8");
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest);
    let output = "";
    let copied = 0;
    for (const specifier of relativeSpecifiers(source)) {
      const target = specifier.text;
      if (!target.endsWith(".js"))
        throw new Error(`${file}: import "${target}" does not name a .js file`);
      output +=
        text.slice(copied, specifier.getStart(source)) +
        JSON.stringify(target.replace(/\.js$/, ".cjs"));
      copied = specifier.end;
      pending.push(resolve(dirname(file), target.replace(/\.js$/, ".d.ts")));
    }
    writeFileSync(file.replace(/\.d\.ts$/, ".d.cts"), output + text.slice(copied));
  }
}

/**
 * The relative module names in a declaration file (import, export ... from,
 * import("...") types), in order.
 * @param {ts.SourceFile} source
 * @returns {ts.StringLiteral[]}
 */
function relativeSpecifiers(source) {
  /** @type {ts.Expression[]} */
  const found = [];
  /** @param {ts.Node} node */
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      found.push(node.moduleSpecifier);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      found.push(node.argument.literal);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found.filter(
    /** @returns {specifier is ts.StringLiteral} */
    (specifier) => ts.isStringLiteral(specifier) && specifier.text.startsWith("."),
  );
}
