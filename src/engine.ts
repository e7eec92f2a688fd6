// The response engine that every gateway shares: it calls the application,
// runs the startResponse state machine, holds headers back until the first
// body byte, iterates the body with backpressure, calls return()/close(), and
// turns an error into a 500 while nothing has been sent yet.
//
// A gateway supplies only the environ and a ResponseSink (where bytes go).

import { ApplicationError, findHeader, statusAllowsBody, statusCode, validateHeaders, validateStatus } from "./headers.js";
import type { Application, Body, Chunk, Environ, HeaderList, StartResponse, Write } from "./types.js";

/** Where a gateway sends a response. Writes to a peer that went away throw ConnectionClosedError. */
export interface ResponseSink {
  /** The headers are final: send them (a sink may hold them to join the first body bytes). */
  sendHeaders(status: string, headers: HeaderList): void;
  /** Sends body bytes; a returned promise means "wait before writing more". */
  write(data: Uint8Array): void | Promise<void>;
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
}

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

const ERROR_STATUS = "500 Internal Server Error";
const ERROR_BODY = Buffer.from("Internal Server Error\n");
const ERROR_HEADERS: HeaderList = [
  ["Content-Type", "text/plain; charset=utf-8"],
  ["Content-Length", String(ERROR_BODY.length)],
];

/** Runs one request through `app` and sends the response to `sink`. Never rejects. */
export function runApplication(app: Application, environ: Environ, sink: ResponseSink): Promise<Outcome> {
  return new Exchange(environ, sink).run(app);
}

const ABORTED = Symbol("aborted");
const ARRAY_ITERATOR = Array.prototype[Symbol.iterator];

class Exchange {
  private status: string | undefined;
  private headers: HeaderList = [];
  private headersSent = false;
  private usedWrite = false;
  private ended = false;

  constructor(
    private readonly environ: Environ,
    private readonly sink: ResponseSink,
  ) {}

  readonly startResponse: StartResponse = (status, headers, excInfo) => {
    if (excInfo !== undefined) {
      if (this.headersSent) throw excInfo;
    } else if (this.status !== undefined) {
      throw new ApplicationError("startResponse() called a second time without excInfo");
    }
    validateStatus(status);
    validateHeaders(headers);
    this.status = status;
    // A copy of the list, so a Content-Length added here never shows in the app's own.
    this.headers = headers.slice();
    return this.write;
  };

  private readonly write: Write = (chunk) => {
    if (this.status === undefined) throw new ApplicationError("write() called before startResponse()");
    if (this.ended) throw new ApplicationError("write() called after the response ended");
    this.usedWrite = true;
    const bytes = toBytes(chunk);
    if (bytes.length === 0) return;
    const pending = this.send(bytes);
    // The app may ignore the promise; a peer that went away must not become an unhandled rejection.
    if (pending) pending.catch(() => {});
    return pending;
  };

  async run(app: Application): Promise<Outcome> {
    let body: Body | undefined;
    let iterator: Iterator<Chunk> | AsyncIterator<Chunk> | undefined;
    let needsReturn = false;
    try {
      const result = app(this.environ, this.startResponse);
      if (isThenable(result)) {
        // An async application may never settle; an abort (timeout, client gone) must not wait for it.
        const signal = this.sink.signal;
        const settled = signal ? await untilAborted(Promise.resolve(result), signal) : await result;
        if (settled === ABORTED) {
          closeWhenSettled(result, (error) => this.log("error in body close()", error));
          throw new ConnectionClosedError("request aborted");
        }
        body = settled;
      } else {
        body = result;
      }
      checkBody(body);
      // A plain array of chunks is read once, into a list of our own: an element
      // behind a getter must not differ between the Content-Length and the bytes.
      const ready = readyChunks(body);
      this.addSingleChunkLength(ready ?? body);
      if (ready !== undefined && this.sink.sendWhole !== undefined && this.sendWhole(ready)) return "complete";
      const isAsync = typeof (body as AsyncIterable<Chunk>)[Symbol.asyncIterator] === "function";
      // Only an await lets an abort be noticed, so a sync body never needs the signal
      // (and a sink may then skip building one).
      let signal = isAsync ? this.sink.signal : undefined;
      iterator = isAsync
        ? (body as AsyncIterable<Chunk>)[Symbol.asyncIterator]()
        : (ready ?? (body as Iterable<Chunk>))[Symbol.iterator]();
      needsReturn = true;
      for (;;) {
        let step: IteratorResult<Chunk> | typeof ABORTED;
        try {
          const next = iterator.next();
          step = isAsync ? await (signal ? untilAborted(next as Promise<IteratorResult<Chunk>>, signal) : next) : (next as IteratorResult<Chunk>);
        } catch (error) {
          needsReturn = false; // an iterator that threw is finished
          throw error;
        }
        if (step === ABORTED || signal?.aborted) throw new ConnectionClosedError("request aborted");
        if (step.done) {
          needsReturn = false;
          break;
        }
        const bytes = toBytes(step.value);
        if (bytes.length !== 0) {
          const pending = this.send(bytes);
          if (pending) {
            await pending;
            signal ??= this.sink.signal;
            if (signal?.aborted) throw new ConnectionClosedError("request aborted");
          }
        }
      }
      const ending = this.finish();
      if (ending) await ending;
      return "complete";
    } catch (error) {
      return await this.fail(error);
    } finally {
      this.ended = true;
      this.cleanUp(body, iterator, needsReturn);
    }
  }

  /** PEP 3333: a body of exactly one chunk gets a Content-Length unless the app set one. */
  private addSingleChunkLength(body: Body): void {
    if (!Array.isArray(body) || body.length !== 1 || this.usedWrite || this.status === undefined) return;
    if (findHeader(this.headers, "content-length") !== undefined) return;
    const chunk: unknown = body[0];
    if (typeof chunk === "string") this.headers.push(["Content-Length", String(Buffer.byteLength(chunk))]);
    else if (chunk instanceof Uint8Array) this.headers.push(["Content-Length", String(chunk.length)]);
  }

  /**
   * A response whose every chunk is ready is whole: a sink that can send it at
   * once gets it so (one buffer and one write instead of one per piece).
   */
  private sendWhole(chunks: Chunk[]): boolean {
    if (this.usedWrite || this.headersSent || this.status === undefined) return false;
    let empty = true;
    for (let i = 0; i < chunks.length; i++) if (chunks[i]!.length !== 0) empty = false;
    if (empty && statusAllowsBody(statusCode(this.status)) && findHeader(this.headers, "content-length") === undefined) {
      this.headers.push(["Content-Length", "0"]);
    }
    if (!this.sink.sendWhole!(this.status, this.headers, chunks)) return false;
    this.headersSent = true;
    return true;
  }

  private send(bytes: Uint8Array): void | Promise<void> {
    if (!this.headersSent) this.sendHead();
    return this.sink.write(bytes);
  }

  private sendHead(): void {
    if (this.status === undefined) {
      throw new ApplicationError("the application produced a body without calling startResponse()");
    }
    this.headersSent = true;
    this.sink.sendHeaders(this.status, this.headers);
  }

  private finish(): void | Promise<void> {
    if (!this.headersSent) {
      if (this.status === undefined) {
        throw new ApplicationError("the application returned without calling startResponse()");
      }
      if (statusAllowsBody(statusCode(this.status)) && findHeader(this.headers, "content-length") === undefined) {
        this.headers.push(["Content-Length", "0"]);
      }
      this.sendHead();
    }
    return this.sink.end();
  }

  private async fail(error: unknown): Promise<Outcome> {
    if (error instanceof ConnectionClosedError || this.sink.signal?.aborted) {
      this.sink.abort(error);
      return "aborted";
    }
    this.log("error in application", error);
    if (this.headersSent) {
      this.log("response cut off: the error came after the headers were sent", undefined);
      this.sink.abort(error);
      return "cut";
    }
    try {
      this.headersSent = true;
      this.sink.sendHeaders(ERROR_STATUS, ERROR_HEADERS);
      await this.sink.write(ERROR_BODY);
      await this.sink.end();
      return "failed";
    } catch (secondError) {
      this.sink.abort(secondError);
      return secondError instanceof ConnectionClosedError ? "aborted" : "cut";
    }
  }

  private cleanUp(body: Body | undefined, iterator: Iterator<Chunk> | AsyncIterator<Chunk> | undefined, needsReturn: boolean): void {
    // Stopping early must still run a generator's `finally`. Not awaited: an async
    // generator stuck in a pending next() only returns after that next() settles.
    if (needsReturn && iterator && typeof iterator.return === "function") {
      try {
        const result = iterator.return();
        if (isThenable(result)) result.then(undefined, (error) => this.log("error in body return()", error));
      } catch (error) {
        this.log("error in body return()", error);
      }
    }
    if (body && typeof body.close === "function") {
      try {
        const result = body.close();
        if (isThenable(result)) result.then(undefined, (error) => this.log("error in body close()", error));
      } catch (error) {
        this.log("error in body close()", error);
      }
    }
  }

  private log(what: string, error: unknown): void {
    const env = this.environ;
    const target = (env.SCRIPT_NAME ?? "") + (env.PATH_INFO ?? "") + (env.QUERY_STRING ? "?" + env.QUERY_STRING : "");
    let text = `[tsgi] ${env.REQUEST_METHOD} ${target}: ${what}`;
    if (error !== undefined) text += ": " + (error instanceof Error ? (error.stack ?? String(error)) : String(error));
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
  if (!Array.isArray(body) || (body as unknown[])[Symbol.iterator] !== ARRAY_ITERATOR) return undefined;
  const source = body as unknown[];
  const chunks: Chunk[] = new Array(source.length);
  for (let i = 0; i < source.length; i++) {
    const chunk = source[i];
    if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) return undefined;
    chunks[i] = chunk;
  }
  return chunks;
}

function checkBody(body: unknown): asserts body is Body {
  if (typeof body === "string" || body instanceof Uint8Array) {
    throw new ApplicationError("the body must be an iterable of chunks, not a single string or Uint8Array (wrap it: [body])");
  }
  if (
    body === null ||
    typeof body !== "object" ||
    (typeof (body as Iterable<unknown>)[Symbol.iterator] !== "function" &&
      typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] !== "function")
  ) {
    throw new ApplicationError(`the application returned ${describe(body)}; expected an iterable or async iterable body`);
  }
}

/** Converts a chunk to bytes: strings as UTF-8. */
export function toBytes(chunk: unknown): Uint8Array {
  if (typeof chunk === "string") return Buffer.from(chunk, "utf8");
  if (chunk instanceof Uint8Array) return chunk;
  throw new ApplicationError(`a body chunk must be a Uint8Array or a string, not ${describe(chunk)}`);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return `an object (${value.constructor?.name ?? "Object"})`;
  return typeof value === "undefined" ? "undefined" : `a ${typeof value}`;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === "object" && typeof (value as PromiseLike<unknown>).then === "function";
}

/** A body that arrives after the request was given up still gets its close(). */
function closeWhenSettled(result: PromiseLike<Body>, onError: (error: unknown) => void): void {
  Promise.resolve(result).then((late) => {
    if (late && typeof late.close === "function") {
      try {
        const closing = late.close();
        if (isThenable(closing)) closing.then(undefined, onError);
      } catch (error) {
        onError(error);
      }
    }
  }, () => {});
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | typeof ABORTED> {
  if (signal.aborted) return Promise.resolve(ABORTED);
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(ABORTED);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
