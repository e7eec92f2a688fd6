// A raw SCGI and uwsgi client for the tests and benchmarks: encodes requests
// as nginx sends them (the variables of its stock scgi_params / uwsgi_params),
// sends them over TCP or a unix socket, and collects whatever comes back until
// the server closes the connection (cleanly, or with a reset).

import { connect, type Socket } from "node:net";
import type { ParsedResponse } from "./cgi.js";
import { parseCgiResponse } from "./cgi.js";

export type ServerAddress = { path: string } | { host: string; port: number };
export type Vars = readonly (readonly [string, string])[];

/** An SCGI request: the netstring of `vars` (each name and value NUL-terminated), then `body`. */
export function encodeScgiRequest(vars: Vars, body: Uint8Array = Buffer.alloc(0)): Buffer {
  const block = Buffer.concat(
    vars.map(([name, value]) => Buffer.from(`${name}\0${value}\0`, "latin1")),
  );
  return Buffer.concat([Buffer.from(`${block.length}:`), block, Buffer.from(","), body]);
}

/** The uwsgi vars block: each name and value prefixed by its 16-bit little-endian length. */
export function encodeUwsgiVars(vars: Vars): Buffer {
  const pieces: Buffer[] = [];
  for (const [name, value] of vars) {
    for (const text of [name, value]) {
      const bytes = Buffer.from(text, "latin1");
      const length = Buffer.alloc(2);
      length.writeUInt16LE(bytes.length);
      pieces.push(length, bytes);
    }
  }
  return Buffer.concat(pieces);
}

/** A uwsgi request: modifier1, the vars block's size (16-bit LE), modifier2, the vars, then `body`. */
export function encodeUwsgiRequest(
  vars: Vars,
  body: Uint8Array = Buffer.alloc(0),
  modifier1 = 0,
  modifier2 = 0,
): Buffer {
  const block = encodeUwsgiVars(vars);
  const header = Buffer.from([modifier1, 0, 0, modifier2]);
  header.writeUInt16LE(block.length, 1);
  return Buffer.concat([header, block, body]);
}

export interface RequestShape {
  method?: string;
  /** The request target: path and query, percent-encoded as on the wire. */
  uri?: string;
  body?: Uint8Array;
  /** More variables, after the usual ones (a name given again is sent twice). */
  extra?: Vars;
}

function commonVars(shape: RequestShape): [string, string][] {
  const uri = shape.uri ?? "/";
  const query = uri.includes("?") ? uri.slice(uri.indexOf("?") + 1) : "";
  return [
    ["REQUEST_METHOD", shape.method ?? "GET"],
    ["QUERY_STRING", query],
    ["REQUEST_URI", uri],
    ["SERVER_PROTOCOL", "HTTP/1.1"],
    ["REQUEST_SCHEME", "http"],
    ["REMOTE_ADDR", "127.0.0.1"],
    ["SERVER_NAME", "localhost"],
    ["SERVER_PORT", "80"],
    ["HTTP_HOST", "localhost"],
  ];
}

/** What nginx's stock scgi_params send: CONTENT_LENGTH first, DOCUMENT_URI, no SCRIPT_NAME or PATH_INFO, SCGI last. */
export function scgiVars(shape: RequestShape = {}): Vars {
  const uri = shape.uri ?? "/";
  return [
    ["CONTENT_LENGTH", String(shape.body?.length ?? 0)],
    ...commonVars(shape),
    ["DOCUMENT_URI", decodeURIComponent(uri.split("?")[0])],
    ...(shape.extra ?? []),
    ["SCGI", "1"],
  ];
}

/** What nginx's stock uwsgi_params send: PATH_INFO the whole (decoded) path, no SCRIPT_NAME. */
export function uwsgiVars(shape: RequestShape = {}): Vars {
  const uri = shape.uri ?? "/";
  const length = shape.body?.length ?? 0;
  return [
    ...commonVars(shape),
    ["CONTENT_LENGTH", length > 0 ? String(length) : ""],
    ["PATH_INFO", decodeURIComponent(uri.split("?")[0])],
    ...(shape.extra ?? []),
  ];
}

export interface RawReply {
  bytes: Buffer;
  /** How the server ended the connection: a clean close, or a reset (a cut-off response). */
  ending: "close" | "reset";
}

export interface ExchangeOptions {
  /** Give up (and reject) after this many milliseconds. Default 10 s. */
  timeoutMs?: number;
  /** Half-close the sending side after the request (as Apache does). Default false. */
  endAfterSend?: boolean;
  /** Called with the socket once connected, instead of writing a request (for tests that dribble bytes). */
  drive?: (socket: Socket) => void | Promise<void>;
}

/** Sends `request` and resolves with what comes back once the server closes the connection. */
export function exchange(
  address: ServerAddress,
  request: Uint8Array,
  options: ExchangeOptions = {},
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(address);
    const chunks: Buffer[] = [];
    let reset = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end of the response after ${options.timeoutMs ?? 10_000} ms`));
    }, options.timeoutMs ?? 10_000);
    socket.on("connect", () => {
      if (options.drive) {
        void Promise.resolve(options.drive(socket)).catch(reject);
        return;
      }
      socket.write(request);
      if (options.endAfterSend) socket.end();
    });
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNRESET" || error.code === "EPIPE") reset = true;
      else reject(error);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ bytes: Buffer.concat(chunks), ending: reset ? "reset" : "close" });
    });
  });
}

/** An HTTP/1.1 response head and body, as uwsgi answers. */
export function parseHttpResponse(bytes: Buffer): ParsedResponse {
  const end = bytes.indexOf("\r\n\r\n");
  if (end === -1)
    throw new Error(`no complete head in ${JSON.stringify(bytes.toString("latin1"))}`);
  const head = bytes.toString("latin1", 0, end + 4);
  const [statusLine, ...lines] = head.slice(0, -4).split("\r\n");
  const match = /^HTTP\/1\.1 (\d{3} .*)$/.exec(statusLine);
  if (!match) throw new Error(`no HTTP status line: ${JSON.stringify(statusLine)}`);
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(":");
    return [line.slice(0, colon), line.slice(colon + 1).trim()];
  });
  return { status: match[1], headers, body: bytes.subarray(end + 4), head };
}

/** An SCGI (CGI-style) response. */
export function parseScgiResponse(bytes: Buffer): ParsedResponse {
  return parseCgiResponse(bytes);
}

/**
 * Writes `head`, then `size` body bytes in 1 MiB chunks (each filled by `fill`
 * before it goes), waiting for the socket to drain between them, so memory on
 * this side stays flat: for uploads far larger than a test should hold.
 */
export function streamBody(
  head: Uint8Array,
  size: number,
  fill: (chunk: Buffer, offset: number) => void,
): (socket: Socket) => Promise<void> {
  return async (socket) => {
    socket.write(head);
    const chunk = Buffer.alloc(1024 * 1024);
    for (let offset = 0; offset < size; offset += chunk.length) {
      const piece = chunk.subarray(0, Math.min(chunk.length, size - offset));
      fill(piece, offset);
      if (!socket.write(piece))
        await new Promise<void>((resolve) => {
          const done = () => {
            socket.off("drain", done);
            socket.off("close", done);
            resolve();
          };
          socket.on("drain", done);
          socket.on("close", done);
        });
      if (socket.destroyed) return;
    }
  };
}
