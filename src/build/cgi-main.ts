// What a bundle built by `tsgi build` runs first: the same steps as `tsgi cgi`
// (cli/cgi.ts), with the application already inside the bundle. The bundle's
// entry hands the application over as a function that require()s it, so none
// of the application's code (its imports included) runs before stdout belongs
// to the response.

import { serveLoadedApp } from "../cgi/serve-loaded.js";
import { loadApplicationWith, namespaceOf } from "../load-app.js";

/**
 * Serves one CGI request with the application `requireApp()` gives.
 * `spec` (`app.ts` or `app.ts:name`) picks the export, as on the command
 * line, and names the module in a load error.
 */
export async function runBundledApp(spec: string, requireApp: () => unknown): Promise<void> {
  // The same export rules and messages as `tsgi cgi`; the namespace comes from the bundle instead of the disk.
  await serveLoadedApp(() =>
    loadApplicationWith(spec, () => Promise.resolve(namespaceOf(requireApp()))),
  );
}
