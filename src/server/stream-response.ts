// The response of a one-request-per-connection gateway (SCGI, uwsgi): the
// protocol's head, then the body straight onto the socket with backpressure,
// and the socket's end as the response's end. A response that cannot be
// completed is cut off with a reset, so the web server cannot take it as whole
// (without a Content-Length, a clean close would mark its end).

import type { Socket } from "node:net";
import { AbortWatch } from "../abort-watch.js";
import { ConnectionClosedError, type ResponseSink } from "../engine.js";
import type { Chunk, HeaderList } from "../types.js";

/** Turns the final status and headers into the protocol's response head. */
/** A first body chunk up to this size is joined to the head; a larger one goes out beside it, corked. */
const JOIN_LIMIT = 16 * 1024;

export type HeadFormatter = (status: string, headers: HeaderList) => Buffer;

// [stream.response] SCGI answers with a CGI-style head (`Status: 200 OK`), uwsgi with an HTTP status line
// (`HTTP/1.1 200 OK`); the connection closes after every response, and a response cut off after its headers ends
// with a connection reset.
export class StreamResponse implements ResponseSink {
  readonly #socket: Socket;
  readonly #formatHead: HeadFormatter;
  readonly #inputReceived: () => boolean;
  #pendingHead: Buffer | null = null;
  #outputStarted = false;
  #noDelay = false;
  #finished = false;
  readonly abortWatch = new AbortWatch();

  /** `inputReceived`: whether the whole request arrived (and nothing after it), so the socket may close at once. */
  constructor(socket: Socket, formatHead: HeadFormatter, inputReceived: () => boolean) {
    this.#socket = socket;
    this.#formatHead = formatHead;
    this.#inputReceived = inputReceived;
  }

  /** Some of the response went out: it can no longer be replaced by an error status. */
  get outputStarted(): boolean {
    return this.#outputStarted;
  }

  /** Nothing more is sent: the response ended, was cut off, or the connection is gone. */
  get finished(): boolean {
    return this.#finished;
  }

  /** Built on first read: the engine and the adapters watch abortWatch instead. */
  get signal(): AbortSignal {
    return this.abortWatch.signal;
  }

  sendHeaders(status: string, headers: HeaderList): void {
    this.#pendingHead = this.#formatHead(status, headers);
  }

  write(data: Uint8Array): void | Promise<void> {
    this.#checkOpen();
    this.#send(data);
    if (!this.#socket.writableNeedDrain) return undefined;
    return new Promise((resolve) => {
      const done = () => {
        this.#socket.off("drain", done);
        this.#socket.off("close", done);
        resolve();
      };
      this.#socket.on("drain", done);
      this.#socket.on("close", done);
    });
  }

  /**
   * A response complete before anything went out (the engine's sendWhole): the
   * head and every chunk in one buffer, one write, then the close; a larger
   * one goes piece by piece, as the engine then sends it.
   */
  sendWhole(status: string, headers: HeaderList, body: readonly Chunk[]): boolean {
    this.#checkOpen();
    const head = this.#formatHead(status, headers);
    let length = head.length;
    for (const chunk of body)
      length += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
    if (length > JOIN_LIMIT) return false;
    const bytes = Buffer.allocUnsafe(length);
    let at = head.copy(bytes, 0);
    for (const chunk of body) {
      if (typeof chunk === "string") {
        at += bytes.write(chunk, at);
      } else {
        bytes.set(chunk, at);
        at += chunk.length;
      }
    }
    this.#outputStarted = true;
    this.#socket.write(bytes);
    this.#finished = true;
    this.#close();
    return true;
  }

  end(): void {
    this.#checkOpen();
    if (this.#pendingHead) this.#send(undefined);
    this.#finished = true;
    this.#close();
  }

  /**
   * Ends the connection after the response. When all of it is with the kernel
   * and the whole request arrived, the socket closes at once, as uWSGI does: the
   * kernel still sends what is queued, then its FIN, and with nothing unread no
   * reset. Otherwise it ends its side and waits for the peer's (unread input is
   * read and dropped meanwhile, so that no reset destroys the response).
   */
  #close(): void {
    if (this.#socket.writableLength === 0 && this.#inputReceived()) this.#socket.destroy();
    else this.#socket.end();
  }

  abort(): void {
    // The engine gives up on this response; whoever ran it decides how it ends (cut).
  }

  /** Answers `status` in plain text if nothing went out yet, else cuts the response off; then aborts the request. */
  giveUp(status: string, reason: string): void {
    if (!this.#finished) {
      if (this.#outputStarted) {
        this.cut();
      } else {
        const body = Buffer.from(status.slice(4) + "\n");
        this.#pendingHead = this.#formatHead(status, [
          ["Content-Type", "text/plain; charset=utf-8"],
          ["Content-Length", String(body.length)],
        ]);
        this.#send(body);
        this.#finished = true;
        this.#socket.end();
      }
    }
    this.abortRequest(reason);
  }

  /** Ends the connection with a reset: the web server must not take what went out as the whole response. */
  cut(): void {
    if (this.#finished) return;
    this.#finished = true;
    // Not at once: a reset in the same turn of the event loop as the last write
    // went out as a clean close in tests (Node 20, Linux), which would pass the
    // cut response off as whole. Even so, with much output still unsent, or a
    // peer that has not read the last bytes yet, the peer may see a clean end:
    // a response with a Content-Length is still seen short; one without may not be.
    setTimeout(() => {
      if (!this.#socket.destroyed) this.#socket.resetAndDestroy();
    }, 0);
  }

  /** The peer went away, or the request is given up: the application sees its signal abort. */
  abortRequest(reason: string): void {
    this.abortWatch.abortLazily(() => new ConnectionClosedError(reason));
  }

  /** The connection closed: nothing more is sent. */
  connectionClosed(): void {
    this.#finished = true;
    this.abortRequest("the web server closed the connection");
  }

  #checkOpen(): void {
    if (this.#finished) throw new ConnectionClosedError("the web server closed the connection");
  }

  #send(data: Uint8Array | undefined): void {
    // The first write goes out at once (nothing of the connection's is unacknowledged yet);
    // a later one would wait for the peer's ACK under Nagle's algorithm.
    if (this.#outputStarted && !this.#noDelay) {
      this.#noDelay = true;
      this.#socket.setNoDelay(true);
    }
    this.#outputStarted = true;
    const head = this.#pendingHead;
    this.#pendingHead = null;
    if (head === null) {
      if (data !== undefined) this.#socket.write(data);
      return;
    }
    // The head and the first body bytes leave in one write (a large body is not copied for it).
    if (data === undefined) {
      this.#socket.write(head);
    } else if (data.length <= JOIN_LIMIT) {
      this.#socket.write(Buffer.concat([head, data]));
    } else {
      this.#socket.cork();
      this.#socket.write(head);
      this.#socket.write(data);
      this.#socket.uncork();
    }
  }
}
