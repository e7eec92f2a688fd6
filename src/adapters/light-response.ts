// A Response that stays a small plain object while it is only made and read
// the way a fetch handler's answer usually is, so that the adapter can send a
// string or bytes as they are. Node's own Response (undici) builds a
// ReadableStream for every body the moment it is made (a string included),
// which cost a Hono hello under tsgi about as much CPU as the rest of the
// request; @hono/node-server avoids it the same way, by putting a class of its
// own in place of the global Response, and tsgi does so for the process that
// runs a fetch handler (fromFetchHandler's `overrideGlobalObjects: false` keeps
// the native class).
//
// The light class keeps the native behaviour: `instanceof Response` holds
// for both kinds, anything the fast path does not cover (a stream body, a
// statusText, an unusual status) is handed to the native constructor at once,
// and the first use of the body, clone() or any other member builds the native
// Response it then forwards to. Only status, ok, statusText and headers are
// answered without it.

const NativeResponse = globalThis.Response;
type BodyInit = ConstructorParameters<typeof Response>[0];

/** What the adapter sends without a native Response: the status, the headers and the whole body. */
export interface LightParts {
  status: number;
  /** Undefined while the response was given none and nobody asked: only the default Content-Type then. */
  headers: Headers | undefined;
  body: string | Uint8Array | null;
}

/** What a string body gets when no Content-Type was given, as the native class gives it. */
export const STRING_CONTENT_TYPE = "text/plain;charset=UTF-8";

/** The headers of `light`, made (with the default Content-Type) when first asked for. */
function headersOf(light: LightParts): Headers {
  if (light.headers) return light.headers;
  light.headers = new Headers();
  if (typeof light.body === "string") light.headers.set("content-type", STRING_CONTENT_TYPE);
  return light.headers;
}

/** Statuses whose response must have no body (fetch's "null body status"). */
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/** The parts of a light Response nothing has turned native yet; undefined otherwise. */
export function lightParts(response: object): LightParts | undefined {
  return LightResponse.partsOf(response);
}

/** The body as the fast path keeps it (a copy of bytes, as the native class keeps); undefined when it cannot. */
function simpleBody(body: unknown): string | Uint8Array | null | undefined {
  if (body === undefined || body === null) return null;
  if (typeof body === "string") return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body.slice(0));
  if (body instanceof Uint8Array) return Uint8Array.prototype.slice.call(body);
  return undefined;
}

/** The status of a fast-path init; undefined when the native constructor must judge it. */
function simpleStatus(init: ResponseInit | undefined, hasBody: boolean): number | undefined {
  if (init === undefined) return 200;
  if (typeof init !== "object" || init === null || init.statusText !== undefined) return undefined;
  const status = init.status ?? 200;
  if (!Number.isInteger(status) || status < 200 || status > 599) return undefined;
  if (hasBody && NULL_BODY_STATUS.has(status)) return undefined;
  return status;
}

class LightResponse {
  #native: Response | undefined;
  // A field, not a WeakMap beside the class: a WeakMap entry per response
  // cost about as much as the rest of the constructor, and its ephemerons are
  // extra work for every scavenge.
  #light: LightParts | undefined;

  constructor(body?: BodyInit | null, init?: ResponseInit) {
    const simple = simpleBody(body);
    const status = simple === undefined ? undefined : simpleStatus(init, simple !== null);
    if (simple === undefined || status === undefined) {
      this.#native = new NativeResponse(body, init);
      return;
    }
    let headers: Headers | undefined;
    if (init?.headers !== undefined) {
      // Headers validates names and values as the native constructor would (a TypeError).
      headers = new Headers(init.headers);
      if (typeof simple === "string" && !headers.has("content-type"))
        headers.set("content-type", STRING_CONTENT_TYPE);
    }
    this.#light = { status, headers, body: simple };
  }

  /** The native Response this one stands for, built on first need. */
  native(): Response {
    if (this.#native) return this.#native;
    const light = this.#light!;
    this.#light = undefined;
    this.#native = new NativeResponse(light.body as BodyInit | null, {
      status: light.status,
      headers: headersOf(light),
    });
    return this.#native;
  }

  get status(): number {
    return this.#light?.status ?? this.native().status;
  }

  get ok(): boolean {
    const status = this.status;
    return status >= 200 && status <= 299;
  }

  get statusText(): string {
    return this.#light ? "" : this.native().statusText;
  }

  get headers(): Headers {
    const light = this.#light;
    return light ? headersOf(light) : this.native().headers;
  }

  static [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof NativeResponse;
  }

  static isLight(value: object): value is LightResponse {
    return #native in value;
  }

  static partsOf(value: object): LightParts | undefined {
    return #light in value ? value.#light : undefined;
  }
}

/** Every other member of Response.prototype forwards to the native Response. */
function forwardTheRest(): void {
  const own = new Set(Object.getOwnPropertyNames(LightResponse.prototype));
  for (const name of Object.getOwnPropertyNames(NativeResponse.prototype)) {
    if (own.has(name)) continue;
    const descriptor = Object.getOwnPropertyDescriptor(NativeResponse.prototype, name)!;
    if (typeof descriptor.value === "function") {
      Object.defineProperty(LightResponse.prototype, name, {
        ...descriptor,
        value(this: LightResponse, ...args: unknown[]) {
          const native = this.native() as unknown as Record<string, (...a: unknown[]) => unknown>;
          return native[name](...args);
        },
      });
    } else if (descriptor.get) {
      Object.defineProperty(LightResponse.prototype, name, {
        configurable: true,
        enumerable: descriptor.enumerable ?? false,
        get(this: LightResponse) {
          return (this.native() as unknown as Record<string, unknown>)[name];
        },
      });
    }
  }
  Object.setPrototypeOf(LightResponse.prototype, NativeResponse.prototype);
  Object.setPrototypeOf(LightResponse, NativeResponse);
}

let installed = false;

/** Puts the light class in place of the global Response (once; only over the native class). */
export function installLightResponse(): void {
  if (installed || globalThis.Response !== NativeResponse) return;
  installed = true;
  forwardTheRest();
  globalThis.Response = LightResponse as unknown as typeof Response;
}

/** The native Response of a light one (for what only the native class can do); the response itself otherwise. */
export function nativeResponse(response: Response): Response {
  return LightResponse.isLight(response) ? response.native() : response;
}
