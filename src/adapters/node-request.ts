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

/** "HTTP/1.1" as node:http's parser gives it: [1, 1]; cached, as a gateway sends few distinct ones. */
const VERSIONS = new Map<string, [number, number]>();

function httpVersion(protocol: string | undefined): [number, number] {
  const key = protocol ?? "";
  let version = VERSIONS.get(key);
  if (version === undefined) {
    const match = /^HTTP\/(\d)(?:\.(\d))?$/i.exec(key);
    version = match ? [Number(match[1]), Number(match[2] ?? 0)] : [1, 1];
    if (VERSIONS.size < 16) VERSIONS.set(key, version);
  }
  return version;
}

/** HTTP_X_FOO → x-foo, remembered: the same few names come with every request. */
const HEADER_NAMES = new Map<string, string>();
const MAX_HEADER_NAMES = 512;

function headerName(key: string): string {
  let name = HEADER_NAMES.get(key);
  if (name === undefined) {
    name = key.slice(5).toLowerCase().replaceAll("_", "-");
    if (HEADER_NAMES.size < MAX_HEADER_NAMES) HEADER_NAMES.set(key, name);
  }
  return name;
}

type ParsedRequest = IncomingMessage & {
  /** What node:http's parser calls with the header lines it read; `headers` and `headersDistinct` are built from them on first use. */
  _addHeaderLines(lines: string[], count: number): void;
};

/**
 * `rawHeaders` from HTTP_* (HTTP_X_FOO → x-foo), CONTENT_TYPE and
 * CONTENT_LENGTH, handed over as node:http's parser hands them, so that
 * `headers` and `headersDistinct` are built only if the application reads them.
 * Only the HTTP_* keys are read: a gateway may define others as getters.
 */
function setHeaders(req: IncomingMessage, environ: Environ): void {
  const lines: string[] = [];
  for (const key in environ) {
    // HTTP_CONTENT_TYPE and HTTP_CONTENT_LENGTH, where a web server passes them, repeat CONTENT_* (env.http-content).
    if (!key.startsWith("HTTP_") || key === "HTTP_CONTENT_TYPE" || key === "HTTP_CONTENT_LENGTH")
      continue;
    const value = environ[key as `HTTP_${string}`];
    if (typeof value === "string") lines.push(headerName(key), value);
  }
  if (environ.CONTENT_TYPE) lines.push("content-type", environ.CONTENT_TYPE);
  if (environ.CONTENT_LENGTH) lines.push("content-length", environ.CONTENT_LENGTH);
  (req as ParsedRequest)._addHeaderLines(lines, lines.length);
}

const ENVIRON = Symbol("tsgi.environ");
const READING = Symbol("tsgi.reading");

type BodyRequest = IncomingMessage & { [ENVIRON]: Environ; [READING]?: true };

/**
 * Feeds tsgi.input into the request as the application reads it: nothing is
 * read until the application asks, and reading pauses while the request's
 * buffer is full. `_read` is set on the instance, which Express's prototype
 * swap leaves in place; one function serves every request.
 */
function streamBodyFrom(req: IncomingMessage, environ: Environ): void {
  const request = req as BodyRequest;
  request[ENVIRON] = environ;
  request._read = readInput;
}

function readInput(this: BodyRequest): void {
  const input = this[ENVIRON]["tsgi.input"];
  if (this[READING]) {
    input.resume();
    return;
  }
  this[READING] = true;
  input.on("data", (chunk: Uint8Array) => {
    if (!this.push(chunk)) input.pause();
  });
  input.once("end", () => {
    this.complete = true;
    this.push(null);
  });
  input.once("error", (error: Error) => this.destroy(error));
}

/**
 * The response is over and the application never read its body: the request
 * ends without it, as node:http's does. The input is not read here: every
 * gateway drops what the application did not read (the FastCGI and HTTP
 * gateways as the request ends, the CGI gateway before the process exits).
 */
export function dropUnreadBody(req: IncomingMessage): void {
  req._read = readNothing;
  req.push(null);
  req.resume();
}

function readNothing(): void {}

/** Whether the application has started reading the body. */
export function bodyWasRead(req: IncomingMessage): boolean {
  return req.readableFlowing !== null || req.readableDidRead || req.readableEnded || req.destroyed;
}
