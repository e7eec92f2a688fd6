// Sends what the response engine produces to a node:http ServerResponse,
// which adds the HTTP/1.1 framing: chunked or Content-Length, keep-alive, HEAD.

import type { ServerResponse } from "node:http";
import { AbortWatch } from "../abort-watch.js";
import { ConnectionClosedError, type ResponseSink } from "../engine.js";
import { statusAllowsBody, statusCode } from "../headers.js";
import type { Chunk, HeaderList } from "../types.js";

/** Bodies up to this size go out as a string joined to the head: one write() instead of a writev(). */
const JOIN_TO_HEAD_BYTES = 16 * 1024;

/** How long a cut-off response may take to flush what was written before the connection is destroyed. */
const FLUSH_BEFORE_CUT_MS = 2000;

export class NodeResponseSink implements ResponseSink {
  /** The client left; an AbortSignal is built only when someone asks for one (see abort-watch.ts). */
  readonly abortWatch = new AbortWatch();
  /** The status code sent, once the headers went out. */
  sentStatus: number | undefined;
  /** Body bytes that go to the client (none for HEAD, 204, 304: node:http drops them). */
  bytesSent = 0;
  private bodyGoesOut = true;
  /** The body's end is marked (Content-Length or chunked), so a connection that just ends shows it incomplete. */
  private framed = false;
  /** The gateway answered for the application (giveUp): the response is over, whatever it does. */
  private gaveUp = false;

  constructor(private readonly res: ServerResponse) {
    // 'close' also follows a completed response; only a close before 'finish' means the client left.
    res.once("close", () => {
      if (!res.writableFinished)
        this.abortWatch.abort(new ConnectionClosedError("the client closed the connection"));
    });
  }

  get signal(): AbortSignal {
    return this.abortWatch.signal;
  }

  sendHeaders(status: string, headers: HeaderList): void {
    this.throwIfGone();
    const res = this.res;
    const req = res.req;
    this.sentStatus = statusCode(status);
    // [http.head] The HTTP gateway sends no body bytes for `HEAD`, whatever the application returns.
    //
    // node:http drops them (a response to HEAD has no body); only what reaches the client is counted.
    this.bodyGoesOut = req?.method !== "HEAD" && statusAllowsBody(this.sentStatus);
    const chunked =
      req !== undefined &&
      (req.httpVersionMajor > 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1));
    this.framed = chunked || headers.some(([name]) => name.toLowerCase() === "content-length");
    // Not writeHead(code, reason, headers): once anything set a header on `res` (Express, mounting
    // toNodeHandler), it applies the list with setHeader and a repeated name keeps only its last value.
    // Headers set before stay unless the application sets the same name.
    for (const [name] of headers) if (res.hasHeader(name)) res.removeHeader(name);
    for (const [name, value] of headers) res.appendHeader(name, value);
    res.writeHead(this.sentStatus, status.slice(4));
  }

  /**
   * A response whose body is all there goes out with one res.end(): node:http
   * joins a string body to the head, so head and body leave in one write (a
   * Buffer body would take a writev of two). The string is Latin-1, one
   * character per byte, as the head is: node writes both back byte for byte.
   */
  sendWhole(status: string, headers: HeaderList, body: readonly Chunk[]): boolean {
    if (this.abortWatch.aborted || this.res.destroyed) return false;
    this.sendHeaders(status, headers);
    const one = body.length === 1 ? body[0] : body.length === 0 ? "" : joined(body);
    const length = typeof one === "string" ? Buffer.byteLength(one) : one.length;
    if (this.bodyGoesOut) this.bytesSent += length;
    if (typeof one === "string" && length === one.length) {
      this.res.end(one, "latin1"); // ASCII: the same bytes either way
    } else if (length <= JOIN_TO_HEAD_BYTES) {
      const bytes = typeof one === "string" ? Buffer.from(one) : one;
      this.res.end(latin1(bytes), "latin1");
    } else {
      this.res.end(one);
    }
    return true;
  }

  flush(): void {
    if (!this.res.destroyed) this.res.flushHeaders();
  }

  write(data: Uint8Array): void | Promise<void> {
    this.throwIfGone();
    if (this.bodyGoesOut) this.bytesSent += data.length;
    if (this.res.write(data)) return;
    return new Promise((resolve, reject) => {
      const settle = (error?: Error) => {
        this.res.off("drain", onDrain);
        this.res.off("close", onClose);
        if (error) reject(error);
        else resolve();
      };
      const onDrain = () => settle();
      const onClose = () => settle(new ConnectionClosedError("the client closed the connection"));
      this.res.on("drain", onDrain);
      this.res.on("close", onClose);
    });
  }

  end(): Promise<void> {
    this.throwIfGone();
    return new Promise((resolve, reject) => {
      const onClose = () => {
        if (!this.res.writableFinished)
          reject(new ConnectionClosedError("the client closed the connection"));
      };
      this.res.once("close", onClose);
      this.res.end(() => {
        this.res.off("close", onClose);
        resolve();
      });
    });
  }

  /**
   * The gateway gives the request up (--request-timeout, a stalled body): it
   * answers `status` itself when nothing went out yet, else cuts the response;
   * what the application does afterwards goes nowhere.
   */
  giveUp(status: string, reason: string): void {
    const res = this.res;
    if (!res.headersSent && !res.destroyed) {
      const body = status.slice(4) + "\n";
      this.sentStatus = statusCode(status);
      this.bytesSent = res.req?.method === "HEAD" ? 0 : Buffer.byteLength(body);
      res.writeHead(this.sentStatus, status.slice(4), {
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Length": String(Buffer.byteLength(body)),
        Connection: "close",
      });
      res.end(body);
      this.gaveUp = true;
    } else if (!res.writableEnded) {
      this.abort();
      this.gaveUp = true;
    }
    this.abortWatch.abort(new ConnectionClosedError(reason));
  }

  abort(): void {
    if (this.gaveUp) return;
    // A framed response that stops short (no final chunk, fewer bytes than Content-Length) cannot pass for
    // whole, so what was written is flushed before the connection ends; an unframed one needs the reset.
    const socket = this.res.socket;
    if (!this.framed || !socket || socket.destroyed) {
      this.res.destroy();
      return;
    }
    socket.destroySoon();
    // A client that stopped reading would keep the flush, and so the connection, waiting forever.
    setTimeout(() => socket.destroy(), FLUSH_BEFORE_CUT_MS).unref();
  }

  private throwIfGone(): void {
    if (this.abortWatch.aborted || this.res.destroyed)
      throw new ConnectionClosedError("the client closed the connection");
  }
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("latin1");
}

/** Several chunks as one: a string when all are strings, else bytes. */
function joined(body: readonly Chunk[]): Chunk {
  if (body.every((chunk) => typeof chunk === "string")) return body.join("");
  return Buffer.concat(
    body.map((chunk) => (typeof chunk === "string" ? Buffer.from(chunk) : chunk)),
  );
}
