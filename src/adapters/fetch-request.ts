// Turns an environ into a fetch API Request, for applications written against
// Request/Response (Hono, plain fetch handlers). The body streams from tsgi.input.

import type { Environ, InputStream } from "../types.js";
import { encodePath, encodeQuery } from "../percent.js";

// A Host value that cannot move the path: a registered name or IP literal, and a port.
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?$/;

/** The request URL: scheme, Host (else SERVER_NAME:SERVER_PORT), SCRIPT_NAME + PATH_INFO re-encoded, QUERY_STRING. */
export function requestUrl(environ: Environ): string {
  const scheme = environ["tsgi.url_scheme"];
  const path = encodePath(environ.SCRIPT_NAME + environ.PATH_INFO);
  const query = environ.QUERY_STRING ? "?" + encodeQuery(environ.QUERY_STRING) : "";
  return `${scheme}://${authority(environ)}${path.startsWith("/") ? path : "/" + path}${query}`;
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

/** Request headers from HTTP_* (HTTP_X_FOO → x-foo), CONTENT_TYPE and CONTENT_LENGTH. */
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
  for (const [key, value] of Object.entries(environ)) {
    if (key.startsWith("HTTP_")) add(key.slice(5).toLowerCase().replaceAll("_", "-"), value);
  }
  if (environ.CONTENT_TYPE) add("content-type", environ.CONTENT_TYPE);
  if (environ.CONTENT_LENGTH) add("content-length", environ.CONTENT_LENGTH);
  return headers;
}

/** Builds the Request; throws TypeError for what fetch cannot represent (a TRACE or CONNECT method, say). */
export function requestFromEnviron(environ: Environ): Request {
  const method = environ.REQUEST_METHOD;
  const init: RequestInit & { duplex?: "half" } = { method, headers: requestHeaders(environ) };
  if (hasBody(environ)) {
    init.body = streamFromInput(environ["tsgi.input"]);
    init.duplex = "half";
  }
  return new Request(requestUrl(environ), init);
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
