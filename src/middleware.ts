// Middleware for TSGI applications: an application wrapped in another
// application. compose() stacks middlewares; mount() sends each request to
// the application mounted at the longest matching path prefix.

import type { Application, Body, Environ, StartResponse } from "./types.js";
import { defineValue } from "./environ.js";

/** Takes an application and returns one that wraps it. */
export type Middleware = (app: Application) => Application;

/**
 * Stacks middlewares in the order written, the first outermost:
 * `compose(a, b)(app)` is `a(b(app))`, so a request reaches `a` first, then
 * `b`, then `app`, and the response passes back through `b`, then `a`.
 * `compose()` with no middleware returns the application unchanged.
 */
export function compose(...middlewares: Middleware[]): Middleware {
  return (app) =>
    middlewares.reduceRight<Application>((inner, middleware) => middleware(inner), app);
}

/**
 * Dispatches each request to the application mounted at the longest prefix of
 * PATH_INFO, matching whole path segments only: "/api" takes "/api" and
 * "/api/users" but not "/apix". The matched prefix moves from PATH_INFO to the
 * end of SCRIPT_NAME (so for "/api/users" the API application sees
 * SCRIPT_NAME "/api" and PATH_INFO "/users", and for "/api" itself PATH_INFO "").
 * "/" (or "") mounts the application for everything else; a prefix's trailing
 * slashes are ignored. A request that matches no prefix gets a plain-text 404.
 *
 * The mounted application gets a copy of the environ, so the caller's environ
 * keeps its SCRIPT_NAME and PATH_INFO.
 */
export function mount(mounts: Record<string, Application>): Application {
  const table: [prefix: string, app: Application][] = [];
  for (const [key, app] of Object.entries(mounts)) {
    const prefix = key.replace(/\/+$/, "");
    if (prefix !== "" && !prefix.startsWith("/")) {
      throw new TypeError(`mount(): prefix ${JSON.stringify(key)} must start with "/"`);
    }
    if (typeof app !== "function")
      throw new TypeError(`mount(): ${JSON.stringify(key)} is not mapped to an application`);
    if (table.some(([other]) => other === prefix)) {
      throw new TypeError(`mount(): ${JSON.stringify(key)} mounts the same prefix twice`);
    }
    table.push([prefix, app]);
  }
  table.sort(([a], [b]) => b.length - a.length);

  return (environ, startResponse) => {
    const path = environ.PATH_INFO ?? "";
    for (const [prefix, app] of table) {
      if (path === prefix || path.startsWith(prefix + "/")) {
        const inner = copyEnviron(environ);
        inner.SCRIPT_NAME = (environ.SCRIPT_NAME ?? "") + prefix;
        inner.PATH_INFO = path.slice(prefix.length);
        return app(inner, startResponse);
      }
    }
    return notFound(startResponse);
  };
}

const NOT_FOUND = "Not Found\n";

function notFound(startResponse: StartResponse): Body {
  startResponse("404 Not Found", [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(NOT_FOUND.length)],
  ]);
  return [NOT_FOUND];
}

/**
 * A shallow copy of an environ, for a middleware that changes keys the caller
 * must not see changed. A gateway may define keys as getters that build their
 * value on first use (the CGI gateway does so for tsgi.input); the copy reads
 * such a key through the original instead of calling the getter again, so the
 * value is still built once, and only if someone reads it.
 */
export function copyEnviron(environ: Environ): Environ {
  const copy = {} as Environ;
  for (const [key, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(environ))) {
    if (!descriptor.get) {
      Object.defineProperty(copy, key, descriptor);
      continue;
    }
    Object.defineProperty(copy, key, {
      enumerable: descriptor.enumerable,
      configurable: true,
      get: () => (environ as unknown as Record<string, unknown>)[key],
      // Setting the key replaces it on the copy only.
      set: (value: unknown) => defineValue(copy, key, value),
    });
  }
  return copy;
}
