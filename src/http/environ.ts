// Builds an environ from an HTTP request the way a CGI web server would: the
// HTTP gateway, toNodeHandler and the test client all use it.

import type { IncomingMessage } from "node:http";
import type { Writable } from "node:stream";
import { makeEnviron } from "../environ.js";
import type { Environ, InputStream } from "../types.js";
import { decodePath } from "../percent.js";

/** What the environ is built from: an HTTP request's head and its connection. */
export interface HttpRequestHead {
  method: string;
  /** The request target as received (`/path?query`, or absolute-form), relative to `scriptName`. */
  target: string;
  /** The full request target as received, for REQUEST_URI; by default `target`. */
  requestUri?: string | undefined;
  /** The percent-encoded path prefix the application is mounted at (Express's `req.baseUrl`); by default none. */
  scriptName?: string | undefined;
  /** "1.1", "1.0", "2.0". */
  httpVersion: string;
  /** Header names and values, alternating, as received (Node's `rawHeaders`); values are Latin-1 strings. */
  rawHeaders: readonly string[];
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  localAddress?: string | undefined;
  localPort?: number | undefined;
  /** The connection is TLS. */
  secure: boolean;
}

export interface HttpEnvironOptions {
  /** `tsgi.errors`; by default process.stderr. */
  errors?: Writable | undefined;
  /** `tsgi.multiprocess`: other processes serve the same application (`tsgi serve --workers`). Default false. */
  multiprocess?: boolean | undefined;
  /**
   * The path prefix the application is mounted at behind a proxy that passes
   * the whole path (`tsgi serve --script-name`): a request under it gets it as
   * SCRIPT_NAME and the rest as PATH_INFO. The caller checks the request is under it.
   */
  scriptName?: string | undefined;
}

/** Whether the raw request target `url` lies under the path prefix `scriptName` (`/app`, `/app/…`, `/app?…`). */
export function underScriptName(url: string, scriptName: string): boolean {
  if (!url.startsWith(scriptName)) return false;
  const next = url.charAt(scriptName.length);
  return next === "" || next === "/" || next === "?";
}

/**
 * The CGI variables for a request. SCRIPT_NAME is the mount prefix (empty for
 * a server's own requests); PATH_INFO is the rest of the path, percent-decoded
 * to bytes; QUERY_STRING and REQUEST_URI stay raw. Headers become HTTP_* (with
 * Content-Type and Content-Length as CONTENT_TYPE and CONTENT_LENGTH); repeated
 * headers are joined with ", " (Cookie with "; "). A header whose name holds
 * "_" is dropped, as Apache does: `X_Forwarded_For` would otherwise arrive as,
 * and could pass for, HTTP_X_FORWARDED_FOR.
 */
export function cgiVariables(head: HttpRequestHead): Record<string, string> {
  // [http.path] `SCRIPT_NAME` is `""`; `PATH_INFO` is the request path, percent-decoded, each decoded byte one
  // character by the Latin-1 rule; `QUERY_STRING` and `REQUEST_URI` stay as the client sent them.
  const { path, query } = splitTarget(head.target);
  const scriptName = decodePath(head.scriptName ?? "");
  const vars: Record<string, string> = {
    GATEWAY_INTERFACE: "CGI/1.1",
    SERVER_SOFTWARE: "tsgi",
    REQUEST_METHOD: head.method,
    SCRIPT_NAME: scriptName === "/" ? "" : scriptName,
    PATH_INFO: decodePath(path),
    QUERY_STRING: query,
    REQUEST_URI: head.requestUri ?? head.target,
    SERVER_PROTOCOL: "HTTP/" + head.httpVersion,
    REQUEST_SCHEME: head.secure ? "https" : "http",
  };
  if (head.secure) vars.HTTPS = "on";
  addHeaders(vars, head.rawHeaders);

  const host = vars.HTTP_HOST !== undefined ? splitHost(vars.HTTP_HOST) : undefined;
  // [http.server-vars] `SERVER_NAME`, `SERVER_PORT`, `SERVER_PROTOCOL`, `REMOTE_ADDR` and `REMOTE_PORT` come from
  // the connection.
  vars.SERVER_NAME = host?.name || head.localAddress || "localhost";
  vars.SERVER_PORT = String(head.localPort ?? host?.port ?? (head.secure ? 443 : 80));
  if (head.remoteAddress !== undefined) vars.REMOTE_ADDR = withoutIpv4Mapping(head.remoteAddress);
  if (head.remotePort !== undefined) vars.REMOTE_PORT = String(head.remotePort);
  return vars;
}

/** The request head of a node:http request, including an Express mount prefix when there is one. */
export function requestHead(req: IncomingMessage): HttpRequestHead {
  const socket = req.socket as IncomingMessage["socket"] & { encrypted?: boolean };
  // Inside Express, `req.url` is relative to where the handler is mounted, and `baseUrl` is that mount point.
  const express = req as IncomingMessage & { baseUrl?: unknown; originalUrl?: unknown };
  const url = req.url ?? "/";
  return {
    method: req.method ?? "GET",
    target: url,
    requestUri: typeof express.originalUrl === "string" ? express.originalUrl : url,
    scriptName: typeof express.baseUrl === "string" ? express.baseUrl : undefined,
    httpVersion: req.httpVersion || "1.1",
    rawHeaders: req.rawHeaders,
    remoteAddress: socket?.remoteAddress,
    remotePort: socket?.remotePort,
    localAddress: socket?.localAddress,
    localPort: socket?.localPort,
    secure: socket?.encrypted === true,
  };
}

/**
 * The environ for a node:http request, as the HTTP gateway gives it to an
 * application: `tsgi.input` is the request itself; one process serves many
 * requests, one at a time per event loop turn (not multithread, not multiprocess).
 */
export function environFromHttpRequest(
  req: IncomingMessage,
  options: HttpEnvironOptions = {},
): Environ {
  // [http.input] `tsgi.input` is the request itself (an `http.IncomingMessage`).
  // [http.flags] `tsgi.run_once` and `tsgi.multithread` are `false`; `tsgi.multiprocess` is `true` only
  // under `tsgi serve --workers` (or the option that says so).
  const head = requestHead(req);
  // [http.script-name] Under `--script-name /app` (`scriptName`), a request for `/app` or `/app/…` gets
  // `SCRIPT_NAME` `/app` and the rest of its path as `PATH_INFO` (`""` for `/app` itself); `REQUEST_URI` stays
  // whole; any other path is answered `404`.
  //
  // The gateway (gateway.ts) answers the 404 and passes scriptName only for a request under it.
  if (options.scriptName) {
    head.scriptName = options.scriptName;
    head.target = head.target.slice(options.scriptName.length);
  }
  return makeEnviron(cgiVariables(head), {
    input: req as IncomingMessage & InputStream,
    errors: options.errors ?? process.stderr,
    multithread: false,
    multiprocess: options.multiprocess ?? false,
    runOnce: false,
  });
}

/** Splits a request target into its raw path and query; an absolute-form target loses its scheme and authority. */
function splitTarget(target: string): { path: string; query: string } {
  let rest = target;
  const absolute = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(rest);
  if (absolute) rest = rest.slice(absolute[0].length);
  const hash = rest.indexOf("#");
  if (hash !== -1) rest = rest.slice(0, hash);
  const question = rest.indexOf("?");
  const path = question === -1 ? rest : rest.slice(0, question);
  const query = question === -1 ? "" : rest.slice(question + 1);
  // "OPTIONS *" and other targets that are not paths have no PATH_INFO.
  return { path: path.startsWith("/") ? path : absolute ? "/" + path : "", query };
}

function addHeaders(vars: Record<string, string>, rawHeaders: readonly string[]): void {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    const value = rawHeaders[i + 1];
    // [http.headers] Request headers become `HTTP_*` variables (`-` becomes `_`, upper case); repeated headers are
    // joined with `, ` (`Cookie` with `; `); a header whose name contains `_` is dropped, so `X_Forwarded_For`
    // cannot pose as `X-Forwarded-For`.
    //
    // ":authority" and the other HTTP/2 pseudo-headers are not headers.
    if (name.includes("_") || name.startsWith(":")) continue;
    const lower = name.toLowerCase();
    // [http.content-headers] `Content-Type` and `Content-Length` become `CONTENT_TYPE` and `CONTENT_LENGTH`; the
    // HTTP gateway never sets `HTTP_CONTENT_TYPE` or `HTTP_CONTENT_LENGTH`.
    if (lower === "content-type" || lower === "content-length") {
      const key = lower === "content-type" ? "CONTENT_TYPE" : "CONTENT_LENGTH";
      // Joining two of these would make a value that means nothing.
      vars[key] ??= value;
      continue;
    }
    const key = "HTTP_" + lower.toUpperCase().replaceAll("-", "_");
    const previous = vars[key];
    vars[key] =
      previous === undefined ? value : previous + (lower === "cookie" ? "; " : ", ") + value;
  }
}

/** Splits a Host header value into name and port; a bracketed IPv6 address keeps its brackets. */
function splitHost(host: string): { name: string; port: string | undefined } {
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(host.trim());
  if (!match) return { name: "", port: undefined };
  return { name: match[1], port: match[2] || undefined };
}

/** `::ffff:127.0.0.1` is how a dual-stack socket shows an IPv4 peer; CGI servers show `127.0.0.1`. */
function withoutIpv4Mapping(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}
