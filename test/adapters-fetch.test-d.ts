// Compile-time tests of fromFetchHandler's types, checked by `tsc --noEmit -p .`
// (part of `npm test`); nothing here runs. A line under `// @ts-expect-error`
// must fail to type-check, or tsc reports the directive.

import { Hono } from "hono";
import { expectTypeOf } from "vitest";
import { fromFetchHandler, type Application, type Environ } from "../src/fetch.js";

// Hono's app.fetch fits as it is, with or without the environ typed as its Bindings (c.env).
export const honoApp: Application = fromFetchHandler(new Hono().fetch);
const typed = new Hono<{ Bindings: Environ }>();
typed.get("/", (c) => c.text(c.env.SCRIPT_NAME));
export const typedHonoApp: Application = fromFetchHandler(typed.fetch, { fullPath: true });

// A plain handler gets the Request and the environ.
export const plainApp = fromFetchHandler((request, environ) => {
  expectTypeOf(request).toEqualTypeOf<Request>();
  expectTypeOf(environ).toEqualTypeOf<Environ>();
  return new Response(environ.PATH_INFO);
});

// @ts-expect-error the option is fullPath
export const misspelt = fromFetchHandler(() => new Response(""), { fullpath: true });
