// One CGI request with an application still to be loaded: what `tsgi cgi`
// (cli/cgi.ts) and a bundle built by `tsgi build` (build/cgi-main.ts) both do,
// with their own ways of loading it.

import { reportStartupError } from "../cli/load-error.js";
import type { Application } from "../types.js";
import { claimStdout, plainTextResponse, runWithCgi } from "./gateway.js";

const LOAD_FAILED =
  "Internal Server Error: the application could not be loaded (see the server's error log)\n";

/** Loads the application with `load()` and serves the request of this process's environment with it. */
export async function serveLoadedApp(load: () => Promise<Application>): Promise<void> {
  if (!process.env.REQUEST_METHOD) {
    // runWithCgi explains; no need to load the module first.
    await runWithCgi(() => []);
    return;
  }
  // Before the module loads, so its top-level console.log cannot reach the response.
  claimStdout();
  let app;
  try {
    app = await load();
  } catch (error) {
    // [cgi.load-error] A module that cannot be loaded or does not export a function gives one line on stderr
    // starting with `tsgi:`, a 500 response on stdout and exit status 1.
    reportStartupError(error);
    await runWithCgi(plainTextResponse("500 Internal Server Error", LOAD_FAILED), { exit: false });
    process.exit(1);
  }
  await runWithCgi(app);
}
