// One HTTP connection as the server core sees it (a ServerConnection): the
// requests in progress on it, whether it is waiting for a request head, how
// long its input has stalled, and closing it when the server stops. node:http
// does the parsing and the keep-alive; this only watches.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { ServerConnection, ServerHooks } from "../server/serve.js";
import type { NodeResponseSink } from "./sink.js";

/** The connection each socket belongs to, for node:http's request events. */
const connections = new WeakMap<Socket, HttpConnection>();

/** What node:http itself answers to a head that stalls (its headersTimeout), here at --receive-timeout. */
const REQUEST_TIMEOUT =
  "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

interface Receiving {
  req: IncomingMessage;
  sink: NodeResponseSink;
  /** socket.bytesRead when it last grew, and when. */
  bytes: number;
  at: number;
}

export class HttpConnection implements ServerConnection {
  readonly #socket: Socket;
  readonly #receiveTimeout: number;
  readonly #log: (message: string) => void;
  #active = 0;
  #requests = 0;
  /** Since when it waits for a request head (undefined while a request is in progress). */
  #waitingSince: number | undefined = Date.now();
  /** socket.bytesRead when the wait began: more means a head has started to arrive. */
  #bytesAtWait = 0;
  /** The request whose body may still be arriving. */
  #receiving: Receiving | undefined;
  #closeWhenIdle = false;
  // [http.stop-keepalive] When the server stops (`SIGTERM`, a `SIGHUP` reload, `--max-requests`), a
  // kept-alive connection is not closed under its client at once: a request sent on it within 1 s is
  // answered, with `Connection: close`.
  //
  // The core waits for it (ServerConnection.closesItself); node:http answers
  // such a request with Connection: close, as the gateway sees shuttingDown.
  // Closing it at once fails the request a proxy (nginx upstream keepalive) may
  // be sending on it, and nginx retries only idempotent ones.
  readonly closesItself = true;

  static of(socket: Socket): HttpConnection | undefined {
    return connections.get(socket);
  }

  constructor(
    socket: Socket,
    receiveTimeout: number,
    hooks: ServerHooks,
    log: (message: string) => void,
  ) {
    this.#socket = socket;
    this.#receiveTimeout = receiveTimeout;
    this.#log = log;
    connections.set(socket, this);
    socket.once("close", () => hooks.connectionClosed(this));
  }

  requestStarted(req: IncomingMessage, res: ServerResponse, sink: NodeResponseSink): void {
    this.#active++;
    this.#requests++;
    this.#waitingSince = undefined;
    if (this.#closeWhenIdle) res.shouldKeepAlive = false;
    this.#receiving = req.complete
      ? undefined
      : { req, sink, bytes: this.#socket.bytesRead, at: Date.now() };
  }

  requestFinished(sink: NodeResponseSink): void {
    this.#active--;
    if (this.#receiving?.sink === sink) this.#receiving = undefined;
    if (this.#active > 0) return;
    if (this.#closeWhenIdle) {
      this.#socket.end();
      return;
    }
    this.#waitingSince = Date.now();
    this.#bytesAtWait = this.#socket.bytesRead;
  }

  // ServerConnection

  get used(): boolean {
    return this.#requests > 0 || this.#socket.bytesRead > 0;
  }

  get activeRequests(): number {
    return this.#active;
  }

  timeOutStalled(now: number): void {
    if (this.#waitingSince !== undefined) {
      if (now - this.#waitingSince > this.#receiveTimeout) this.#headStalled();
    } else if (this.#receiving) {
      this.#checkBody(this.#receiving, now);
    }
  }

  /** No request head within --receive-timeout: a connection that never said anything, or a head that stalled. */
  #headStalled(): void {
    if (this.#socket.bytesRead === this.#bytesAtWait) {
      // Idle between requests is --keep-alive-timeout's business (node:http closes it).
      if (this.#requests === 0) this.#socket.destroy();
      return;
    }
    this.#log(`no input for ${this.#receiveTimeout / 1000} s in its request head, answered 408`);
    this.#waitingSince = undefined;
    this.#socket.end(REQUEST_TIMEOUT);
  }

  #checkBody(receiving: Receiving, now: number): void {
    const { req, sink } = receiving;
    if (req.complete) {
      this.#receiving = undefined;
      return;
    }
    const bytes = this.#socket.bytesRead;
    if (bytes !== receiving.bytes || req.readableLength > 0) {
      // Arriving, or waiting for the application to read what came: no stall of the client's.
      receiving.bytes = bytes;
      receiving.at = now;
      return;
    }
    if (now - receiving.at <= this.#receiveTimeout) return;
    this.#receiving = undefined;
    this.#log(`no input for ${this.#receiveTimeout / 1000} s in its body, giving up`);
    // The application waits for the body: answer for it. Otherwise it may still
    // answer; the connection closes after that response.
    if (req.listenerCount("data") + req.listenerCount("readable") > 0)
      sink.giveUp("408 Request Timeout", "the request body stopped arriving");
    else this.#closeWhenIdle = true;
  }

  closeIfIdle(): void {
    this.#closeWhenIdle = true;
    if (!this.used) this.#socket.destroy();
    else if (this.#active === 0) this.#socket.end();
  }

  closed(): Promise<void> {
    if (this.#socket.closed) return Promise.resolve();
    return new Promise((resolve) => this.#socket.once("close", () => resolve()));
  }

  destroy(): void {
    this.#socket.destroy();
  }
}
