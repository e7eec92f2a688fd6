// Turns an environ into a fetch API Request, for applications written against
// Request/Response (Hono, plain fetch handlers). The body streams from tsgi.input.
// The URL is given in the form `new Request(url).url` would give it, without
// parsing it when that form is plain to see (see light-request.ts).

import type { Environ, InputStream } from "../types.js";
import { encodeQuery } from "../percent.js";
import { requestTarget } from "./request-target.js";

// A Host value that cannot move the path: a registered name or IP literal, and a port.
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?$/;
// A path and query the URL parser leaves exactly as they are: only characters it
// does not escape, and no dot segment ("/." or an escaped dot) or backslash to resolve.
const PLAIN_TARGET = /^\/[A-Za-z0-9\-_~!$&'()*+,;=:@/%.]*(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@/%?]*)?$/;
const DOT_SEGMENT = /\/\.|%2e/i;

/** The last origin parsed: a server is mostly asked for by one Host. */
let lastOrigin = { scheme: "", authority: "", origin: "" };

/**
 * The request URL: scheme, Host (else SERVER_NAME:SERVER_PORT), the path and
 * QUERY_STRING. The path is what the application routes on, PATH_INFO ("/"
 * when empty), so it runs unchanged under any mount point; with `fullPath`
 * it is the public path, SCRIPT_NAME + PATH_INFO (for Hono's basePath).
 */
export function requestUrl(environ: Environ, fullPath = false): string {
  const scheme = environ["tsgi.url_scheme"];
  const { base, path } = requestTarget(environ);
  // At the mount point itself (PATH_INFO "") the public path is the base alone, without a slash added.
  const full = environ.PATH_INFO === "" && base !== "" ? base : base + path;
  const query = environ.QUERY_STRING ? "?" + encodeQuery(environ.QUERY_STRING) : "";
  const target = (fullPath ? full : path) + query;
  const origin = originOf(scheme, authority(environ));
  if (PLAIN_TARGET.test(target) && !DOT_SEGMENT.test(target)) return origin + target;
  return new URL(origin + target).href;
}

/** "scheme://host[:port]" as the URL parser writes it (lower case, default port left out, IP canonical). */
function originOf(scheme: string, authority: string): string {
  if (lastOrigin.scheme !== scheme || lastOrigin.authority !== authority) {
    const url = new URL(`${scheme}://${authority}/`);
    lastOrigin = { scheme, authority, origin: `${url.protocol}//${url.host}` };
  }
  return lastOrigin.origin;
}

function authority(environ: Environ): string {
  const host = environ.HTTP_HOST;
  if (host !== undefined && VALID_HOST.test(host)) return host;
  const name = environ.SERVER_NAME;
  if (name === undefined || !VALID_HOST.test(name)) return "localhost";
  const port = environ.SERVER_PORT;
  const defaultPort = environ["tsgi.url_scheme"] === "https" ? "443" : "80";
  return port && port !== defaultPort && /^[0-9]+$/.test(port) ? `${name}:${port}` : name;
}

/**
 * Request headers from HTTP_* (HTTP_X_FOO → x-foo), CONTENT_TYPE and
 * CONTENT_LENGTH. A front end may pass a header both ways (nginx sends
 * HTTP_CONTENT_TYPE beside CONTENT_TYPE); the CGI variable wins, else the
 * app would see "a, a" and fail to parse its form.
 */
export function requestHeaders(environ: Environ): Headers {
  const headers = new Headers();
  const add = (name: string, value: unknown) => {
    if (typeof value !== "string") return;
    try {
      headers.append(name, value);
    } catch {
      // A value fetch refuses (NUL, CR, LF) would fail the whole request; without it the app can still answer.
    }
  };
  const contentType = environ.CONTENT_TYPE;
  const contentLength = environ.CONTENT_LENGTH;
  for (const [key, value] of Object.entries(environ)) {
    if (!key.startsWith("HTTP_")) continue;
    if (key === "HTTP_CONTENT_TYPE" && contentType) continue;
    if (key === "HTTP_CONTENT_LENGTH" && contentLength) continue;
    add(key.slice(5).toLowerCase().replaceAll("_", "-"), value);
  }
  if (contentType) add("content-type", contentType);
  if (contentLength) add("content-length", contentLength);
  return headers;
}

/**
 * The body and signal of the RequestInit: a stream from tsgi.input when the request has a
 * body, and the signal of tsgi.get_signal, so that `request.signal` aborts when the client leaves, as it does
 * under a fetch-style server.
 */
export function requestInit(environ: Environ): RequestInit & { duplex?: "half" } {
  const signal = environ["tsgi.get_signal"]?.();
  if (!hasBody(environ)) return { signal };
  return { body: streamFromInput(environ["tsgi.input"]), duplex: "half", signal };
}

/** A body is there when CONTENT_LENGTH says so, or when it comes chunked with no length. */
function hasBody(environ: Environ): boolean {
  const method = environ.REQUEST_METHOD.toUpperCase();
  if (method === "GET" || method === "HEAD") return false;
  const length = environ.CONTENT_LENGTH;
  if (length) return length !== "0" && /^[0-9]+$/.test(length);
  return environ.HTTP_TRANSFER_ENCODING !== undefined;
}

/** A ReadableStream that pulls from tsgi.input only as the application reads. */
function streamFromInput(input: InputStream): ReadableStream<Uint8Array> {
  let iterator: AsyncIterator<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        iterator ??= input[Symbol.asyncIterator]();
        const step = await iterator.next();
        if (step.done) controller.close();
        else controller.enqueue(step.value);
      },
      async cancel() {
        await (iterator ?? input[Symbol.asyncIterator]()).return?.();
      },
    },
    { highWaterMark: 0 },
  );
}
