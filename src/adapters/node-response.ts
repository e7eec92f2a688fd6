// Makes a real http.ServerResponse feed the response engine instead of a
// socket. Headers stay in node:http's own store (setHeader, writeHead and
// everything built on them work unchanged); only write(), end() and
// flushHeaders() are replaced, on the instance, where Express's prototype
// swap and wrapping middleware (compression, on-headers) leave them in place.

import {
  STATUS_CODES,
  ServerResponse,
  type IncomingMessage,
  type OutgoingHttpHeader,
} from "node:http";
import { isHopByHop } from "../headers.js";
import type { Body, Environ, HeaderList, StartResponse, Write } from "../types.js";
import { signalAborted } from "../abort-watch.js";
import { ChunkQueue } from "./chunk-queue.js";
import { bodyWasRead, dropUnreadBody } from "./node-request.js";
import type { BridgeSocket, SocketOwner } from "./node-socket.js";

type Callback = (error?: Error | null) => void;
type Encoding = BufferEncoding | null | undefined;
type ClosableBody = Body & { close(): void };

const EMPTY = new Uint8Array(0);

/** The body or error handed over before anyone waited for it (a handler that answered at once). */
type Settled = { body: Body } | { error: unknown };

/**
 * One response: body() gives, at the application's first write() or its
 * end(), what the engine iterates — the one chunk given to end() (so the
 * engine can add Content-Length), or a queue of written chunks; a promise of
 * it while the handler has not responded yet.
 */
export class ResponseBridge implements SocketOwner {
  readonly res: ServerResponse;
  private settled: Settled | undefined;
  private waiting: { resolve: (body: Body) => void; reject: (error: unknown) => void } | undefined;
  private delivered = false;
  /** The engine's write(), for flushHeaders(): an empty chunk through it sends the headers now. */
  private engineWrite: Write | undefined;
  private queue: ChunkQueue | undefined;
  private finishEmitted = false;
  /** The engine is done with the body (its close() ran). */
  private exchangeOver = false;
  /** The bridge itself destroys the socket when the exchange is over; any other destroy is the application's. */
  private closingSocket = false;
  /** Stops watching for the client leaving, once the exchange is over. */
  private stopWatching: (() => void) | undefined;

  constructor(
    private readonly req: IncomingMessage,
    private readonly socket: BridgeSocket,
    private readonly environ: Environ,
    private readonly startResponse: StartResponse,
  ) {
    const res = new ServerResponse(req);
    // statusCode and statusMessage live on ServerResponse.prototype until
    // writeHead() makes them own properties. Here the response also carries the
    // bridge's own methods, and Express swaps its prototype: adding two more
    // properties that late left V8 a slow shape for it, which cost an Express
    // hello about a quarter of its throughput in process. Made own properties
    // now, with the values the prototype gives, they are part of its shape from
    // the start.
    res.statusCode = 200;
    (res as { statusMessage: string | undefined }).statusMessage = undefined;
    // writeHead(code, headers) keeps its headers where getHeaders() sees them only
    // once some header has been set; otherwise it renders them straight to text.
    res.setHeader("x-tsgi", "");
    res.removeHeader("x-tsgi");
    // The head is never rendered to text here: the engine sends the headers from node:http's store.
    (res as OwnHead)._storeHeader = markHeadStored;
    (res as OwnHead)[STORED] = undefined;
    res.assignSocket(socket as unknown as Parameters<ServerResponse["assignSocket"]>[0]);
    this.res = res;
    this.replaceOutputMethods();
    this.listenForErrors();
  }

  /**
   * node:http's server listens for errors on every socket it serves, so an
   * application that destroys its response with an error loses only that
   * response; the stand-in socket tells this bridge instead (socketDestroyed).
   * An error on the response that the application does not handle itself ends
   * this one request too: a 500 before the response started, else the response
   * cut off, with a log line either way.
   */
  private listenForErrors(): void {
    this.socket.owner = this;
    this.res.on("error", (error: Error) => this.responseError(error));
  }

  /**
   * res.destroy(error), req.destroy(error) on an unfinished body, and
   * stream.pipeline() with a failing source all end in socket.destroy(error).
   */
  socketDestroyed(error: Error | undefined): void {
    if (!this.closingSocket) this.destroyedByApplication(error);
  }

  /** What the application returns: the body, or a promise of it while the handler has not responded. */
  body(): Body | Promise<Body> {
    const settled = this.settled;
    if (settled === undefined)
      return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
    if ("error" in settled) throw settled.error;
    return settled.body;
  }

  private resolveBody(body: Body): void {
    if (this.waiting) this.waiting.resolve(body);
    else this.settled = { body };
  }

  private rejectBody(error: unknown): void {
    if (this.waiting) this.waiting.reject(error);
    else this.settled = { error };
  }

  /**
   * The handler failed (threw, or its promise rejected). Before it responded,
   * the engine sends a 500; while it was streaming, the response is cut off.
   */
  fail(error: unknown): void {
    if (!this.delivered) {
      this.delivered = true;
      this.rejectBody(error);
      this.abort();
    } else if (this.queue && !this.res.writableEnded) {
      this.queue.fail(error instanceof Error ? error : new Error(String(error)));
    } else {
      this.log(`the handler failed after its response ended: ${describeError(error)}`);
    }
  }

  /**
   * Keeps `stop` (what ends watching the client) for when the engine is done
   * with the response: a listener left behind would keep this exchange's
   * objects alive as long as the gateway's request.
   */
  watchUntilDone(stop: () => void): void {
    if (this.exchangeOver) stop();
    else this.stopWatching = stop;
  }

  /** The client went away: the application learns it at once (node:http's 'aborted' and 'close'). */
  clientLeft(): void {
    if (!this.finishEmitted) this.abort();
  }

  private replaceOutputMethods(): void {
    const res = this.res;
    res.write = ((chunk: unknown, encoding?: Encoding | Callback, callback?: Callback): boolean => {
      if (typeof encoding === "function") return this.write(chunk, undefined, encoding);
      return this.write(chunk, encoding, callback);
    }) as ServerResponse["write"];
    res.end = ((
      chunk?: unknown,
      encoding?: Encoding | Callback,
      callback?: Callback,
    ): ServerResponse => {
      if (typeof chunk === "function") this.end(undefined, undefined, chunk as Callback);
      else if (typeof encoding === "function") this.end(chunk, undefined, encoding);
      else this.end(chunk, encoding, callback);
      return res;
    }) as ServerResponse["end"];
    res.flushHeaders = () => {
      // As under node:http, too late is a no-op: the head went out with the response, or never will.
      if (res.writableEnded || res.destroyed) return;
      if (!res.headersSent) implicitHeader(res);
      this.streaming();
      this.flushHead();
    };
  }

  /** An empty chunk through the engine sends the head now (SPEC: write.flush); a later error cuts it off. */
  private flushHead(): void {
    try {
      void this.engineWrite?.(EMPTY);
    } catch {
      // The engine is done with this response (the client left): there is nothing left to send.
    }
  }

  private write(chunk: unknown, encoding: Encoding, callback: Callback | undefined): boolean {
    const res = this.res;
    checkChunk(chunk);
    if (res.writableEnded || res.destroyed) {
      this.lateWrite(res.destroyed ? "destroyed" : "ended", callback);
      return false;
    }
    if (!res.headersSent) implicitHeader(res);
    const queue = this.streaming();
    const bytes = toBytes(chunk, encoding);
    if (bytes.length === 0) {
      if (callback) process.nextTick(callback);
      return true;
    }
    return queue.push(bytes, callback);
  }

  private end(chunk: unknown, encoding: Encoding, callback: Callback | undefined): void {
    const res = this.res;
    if (chunk) {
      checkChunk(chunk);
      if (res.writableEnded || res.destroyed)
        return this.lateWrite(res.destroyed ? "destroyed" : "ended", callback);
      if (!res.headersSent) implicitHeader(res);
      const bytes = toBytes(chunk, encoding);
      if (this.queue) this.queue.push(bytes);
      else if (res.hasHeader("transfer-encoding")) this.ownFraming(bytes);
      else this.deliver(this.completeBody([bytes]));
    } else if (res.writableEnded) {
      if (callback) {
        if (this.finishEmitted)
          process.nextTick(
            callback,
            streamError("ERR_STREAM_ALREADY_FINISHED", "end() was already called"),
          );
        else res.once("finish", callback);
      }
      return;
    } else {
      if (!res.headersSent) implicitHeader(res);
      if (!this.queue) {
        if (res.hasHeader("transfer-encoding")) this.ownFraming(EMPTY);
        else this.deliver(this.completeBody([]));
      }
    }
    if (callback) res.once("finish", callback);
    res.finished = true;
    this.queue?.end();
  }

  /**
   * An application's own Transfer-Encoding asks for no Content-Length, as
   * node:http gives none then: the body is streamed, and the gateway, whose
   * header that is, frames it. An empty one sends its head first, or the
   * engine would give it `Content-Length: 0` (SPEC: length.empty).
   */
  private ownFraming(bytes: Uint8Array): void {
    const queue = this.streaming();
    if (bytes.length === 0) this.flushHead();
    else queue.push(bytes);
  }

  /** The queue that written chunks go to, handed to the engine as the body on first use. */
  private streaming(): ChunkQueue {
    if (this.queue) return this.queue;
    const queue = new ChunkQueue(this.res.writableHighWaterMark, () => this.res.emit("drain"));
    this.queue = queue;
    const body = Object.assign(queue, { close: () => this.closed(queue.exhausted) });
    this.deliver(body);
    return queue;
  }

  /**
   * A body that is all there: a plain array, which the engine adds
   * Content-Length to (one chunk) and a gateway may send in one piece with its
   * head (sendWhole).
   */
  private completeBody(chunks: Uint8Array[]): ClosableBody {
    const body = chunks as CompleteBody;
    body[BRIDGE] = this;
    body.close = closeComplete;
    return body;
  }

  /**
   * The engine is done with a complete body: it went out whole unless the
   * client left meanwhile (the gateway's signal tells; see closed()).
   */
  completeBodyClosed(): void {
    this.closed(!signalAborted(this.environ));
  }

  /** Hands the engine the status, headers and body; the headers are final by now (writeHead has run). */
  private deliver(body: ClosableBody | ChunkQueue): void {
    if (this.delivered) return;
    this.delivered = true;
    try {
      this.engineWrite = this.startResponse(statusLine(this.res), responseHeaders(this.res));
    } catch (error) {
      this.rejectBody(error);
      this.abort();
      return;
    }
    this.resolveBody(body);
  }

  /** The engine is done with the body (its close()): the whole response went out, or it stopped early. */
  private closed(complete: boolean): void {
    this.exchangeOver = true;
    const stop = this.stopWatching;
    this.stopWatching = undefined;
    stop?.();
    if (!complete) return this.abort();
    process.nextTick(() => {
      this.finishEmitted = true;
      this.res.emit("finish");
      this.closeSocket();
      // As node:http does, an unread body is dropped so that the request still ends and closes.
      if (!bodyWasRead(this.req)) dropUnreadBody(this.req);
    });
  }

  /** The client went away or the response failed: tell the application as node:http would ('close', 'aborted'). */
  private abort(): void {
    this.closeSocket();
    if (!this.req.destroyed) this.req.destroy();
  }

  private closeSocket(): void {
    this.closingSocket = true;
    // Through the socket, so node:http's own listener marks the response destroyed and emits its 'close'.
    this.socket.destroy();
  }

  /** res.destroy() or req.socket.destroy() before end(): the response is cut off. */
  private destroyedByApplication(error: Error | undefined): void {
    if (this.res.writableEnded) {
      if (error) this.log(`error after the response ended: ${describeError(error)}`);
      return;
    }
    this.fail(error ?? new Error("the application destroyed the response before ending it"));
    if (!this.req.destroyed) this.req.destroy();
  }

  /**
   * An 'error' event on the response. One the application listens for is its
   * own to handle, as under node:http; any other ends the request.
   */
  private responseError(error: Error): void {
    if (this.applicationListensForErrors()) return;
    if (this.res.writableEnded || this.res.destroyed) {
      this.log(describeError(error));
      return;
    }
    this.fail(error);
  }

  /** Whether 'error' listeners other than the bridge's own are on the response. */
  private applicationListensForErrors(): boolean {
    return this.res.listenerCount("error") > 1;
  }

  private log(text: string): void {
    try {
      this.environ["tsgi.errors"].write(`[tsgi] ${this.req.method} ${this.req.url}: ${text}\n`);
    } catch {
      // Nowhere left to report to.
    }
  }

  private lateWrite(state: "ended" | "destroyed", callback: Callback | undefined): void {
    const error =
      state === "ended"
        ? streamError("ERR_STREAM_WRITE_AFTER_END", "write after end")
        : streamError("ERR_STREAM_DESTROYED", "cannot call write after a stream was destroyed");
    if (callback) process.nextTick(callback, error);
    // node:http emits 'error' here, which kills a process that has no listener; one late write must not stop a server.
    if (state === "ended" && this.applicationListensForErrors())
      process.nextTick(() => this.res.emit("error", error));
    else if (state === "ended") this.log(error.message);
  }
}

const BRIDGE = Symbol("tsgi.bridge");
type CompleteBody = Uint8Array[] & {
  [BRIDGE]: ResponseBridge;
  close(): void;
};

/** close() of a complete body; shared by every response. */
function closeComplete(this: CompleteBody): void {
  this[BRIDGE].completeBodyClosed();
}

/** Where markHeadStored keeps the header store writeHead() handed it. */
const STORED = Symbol("tsgi.storedHeaders");

type OwnHead = ServerResponse & {
  _storeHeader(firstLine: string, headers: unknown): void;
  _header: string | null;
  [STORED]: unknown;
};

/**
 * In place of node:http's _storeHeader (what writeHead() ends with), which
 * renders the head to text for a socket: here the headers stay in the store
 * (where writeHead put them, see the constructor) and only `headersSent`
 * needs to turn true. The store it is handed is kept for responseHeaders().
 */
function markHeadStored(this: OwnHead, firstLine: string, headers: unknown): void {
  this._header = firstLine;
  this[STORED] = headers;
}

/** What node:http does before the first body byte: writeHead(statusCode), through whatever wraps writeHead. */
function implicitHeader(res: ServerResponse): void {
  (res as ServerResponse & { _implicitHeader(): void })._implicitHeader();
}

function statusLine(res: ServerResponse): string {
  return `${res.statusCode} ${res.statusMessage || STATUS_CODES[res.statusCode] || "Unknown"}`;
}

/**
 * Every header as set (original case, arrays as repeated headers), minus
 * hop-by-hop ones the gateway owns. Values are Latin-1 already: setHeader
 * refuses anything else. Read as node:http renders its own head, from the
 * store writeHead() handed to _storeHeader: by lower-case name, each entry
 * the name as set and its value. That is about 1 µs a response less than
 * getRawHeaderNames() and getHeader() per name, which copy and look up; a
 * store of another form is read through them.
 */
function responseHeaders(res: ServerResponse): HeaderList {
  const store = (res as OwnHead)[STORED];
  if (typeof store !== "object" || store === null || Array.isArray(store)) return headerList(res);
  const list: HeaderList = [];
  for (const key in store) {
    const entry: unknown = (store as Record<string, unknown>)[key];
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== "string")
      return headerList(res);
    if (isHopByHop(key)) continue;
    const [name, value] = entry as [string, OutgoingHttpHeader | undefined];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) list.push([name, String(item)]);
    else list.push([name, String(value)]);
  }
  return list;
}

/** The headers through ServerResponse's public methods. */
function headerList(res: ServerResponse): HeaderList {
  const list: HeaderList = [];
  // getRawHeaderNames() (the names as the application spelled them) is missing from @types/node's ServerResponse.
  for (const name of (
    res as ServerResponse & { getRawHeaderNames(): string[] }
  ).getRawHeaderNames()) {
    if (isHopByHop(name)) continue;
    const value = res.getHeader(name);
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) list.push([name, String(item)]);
  }
  return list;
}

function checkChunk(chunk: unknown): void {
  if (chunk === null)
    throw streamError("ERR_STREAM_NULL_VALUES", "May not write null values to stream", TypeError);
  if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) {
    throw streamError(
      "ERR_INVALID_ARG_TYPE",
      'The "chunk" argument must be of type string or an instance of Buffer or Uint8Array',
      TypeError,
    );
  }
}

function toBytes(chunk: unknown, encoding: Encoding): Uint8Array {
  return typeof chunk === "string" ? Buffer.from(chunk, encoding ?? "utf8") : (chunk as Uint8Array);
}

function describeError(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

function streamError(
  code: string,
  message: string,
  kind: ErrorConstructor | TypeErrorConstructor = Error,
): Error {
  return Object.assign(new kind(message), { code });
}
