// Runs a fetch-style application — `(request: Request) => Response`, such as
// Hono's `app.fetch` — as a TSGI application.

import { STATUS_CODES } from "node:http";
import { isHopByHop } from "../headers.js";
import { isThenable } from "../values.js";
import type { Application, Body, Environ, HeaderList, StartResponse } from "../types.js";
import { requestUrl } from "./fetch-request.js";
import { lightRequest } from "./light-request.js";
import {
  installLightResponse,
  lightParts,
  nativeResponse,
  STRING_CONTENT_TYPE,
} from "./light-response.js";
import { wholeBody } from "./response-body.js";
import { bodyFromWebStream } from "./web-stream-body.js";

/**
 * A fetch-style application. The environ comes as the second argument, where
 * Hono puts its `c.env`: the app can read SCRIPT_NAME, REQUEST_URI, REMOTE_ADDR.
 */
export type FetchHandler = (request: Request, environ: Environ) => Response | Promise<Response>;

export interface FetchOptions {
  /**
   * Give the Request URL the public path, SCRIPT_NAME + PATH_INFO, instead of
   * PATH_INFO alone: for an app that knows where it is mounted (Hono's basePath).
   */
  fullPath?: boolean;
  /**
   * Put a light Response class in place of the global one (see
   * light-response.ts), as @hono/node-server does by default. Default true;
   * false keeps Node's own class, and every body goes through its stream.
   */
  overrideGlobalObjects?: boolean;
}

// Any UTF-16 code unit above U+00FF (surrogates included) is beyond Latin-1.
const NOT_LATIN1 = /[\u0100-\uffff]/;

/**
 * The application that serves each request by calling `handler` with a
 * Request built from the environ (URL from the scheme, Host, PATH_INFO — or
 * SCRIPT_NAME + PATH_INFO with `fullPath` — and QUERY_STRING; body streamed
 * from tsgi.input) and the environ, and sending the Response it returns.
 */
export function fromFetchHandler(handler: FetchHandler, options: FetchOptions = {}): Application {
  if (typeof handler !== "function")
    throw new TypeError("fromFetchHandler() takes a function (request: Request) => Response");
  const fullPath = options.fullPath === true;
  if (options.overrideGlobalObjects !== false) installLightResponse();
  return (environ, startResponse) => {
    let request: Request;
    try {
      // Throws TypeError for what fetch cannot represent (a TRACE method, a Host that is no host).
      request = lightRequest(environ, requestUrl(environ, fullPath));
    } catch (error) {
      return badRequest(environ, startResponse, error);
    }
    const response: unknown = handler(request, environ);
    // A handler that answers at once (Hono's, for a route whose handler is not
    // async) gets its body back at once: the engine sends it without awaiting.
    return isThenable(response)
      ? Promise.resolve(response).then((settled) => sendResponse(settled, startResponse))
      : sendResponse(response, startResponse);
  };
}

/** Starts the response and returns its body: as it is when the Response was made from a string or bytes. */
function sendResponse(response: unknown, startResponse: StartResponse): Body | Promise<Body> {
  if (!isResponse(response)) {
    throw new TypeError(
      `the fetch handler must return a Response, not ${response === null ? "null" : typeof response}`,
    );
  }
  const light = lightParts(response);
  if (light) {
    const headers: HeaderList = light.headers
      ? responseHeaders(light.headers)
      : typeof light.body === "string"
        ? [["content-type", STRING_CONTENT_TYPE]]
        : [];
    startResponse(statusLine(light.status), headers);
    return light.body === null ? [] : [light.body];
  }
  const native = nativeResponse(response);
  startResponse(statusLine(native.status), responseHeaders(native.headers));
  if (native.body === null) return [];
  const whole = wholeBody(native);
  return whole === undefined ? bodyFromWebStream(native.body) : [whole];
}

/** Duck-typed: a Response from another copy of the fetch classes works as well. */
function isResponse(value: unknown): value is Response {
  // A light Response, asked nothing: its body getter would make it native.
  if (typeof value === "object" && value !== null && lightParts(value)) return true;
  const response = value as Partial<Response> | null;
  return (
    typeof response?.status === "number" &&
    typeof response.headers?.getSetCookie === "function" &&
    response.body !== undefined
  );
}

function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? "Unknown"}`;
}

/**
 * The response headers as TSGI wants them: hop-by-hop headers left out (the
 * gateway frames the response itself), each Set-Cookie on its own, and every
 * value Latin-1.
 */
export function responseHeaders(headers: Headers): HeaderList {
  const list: HeaderList = [];
  for (const [name, value] of headers) {
    if (name !== "set-cookie" && !isHopByHop(name)) list.push([name, latin1(value)]);
  }
  for (const cookie of headers.getSetCookie()) list.push(["set-cookie", latin1(cookie)]);
  return list;
}

/** A value with characters beyond U+00FF goes out as its UTF-8 bytes, one code point per byte. */
function latin1(value: string): string {
  return NOT_LATIN1.test(value) ? Buffer.from(value, "utf8").toString("latin1") : value;
}

/** What the request cannot be turned into a Request for is the client's doing: a 400, not a 500. */
function badRequest(environ: Environ, startResponse: StartResponse, error: unknown): Body {
  const reason = error instanceof Error ? error.message : String(error);
  environ["tsgi.errors"].write(
    `[tsgi] ${environ.REQUEST_METHOD} ${environ.SCRIPT_NAME}${environ.PATH_INFO}: cannot make a fetch Request: ${reason}\n`,
  );
  startResponse("400 Bad Request", [["Content-Type", "text/plain; charset=utf-8"]]);
  return ["Bad Request\n"];
}
