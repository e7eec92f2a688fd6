// What a FastCGI server, its connections and their requests may ask of each
// other: each side sees only these calls, never the other's state.

import type { Writable } from "node:stream";
import type { Outcome } from "../engine.js";
import type { Application } from "../types.js";
import type { BuiltInPages } from "../server/status.js";

/** Settings a request reads. */
export interface RequestSettings {
  maxParamsBytes: number;
  /** Milliseconds a request may wait for more params or body before it is given up. */
  receiveTimeout: number;
  errors: Writable;
  stderrToWebServer: boolean;
  multiprocess: boolean;
  /** Run a minor collection now and then while request bodies arrive (see reclaim.ts). */
  reclaimBodyMemory: boolean;
  /** Milliseconds an application call may run before it is given up (0: no limit). */
  requestTimeout: number;
  /** Milliseconds after which a request still running is logged (0: never). */
  slowRequest: number;
  /** The status and ping pages tsgi answers itself, if configured. */
  pages: BuiltInPages | undefined;
}

/** Settings every connection of a server shares. */
export interface ConnectionOptions extends RequestSettings {
  maxConnections: number;
  /** Requests in progress at once in this process (FCGI_MAX_REQS). */
  concurrency: number;
  maxRequestsPerConnection: number;
  multiplex: boolean;
}

export type { ServerConnection, ServerHooks } from "../server/serve.js";

/** What a request may ask of its connection. */
export interface RequestChannel {
  /** Queues bytes for the socket; they leave together at the end of this tick. */
  send(bytes: Uint8Array): void;
  /** Sends `first` (and `second`) as records of one stream. */
  sendStream(type: number, id: number, first: Uint8Array, second?: Uint8Array): void;
  /** A promise to wait on before writing more, when the socket has enough queued; else undefined. */
  backpressure(): Promise<void> | undefined;
  /** The request reads its input again: the connection may resume reading. */
  resume(request: ChannelRequest): void;
  /** The request sent END_REQUEST (or is no longer answered): its id is free. */
  ended(request: ChannelRequest): void;
  /** The response was cut off after some of it went out; it never gets END_REQUEST. */
  cutOff(request: ChannelRequest): void;
  /** The application finished, for the server's figures. */
  applicationFinished(outcome: Outcome): void;
  log(message: string): void;
}

/** What a connection asks of one of its requests. */
export interface ChannelRequest {
  readonly id: number;
  readonly keepConn: boolean;
  /** END_REQUEST went out (or the connection is gone): nothing more is sent for this id. */
  readonly finished: boolean;
  /** Whether all input has arrived (or is no longer wanted). */
  readonly inputComplete: boolean;
  /** When input last arrived, for the receive timeout. */
  readonly lastInputAt: number;
  addParams(piece: Buffer, app: Application): void;
  /** Adds FCGI_STDIN or FCGI_DATA content; returns false when the connection should stop reading. */
  addInput(type: number, piece: Buffer): boolean;
  /** The connection resumed reading after this request paused it: that time was not the peer's stall. */
  inputResumed(): void;
  /** FCGI_ABORT_REQUEST. */
  abortedByPeer(): void;
  /** The web server closed its side before this request's input was complete. */
  peerGone(): void;
  /** The connection closed: nothing more is sent. */
  connectionClosed(): void;
  /** The input stalled past the receive timeout. */
  timeOut(): void;
}
