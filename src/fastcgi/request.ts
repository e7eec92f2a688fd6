// One FastCGI request on a connection: collects its params, streams its
// FCGI_STDIN (and FCGI_DATA) to the application, and sends the response as
// records through the shared response engine.

import { Readable, Writable } from "node:stream";
import { AbortWatch } from "../abort-watch.js";
import {
  ConnectionClosedError,
  runApplication,
  type Outcome,
  type ResponseSink,
} from "../engine.js";
import { makeEnviron } from "../environ.js";
import { cgiHeadText, formatCgiHead } from "../headers.js";
import type { Application, Chunk, Environ, HeaderList } from "../types.js";
import type { ChannelRequest, RequestChannel, RequestSettings } from "./interfaces.js";
import {
  FCGI_MAX_CONTENT_LENGTH,
  ParamsDecoder,
  ParamsTooLargeError,
  ProtocolStatus,
  RecordType,
  Role,
} from "./protocol.js";
import {
  encodeEndOfStream,
  encodeEndRequest,
  encodeResponseEnd,
  encodeStream,
  encodeWholeResponse,
} from "./records.js";
import { bodyBytesReceived } from "../server/reclaim.js";
import { builtInPage } from "../server/status.js";
import { statusApplication, timeoutMessage, watchRequest } from "../server/request-watch.js";

// The bytes that end a response (empty STDOUT + END_REQUEST) depend only on the
// request id, and web servers use a few small ids: made once, shared.
const RESPONSE_ENDS: Buffer[] = [];
function responseEnd(id: number): Buffer {
  if (id >= 256) return encodeResponseEnd(id);
  return (RESPONSE_ENDS[id] ??= encodeResponseEnd(id));
}

const ROLE_NAMES: Record<number, "responder" | "authorizer" | "filter"> = {
  [Role.RESPONDER]: "responder",
  [Role.AUTHORIZER]: "authorizer",
  [Role.FILTER]: "filter",
};

/** Queued body bytes per request stream before the connection stops reading. */
const INPUT_HIGH_WATER_MARK = 64 * 1024;

function ignoreError(): void {}

// [fcgi.input] `tsgi.input` streams `FCGI_STDIN` as records arrive (with backpressure on the connection) and ends
// at the empty `FCGI_STDIN` record, so it works without `CONTENT_LENGTH`.
/** A request body stream fed by records; tells the connection when to pause and resume reading. */
class RecordInput extends Readable {
  #ended = false;
  #full = false;
  #requested = false;

  constructor(private readonly onDemand: () => void) {
    super({ highWaterMark: INPUT_HIGH_WATER_MARK });
    // An abort or timeout destroys this stream with an error. An app that never
    // touched its body (or a request still in its params) has no "error" listener,
    // and an unhandled "error" event would kill the whole process. Readers still
    // see the error: for-await rejects and their own listeners are called.
    this.on("error", ignoreError);
  }

  /** The empty record that ends it arrived (or no more input is wanted). */
  get ended(): boolean {
    return this.#ended;
  }

  /** The application has asked for data: it is waiting on this stream. */
  get requested(): boolean {
    return this.#requested;
  }

  override _read(): void {
    this.#requested = true;
    if (this.#ended) {
      this.push(null);
      return;
    }
    if (this.#full) {
      this.#full = false;
      this.onDemand();
    }
  }

  /** The end arrived after the application finished: nothing is handed over any more. */
  endUnread(): void {
    this.#ended = true;
  }

  /** No more input will be read: a reader sees `error`. */
  fail(error: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.destroy(error);
  }

  /** Adds a piece of the stream; an empty piece ends it. Returns false when reading should pause. */
  add(piece: Buffer): boolean {
    if (this.#ended) return true;
    if (piece.length === 0) {
      this.#ended = true;
      // The end is handed over when someone reads (_read): most requests have no
      // body and most applications never read it, and ending a stream costs ticks.
      if (this.#requested) this.push(null);
      return true;
    }
    if (this.destroyed) return true;
    // A copy: the piece is a view into the read buffer the next read reuses (read-buffer.ts).
    this.#full = !this.push(Buffer.from(piece));
    return !this.#full;
  }
}

export class FastCgiRequest implements ResponseSink, ChannelRequest {
  readonly roleName: "responder" | "authorizer" | "filter";
  private params: ParamsDecoder | null;
  private readonly input: RecordInput;
  private readonly data: RecordInput | null;
  readonly abortWatch = new AbortWatch();
  private pendingHead: Buffer | null = null;
  private stderrUsed = false;
  private appFinished = false;
  /** Some of the response went out: a timeout can no longer answer 504. */
  private outputStarted = false;
  private timedOut = false;
  private isFinished = false;
  private inputAt = Date.now();

  constructor(
    readonly id: number,
    readonly role: number,
    readonly keepConn: boolean,
    private readonly connection: RequestChannel,
    private readonly settings: RequestSettings,
  ) {
    this.roleName = ROLE_NAMES[role];
    this.params = new ParamsDecoder({ maxBytes: settings.maxParamsBytes });
    this.input = new RecordInput(() => connection.resume(this));
    this.data = role === Role.FILTER ? new RecordInput(() => connection.resume(this)) : null;
    if (role === Role.AUTHORIZER) this.input.add(Buffer.alloc(0)); // an authorizer gets no body
  }

  /** Built on first read: the engine and the adapters watch abortWatch instead. */
  get signal(): AbortSignal {
    return this.abortWatch.signal;
  }

  /** Whether all input has arrived (or is no longer wanted). */
  get inputComplete(): boolean {
    return this.params === null && this.input.ended && (this.data === null || this.data.ended);
  }

  /** END_REQUEST went out (or the connection is gone): nothing more is sent for this id. */
  get finished(): boolean {
    return this.isFinished;
  }

  /** When input last arrived, for the receive timeout. */
  get lastInputAt(): number {
    return this.inputAt;
  }

  inputResumed(): void {
    this.inputAt = Date.now();
  }

  /** Whether the application has been called and its request is waiting on it. */
  private get started(): boolean {
    return this.params === null;
  }

  addParams(piece: Buffer, app: Application): void {
    if (this.params === null) return;
    this.inputAt = Date.now();
    try {
      if (piece.length !== 0) {
        this.params.push(piece);
        return;
      }
      const vars = this.params.end();
      this.params = null;
      this.start(app, vars);
    } catch (error) {
      this.params = null;
      const tooLarge = error instanceof ParamsTooLargeError;
      this.connection.log(`request ${this.id}: bad FCGI_PARAMS: ${(error as Error).message}`);
      this.input.add(Buffer.alloc(0));
      this.data?.add(Buffer.alloc(0));
      this.respondDirectly(tooLarge ? "431 Request Header Fields Too Large" : "400 Bad Request");
    }
  }

  /** Adds FCGI_STDIN or FCGI_DATA content; returns false when the connection should stop reading. */
  addInput(type: number, piece: Buffer): boolean {
    const stream = type === RecordType.DATA ? this.data : this.input;
    if (stream === null) return true;
    this.inputAt = Date.now();
    if (this.settings.reclaimBodyMemory) bodyBytesReceived(piece.length);
    if (!this.appFinished) return stream.add(piece);
    // Input that arrives after the application finished is only read to be dropped.
    if (piece.length === 0) stream.endUnread();
    if (this.inputComplete) this.sendEndRequest(ProtocolStatus.REQUEST_COMPLETE);
    return true;
  }

  private start(app: Application, vars: Record<string, string>): void {
    const options = this.settings;
    // [fcgi.environ] environ: exactly the `FCGI_PARAMS` of the request (the process environment is not mixed in),
    // decoded by the Latin-1 rule.
    // [fcgi.flags] `tsgi.run_once` and `tsgi.multithread` are `false`.
    // [fcgi.errors] `tsgi.errors` goes to the process's stderr, or, when configured, to the web server as
    // `FCGI_STDERR` records.
    const environ = makeEnviron(vars, {
      input: this.input,
      errors: options.stderrToWebServer ? this.stderrStream() : options.errors,
      multithread: false,
      multiprocess: options.multiprocess,
      runOnce: false,
    });
    // [env.gateway-keys] Keys that a gateway adds for itself start with `tsgi.` followed by the gateway's name
    // (`tsgi.fcgi.role`).
    // [fcgi.role] `tsgi.fcgi.role` is `"responder"`, `"authorizer"` or `"filter"`; a filter gets its file as
    // `tsgi.fcgi.data`, a stream like `tsgi.input`.
    environ["tsgi.fcgi.role"] = this.roleName;
    if (this.data) environ["tsgi.fcgi.data"] = this.data;
    const page = options.pages ? builtInPage(vars, options.pages) : undefined;
    this.run(page ?? app, environ);
  }

  private run(app: Application, environ: Environ): void {
    const stopWatching = watchRequest(
      environ,
      this.settings,
      (message) => this.connection.log(message),
      (line, elapsed) => this.timeOutApplication(line, elapsed),
    );
    void runApplication(app, environ, this).then((outcome) => {
      stopWatching?.();
      this.applicationFinished(this.timedOut ? "failed" : outcome);
    });
  }

  // [fcgi.timeout] An application call running past `--request-timeout` is given up with a `504`, or cut off once
  // output started.
  /** The application ran past --request-timeout: 504 if nothing went out yet, else cut the response off. */
  private timeOutApplication(line: string, elapsed: number): void {
    if (this.isFinished || this.appFinished) return;
    this.connection.log(timeoutMessage(line, elapsed, this.outputStarted));
    this.giveUp("504 Gateway Timeout", "request timed out");
  }

  /**
   * Ends the request without waiting for the application: answers `status` if
   * nothing went out yet, else cuts the response off; then stops the
   * application, whose body gets return() and close() at its next await.
   */
  private giveUp(status: string, reason: string): void {
    this.timedOut = true;
    if (this.outputStarted) {
      this.cut();
    } else {
      this.pendingHead = null;
      const body = Buffer.from(status.slice(4) + "\n");
      const head = formatCgiHead(status, [
        ["Content-Type", "text/plain; charset=utf-8"],
        ["Content-Length", String(body.length)],
      ]);
      this.sendStdout(head, body);
      this.connection.send(encodeEndOfStream(RecordType.STDOUT, this.id));
      this.sendEndRequest(ProtocolStatus.REQUEST_COMPLETE);
    }
    this.abortRequest(reason);
  }

  private sendStdout(bytes: Uint8Array, more?: Uint8Array): void {
    this.outputStarted = true;
    this.connection.sendStream(RecordType.STDOUT, this.id, bytes, more);
  }

  /** Answers without the application (bad params, timeouts) through the same engine. */
  private respondDirectly(status: string): void {
    const environ = makeEnviron(
      { REQUEST_METHOD: "", SERVER_PROTOCOL: "" },
      {
        input: this.input,
        errors: this.settings.errors,
        multithread: false,
        multiprocess: false,
        runOnce: false,
      },
    );
    this.run(statusApplication(status), environ);
  }

  private applicationFinished(outcome: Outcome): void {
    this.appFinished = true;
    this.connection.applicationFinished(outcome);
    // Unread input is dropped. END_REQUEST does not wait for the empty STDIN:
    // nginx stops sending the body once it has the response and waits for
    // END_REQUEST, so waiting for the body's end would deadlock until its
    // fastcgi_read_timeout. Records still arriving for this id are ignored (the id
    // is free), and without KEEP_CONN the connection is only half-closed, so they
    // are still read and the web server gets no RST.
    if (!this.input.ended) this.input.destroy();
    if (this.data && !this.data.ended) this.data.destroy();
    this.connection.resume(this);
    if (this.isFinished) return;
    // Whatever stopped it (an error, a short body, an abort the application
    // raised itself), a response that went out in part must not end cleanly.
    if (outcome === "cut" || (outcome === "aborted" && this.outputStarted)) {
      this.cut();
      return;
    }
    this.sendEndRequest(ProtocolStatus.REQUEST_COMPLETE);
  }

  // [fcgi.abandon] A request is abandoned (iteration stops, `return()` and `close()` run) on `FCGI_ABORT_REQUEST`,
  // when the web server closes the connection, or on a timeout.
  /** FCGI_ABORT_REQUEST, the connection closing, or a timeout: stop the application. */
  private abortRequest(reason: string): void {
    if (this.abortWatch.aborted) return;
    const error = new ConnectionClosedError(reason);
    this.abortWatch.abort(error);
    if (!this.input.ended) this.input.destroy(error);
    if (this.data && !this.data.ended) this.data.destroy(error);
  }

  abortedByPeer(): void {
    this.abortRequest("the web server aborted the request (FCGI_ABORT_REQUEST)");
    this.sendEndRequest(ProtocolStatus.REQUEST_COMPLETE);
  }

  peerGone(): void {
    this.abortRequest("the web server closed the connection");
    if (this.started) return; // the application sees the abort and ends the request
    this.params = null;
    this.isFinished = true;
    this.connection.ended(this);
  }

  connectionClosed(): void {
    this.abortRequest("the web server closed the connection");
    this.isFinished = true;
  }

  /** Ends the response without END_REQUEST, so the web server cannot take it as whole (see the connection's cutOff). */
  private cut(): void {
    if (this.isFinished) return;
    this.isFinished = true;
    this.connection.cutOff(this);
  }

  /** The input stalled past the receive timeout. */
  timeOut(): void {
    this.connection.log(
      `request ${this.id}: no input for ${this.settings.receiveTimeout / 1000} s, giving up`,
    );
    if (!this.started) {
      this.params = null;
      this.input.add(Buffer.alloc(0));
      this.data?.add(Buffer.alloc(0));
      this.respondDirectly("408 Request Timeout");
      return;
    }
    const error = new ConnectionClosedError("the request body stopped arriving");
    if (this.input.requested || this.data?.requested) {
      // The application waits for the body: answer for it.
      this.giveUp("408 Request Timeout", error.message);
      return;
    }
    // The application does not read its body: it may still answer; its input just ends in an error.
    this.input.fail(error);
    this.data?.fail(error);
  }

  private sendEndRequest(protocolStatus: number, appStatus = 0): void {
    if (this.isFinished) return;
    this.isFinished = true;
    // Aborted or cut off before end() ran: a STDERR stream in use still gets its end (spec 6.1).
    if (this.stderrUsed) {
      this.connection.send(encodeEndOfStream(RecordType.STDERR, this.id));
      this.stderrUsed = false;
    }
    this.connection.send(encodeEndRequest(this.id, appStatus, protocolStatus));
    this.connection.ended(this);
  }

  // ResponseSink: the engine drives these.

  sendHeaders(status: string, headers: HeaderList): void {
    this.pendingHead = formatCgiHead(status, headers);
  }

  /** The head goes out alone: the application asked for it before any body byte (write.flush). */
  flush(): void {
    if (this.isFinished || !this.pendingHead) return;
    this.sendStdout(this.pendingHead);
    this.pendingHead = null;
  }

  write(data: Uint8Array): void | Promise<void> {
    if (this.isFinished) throw new ConnectionClosedError("the web server closed the connection");
    if (this.pendingHead) {
      // The header block and the first body bytes share one record when they fit.
      this.sendStdout(this.pendingHead, data);
      this.pendingHead = null;
    } else {
      this.sendStdout(data);
    }
    return this.connection.backpressure();
  }

  end(): void {
    if (this.isFinished) throw new ConnectionClosedError("the web server closed the connection");
    if (this.pendingHead) {
      this.sendStdout(this.pendingHead);
      this.pendingHead = null;
    }
    if (this.stderrUsed) {
      this.connection.send(encodeEndOfStream(RecordType.STDERR, this.id));
      this.stderrUsed = false;
    }
    // The empty STDOUT and END_REQUEST go out together, in the same write as the
    // response when it was produced at once. END_REQUEST does not wait for unread
    // input (see applicationFinished).
    this.isFinished = true;
    this.connection.send(responseEnd(this.id));
    this.connection.ended(this);
  }

  sendWhole(status: string, headers: HeaderList, body: readonly Chunk[]): boolean {
    if (this.isFinished) throw new ConnectionClosedError("the web server closed the connection");
    if (this.stderrUsed) return false;
    const head = cgiHeadText(status, headers);
    let length = head.length;
    for (const chunk of body)
      length += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
    if (length > FCGI_MAX_CONTENT_LENGTH) return false;
    const bytes = encodeWholeResponse(this.id, head, body, length);
    this.outputStarted = true;
    this.isFinished = true;
    this.connection.send(bytes);
    this.connection.ended(this);
    return true;
  }

  abort(): void {
    // The engine gives up on this response; applicationFinished() decides how to end it.
  }

  /** Application error text as FCGI_STDERR records (the option that sends tsgi.errors to the web server). */
  private stderrStream(): Writable {
    return new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        if (!this.isFinished && chunk.length > 0) {
          this.stderrUsed = true;
          for (const piece of encodeStream(RecordType.STDERR, this.id, chunk))
            this.connection.send(piece);
        }
        callback();
      },
    });
  }
}
