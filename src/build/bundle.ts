// `tsgi build <module> --out app.cgi.cjs`: the application, everything it
// imports from node_modules and the CGI gateway in one CommonJS file, run by a
// CGI wrapper as `node app.cgi.cjs`: no node_modules on the host, and no module
// resolution at each request's start-up. esbuild does the bundling (and the
// TypeScript); this file sets it up and turns its messages into text.

import { build, type Message } from "esbuild";
import { resolve } from "node:path";
import { parseAppSpec } from "../load-app.js";
import { entrySource } from "./entry.js";
import { refuseNativeAddons } from "./native-addons.js";

/** The build failed; the message names what and where, one problem a line. */
export class BuildError extends Error {
  override name = "BuildError";
}

/**
 * Inside the bundle, `import.meta.url`, `import.meta.dirname` and
 * `import.meta.filename` name the bundle file, as `__dirname` and `__filename`
 * do: the bundle is what runs on the server, wherever it was built, so a file an
 * application reads beside itself is deployed beside the bundle.
 */
const IMPORT_META = {
  banner: 'var __tsgi_import_meta_url = require("node:url").pathToFileURL(__filename).href;',
  define: {
    "import.meta.url": "__tsgi_import_meta_url",
    "import.meta.dirname": "__dirname",
    "import.meta.filename": "__filename",
  },
};

/** Builds `spec` (`app.ts` or `app.ts:name`) into `out`; resolves with esbuild's warnings as text, rejects with a BuildError. */
export async function buildCgiBundle(spec: string, out: string): Promise<string[]> {
  const { file, exportName } = parseAppSpec(spec);
  try {
    const result = await build({
      stdin: {
        contents: entrySource(resolve(file), exportName),
        resolveDir: process.cwd(),
        loader: "js",
        sourcefile: "tsgi-build-entry.js",
      },
      outfile: resolve(out),
      bundle: true,
      platform: "node",
      format: "cjs",
      target: "node20",
      banner: { js: IMPORT_META.banner },
      define: IMPORT_META.define,
      // Less to parse at every request's start-up; names stay, so stack traces stay readable.
      minifyWhitespace: true,
      minifySyntax: true,
      plugins: [refuseNativeAddons],
      logLevel: "silent",
    });
    return result.warnings.map(describe);
  } catch (error) {
    const errors = (error as { errors?: Message[] }).errors;
    if (!errors) throw error;
    throw new BuildError(errors.map(describe).join("\n"));
  }
}

/** `file:line:column: text`, as compilers print it, so an editor can jump there. */
function describe(message: Message): string {
  const where = message.location
    ? `${message.location.file}:${message.location.line}:${message.location.column + 1}: `
    : "";
  return `${where}${message.text}`;
}
