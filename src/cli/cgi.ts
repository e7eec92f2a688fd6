// `tsgi cgi <module>`: the fast path of the command line. Every CGI request
// pays start-up, so this loads only the CGI gateway: no argument parser, no
// FastCGI or HTTP code.

import { claimStdout, plainTextResponse, runWithCgi } from "../cgi/gateway.js";
import { AppLoadError, loadApplication } from "../load-app.js";

const USAGE = "usage: tsgi cgi <module>[:export]\n\nServes one CGI request with the application exported by <module>.\n";

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
    app = await loadApplication(spec);
  } catch (error) {
    const message = error instanceof AppLoadError ? error.message : String(error);
    process.stderr.write(`tsgi: ${message}\n`);
    const text = "Internal Server Error: the application could not be loaded (see the server's error log)\n";
    await runWithCgi(plainTextResponse("500 Internal Server Error", text), { exit: false });
    process.exit(1);
  }
  await runWithCgi(app);
}
