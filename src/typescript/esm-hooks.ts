// Module hooks (module.register) for a TypeScript application that awaits at
// the top level, which only the ES module loader can run. They run on a thread
// of their own, which costs tens of milliseconds to start, so they are
// registered only for such an application (see loader.ts). .ts and .mts files
// become ES modules here (from the same cache, as a separate entry); a .cts
// file goes to the CommonJS loader, whose require hook compiles it.

import { fileURLToPath } from "node:url";
import { CompileCache } from "./cache.js";
import type { CacheLocation } from "./cache-dir.js";
import { CachedCompiler } from "./cached-compiler.js";
import { compilerVersion } from "./compiler.js";
import { isTypeScript, typeScriptTwin } from "./extensions.js";
import type { WarnFlag } from "./warn.js";

export interface HooksData {
  location: CacheLocation;
  warned: WarnFlag;
}

interface ResolveContext {
  parentURL?: string | undefined;
}
type NextResolve = (specifier: string, context?: ResolveContext) => Promise<{ url: string }>;
type NextLoad = (
  url: string,
  context?: object,
) => Promise<{ format?: string | null; source?: unknown }>;

let compiler: CachedCompiler;

export function initialize(data: HooksData): void {
  compiler = new CachedCompiler(new CompileCache(data.location, compilerVersion(), data.warned));
}

export async function resolve(
  specifier: string,
  context: ResolveContext,
  next: NextResolve,
): Promise<{ url: string }> {
  try {
    return await next(specifier, context);
  } catch (error) {
    const twin =
      context.parentURL?.startsWith("file:") && isTypeScript(context.parentURL)
        ? typeScriptTwin(specifier)
        : undefined;
    if (twin === undefined || (error as NodeJS.ErrnoException).code !== "ERR_MODULE_NOT_FOUND")
      throw error;
    try {
      return await next(twin, context);
    } catch {
      throw error;
    }
  }
}

export async function load(
  url: string,
  context: object,
  next: NextLoad,
): Promise<{ format?: string | null; source?: unknown; shortCircuit?: boolean }> {
  if (!url.startsWith("file:") || !isTypeScript(url)) return next(url, context);
  if (url.endsWith(".cts")) return { format: "commonjs", shortCircuit: true };
  return { format: "module", source: await compiler.esm(fileURLToPath(url)), shortCircuit: true };
}
