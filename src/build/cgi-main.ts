// What a bundle built by `tsgi build` runs first: the same steps as `tsgi cgi`
// (cli/cgi.ts), with the application already inside the bundle. The bundle's
// entry hands the application over as a function that require()s it, so none
// of the application's code (its imports included) runs before stdout belongs
// to the response.

import { claimStdout, plainTextResponse, runWithCgi } from "../cgi/gateway.js";
import { AppLoadError, loadApplicationWith, namespaceOf } from "../load-app.js";

/**
 * Serves one CGI request with the application `requireApp()` gives.
 * `spec` (`app.ts` or `app.ts:name`) picks the export, as on the command
 * line, and names the module in a load error.
 */
export async function runBundledApp(spec: string, requireApp: () => unknown): Promise<void> {
  if (!process.env.REQUEST_METHOD) {
    // Run from a shell: runWithCgi explains, without loading the application.
    await runWithCgi(() => []);
    return;
  }
  claimStdout();
  let app;
  try {
    // The same export rules and messages as `tsgi cgi`; the namespace comes from the bundle instead of the disk.
    app = await loadApplicationWith(spec, async () => namespaceOf(requireApp()));
  } catch (error) {
    const message = error instanceof AppLoadError ? error.message : String(error);
    process.stderr.write(`tsgi: ${message}\n`);
    const text =
      "Internal Server Error: the application could not be loaded (see the server's error log)\n";
    await runWithCgi(plainTextResponse("500 Internal Server Error", text), { exit: false });
    process.exit(1);
  }
  await runWithCgi(app);
}
