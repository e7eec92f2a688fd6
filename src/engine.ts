// The response engine that every gateway shares: it calls the application,
// runs the startResponse state machine, holds headers back until the first
// body byte, iterates the body with backpressure, calls return()/close(), and
// turns an error into a 500 while nothing has been sent yet.
//
// A gateway supplies only the environ and a ResponseSink (where bytes go).

import { defineWatchedSignal, type PeerWatch } from "./abort-watch.js";
import { requestLine } from "./environ.js";
import {
  ApplicationError,
  declaredContentLength,
  findHeader,
  statusAllowsBody,
  statusCode,
  validateHeaders,
  validateStatus,
} from "./headers.js";
import type {
  Application,
  Body,
  Chunk,
  Environ,
  HeaderList,
  StartResponse,
  Write,
} from "./types.js";
import { describe, isThenable } from "./values.js";

/** Where a gateway sends a response. Writes to a peer that went away throw ConnectionClosedError. */
export interface ResponseSink {
  /** The headers are final: send them (a sink may hold them to join the first body bytes). */
  sendHeaders(status: string, headers: HeaderList): void;
  /** Sends body bytes; a returned promise means "wait before writing more". */
  write(data: Uint8Array): void | Promise<void>;
  /** Optional: sends what was given to sendHeaders now, instead of holding it for the first body bytes. */
  flush?(): void;
  /** The response is complete. */
  end(): void | Promise<void>;
  /**
   * Optional: sends a response that is complete before anything went out (the
   * final status and headers, every body chunk) and ends it, all in one go.
   * Returns false to decline, and the engine sends it piece by piece instead.
   */
  sendWhole?(status: string, headers: HeaderList, body: readonly Chunk[]): boolean;
  /** The response cannot be completed: cut it off so the peer does not take it as whole. */
  abort(reason: unknown): void;
  /**
   * Aborted when the peer no longer wants the response (client gone,
   * FCGI_ABORT_REQUEST, timeout). Read only when the engine is about to wait,
   * so a sink may build it on first read.
   */
  readonly signal?: AbortSignal | undefined;
  /**
   * Optional: the same state as `signal` (whose AbortSignal it builds), which
   * the engine and the adapters watch without building an AbortSignal.
   */
  readonly abortWatch?: PeerWatch | undefined;
}

/** What the engine watches: a sink's AbortWatch, or its AbortSignal seen the same way. */
type Watch = Pick<PeerWatch, "aborted" | "listen">;

/** The web server or client went away; the response cannot be delivered. */
export class ConnectionClosedError extends Error {
  override name = "ConnectionClosedError";
}

/**
 * How a request ended: `complete` — the application's response went out whole;
 * `failed` — the application failed before any output and a 500 went out instead;
 * `cut` — it failed after the headers went out and the response was cut off;
 * `aborted` — the peer went away or the request was aborted.
 */
export type Outcome = "complete" | "failed" | "cut" | "aborted";

// [error.before-headers] Before the headers went out, the response is replaced by `500 Internal Server Error` with
// `Content-Type: text/plain; charset=utf-8`, `Content-Length: 22` and the body `Internal Server Error\n`, and the
// error and its stack go to `tsgi.errors`, never to the client.
const ERROR_STATUS = "500 Internal Server Error";
const ERROR_BODY = Buffer.from("Internal Server Error\n");
const ERROR_HEADERS: HeaderList = [
  ["Content-Type", "text/plain; charset=utf-8"],
  ["Content-Length", String(ERROR_BODY.length)],
];

/** What a gateway may ask of one run besides the response. */
export interface RunOptions {
  /**
   * Called once the run is over with a promise that settles when the body's
   * return() and close() have (they are not awaited otherwise): a process
   * about to end (CGI) waits for it, within a grace period.
   */
  onCleanUp?: (settled: Promise<unknown>) => void;
}

/** Runs one request through `app` and sends the response to `sink`. Never rejects. */
export function runApplication(
  app: Application,
  environ: Environ,
  sink: ResponseSink,
  options?: RunOptions,
): Promise<Outcome> {
  return new Exchange(environ, sink, options?.onCleanUp).run(app);
}

const ABORTED = Symbol("aborted");
const ARRAY_ITERATOR = Array.prototype[Symbol.iterator];
const SETTLED = Promise.resolve();

type BodyIterator = Iterator<Chunk> | AsyncIterator<Chunk>;

class Exchange {
  private status: string | undefined;
  private headers: HeaderList = [];
  private headersSent = false;
  private usedWrite = false;
  private ended = false;
  /** The Content-Length the application set, if any. */
  private declared: number | undefined;
  /** Body bytes a declared Content-Length still allows; -1 when the body is not counted. */
  private allowed = -1;
  /** Body bytes past a declared Content-Length that were not sent. */
  private overrun = 0;
  private readonly isHead: boolean;
  private iterator: BodyIterator | undefined;
  /** The iterator was started and has not finished: stopping early must call its return(). */
  private needsReturn = false;

  constructor(
    private readonly environ: Environ,
    private readonly sink: ResponseSink,
    private readonly onCleanUp: RunOptions["onCleanUp"],
  ) {
    // Read before the application runs: it may change its environ.
    this.isHead = environ.REQUEST_METHOD === "HEAD";
    if (!("tsgi.get_signal" in environ)) defineSignal(environ, sink);
  }

  readonly startResponse: StartResponse = (status, headers, excInfo) => {
    if (excInfo !== undefined) {
      // [start.exc-rethrow] After the headers went out, a call with `excInfo` throws `excInfo` itself, which
      // normally ends the application and cuts the response off (see Errors).
      if (this.headersSent) throw excInfo; // eslint-disable-line @typescript-eslint/only-throw-error -- as given
    } else if (this.status !== undefined) {
      throw new ApplicationError("startResponse() called a second time without excInfo");
    }
    validateStatus(status);
    validateHeaders(headers);
    this.declared = declaredContentLength(headers);
    this.status = status;
    // [start.exc-replace] Before the headers went out, a call with `excInfo` replaces the status and headers of
    // the earlier call.
    // [start.copy] The gateway copies the header list when `startResponse` is called; later changes to the
    // application's array have no effect.
    //
    // A copy of the list, so a Content-Length added here never shows in the app's own.
    this.headers = headers.slice();
    return this.write;
  };

  private readonly write: Write = (chunk) => {
    if (this.status === undefined)
      throw new ApplicationError("write() called before startResponse()");
    if (this.ended) throw new ApplicationError("write() called after the response ended");
    // [write.now] `write` sends its chunk at once (the headers first, if they have not gone out) and may return a
    // promise: an application writing a lot should await it before writing more.
    this.usedWrite = true;
    const bytes = toBytes(chunk);
    if (bytes.length === 0) {
      // [write.flush] Writing an empty chunk through `write` sends the status and headers at once, if they have not
      // gone out.
      if (!this.headersSent) {
        this.sendHead();
        this.sink.flush?.();
      }
      return;
    }
    const pending = this.send(bytes);
    // The app may ignore the promise; a peer that went away must not become an unhandled rejection.
    if (pending) pending.catch(() => {});
    return pending;
  };

  async run(app: Application): Promise<Outcome> {
    let body: Body | undefined;
    try {
      const result = app(this.environ, this.startResponse);
      // [app.async] The application may be an `async` function; the gateway waits for the body it resolves to.
      body = isThenable(result) ? await this.settledBody(result) : result;
      checkBody(body);
      // A plain array of chunks is read once, into a list of our own: an element
      // behind a getter must not differ between the Content-Length and the bytes.
      const ready = readyChunks(body);
      this.addSingleChunkLength(ready ?? body);
      if (ready !== undefined && this.sink.sendWhole !== undefined && this.sendWhole(ready))
        return "complete";
      const pending = this.iterate(body, ready);
      if (pending) await pending;
      return await this.complete();
    } catch (error) {
      return await this.fail(error);
    } finally {
      this.ended = true;
      this.cleanUp(body);
    }
  }

  /** An async application may never settle; an abort (timeout, client gone) must not wait for it. */
  private async settledBody(result: PromiseLike<Body>): Promise<Body> {
    const watch = this.peerWatch();
    const settled = watch ? await untilAborted(Promise.resolve(result), watch) : await result;
    if (settled !== ABORTED) return settled;
    closeWhenSettled(result, (error) => this.log("error in body close()", error));
    throw new ConnectionClosedError("request aborted");
  }

  /** How the engine watches for the peer leaving, read only when it is about to wait (see ResponseSink.signal). */
  private peerWatch(): Watch | undefined {
    if (this.sink.abortWatch) return this.sink.abortWatch;
    const signal = this.sink.signal;
    return signal ? signalWatch(signal) : undefined;
  }

  private peerAborted(): boolean {
    return (this.sink.abortWatch ?? this.sink.signal)?.aborted === true;
  }

  /** Sends every chunk of the body; a sync body without backpressure never awaits. */
  private iterate(body: Body, ready: Chunk[] | undefined): void | Promise<void> {
    if (typeof (body as AsyncIterable<Chunk>)[Symbol.asyncIterator] === "function") {
      return this.iterateAsync((body as AsyncIterable<Chunk>)[Symbol.asyncIterator]());
    }
    const iterator = (ready ?? (body as Iterable<Chunk>))[Symbol.iterator]();
    this.started(iterator);
    for (let bytes = this.nextBytes(iterator); bytes !== null; bytes = this.nextBytes(iterator)) {
      const pending = this.send(bytes);
      // Backpressure: the rest continues once the sink has room.
      if (pending) return this.iterateSyncRest(iterator, pending);
    }
  }

  private async iterateSyncRest(iterator: Iterator<Chunk>, first: Promise<void>): Promise<void> {
    let pending: void | Promise<void> = first;
    for (;;) {
      if (pending) await this.drained(pending);
      const bytes = this.nextBytes(iterator);
      if (bytes === null) return;
      pending = this.send(bytes);
    }
  }

  private async iterateAsync(iterator: AsyncIterator<Chunk>): Promise<void> {
    this.started(iterator);
    // Only an await lets an abort be noticed, so a sink may build its signal on first read.
    const watch = this.peerWatch();
    for (;;) {
      let step: IteratorResult<Chunk> | typeof ABORTED;
      try {
        const next = iterator.next();
        step = await (watch ? untilAborted(next, watch) : next);
      } catch (error) {
        this.needsReturn = false; // an iterator that threw is finished
        throw error;
      }
      if (step === ABORTED || watch?.aborted) throw new ConnectionClosedError("request aborted");
      if (step.done) {
        this.needsReturn = false;
        return;
      }
      const bytes = toBytes(step.value);
      if (bytes.length === 0) continue;
      const pending = this.send(bytes);
      if (pending) await this.drained(pending);
    }
  }

  // [body.backpressure] While its output to the web server is full, the gateway does not ask for the next chunk
  // (backpressure), so a body of any size streams in bounded memory.
  /** Waits for the sink to take more; a peer that left meanwhile ends the iteration. */
  private async drained(pending: Promise<void>): Promise<void> {
    await pending;
    if (this.peerAborted()) throw new ConnectionClosedError("request aborted");
  }

  /** The next non-empty chunk of a sync body as bytes, or null at its end. */
  private nextBytes(iterator: Iterator<Chunk>): Uint8Array | null {
    for (;;) {
      const step = this.step(() => iterator.next());
      if (step.done) return null;
      const bytes = toBytes(step.value);
      // [body.empty-chunk] An empty chunk is allowed and sends nothing.
      if (bytes.length !== 0) return bytes;
    }
  }

  private started(iterator: BodyIterator): void {
    this.iterator = iterator;
    this.needsReturn = true;
  }

  /** One next() of a sync iterator: one that threw or finished needs no return(). */
  private step(next: () => IteratorResult<Chunk>): IteratorResult<Chunk> {
    let step: IteratorResult<Chunk>;
    try {
      step = next();
    } catch (error) {
      this.needsReturn = false;
      throw error;
    }
    if (step.done) this.needsReturn = false;
    return step;
  }

  /** PEP 3333: a body of exactly one chunk gets a Content-Length unless the app set one. */
  private addSingleChunkLength(body: Body): void {
    // [length.single-chunk] An `Array` body of exactly one chunk, with `write` not used, gets the chunk's length
    // in bytes, for a `HEAD` request too (`["тест"]` gives `Content-Length: 8`).
    if (!Array.isArray(body) || body.length !== 1 || this.usedWrite || this.status === undefined)
      return;
    // [length.given] The gateway sends a `Content-Length` the application set as given, even with an empty body
    // (the answer to a `HEAD` request).
    if (this.declared !== undefined) return;
    const chunk: unknown = body[0];
    if (typeof chunk === "string")
      this.headers.push(["Content-Length", String(Buffer.byteLength(chunk))]);
    else if (chunk instanceof Uint8Array)
      this.headers.push(["Content-Length", String(chunk.length)]);
  }

  /**
   * A response whose every chunk is ready is whole: a sink that can send it at
   * once gets it so (one buffer and one write instead of one per piece).
   */
  private sendWhole(chunks: Chunk[]): boolean {
    if (this.usedWrite || this.headersSent || this.status === undefined) return false;
    let length = 0;
    for (let i = 0; i < chunks.length; i++) {
      const chunk = chunks[i];
      length +=
        typeof chunk === "string"
          ? chunk.length === 0
            ? 0
            : Buffer.byteLength(chunk)
          : chunk.length;
    }
    const counted = this.countedLength();
    // A body that disagrees with its Content-Length takes the path that trims or cuts it.
    if (counted !== -1 && length !== counted) return false;
    if (length === 0) this.addEmptyLength();
    if (!this.sink.sendWhole!(this.status, this.headers, chunks)) return false;
    this.headersSent = true;
    return true;
  }

  /**
   * The declared Content-Length the body is counted against, or -1: a response
   * to HEAD, or with a status that has no body, keeps the length a GET would
   * have (RFC 9110 section 8.6) and its body is not counted.
   */
  // [length.counted] When the application sets `Content-Length`, the gateway counts the body
  // bytes, from the iterable and from `write` together, against it, except for a response to
  // `HEAD` and for a status without a body (`1xx`, `204`, `304`).
  private countedLength(): number {
    if (this.declared === undefined || this.isHead || !statusAllowsBody(statusCode(this.status!)))
      return -1;
    return this.declared;
  }

  /**
   * A response with no body bytes gets `Content-Length: 0`, unless it answers
   * HEAD (where it would announce a wrong length, RFC 9110 section 8.6) or has a
   * status without a body.
   */
  // [length.empty] A response with no body bytes at all gets `Content-Length: 0`, except a
  // response to `HEAD` (where it would announce a wrong length, RFC 9110 §8.6), a `1xx`, `204`
  // or `304` response, which has no body by definition, and a `205`, which the application
  // may send with no framing at all (RFC 9110 §15.3.6).
  private addEmptyLength(): void {
    const code = statusCode(this.status!);
    if (this.isHead || !statusAllowsBody(code) || code === 205) return;
    if (findHeader(this.headers, "content-length") === undefined)
      this.headers.push(["Content-Length", "0"]);
  }

  private send(bytes: Uint8Array): void | Promise<void> {
    // [output.held] The gateway holds the status and headers back until the first non-empty chunk is sent, from
    // the body or from `write`, until an empty chunk is written through `write`, or, if there is none of these,
    // until the body is exhausted.
    if (!this.headersSent) this.sendHead();
    if (this.allowed !== -1) {
      if (bytes.length > this.allowed) {
        bytes = this.trimToLength(bytes);
        if (bytes.length === 0) return;
      } else {
        this.allowed -= bytes.length;
      }
    }
    return this.sink.write(bytes);
  }

  /** Bytes past a declared Content-Length are not sent: on a kept-alive connection they would begin the next response. */
  // [length.over] A body longer than its `Content-Length` is an application error: the bytes
  // past the declared length are not sent, and the error is logged.
  private trimToLength(bytes: Uint8Array): Uint8Array {
    if (this.overrun === 0) {
      this.log(
        `the body is longer than its Content-Length (${this.declared}): the bytes past it are not sent`,
        undefined,
      );
    }
    const kept = bytes.subarray(0, this.allowed);
    this.overrun += bytes.length - kept.length;
    this.allowed = 0;
    return kept;
  }

  private sendHead(): void {
    if (this.status === undefined) {
      throw new ApplicationError("the application produced a body without calling startResponse()");
    }
    this.headersSent = true;
    this.allowed = this.countedLength();
    this.sink.sendHeaders(this.status, this.headers);
  }

  /** The body is exhausted: end the response, or cut it off when it fell short of its Content-Length. */
  private async complete(): Promise<Outcome> {
    if (!this.headersSent) {
      if (this.status === undefined) {
        throw new ApplicationError("the application returned without calling startResponse()");
      }
      // Nothing went out yet, so a clean 500 is still possible.
      if (this.countedLength() > 0) {
        throw new ApplicationError(
          `the body is empty, but its Content-Length announced ${this.declared} bytes`,
        );
      }
      this.addEmptyLength();
      this.sendHead();
    }
    // [length.short] A body that ends before the declared length is an application error too:
    // the response is cut off (logged; each gateway's cut-off path).
    if (this.allowed > 0) {
      const sent = this.declared! - this.allowed;
      this.log(
        `response cut off: the body ended after ${sent} of the ${this.declared} bytes its Content-Length announced`,
        undefined,
      );
      this.sink.abort(new ApplicationError("the body is shorter than its Content-Length"));
      return "cut";
    }
    const ending = this.sink.end();
    if (ending) await ending;
    return "complete";
  }

  private async fail(error: unknown): Promise<Outcome> {
    // [error.abort] When the client goes away, or the web server aborts the request, the gateway stops: it calls
    // `return()` and `close()` as above and logs nothing.
    if (error instanceof ConnectionClosedError || this.peerAborted()) {
      this.sink.abort(error);
      return "aborted";
    }
    this.log("error in application", error);
    // [error.after-headers] After the headers went out, the error is logged to `tsgi.errors` and the response is
    // cut off: whatever was sent stays, nothing more is added, and the gateway makes sure the web server does not
    // take the truncated response for a complete one (see each gateway).
    if (this.headersSent) {
      this.log("response cut off: the error came after the headers were sent", undefined);
      this.sink.abort(error);
      return "cut";
    }
    try {
      this.headersSent = true;
      this.allowed = -1;
      this.sink.sendHeaders(ERROR_STATUS, ERROR_HEADERS);
      await this.sink.write(ERROR_BODY);
      await this.sink.end();
      return "failed";
    } catch (secondError) {
      this.sink.abort(secondError);
      return secondError instanceof ConnectionClosedError ? "aborted" : "cut";
    }
  }

  private cleanUp(body: Body | undefined): void {
    const pending: PromiseLike<unknown>[] = [];
    // Stopping early must still run a generator's `finally`. Not awaited: an async
    // generator stuck in a pending next() only returns after that next() settles.
    const iterator = this.iterator;
    if (this.needsReturn && iterator && typeof iterator.return === "function") {
      this.settle(() => iterator.return!(), "error in body return()", pending);
    }
    if (body && typeof body.close === "function")
      this.settle(() => body.close!(), "error in body close()", pending);
    this.onCleanUp?.(pending.length === 0 ? SETTLED : Promise.allSettled(pending));
  }

  // [close.errors] Neither `return()` nor `close()` is awaited; an exception or rejection from either is logged to
  // `tsgi.errors` and changes nothing else.
  /** Calls `action`, logging a throw or a rejection; a promise it returns joins `pending`. */
  private settle(action: () => unknown, what: string, pending: PromiseLike<unknown>[]): void {
    try {
      const result = action();
      if (isThenable(result))
        pending.push(result.then(undefined, (error) => this.log(what, error)));
    } catch (error) {
      this.log(what, error);
    }
  }

  private log(what: string, error: unknown): void {
    const env = this.environ;
    // [error.log-line] A log line names the request: `[tsgi] GET /script/path?query: error in application:
    // <stack>`.
    let text = `[tsgi] ${requestLine(env)}: ${what}`;
    if (error !== undefined)
      // A thrown value that is not an Error is logged as String() shows it, whatever it is.
      // eslint-disable-next-line @typescript-eslint/no-base-to-string
      text += ": " + (error instanceof Error ? (error.stack ?? String(error)) : String(error));
    try {
      env["tsgi.errors"].write(text + "\n");
    } catch {
      // Nowhere left to report to.
    }
  }
}

/**
 * The chunks of a plain array body (default iterator, every element a string or
 * Uint8Array), each element read once; undefined for any other body, which
 * takes the general path and its precise errors.
 */
function readyChunks(body: Body): Chunk[] | undefined {
  if (!Array.isArray(body) || (body as unknown[])[Symbol.iterator] !== ARRAY_ITERATOR)
    return undefined;
  const source = body as unknown[];
  const chunks = new Array<Chunk>(source.length);
  for (let i = 0; i < source.length; i++) {
    const chunk = source[i];
    if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) return undefined;
    chunks[i] = chunk;
  }
  return chunks;
}

function checkBody(body: unknown): asserts body is Body {
  if (typeof body === "string" || body instanceof Uint8Array) {
    throw new ApplicationError(
      "the body must be an iterable of chunks, not a single string or Uint8Array (wrap it: [body])",
    );
  }
  if (
    body === null ||
    typeof body !== "object" ||
    (typeof (body as Iterable<unknown>)[Symbol.iterator] !== "function" &&
      typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] !== "function")
  ) {
    throw new ApplicationError(
      `the application returned ${describe(body)}; expected an iterable or async iterable body`,
    );
  }
}

/** Converts a chunk to bytes: strings as UTF-8. */
export function toBytes(chunk: unknown): Uint8Array {
  if (typeof chunk === "string") return Buffer.from(chunk, "utf8");
  if (chunk instanceof Uint8Array) return chunk;
  throw new ApplicationError(
    `a body chunk must be a Uint8Array or a string, not ${describe(chunk)}`,
  );
}

// [env.signal] `tsgi.get_signal`: a function that returns an `AbortSignal` that aborts when the client goes away or
// the web server aborts the request, or `undefined` where the gateway cannot tell.
//
// A plain value holding a function, not a getter: defining an accessor on an environ
// costs more than the rest of a FastCGI request's environ, and building an AbortSignal
// for every request costs as much again, so it is built only for an application that asks.
function defineSignal(environ: Environ, sink: ResponseSink): void {
  if (sink.abortWatch) return defineWatchedSignal(environ, sink.abortWatch);
  (environ as { "tsgi.get_signal"?: () => AbortSignal | undefined })["tsgi.get_signal"] = () =>
    sink.signal;
}

/** A body that arrives after the request was given up still gets its close(). */
function closeWhenSettled(result: PromiseLike<Body>, onError: (error: unknown) => void): void {
  Promise.resolve(result).then(
    (late) => {
      if (late && typeof late.close === "function") {
        try {
          const closing = late.close();
          if (isThenable(closing)) closing.then(undefined, onError);
        } catch (error) {
          onError(error);
        }
      }
    },
    () => {},
  );
}

function untilAborted<T>(promise: Promise<T>, watch: Watch): Promise<T | typeof ABORTED> {
  if (watch.aborted) return Promise.resolve(ABORTED);
  return new Promise((resolve, reject) => {
    const stop = watch.listen(() => resolve(ABORTED));
    promise.then(
      (value) => {
        stop();
        resolve(value);
      },
      (error) => {
        stop();
        // The iterator's own rejection, passed on unchanged.
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        reject(error);
      },
    );
  });
}

/** An AbortSignal watched the way the engine watches an AbortWatch. */
function signalWatch(signal: AbortSignal): Watch {
  return {
    get aborted() {
      return signal.aborted;
    },
    listen(listener) {
      signal.addEventListener("abort", listener, { once: true });
      return () => signal.removeEventListener("abort", listener);
    },
  };
}
