// `tsgi build <module> --out app.cgi.cjs`: the application, everything it
// imports from node_modules and the CGI gateway in one CommonJS file, run by a
// CGI wrapper as `node app.cgi.cjs`: no node_modules on the host, and no module
// resolution at each request's start-up. esbuild does the bundling (and the
// TypeScript); this file only writes the entry and turns what esbuild cannot
// bundle (a native addon) into a message that says so.

import { build, type Message, type Plugin } from "esbuild";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAppSpec } from "../load-app.js";

/** The build failed; the message names what and where. */
export class BuildError extends Error {
  override name = "BuildError";
}

/** The CGI gateway this build of tsgi runs (dist/cgi/gateway.js beside dist/build/). */
const GATEWAY = fileURLToPath(new URL("../cgi/gateway.js", import.meta.url));

/**
 * The entry: stdout belongs to the response before the application's own code
 * runs (it is required only then, so no import hoisting can run it earlier),
 * and a module that fails at load gives a 500 and one line on stderr, as `tsgi cgi` does.
 */
function entrySource(appFile: string, exportName: string | undefined): string {
  const pick = exportName === undefined ? "ns.default ?? ns.application" : `ns[${JSON.stringify(exportName)}]`;
  return `
const { claimStdout, plainTextResponse, runWithCgi } = require(${JSON.stringify(GATEWAY)});
if (!process.env.REQUEST_METHOD) {
  runWithCgi(() => []);
} else {
  claimStdout();
  let app;
  try {
    const ns = require(${JSON.stringify(appFile)});
    app = typeof ns === "function" ? ns : ${pick};
    if (typeof app !== "function") throw new Error("the module does not export the application as a function");
  } catch (error) {
    process.stderr.write("tsgi: cannot load application module ${appFile.replace(/[\\"]/g, "")}: " + (error && error.message) + "\\n");
    runWithCgi(plainTextResponse("500 Internal Server Error", "Internal Server Error: the application could not be loaded (see the server's error log)\\n"), { exit: false }).then(() => process.exit(1));
  }
  if (app) runWithCgi(app);
}
`;
}

/** A native addon cannot live inside a JavaScript file: refuse it by name instead of emitting a bundle that fails at run time. */
const refuseNativeAddons: Plugin = {
  name: "tsgi-refuse-native-addons",
  setup(builder) {
    const refuse = (what: string, importer: string) => ({
      errors: [{ text: `${what} is a native addon (imported by ${importer}): it cannot be bundled into one JavaScript file; deploy with node_modules and \`tsgi cgi\` instead, or use a pure-JavaScript alternative` }],
    });
    builder.onResolve({ filter: /\.node$/ }, (args) => refuse(args.path, args.importer));
    builder.onResolve({ filter: /^(bindings|node-gyp-build|node-pre-gyp|@mapbox\/node-pre-gyp)$/ }, (args) => refuse(`${args.path} (a native addon loader)`, args.importer));
  },
};

export async function buildCgiBundle(spec: string, out: string): Promise<void> {
  const { file, exportName } = parseAppSpec(spec);
  const appFile = resolve(file);
  try {
    await build({
      stdin: { contents: entrySource(appFile, exportName), resolveDir: process.cwd(), loader: "js", sourcefile: "tsgi-cgi-entry.js" },
      outfile: resolve(out),
      bundle: true,
      platform: "node",
      format: "cjs",
      target: "node20",
      // An application's import.meta names the bundle file: the bundle is what runs, wherever it is copied.
      banner: { js: 'var __tsgi_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
      define: { "import.meta.url": "__tsgi_import_meta_url", "import.meta.dirname": "__dirname", "import.meta.filename": "__filename" },
      // Less to parse at every request's start-up; names stay, for readable stack traces.
      minifyWhitespace: true,
      minifySyntax: true,
      plugins: [refuseNativeAddons],
      logLevel: "silent",
    });
  } catch (error) {
    const errors = (error as { errors?: Message[] }).errors;
    if (!errors) throw error;
    throw new BuildError(errors.map(describe).join("\n"));
  }
}

function describe(message: Message): string {
  const where = message.location ? `${message.location.file}:${message.location.line}:${message.location.column + 1}: ` : "";
  return `${where}${message.text}`;
}
