// Finds the application in a module named on the command line:
// `path/to/app.js` (default export, else `application`) or `path/to/app.js:name`.

import { createRequire } from "node:module";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Application } from "./types.js";

/** The module could not be loaded or does not export an application. */
export class AppLoadError extends Error {
  override name = "AppLoadError";
}

/** Splits `file:exportName`; a colon followed by something that is not an identifier is part of the path. */
export function parseAppSpec(spec: string): { file: string; exportName: string | undefined } {
  const colon = spec.lastIndexOf(":");
  if (colon > 0 && /^[A-Za-z_$][\w$]*$/.test(spec.slice(colon + 1))) {
    return { file: spec.slice(0, colon), exportName: spec.slice(colon + 1) };
  }
  return { file: spec, exportName: undefined };
}

/** Loads a module by absolute path and gives its namespace. */
export type ModuleLoader = (path: string) => Promise<Record<string, unknown>>;

export async function loadApplication(spec: string): Promise<Application> {
  return loadApplicationWith(spec, loadModule);
}

/** loadApplication with another module loader: the command line's also knows TypeScript (typescript/loader.ts). */
export async function loadApplicationWith(spec: string, load: ModuleLoader): Promise<Application> {
  const { file, exportName } = parseAppSpec(spec);
  let namespace: Record<string, unknown>;
  try {
    namespace = await load(resolve(file));
  } catch (error) {
    throw new AppLoadError(`cannot load application module ${file}: ${describeLoadError(error)}`, {
      cause: error,
    });
  }
  // [cgi.load] `tsgi cgi <module>` loads the application from `<module>`, an ES module (top-level await included)
  // or a CommonJS module: its default export, else its export named `application`; `<module>:name` picks the
  // export `name`.
  const candidate = exportName !== undefined ? namespace[exportName] : pickDefault(namespace);
  if (typeof candidate !== "function") {
    const wanted =
      exportName !== undefined
        ? `an export named "${exportName}"`
        : `a default export or an export named "application"`;
    const found =
      candidate === undefined ? "it has none" : `it is ${typeof candidate}, not a function`;
    throw new AppLoadError(`module ${file} must provide the application as ${wanted}; ${found}`);
  }
  return candidate as Application;
}

/**
 * Loads with require() where Node can require ES modules: it skips the
 * asynchronous ESM loader, about 5 ms of every CGI request's start-up. A module
 * that needs the ESM loader (top-level await) is loaded with import().
 */
export async function loadModule(path: string): Promise<Record<string, unknown>> {
  if (process.features.require_module) {
    try {
      return namespaceOf(createRequire(path)(path));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ERR_REQUIRE_ASYNC_MODULE" && code !== "ERR_REQUIRE_ESM") throw error;
    }
  }
  return (await import(pathToFileURL(path).href)) as Record<string, unknown>;
}

/** What require() gave, as a namespace: a CommonJS module exporting a function gives the function itself. */
export function namespaceOf(loaded: unknown): Record<string, unknown> {
  return typeof loaded === "function" ? { default: loaded } : (loaded as Record<string, unknown>);
}

function pickDefault(namespace: Record<string, unknown>): unknown {
  const fallback = namespace.default;
  if (typeof fallback === "function") return fallback;
  if (typeof namespace.application === "function") return namespace.application;
  // A CommonJS module's exports object arrives as the default export.
  if (fallback !== null && typeof fallback === "object")
    return (fallback as Record<string, unknown>).application ?? fallback;
  return fallback;
}

/** One line: the message, and for a syntax error the place, which Node keeps only in the stack. */
function describeLoadError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const message = error.message.split("\n")[0] ?? "";
  if (error instanceof SyntaxError && error.stack) {
    const where = error.stack.split("\n")[0];
    if (where && where !== `${error.name}: ${error.message}` && /:\d+$/.test(where))
      return `${message} (${where})`;
  }
  return message;
}
