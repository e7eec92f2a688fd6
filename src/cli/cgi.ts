// `tsgi cgi <module>`: the fast path of the command line. Every CGI request
// pays start-up, so this loads only the CGI gateway: no argument parser, no
// FastCGI or HTTP code.

import { claimStdout, plainTextResponse, runWithCgi } from "../cgi/gateway.js";
import { AppLoadError, loadApplicationWith } from "../load-app.js";
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
  if (!process.env.REQUEST_METHOD) {
    // runWithCgi explains; no need to load the module first.
    await runWithCgi(() => [], {});
    return;
  }
  // Before the module loads, so its top-level console.log cannot reach the response.
  claimStdout();
  let app;
  try {
    // A TypeScript module is compiled into $TSGI_CACHE_DIR (or the default, see typescript/cache-dir.ts).
    app = await loadApplicationWith(spec, cgiModuleLoader(spec));
  } catch (error) {
    // [cgi.load-error] A module that cannot be loaded or does not export a function gives one line on stderr
    // starting with `tsgi:`, a 500 response on stdout and exit status 1.
    const message = error instanceof AppLoadError ? error.message : String(error);
    process.stderr.write(`tsgi: ${message}\n`);
    const text =
      "Internal Server Error: the application could not be loaded (see the server's error log)\n";
    await runWithCgi(plainTextResponse("500 Internal Server Error", text), { exit: false });
    process.exit(1);
  }
  await runWithCgi(app);
}
