// How `tsgi cgi` loads its module. TypeScript support (the require hook, the
// compile cache, the module hooks) is a bundle of its own,
// dist/cli/typescript-bundle.cjs beside cgi-bundle.cjs, required only for a
// TypeScript module: a .js application's request, which pays the start-up of
// everything in cgi-bundle.cjs, never reads or parses that code.

import { createRequire } from "node:module";
import { loadModule, parseAppSpec, type ModuleLoader } from "../load-app.js";
import { isTypeScript } from "../typescript/extensions.js";

type LoaderModule = typeof import("../typescript/loader.js");

export function cgiModuleLoader(spec: string): ModuleLoader {
  if (!isTypeScript(parseAppSpec(spec).file)) return loadModule;
  // A path relative to this file: dist/cli/ holds both the bundle and dist/cli/cgi.js (tsc's build of this file).
  const { commandLineLoader } = createRequire(import.meta.url)(
    "./typescript-bundle.cjs",
  ) as LoaderModule;
  return commandLineLoader();
}
