// One connection from the web server: parses its records, dispatches them to
// the requests living on it (several at once when the peer multiplexes),
// answers management records, and batches outgoing records into few writes.

import type { Socket } from "node:net";
import type { Outcome } from "../engine.js";
import type { Application } from "../types.js";
import type {
  ChannelRequest,
  ConnectionOptions,
  RequestChannel,
  ServerConnection,
  ServerHooks,
} from "./interfaces.js";
import {
  FCGI_KEEP_CONN,
  FCGI_MAX_CONTENT_LENGTH,
  FastCgiProtocolError,
  GetValuesName,
  ProtocolStatus,
  RecordType,
  Role,
  decodeNameValuePairs,
} from "./protocol.js";
import {
  RecordParser,
  encodeEndRequest,
  encodeGetValuesResult,
  encodeRecordHeader,
  encodeStream,
  encodeUnknownType,
  paddingFor,
  parseBeginRequest,
  type RecordHandler,
} from "./records.js";
import { FastCgiRequest } from "./request.js";

export type { ConnectionOptions, ServerHooks } from "./interfaces.js";

/** Bytes queued for the socket before a writer is asked to wait. */
const OUTPUT_HIGH_WATER_MARK = 64 * 1024;
/** Batches up to this size are joined into one buffer; larger ones go out as a corked writev. */
const JOIN_LIMIT = 64 * 1024;

/** Zero bytes that pad a record to a multiple of 8, shared (they are never written to). */
const PADDING = Array.from({ length: 8 }, (_, length) => Buffer.alloc(length));

function flushConnection(connection: FastCgiConnection): void {
  connection.flush();
}

export class FastCgiConnection implements RecordHandler, RequestChannel, ServerConnection {
  private readonly requests = new Map<number, ChannelRequest>();
  private isClosed = false;
  private readonly parser = new RecordParser(this);
  private out: Uint8Array[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private endWhenFlushed = false;
  private peerEnded = false;
  private drainWaiters: (() => void)[] = [];
  private readonly pausedBy = new Set<ChannelRequest>();
  private recordsSeen = false;
  /** Whether the web server asked to keep the connection (FCGI_KEEP_CONN) on its last request. */
  private kept = false;
  /** Closing a kept connection as the server stops: see closeOutput(). */
  private closeAtOnce = false;
  /**
   * Ids of responses cut off on this connection. They never get END_REQUEST, so
   * the web server still holds them as active: the connection takes no new
   * request and closes once the others are done.
   */
  private readonly cutIds = new Set<number>();

  constructor(
    private readonly socket: Socket,
    private readonly options: ConnectionOptions,
    private readonly server: ServerHooks,
    private readonly app: Application,
  ) {
    // A chunk may be a view into a read buffer the socket reuses (server/read-buffer.ts): it is
    // parsed at once, and what a request keeps of it (its body) is copied.
    socket.on("data", (chunk: Buffer) => this.parser.push(chunk));
    socket.on("drain", () => this.releaseDrainWaiters());
    socket.on("end", () => this.onPeerEnd());
    socket.on("error", () => {
      // EPIPE/ECONNRESET: the web server went away; "close" follows and aborts the requests.
    });
    socket.on("close", () => this.onClose());
  }

  log(message: string): void {
    try {
      this.options.errors.write(`[tsgi] fastcgi: ${message}\n`);
    } catch {
      // Nowhere left to report to.
    }
  }

  // RecordHandler

  onRecord(type: number, requestId: number, content: Buffer): void {
    this.recordsSeen = true;
    if (requestId === 0) {
      this.management(type, content);
    } else if (type === RecordType.BEGIN_REQUEST) {
      this.begin(requestId, content);
    } else if (type === RecordType.ABORT_REQUEST) {
      this.requests.get(requestId)?.abortedByPeer();
    }
    // Other record types on a request id, and records for ids not in use, are ignored (spec 3.3).
  }

  onStreamData(type: number, requestId: number, data: Buffer): void {
    const request = this.requests.get(requestId);
    if (request === undefined || request.finished) return;
    if (type === RecordType.PARAMS) {
      request.addParams(data, this.app);
    } else if (type === RecordType.STDIN || type === RecordType.DATA) {
      if (!request.addInput(type, data)) this.pauseFor(request);
    }
  }

  onError(error: FastCgiProtocolError): void {
    this.protocolError(error.message);
  }

  private management(type: number, content: Buffer): void {
    if (type !== RecordType.GET_VALUES) {
      this.send(encodeUnknownType(type));
      return;
    }
    let asked: Map<string, string>;
    try {
      asked = decodeNameValuePairs(content);
    } catch (error) {
      this.protocolError(`bad FCGI_GET_VALUES: ${(error as Error).message}`);
      return;
    }
    const known: Record<string, string> = {
      [GetValuesName.MAX_CONNS]: String(this.options.maxConnections),
      [GetValuesName.MAX_REQS]: String(this.options.concurrency),
      [GetValuesName.MPXS_CONNS]: this.options.multiplex ? "1" : "0",
    };
    const answer: [string, string][] = [];
    for (const name of asked.keys())
      if (Object.hasOwn(known, name)) answer.push([name, known[name]]);
    this.send(encodeGetValuesResult(answer));
  }

  private begin(id: number, content: Buffer): void {
    let role: number;
    let flags: number;
    try {
      ({ role, flags } = parseBeginRequest(content));
    } catch (error) {
      this.protocolError((error as Error).message);
      return;
    }
    if (this.requests.has(id)) {
      this.protocolError(`FCGI_BEGIN_REQUEST for request id ${id}, which is already in use`);
      return;
    }
    if (this.cutIds.has(id)) {
      // The web server reuses an id it never saw end (spec 3.3: ids of active requests
      // are not reused). Any answer would be an END_REQUEST for the id it must see as
      // incomplete; the connection closes once the requests still on it are done.
      this.log(
        `request ${id}: ignored: that id's response was cut off and the connection is closing`,
      );
      return;
    }
    if (this.socket.writableEnded) {
      // This side is already closed (no KEEP_CONN, or shutting down): the answer
      // could never be sent, so the request must not run. The web server sees the
      // connection close and retries where it can. (Body records still arriving
      // for earlier requests are read and dropped, so they cause no reset.)
      this.parser.stop();
      this.socket.destroy();
      return;
    }
    this.admit(id, role, (flags & FCGI_KEEP_CONN) !== 0);
  }

  /** Starts the request, or refuses it with an END_REQUEST saying why. */
  private admit(id: number, role: number, keepConn: boolean): void {
    this.kept = keepConn;
    const refusal = this.refusal(id, role);
    if (refusal !== undefined) {
      this.send(encodeEndRequest(id, 0, refusal));
      if (!keepConn && this.requests.size === 0) this.endAfterFlush();
      return;
    }
    this.requests.set(id, new FastCgiRequest(id, role, keepConn, this, this.options));
  }

  /** The protocolStatus that refuses a new request, or undefined to take it (the last check takes a slot). */
  private refusal(id: number, role: number): number | undefined {
    // [fcgi.cut] A response cut off after its headers never ends with `FCGI_END_REQUEST`: alone
    // on its connection, the connection is closed; when other requests share the connection,
    // those finish, the connection takes no new request (a new `FCGI_BEGIN_REQUEST` is refused
    // with `FCGI_OVERLOADED`), and it closes once they are done.
    if (this.cutIds.size > 0) {
      // The connection is on its way out (see cutOff): the spec's answer for a
      // request the application cannot take now (spec 5.5).
      this.log(
        `request ${id}: refused (FCGI_OVERLOADED): a response on this connection was cut off, so it closes once its requests are done`,
      );
      return ProtocolStatus.OVERLOADED;
    }
    if (role !== Role.RESPONDER && role !== Role.AUTHORIZER && role !== Role.FILTER) {
      this.log(`request ${id}: unknown role ${role}`);
      return ProtocolStatus.UNKNOWN_ROLE;
    }
    if (
      this.requests.size >= (this.options.multiplex ? this.options.maxRequestsPerConnection : 1)
    ) {
      this.log(`request ${id}: too many requests on one connection (${this.requests.size})`);
      return ProtocolStatus.CANT_MPX_CONN;
    }
    if (!this.server.admit()) {
      this.log(
        `request ${id}: overloaded: ${this.options.concurrency} requests already in progress`,
      );
      return ProtocolStatus.OVERLOADED;
    }
    return undefined;
  }

  /** Closes this connection over a protocol violation; other connections are untouched. */
  private protocolError(message: string): void {
    this.log(`protocol error, closing the connection: ${message}`);
    this.parser.stop();
    this.socket.destroy();
  }

  // Input flow control: a request whose body is not being read stops the whole
  // connection (FastCGI has no per-request flow control), so memory stays bounded.

  private pauseFor(request: ChannelRequest): void {
    this.pausedBy.add(request);
    this.socket.pause();
  }

  resume(request: ChannelRequest): void {
    if (!this.pausedBy.delete(request)) return;
    // The time spent paused was ours, not a stall of the web server's.
    request.inputResumed();
    if (this.pausedBy.size === 0 && !this.isClosed) this.socket.resume();
  }

  /** The web server is done sending; answer what is in flight, then close. */
  private onPeerEnd(): void {
    this.peerEnded = true;
    // Input still missing can never arrive now: those requests are given up at once,
    // not held (with their slot) until the receive timeout. A web server that asked to
    // keep the connection (FCGI_KEEP_CONN, spec §5.1) retains it for the response and
    // closes it only when it no longer wants one: nginx does so when the client leaves,
    // which the application then learns at once (tsgi.get_signal), not at its next write.
    // Without KEEP_CONN the FIN may be a half-close after the request, so those run on.
    for (const request of [...this.requests.values()])
      if (!request.inputComplete || request.keepConn) request.peerGone();
    if (this.requests.size === 0) this.endAfterFlush();
  }

  // Output

  send(bytes: Uint8Array): void {
    if (this.isClosed) return;
    this.out.push(bytes);
    this.outBytes += bytes.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Everything written in this turn of the event loop leaves in one write.
      process.nextTick(flushConnection, this);
    }
  }

  flush(): void {
    this.flushScheduled = false;
    const out = this.out;
    const outBytes = this.outBytes;
    this.out = [];
    this.outBytes = 0;
    if (this.isClosed || out.length === 0) return;
    const socket = this.socket;
    if (out.length === 1) {
      socket.write(out[0]);
    } else if (outBytes <= JOIN_LIMIT) {
      socket.write(Buffer.concat(out, outBytes));
    } else {
      socket.cork();
      for (const bytes of out) socket.write(bytes);
      socket.uncork();
    }
    if (this.endWhenFlushed) this.closeOutput();
    else if (!socket.writableNeedDrain) this.releaseDrainWaiters();
  }

  /**
   * Sends `first` (and `second`) as records of a stream. When they fit one
   * record, the header is the only new buffer: the content goes out as given.
   */
  sendStream(type: number, id: number, first: Uint8Array, second?: Uint8Array): void {
    const length = first.length + (second === undefined ? 0 : second.length);
    if (length === 0) return;
    if (length > FCGI_MAX_CONTENT_LENGTH) {
      for (const piece of encodeStream(type, id, first)) this.send(piece);
      if (second !== undefined)
        for (const piece of encodeStream(type, id, second)) this.send(piece);
      return;
    }
    const padding = paddingFor(length);
    this.send(encodeRecordHeader(type, id, length, padding));
    if (first.length > 0) this.send(first);
    if (second !== undefined && second.length > 0) this.send(second);
    if (padding > 0) this.send(PADDING[padding]);
  }

  backpressure(): Promise<void> | undefined {
    if (this.outBytes + this.socket.writableLength < OUTPUT_HIGH_WATER_MARK) return undefined;
    // Resolves when the socket has taken what is queued.
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private releaseDrainWaiters(): void {
    if (this.drainWaiters.length === 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private endAfterFlush(): void {
    if (this.isClosed) return;
    if (this.flushScheduled) this.endWhenFlushed = true;
    else this.closeOutput();
  }

  /**
   * Ends this side once what is queued is written. Also after a cut-off: the
   * connection's end before END_REQUEST is what marks the response incomplete,
   * and records the web server still sends are read and dropped (the parser
   * ignores ids no longer in use), since closing with unread input would make
   * the kernel send a reset that can destroy the response the peer has not read
   * yet (the same reason Go's fcgi drains before closing).
   */
  private closeOutput(): void {
    const socket = this.socket;
    // A kept connection closing because the server stops ([fcgi.stop-keepalive]):
    // its response is in the kernel and nothing is left to read, so the close
    // can follow the write within the same turn rather than a turn later, as
    // end() does. The web server then finds the connection closed as it takes
    // it back, instead of sending a request on it in between.
    if (this.closeAtOnce && socket.writableLength === 0 && socket.readableLength === 0)
      socket.destroy();
    else socket.end();
  }

  /** A request sent END_REQUEST (or was cut off): free its id, and close the connection if it is no longer wanted. */
  ended(request: ChannelRequest): void {
    if (this.requests.get(request.id) !== request) return;
    this.requests.delete(request.id);
    if (this.pausedBy.has(request)) this.resume(request);
    this.server.release();
    if (this.requests.size > 0) return;
    if (this.cutIds.size > 0 || !request.keepConn || this.peerEnded) this.endAfterFlush();
    else if (this.server.shuttingDown) {
      this.closeAtOnce = request.inputComplete;
      this.endAfterFlush();
    }
  }

  /**
   * The response cannot be completed after some of it went out (the
   * application failed, a timeout, a body short of its Content-Length): the web
   * server must not take it as whole. Its END_REQUEST is never sent: web servers
   * take an END_REQUEST as a complete response whatever its appStatus (spec 5.5),
   * and FastCGI has no other way to say "incomplete", so the only sign left is
   * the connection closing (spec 3.5 lets the application close it). Requests
   * sharing the connection finish first; none is accepted meanwhile.
   */
  // [fcgi.cut] A response cut off after its headers never ends with `FCGI_END_REQUEST`: alone
  // on its connection, the connection is closed; when other requests share the connection,
  // those finish, the connection takes no new request (a new `FCGI_BEGIN_REQUEST` is refused
  // with `FCGI_OVERLOADED`), and it closes once they are done.
  cutOff(request: ChannelRequest): void {
    if (this.requests.get(request.id) !== request) return;
    this.cutIds.add(request.id);
    // What was produced still goes out, before the close.
    this.ended(request);
  }

  applicationFinished(outcome: Outcome): void {
    this.server.requestFinished(outcome);
  }

  // ServerConnection

  get used(): boolean {
    return this.recordsSeen;
  }

  get activeRequests(): number {
    return this.requests.size;
  }

  // [fcgi.stop-keepalive] When the server stops (`SIGTERM`, a `SIGHUP` reload, `--max-requests`), a
  // connection the web server keeps (`FCGI_KEEP_CONN`) is not closed under it at once: a request it
  // sends on it within 1 s is served, and the connection closes after that response.
  //
  // The web server may be writing a request on it at the moment it would be
  // closed: nginx answers such a request 502 and retries only idempotent ones
  // (a POST would fail). Once a response has gone out, ended() closes the
  // connection (shuttingDown), so nginx sees the close as it takes the
  // connection back.
  get closesItself(): boolean {
    return this.kept;
  }

  closeIfIdle(): void {
    if (this.requests.size === 0) this.endAfterFlush();
  }

  closed(): Promise<void> {
    if (this.socket.closed) return Promise.resolve();
    return new Promise((resolve) => this.socket.once("close", () => resolve()));
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.parser.stop();
    for (const request of this.requests.values()) {
      request.connectionClosed();
      this.server.release();
    }
    this.requests.clear();
    this.pausedBy.clear();
    this.releaseDrainWaiters();
    this.server.connectionClosed(this);
  }

  timeOutStalled(now: number): void {
    for (const request of [...this.requests.values()]) {
      if (
        !request.inputComplete &&
        !this.pausedBy.has(request) &&
        now - request.lastInputAt > this.options.receiveTimeout
      ) {
        request.timeOut();
      }
    }
  }
}
