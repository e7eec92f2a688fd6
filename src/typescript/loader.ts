// The command line's module loader: a TypeScript application module is
// compiled (esbuild, transpile only) and cached, then run; anything else loads
// as load-app.ts loads it. Node's module loader is patched only here: in the
// tsgi process, for TypeScript files, once a TypeScript application is
// loaded; never by `import "tsgi"`.

import { createRequire, register } from "node:module";
import { pathToFileURL } from "node:url";
import { loadModule, namespaceOf, type ModuleLoader } from "../load-app.js";
import { CompileCache } from "./cache.js";
import { chooseCacheDir } from "./cache-dir.js";
import { CachedCompiler } from "./cached-compiler.js";
import { compilerVersion } from "./compiler.js";
import type { HooksData } from "./esm-hooks.js";
import { isTypeScript } from "./extensions.js";
import { installRequireHook } from "./require-hook.js";
import { installStackMapper, useNodeSourceMaps } from "./stack-maps.js";
import { newWarnFlag } from "./warn.js";

export interface TypeScriptOptions {
  /** Where compiled files are kept (`--cache-dir`); default: see cache-dir.ts. */
  cacheDir?: string | undefined;
}

// [cgi.typescript] `tsgi cgi`, `tsgi fcgi` and `tsgi serve` also load an application module
// ending in `.ts`, `.mts` or `.cts`: it is transpiled (types removed, nothing checked), an import
// of `./x.js` from a TypeScript file finds `./x.ts` when no `x.js` exists, packages resolve from
// the source's directory, `import.meta.url`, `import.meta.dirname`, `import.meta.filename`,
// `__filename` and `__dirname` name the source file, and stack traces name the source file, line
// and column.
export function commandLineLoader(options: TypeScriptOptions = {}): ModuleLoader {
  return async (path) => {
    if (!isTypeScript(path)) return loadModule(path);
    const data: HooksData = {
      location: chooseCacheDir(path, options.cacheDir),
      warned: newWarnFlag(),
    };
    // Stack traces then name the .ts file and its lines (the compiled code carries a source map).
    installStackMapper();
    installRequireHook(
      new CachedCompiler(new CompileCache(data.location, compilerVersion(), data.warned)),
    );
    try {
      return namespaceOf(createRequire(path)(path));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ERR_REQUIRE_ASYNC_MODULE") throw error;
    }
    // Every .ts file the import reaches compiles to an ES module on the hooks' thread.
    if (typeof register !== "function")
      throw new Error("a TypeScript module with top-level await needs Node.js 20.6 or later");
    useNodeSourceMaps();
    // dist/cli/typescript-bundle.cjs and dist/typescript/loader.js both find it this way.
    register(new URL("../typescript/esm-hooks.js", import.meta.url), { data });
    return (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  };
}
