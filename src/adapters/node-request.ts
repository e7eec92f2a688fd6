// Builds the real http.IncomingMessage that fromNodeHandler hands to a
// Node-style application, from an environ; the body streams in from tsgi.input.
//
// [adapter.node-url] `fromNodeHandler` gives the application `req.url` = `PATH_INFO` (`/` when empty) and the
// query, `req.baseUrl` = `SCRIPT_NAME`, and `req.originalUrl` = `SCRIPT_NAME + PATH_INFO` and the query, each
// percent-encoded, or raw from `REQUEST_URI` where it decodes to the same path.
//
// So an Express app answers the same routes at the root, under a prefix, behind
// a rewrite and inside mount(). Express keeps an incoming baseUrl and
// originalUrl (its router starts from the one and keeps the other), so
// `req.baseUrl + req.path` and redirects built from originalUrl (serve-static's
// trailing slash) stay public URLs.

import { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Environ } from "../types.js";
import type { BridgeSocket } from "./node-socket.js";
import { requestTarget } from "./request-target.js";

/** The request as Express sees it once mounted: where it is mounted and the public URL. */
type MountedRequest = IncomingMessage & { baseUrl: string; originalUrl: string };

/**
 * `req.url` is the path the application routes on (PATH_INFO) and the query;
 * `req.originalUrl` is the public one (SCRIPT_NAME + PATH_INFO and the query);
 * `req.baseUrl` is the mount point (SCRIPT_NAME). See requestTarget() for the
 * encoding.
 */
export function incomingMessageFromEnviron(
  environ: Environ,
  socket: BridgeSocket,
): IncomingMessage {
  const req = new IncomingMessage(socket as unknown as Socket) as MountedRequest;
  req.method = environ.REQUEST_METHOD;
  const { base, path } = requestTarget(environ);
  const query = environ.QUERY_STRING ? "?" + environ.QUERY_STRING : "";
  req.url = path + query;
  // At its own mount point ("/app", PATH_INFO empty) the public path has no trailing slash.
  req.originalUrl = (base !== "" && environ.PATH_INFO === "" ? base : base + path) + query;
  req.baseUrl = base;
  const [major, minor] = httpVersion(environ.SERVER_PROTOCOL);
  req.httpVersionMajor = major;
  req.httpVersionMinor = minor;
  req.httpVersion = `${major}.${minor}`;
  setHeaders(req, environ);
  streamBodyFrom(req, environ);
  return req;
}

function httpVersion(protocol: string | undefined): [number, number] {
  const match = /^HTTP\/(\d)(?:\.(\d))?$/i.exec(protocol ?? "");
  return match ? [Number(match[1]), Number(match[2] ?? 0)] : [1, 1];
}

/** `headers`, `headersDistinct` and `rawHeaders` from HTTP_* (HTTP_X_FOO → x-foo), CONTENT_TYPE and CONTENT_LENGTH. */
function setHeaders(req: IncomingMessage, environ: Environ): void {
  const pairs: [string, string][] = [];
  for (const [key, value] of Object.entries(environ)) {
    if (key.startsWith("HTTP_") && typeof value === "string")
      pairs.push([key.slice(5).toLowerCase().replaceAll("_", "-"), value]);
  }
  if (environ.CONTENT_TYPE) pairs.push(["content-type", environ.CONTENT_TYPE]);
  if (environ.CONTENT_LENGTH) pairs.push(["content-length", environ.CONTENT_LENGTH]);
  // node:http builds these lazily from what its parser saw; there is no parser here, so they are set outright.
  req.headers = Object.fromEntries(pairs);
  req.headersDistinct = Object.fromEntries(pairs.map(([name, value]) => [name, [value]]));
  req.rawHeaders = pairs.flat();
}

/**
 * Feeds tsgi.input into the request as the application reads it: nothing is
 * read until the application asks, and reading pauses while the request's
 * buffer is full. `_read` is set on the instance, which Express's prototype
 * swap leaves in place.
 */
function streamBodyFrom(req: IncomingMessage, environ: Environ): void {
  let started = false;
  const read = () => {
    const input = environ["tsgi.input"];
    if (started) {
      input.resume();
      return;
    }
    started = true;
    input.on("data", (chunk: Uint8Array) => {
      if (!req.push(chunk)) input.pause();
    });
    input.once("end", () => {
      req.complete = true;
      req.push(null);
    });
    input.once("error", (error: Error) => req.destroy(error));
  };
  Object.defineProperty(req, "_read", { value: read, writable: true, configurable: true });
}

/** Whether the application has started reading the body. */
export function bodyWasRead(req: IncomingMessage): boolean {
  return req.readableFlowing !== null || req.readableDidRead || req.readableEnded || req.destroyed;
}
