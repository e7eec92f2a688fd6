// Transpiles one TypeScript file with esbuild: the types are removed, nothing
// is checked. Loading esbuild's JavaScript API costs more than a whole CGI
// request (it starts esbuild's native binary), so it is required only when a
// file has to be compiled; a start served from the cache never loads it.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type * as Esbuild from "esbuild";

// Made on first use: createRequire costs a few tenths of a millisecond, and a start from the cache needs none of it.
let requireHere: NodeJS.Require | undefined;
const requireFromHere = () => (requireHere ??= createRequire(import.meta.url));
let esbuild: typeof Esbuild | undefined;
const loadEsbuild = () => (esbuild ??= requireFromHere()("esbuild") as typeof Esbuild);

let version: string | undefined;

/** Part of every cache key; read from esbuild's package.json rather than from esbuild itself. */
export function compilerVersion(): string {
  version ??= `esbuild@${(JSON.parse(esbuildManifest()) as { version: string }).version}`;
  return version;
}

/**
 * The package.json require("esbuild") would load, found by the same walk up
 * the node_modules folders from here: the first require.resolve() of a
 * package name in a process costs about 5 ms, a tenth of a CGI start.
 */
function esbuildManifest(): string {
  for (
    let dir = dirname(fileURLToPath(import.meta.url));
    dirname(dir) !== dir;
    dir = dirname(dir)
  ) {
    try {
      return readFileSync(join(dir, "node_modules", "esbuild", "package.json"), "utf8");
    } catch {
      // Not in this folder's node_modules.
    }
  }
  return readFileSync(requireFromHere().resolve("esbuild/package.json"), "utf8");
}

/** The identifier `import.meta` becomes in CommonJS output, bound by the prelude wrapCommonJs adds. */
const META = "__tsgi_import_meta";

export type CommonJsOutput = { async: false; code: string; deps: string[] } | { async: true };

/**
 * To CommonJS, run by the require hook with `module._compile(code, source)`.
 * A module with top-level await cannot be CommonJS: `{ async: true }`.
 */
export function compileCommonJs(source: string, path: string): CommonJsOutput {
  let result: Esbuild.TransformResult;
  try {
    result = loadEsbuild().transformSync(source, {
      ...commonOptions(path),
      format: "cjs",
      define: { "import.meta": META },
      // import() stays with the require hook, which knows .ts files; Node's ES loader would not.
      supported: { "dynamic-import": false },
    });
  } catch (error) {
    if (
      failures(error).some((message) =>
        message.text.startsWith("Top-level await is currently not supported"),
      )
    )
      return { async: true };
    throw syntaxError(error, path);
  }
  return { async: false, code: wrapCommonJs(result, path), deps: relativeRequires(result.code) };
}

/** To an ES module, for the module hooks that run what CommonJS cannot (top-level await). */
export async function compileEsm(source: string, path: string): Promise<string> {
  try {
    const result = await loadEsbuild().transform(source, {
      ...commonOptions(path),
      format: "esm",
      // Only free names are replaced: a module declaring its own __dirname keeps it.
      define: { __filename: "import.meta.filename", __dirname: "import.meta.dirname" },
    });
    return result.code + inlineSourceMap(result.map);
  } catch (error) {
    throw syntaxError(error, path);
  }
}

function commonOptions(path: string): Esbuild.TransformOptions {
  return {
    loader: "ts",
    platform: "node",
    target: `node${process.versions.node.split(".")[0]}`,
    sourcefile: path,
    sourcemap: "external",
    sourcesContent: false,
    logLevel: "silent",
  };
}

/**
 * ES module syntax compiled to CommonJS keeps ES semantics where it can:
 * strict mode; import.meta naming the source; and a block around the code,
 * because Node passes __filename and __dirname as parameters, which the
 * common `const __dirname = dirname(fileURLToPath(import.meta.url))` may only
 * shadow from an inner block. A .cts file is CommonJS already and runs as written.
 * Everything goes on the first line, so the source map needs no shift.
 */
function wrapCommonJs(result: Esbuild.TransformResult, path: string): string {
  const esm = !path.endsWith(".cts");
  const meta = result.code.includes(META)
    ? `const ${META}={url:require("node:url").pathToFileURL(__filename).href,filename:__filename,dirname:__dirname};`
    : "";
  const open = esm ? `"use strict";${meta}{` : meta;
  return open + result.code + (esm ? "\n}" : "") + inlineSourceMap(result.map);
}

function inlineSourceMap(map: string): string {
  return `\n//# sourceMappingURL=data:application/json;base64,${Buffer.from(map).toString("base64")}\n`;
}

/** The relative modules a compiled file requires: what the require hook checks for top-level await before running it. */
function relativeRequires(code: string): string[] {
  return [
    ...new Set(
      [...code.matchAll(/\brequire\("(\.{1,2}(?:\/[^"]*)?)"\)/g)].map((match) => match[1]),
    ),
  ];
}

function failures(error: unknown): Esbuild.Message[] {
  return (error as Partial<Esbuild.TransformFailure>).errors ?? [];
}

/** esbuild's first error as a SyntaxError naming the file, line and column, as Node's own do. */
function syntaxError(error: unknown, path: string): Error {
  const first = failures(error)[0];
  if (!first) return error as Error;
  const where = first.location
    ? `${path}:${first.location.line}:${first.location.column + 1}`
    : path;
  return new SyntaxError(`${first.text} (${where})`);
}
