// The generated entry module of a `tsgi build` bundle.

import { basename } from "node:path";
import { fileURLToPath } from "node:url";

/** cgi-main.js of this build of tsgi (beside this file in dist/build/), bundled into every output. */
const CGI_MAIN = fileURLToPath(new URL("./cgi-main.js", import.meta.url));

/**
 * The entry's source. It is CommonJS on purpose: esbuild hoists ES `import`s
 * above the code around them, so `import app from "./app.ts"` would run the
 * application's top level before stdout is claimed. A require() inside a
 * function runs exactly when it is called.
 */
export function entrySource(appFile: string, exportName: string | undefined): string {
  // The module's name in a load error: the file name, not the build machine's path.
  const spec = exportName === undefined ? basename(appFile) : `${basename(appFile)}:${exportName}`;
  return [
    `const { runBundledApp } = require(${JSON.stringify(CGI_MAIN)});`,
    `runBundledApp(${JSON.stringify(spec)}, () => require(${JSON.stringify(appFile)}));`,
    "",
  ].join("\n");
}
