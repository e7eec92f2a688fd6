// `tsgi cgi <module>`: the fast path of the command line. Every CGI request
// pays start-up, so this loads only the CGI gateway: no argument parser, no
// FastCGI or HTTP code.

import { serveLoadedApp } from "../cgi/serve-loaded.js";
import { loadApplicationWith } from "../load-app.js";
import { cgiModuleLoader } from "./typescript-support.js";

const USAGE =
  "usage: tsgi cgi <module>[:export]\n\nServes one CGI request with the application exported by <module>.\n" +
  "A TypeScript module (.ts, .mts, .cts) is compiled once and cached in $TSGI_CACHE_DIR (default: node_modules/.cache/tsgi of its project).\n";

export async function main(args: string[]): Promise<void> {
  const spec = args[0];
  if (spec === undefined || spec === "-h" || spec === "--help" || args.length > 1) {
    process.stderr.write(USAGE);
    process.exitCode = spec === "-h" || spec === "--help" ? 0 : 2;
    return;
  }
  // A TypeScript module is compiled into $TSGI_CACHE_DIR (or the default, see typescript/cache-dir.ts).
  await serveLoadedApp(() => loadApplicationWith(spec, cgiModuleLoader(spec)));
}
