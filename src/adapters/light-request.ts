// A Request that costs almost nothing until the application needs it. Most
// fetch apps read only the method, the URL and perhaps a header per request;
// a real Request also builds a Headers object, an AbortSignal and a body
// stream, and parses the URL. The light request answers `method`, `url` and
// `headers` itself and builds the real Request (once) the first time
// anything else is touched: body, signal, clone(), text(), and so on.
//
// It has Request.prototype in its prototype chain, so `instanceof Request`
// holds, and every other member of Request.prototype is redefined to act on
// the real Request. The real Request's own symbol-keyed slots (the fetch
// implementation's internal state) are forwarded too, so `new Request(light)`
// and `fetch(light)` work. Nothing global is replaced.

import type { Environ } from "../types.js";
import { requestHeaders, requestInit } from "./fetch-request.js";

// A method token (RFC 9110 §5.6.2) and the methods fetch refuses outright.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FORBIDDEN_METHOD = /^(?:connect|trace|track)$/i;
// Methods fetch writes in upper case whatever case they came in.
const NORMALISED_METHOD = /^(?:delete|get|head|options|post|put)$/i;

/** The light request class, set up on first use: reading the global Request loads the fetch implementation. */
let LightClass: (new (environ: Environ, url: string, method: string) => Request) | undefined;

/**
 * A Request for `url` and the environ's method, headers and body, built
 * lazily. Throws TypeError at once for a method fetch cannot represent, as
 * `new Request` would.
 */
export function lightRequest(environ: Environ, url: string): Request {
  const method = environ.REQUEST_METHOD;
  if (!TOKEN.test(method)) throw new TypeError(`"${method}" is not a valid HTTP method`);
  if (FORBIDDEN_METHOD.test(method)) throw new TypeError(`"${method}" HTTP method is unsupported`);
  LightClass ??= defineLightRequest();
  return new LightClass(
    environ,
    url,
    NORMALISED_METHOD.test(method) ? method.toUpperCase() : method,
  );
}

function defineLightRequest(): new (environ: Environ, url: string, method: string) => Request {
  class LightRequest {
    readonly #environ: Environ;
    #headers: Headers | undefined;
    #real: Request | undefined;

    // What a router reads on every request, as own values that shadow Request's getters:
    // answered without building the real Request.
    constructor(
      environ: Environ,
      readonly url: string,
      readonly method: string,
    ) {
      this.#environ = environ;
    }

    get headers(): Headers {
      return (this.#headers ??= requestHeaders(this.#environ));
    }

    /** The real Request, built the first time it is needed, with the same headers object's entries. */
    static real(light: LightRequest): Request {
      light.#real ??= new Request(light.url, {
        ...requestInit(light.#environ),
        method: light.method,
        headers: light.headers,
      });
      return light.#real;
    }
  }
  const real = (light: LightRequest) => LightRequest.real(light);
  const prototype = LightRequest.prototype as unknown as Record<PropertyKey, unknown>;
  const own = new Set(Reflect.ownKeys(prototype));
  for (const key of Reflect.ownKeys(Request.prototype)) {
    if (own.has(key) || key === Symbol.toStringTag) continue;
    const descriptor = Reflect.getOwnPropertyDescriptor(Request.prototype, key)!;
    forward(prototype, key, typeof descriptor.value === "function", real);
  }
  const probe = new Request("http://localhost/");
  for (const key of Object.getOwnPropertySymbols(probe)) forward(prototype, key, false, real);
  Object.setPrototypeOf(prototype, Request.prototype);
  return LightRequest as unknown as new (environ: Environ, url: string, method: string) => Request;
}

/** Makes `key` of the light prototype act on the real Request: a method call, or a read. */
function forward<T>(
  prototype: object,
  key: PropertyKey,
  isMethod: boolean,
  real: (light: T) => Request,
): void {
  const target = (light: unknown) => real(light as T) as unknown as Record<PropertyKey, unknown>;
  Object.defineProperty(
    prototype,
    key,
    isMethod
      ? {
          value: function (this: unknown, ...args: unknown[]): unknown {
            const request = target(this);
            return (request[key] as (...args: unknown[]) => unknown).apply(request, args);
          },
          configurable: true,
          writable: true,
        }
      : {
          get(this: unknown): unknown {
            return target(this)[key];
          },
          configurable: true,
        },
  );
}
