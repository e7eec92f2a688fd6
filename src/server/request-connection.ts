// One connection of a one-request-per-connection gateway (SCGI, uwsgi): the
// protocol's header block is collected (within a size limit) and parsed into
// CGI variables, the body (exactly CONTENT_LENGTH bytes) streams to the
// application, and the response goes out through a StreamResponse; the
// connection closes after it. The protocol supplies only the RequestFormat.

import type { Socket } from "node:net";
import type { Writable } from "node:stream";
import { ConnectionClosedError, runApplication, type Outcome } from "../engine.js";
import { fillPathFromUri, makeEnviron, parseContentLength } from "../environ.js";
import type { Application, Environ, HeaderList } from "../types.js";
import { BodyInput, EMPTY_INPUT_KEY, NO_BODY, type RequestInput } from "./body-input.js";
import { bodyBytesReceived } from "./reclaim.js";
import {
  statusApplication,
  timeoutMessage,
  watchRequest,
  type WatchSettings,
} from "./request-watch.js";
import type { ServerConnection, ServerHooks } from "./serve.js";
import { builtInPage, type BuiltInPages } from "./status.js";
import { StreamResponse } from "./stream-response.js";

/** Bad input, answered with `status` (e.g. "400 Bad Request"). */
export class BadRequest extends Error {
  override name = "BadRequest";
  constructor(
    readonly status: string,
    message: string,
  ) {
    super(message);
  }
}

/** What a protocol tells the connection. Its methods throw BadRequest for bad input. */
export interface RequestFormat {
  /** The size of the whole header block once its first bytes tell it; undefined while they do not yet. */
  headSize(start: Buffer): number | undefined;
  /** The CGI variables of a complete header block (a variable sent twice: the last value). */
  parseHead(head: Buffer): Record<string, string>;
  /** The response head for the final status and headers. */
  formatHead(status: string, headers: HeaderList): Buffer;
}

export interface RequestConnectionSettings extends WatchSettings {
  /** Largest header block taken; a larger one is answered 431. */
  maxHeadBytes: number;
  /** Milliseconds the head or body may stall before the request is given up. */
  receiveTimeout: number;
  errors: Writable;
  multiprocess: boolean;
  /** Run a minor collection now and then while request bodies arrive (see reclaim.ts). */
  reclaimBodyMemory: boolean;
  pages: BuiltInPages | undefined;
  log: (message: string) => void;
}

const NO_BYTES = Buffer.alloc(0);

/** The variables of an answer given without the request (bad input, overload). */
function noRequest(): Record<string, string> {
  return { REQUEST_METHOD: "", SERVER_PROTOCOL: "" };
}

export class RequestConnection implements ServerConnection {
  readonly #socket: Socket;
  readonly #settings: RequestConnectionSettings;
  readonly #hooks: ServerHooks;
  readonly #app: Application;
  readonly #format: RequestFormat;
  readonly #response: StreamResponse;
  #head: Buffer = NO_BYTES;
  #headSize: number | undefined;
  /** The request's input once its head arrived (NO_BODY without a body: its stream is built if read). */
  #input: RequestInput | undefined;
  #used = false;
  #paused = false;
  #admitted = false;
  #active = false;
  #closed = false;
  #timedOut = false;
  #lastInputAt = Date.now();
  /** Body bytes still to come from the web server; -1 when unknown (a refused request). */
  #unreceived = -1;

  constructor(
    socket: Socket,
    settings: RequestConnectionSettings,
    hooks: ServerHooks,
    app: Application,
    format: RequestFormat,
  ) {
    this.#socket = socket;
    this.#settings = settings;
    this.#hooks = hooks;
    this.#app = app;
    this.#format = format;
    this.#response = new StreamResponse(
      socket,
      (status, headers) => format.formatHead(status, headers),
      () => this.#unreceived === 0,
    );
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("end", () => this.#onPeerEnd());
    socket.on("error", () => {
      // EPIPE/ECONNRESET: the web server went away; "close" follows.
    });
    socket.on("close", () => this.#onClose());
  }

  #onData(chunk: Buffer): void {
    this.#used = true;
    this.#lastInputAt = Date.now();
    if (this.#input === undefined) this.#collectHead(chunk);
    else this.#feedBody(chunk);
  }

  /** Gathers the header block; its size is known from its first bytes, so memory stays bounded. */
  #collectHead(chunk: Buffer): void {
    if (this.#active) return; // refused: the rest is read and dropped
    this.#head = this.#head.length === 0 ? chunk : Buffer.concat([this.#head, chunk]);
    try {
      this.#headSize ??= this.#format.headSize(this.#head);
      if (this.#headSize === undefined) return;
      if (this.#headSize > this.#settings.maxHeadBytes)
        throw new BadRequest(
          "431 Request Header Fields Too Large",
          `header block of ${this.#headSize} bytes is over the limit of ${this.#settings.maxHeadBytes}`,
        );
    } catch (error) {
      this.#refuse(error);
      return;
    }
    if (this.#head.length < this.#headSize) return;
    const head = this.#head.subarray(0, this.#headSize);
    const rest = this.#head.subarray(this.#headSize);
    this.#head = NO_BYTES;
    this.#start(head, rest);
  }

  #start(head: Buffer, rest: Buffer): void {
    let vars: Record<string, string>;
    let length: number;
    try {
      // [stream.environ] environ: the variables of the request's header block (the SCGI netstring, the uwsgi
      // vars block), decoded by the Latin-1 rule; a variable sent twice keeps its last value.
      vars = this.#format.parseHead(head);
      length = contentLength(vars.CONTENT_LENGTH);
    } catch (error) {
      this.#refuse(error);
      return;
    }
    this.#active = true;
    this.#unreceived = length;
    this.#input = length === 0 ? NO_BODY : new BodyInput(length, () => this.#resumeReading());
    if (!this.#hooks.admit()) {
      this.#settings.log(
        `overloaded: answered 503: ${vars.REQUEST_METHOD} ${vars.REQUEST_URI ?? ""}`,
      );
      this.#run(statusApplication("503 Service Unavailable"), this.#environ(noRequest()));
    } else {
      this.#admitted = true;
      fillPathFromUri(vars);
      const page = this.#settings.pages ? builtInPage(vars, this.#settings.pages) : undefined;
      this.#run(page ?? this.#app, this.#environ(vars));
    }
    if (rest.length > 0) this.#feedBody(rest);
  }

  #environ(vars: Record<string, string>): Environ {
    // [stream.flags] `tsgi.run_once` and `tsgi.multithread` are `false`; `tsgi.multiprocess` is as for FastCGI.
    const input = this.#input;
    return makeEnviron(vars, {
      input: input instanceof BodyInput ? input : undefined,
      lazyInput: EMPTY_INPUT_KEY,
      errors: this.#settings.errors,
      multithread: false,
      multiprocess: this.#settings.multiprocess,
      runOnce: false,
    });
  }

  /** Bad input: a log line, then an answer (400, 408, 431, ...). */
  // [stream.bad-input] A malformed or oversized header block, or one that stalls, is answered `400`, `431` or
  // `408` with a log line; other connections are not affected.
  #refuse(error: unknown): void {
    const status = error instanceof BadRequest ? error.status : "400 Bad Request";
    const message = error instanceof Error ? error.message : String(error);
    this.#settings.log(`bad request, answered ${status.slice(0, 3)}: ${message}`);
    this.#head = NO_BYTES;
    this.#active = true;
    this.#input = NO_BODY;
    this.#run(statusApplication(status), this.#environ(noRequest()));
  }

  #run(app: Application, environ: Environ): void {
    const stopWatching = watchRequest(environ, this.#settings, this.#settings.log, (line, ms) => {
      if (this.#response.finished) return;
      this.#settings.log(timeoutMessage(line, ms, this.#response.outputStarted));
      this.#timedOut = true;
      this.#response.giveUp("504 Gateway Timeout", "request timed out");
    });
    void runApplication(app, environ, this.#response).then((outcome) => {
      stopWatching?.();
      this.#finished(this.#timedOut ? "failed" : outcome);
    });
  }

  #finished(outcome: Outcome): void {
    const response = this.#response;
    // Whatever stopped it, a response that went out in part must not end cleanly.
    if (outcome === "cut" || (outcome === "aborted" && response.outputStarted)) response.cut();
    else if (!response.finished) this.#socket.destroy();
    this.#hooks.requestFinished(outcome);
    this.#release();
    // Unread body bytes are read and dropped: closing with unread input would make
    // the kernel send a reset that can destroy the response the peer has not read.
    if (this.#input && !this.#input.complete) this.#input.destroy();
    this.#active = false;
    this.#resumeReading();
  }

  #release(): void {
    if (!this.#admitted) return;
    this.#admitted = false;
    this.#hooks.release();
  }

  #feedBody(chunk: Buffer): void {
    // Bytes past the body (which no web server sends) leave the count unknown:
    // the connection then waits for the peer's end before it closes.
    if (this.#unreceived !== -1)
      this.#unreceived = chunk.length > this.#unreceived ? -1 : this.#unreceived - chunk.length;
    const input = this.#input;
    if (input === undefined || input.complete) return;
    if (this.#settings.reclaimBodyMemory) bodyBytesReceived(chunk.length);
    if (!input.add(chunk).more) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  #resumeReading(): void {
    if (!this.#paused) return;
    this.#paused = false;
    // The time spent paused was ours, not a stall of the web server's.
    this.#lastInputAt = Date.now();
    if (!this.#closed) this.#socket.resume();
  }

  /** The web server is done sending. */
  #onPeerEnd(): void {
    const input = this.#input;
    if (input === undefined && !this.#used) {
      // Nothing was sent (Apache, after refusing a chunked upload with 411): dropped quietly.
      this.#socket.destroy();
    } else if (input === undefined) {
      this.#settings.log(
        `connection closed in the middle of a header block (${this.#head.length} bytes)`,
      );
      this.#socket.destroy();
    } else if (!input.complete && !this.#response.finished) {
      this.#settings.log(`request body ended ${input.remaining} bytes short of CONTENT_LENGTH`);
      input.fail(new ConnectionClosedError("the request body ended short of CONTENT_LENGTH"));
      this.#response.giveUp("400 Bad Request", "the request body ended short of CONTENT_LENGTH");
    }
    // Otherwise the response, when it is out, ends the connection (both sides closed).
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    const input = this.#input;
    if (input && !input.complete)
      input.fail(new ConnectionClosedError("the web server closed the connection"));
    this.#response.connectionClosed();
    this.#release();
    this.#hooks.connectionClosed(this);
  }

  // ServerConnection

  get used(): boolean {
    return this.#used;
  }

  get activeRequests(): number {
    return this.#active || (this.#used && this.#input === undefined) ? 1 : 0;
  }

  timeOutStalled(now: number): void {
    if (this.#closed || this.#paused || now - this.#lastInputAt <= this.#settings.receiveTimeout)
      return;
    const input = this.#input;
    if (input === undefined) {
      if (!this.#used) {
        this.#socket.destroy(); // connected and never said anything
        return;
      }
      this.#refuse(new BadRequest("408 Request Timeout", this.#stallMessage("its header block")));
    } else if (!input.complete && !this.#response.finished) {
      this.#stalledBody(input);
    } else if (this.#response.finished) {
      this.#socket.destroy(); // the response is out; the rest of an unread body is not coming
    }
  }

  #stalledBody(input: RequestInput): void {
    const message = this.#stallMessage("its body");
    this.#settings.log(`${message}, giving up`);
    const error = new ConnectionClosedError("the request body stopped arriving");
    if (input.requested) {
      // The application waits for the body: answer for it.
      this.#response.giveUp("408 Request Timeout", error.message);
    }
    // Otherwise it may still answer; its input just ends in an error.
    input.fail(error);
  }

  #stallMessage(what: string): string {
    return `no input for ${this.#settings.receiveTimeout / 1000} s in ${what}`;
  }

  closeIfIdle(): void {
    if (!this.#used) this.#socket.destroy();
    else if (this.activeRequests === 0) this.#socket.end();
  }

  closed(): Promise<void> {
    if (this.#socket.closed) return Promise.resolve();
    return new Promise((resolve) => this.#socket.once("close", () => resolve()));
  }

  destroy(): void {
    this.#socket.destroy();
  }
}

/** The body's length: CONTENT_LENGTH alone decides (absent or empty: none). */
function contentLength(value: string | undefined): number {
  const length = parseContentLength(value);
  if (length === "invalid")
    throw new BadRequest("400 Bad Request", `CONTENT_LENGTH ${JSON.stringify(value)} is no length`);
  return length ?? 0;
}
