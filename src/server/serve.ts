// The long-lived server every connection-based gateway (FastCGI, SCGI, uwsgi)
// runs on: it listens (server/listen.ts), admits peers, holds the connection
// and concurrency limits and the request counters, sweeps stalled input, offers
// the status and ping pages, and shuts down gracefully. A protocol supplies only
// how to serve one accepted connection (a ServerConnection); the connection
// reports each request it starts and finishes through ServerHooks.

import { createServer, type Server, type Socket } from "node:net";
import type { Writable } from "node:stream";
import type { Outcome } from "../engine.js";
import { listen, PeerAllowList, type Listening } from "./listen.js";
import { withReusedReadBuffer } from "./read-buffer.js";
import { RequestCounters, type ClusterStatus, type ServerStats } from "./stats.js";
import { statusReport, type BuiltInPages } from "./status.js";

/**
 * How long connections that close themselves (ServerConnection.closesItself)
 * are given at shutdown: a proxy reusing one sends its next request within
 * this, while one it leaves idle this long sits at the back of its pool
 * (nginx takes the most recently used first).
 */
const SELF_CLOSE_MS = 1000;

/** What a connection needs from its server. */
export interface ServerHooks {
  /** Takes a request slot; false when the process is at its limit. */
  admit(): boolean;
  /** Gives a request slot back. */
  release(): void;
  /** The application finished a request, however it ended. */
  requestFinished(outcome: Outcome): void;
  connectionClosed(connection: ServerConnection): void;
  readonly shuttingDown: boolean;
}

/** What the server asks of a connection. */
export interface ServerConnection {
  /** Whether any bytes arrived yet: a fresh connection's first request may still be on its way. */
  readonly used: boolean;
  /** Requests in progress on it. */
  readonly activeRequests: number;
  /** Gives up the requests whose input stalled longer than the receive timeout. */
  timeOutStalled(now: number): void;
  /** Called when the server shuts down: close now if nothing is in flight. */
  closeIfIdle(): void;
  /**
   * Whether a used connection is given a moment to close by itself when the
   * server shuts down (after its next response: HTTP says Connection: close in
   * it, FastCGI closes once it is written) rather than closed under a peer that
   * may be sending a request on it at that moment: a proxy retries a request
   * that failed so only when it is idempotent (RFC 9110 9.2.2), and a POST
   * would fail.
   */
  readonly closesItself?: boolean;
  /** Resolves when the socket has closed. */
  closed(): Promise<void>;
  /** Closes the socket at once. */
  destroy(): void;
}

/** What a protocol gets to open its connections with. */
export interface ConnectionContext {
  hooks: ServerHooks;
  /** The status and ping pages, when configured. */
  pages: BuiltInPages | undefined;
}

export type OpenConnection = (socket: Socket) => ServerConnection;

/** The settings of the core, whatever the protocol. */
export interface CoreOptions {
  /** The protocol's name in log lines: `[tsgi] <name>: ...`. */
  name: string;
  listen: string | undefined;
  socketMode: number;
  /** Peer addresses allowed over TCP, as a comma-separated list from the environment and as options. */
  allowFromEnvironment: string;
  allow: string[] | undefined;
  /** Where the allow-list comes from, for the refusal's log line. */
  allowName: string;
  inheritedSocketHint: string;
  /** TCP_NODELAY on every accepted socket (a setsockopt call per connection). */
  noDelay: boolean;
  /**
   * The protocol's connections parse what they read at once and copy what they
   * keep, so their sockets may read into one reused buffer (server/read-buffer.ts).
   */
  reuseReadBuffer: boolean;
  maxConnections: number;
  concurrency: number;
  errors: Writable;
  maxRequests: number | undefined;
  onRetire: (() => void) | undefined;
  clusterStatus: (() => Promise<ClusterStatus | undefined>) | undefined;
  statusPath: string | undefined;
  pingPath: string | undefined;
}

/** A running gateway server. */
export interface RunningServer {
  readonly server: Server;
  /** Where it listens, for log lines: a path, `host:port`, or `fd 0`. */
  readonly where: string;
  stats(): ServerStats;
  /**
   * Stops accepting, lets requests in flight finish for up to `graceSeconds`,
   * then closes every connection (and removes a unix socket it created).
   */
  close(graceSeconds?: number): Promise<void>;
}

/** Starts the core listening; `protocol` makes the handler of each accepted connection. */
export async function serveConnections(
  options: CoreOptions,
  protocol: (context: ConnectionContext) => OpenConnection,
): Promise<RunningServer> {
  const core = new GatewayServer(options, protocol);
  await core.listen();
  return {
    server: core.server,
    where: core.where,
    stats: () => core.stats(),
    close: (graceSeconds = 30) => core.close(graceSeconds),
  };
}

/** Writes `[tsgi] <name>: message` to `errors`, never throwing. */
export function gatewayLog(errors: Writable, name: string): (message: string) => void {
  return (message) => {
    try {
      errors.write(`[tsgi] ${name}: ${message}\n`);
    } catch {
      // Nowhere left to report to.
    }
  };
}

/** The listening socket and the connections accepted on it. */
class GatewayServer implements ServerHooks {
  readonly server: Server;
  readonly #options: CoreOptions;
  readonly #allowed: PeerAllowList;
  readonly #connections = new Set<ServerConnection>();
  readonly #counters: RequestCounters;
  readonly #open: OpenConnection;
  readonly #log: (message: string) => void;
  #shuttingDown = false;
  #listening: Listening | undefined;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(options: CoreOptions, protocol: (context: ConnectionContext) => OpenConnection) {
    this.#options = options;
    this.#log = gatewayLog(options.errors, options.name);
    this.#allowed = new PeerAllowList(options.allowFromEnvironment, options.allow);
    this.#counters = new RequestCounters(
      options.concurrency,
      options.maxRequests,
      options.onRetire,
    );
    const report = () => statusReport(this.server, this.stats(), options.clusterStatus);
    const pages =
      options.statusPath || options.pingPath
        ? { statusPath: options.statusPath, pingPath: options.pingPath, report }
        : undefined;
    this.#open = protocol({ hooks: this, pages });
    this.server = createServer(
      // Paused: a socket's reading starts in #accept, into the reused read buffer or as usual.
      { allowHalfOpen: true, noDelay: options.noDelay, pauseOnConnect: true },
      (socket: Socket) => this.#accept(socket),
    );
    this.server.maxConnections = options.maxConnections;
  }

  get where(): string {
    return this.#listening?.where ?? "";
  }

  async listen(): Promise<void> {
    this.#listening = await listen(this.server, {
      spec: this.#options.listen,
      socketMode: this.#options.socketMode,
      inheritedSocketHint: this.#options.inheritedSocketHint,
    });
    // Only now: a listen failure is reported once, as the ListenError that explains it.
    this.server.on("error", (error) => this.#log(`server error: ${error.message}`));
    this.#sweeper = setInterval(() => {
      const now = Date.now();
      for (const connection of this.#connections) connection.timeOutStalled(now);
    }, 1000);
    this.#sweeper.unref();
  }

  stats(): ServerStats {
    return this.#counters.snapshot(this.#connections.size);
  }

  #accept(socket: Socket): void {
    if (!this.#allowed.allows(socket)) {
      this.#log(
        `connection from ${socket.remoteAddress} refused: not in ${this.#options.allowName}`,
      );
      socket.destroy();
      return;
    }
    // node:net's own limit does not count sockets moved to the reused read buffer (read-buffer.ts).
    if (this.#shuttingDown || this.#connections.size >= this.#options.maxConnections) {
      socket.destroy();
      return;
    }
    if (this.#options.reuseReadBuffer) {
      this.#connections.add(this.#open(withReusedReadBuffer(socket)));
    } else {
      this.#connections.add(this.#open(socket));
      socket.resume();
    }
  }

  // ServerHooks

  admit(): boolean {
    return this.#counters.admit();
  }

  release(): void {
    this.#counters.release();
  }

  requestFinished(outcome: Outcome): void {
    this.#counters.finished(outcome);
  }

  connectionClosed(connection: ServerConnection): void {
    this.#connections.delete(connection);
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  async close(graceSeconds: number): Promise<void> {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    const deadline = Date.now() + graceSeconds * 1000;
    clearInterval(this.#sweeper);
    this.server.close();
    const closingThemselves = await this.#closeIdleConnections();
    await this.#counters.idle(graceSeconds);
    if (closingThemselves.length > 0) await this.#letClose(closingThemselves, deadline);
    const inFlight = this.#counters.inFlight;
    if (inFlight > 0) this.#log(`grace period over: cutting off ${inFlight} request(s) in flight`);
    await this.#closeConnections();
    await this.#listening?.cleanUp();
  }

  /** Closes the idle connections, but those that close themselves (returned, to be waited for). */
  async #closeIdleConnections(): Promise<ServerConnection[]> {
    // A connection accepted a moment ago has its first request on the way (or still
    // unread in the socket): give it a moment to arrive before idle ones are closed.
    const connections = [...this.#connections];
    if (connections.some((connection) => !connection.used && connection.activeRequests === 0))
      await new Promise((resolve) => setTimeout(resolve, 200));
    const closingThemselves: ServerConnection[] = [];
    for (const connection of this.#connections) {
      if (!connection.used && connection.activeRequests === 0) continue;
      if (connection.closesItself) closingThemselves.push(connection);
      else connection.closeIfIdle();
    }
    return closingThemselves;
  }

  /**
   * Gives the connections that close themselves a moment (within the grace):
   * one a proxy is still reusing gets its next request answered with
   * Connection: close; one left idle is closed with the rest. Requests that
   * came on them meanwhile finish within the grace too.
   */
  async #letClose(connections: ServerConnection[], deadline: number): Promise<void> {
    const until = Math.min(deadline, Date.now() + SELF_CLOSE_MS);
    await Promise.race([
      Promise.all(connections.map((connection) => connection.closed())),
      new Promise((resolve) => setTimeout(resolve, Math.max(0, until - Date.now())).unref()),
    ]);
    await this.#counters.idle(Math.max(0, deadline - Date.now()) / 1000);
  }

  async #closeConnections(): Promise<void> {
    // The last response may still be queued (it is written on the next tick):
    // destroying its socket now would drop it. Idle connections end once their
    // output is written; only those with requests still in flight are cut.
    const closed = [...this.#connections].map((connection) => connection.closed());
    for (const connection of this.#connections) {
      if (connection.activeRequests > 0) connection.destroy();
      else connection.closeIfIdle();
    }
    // A peer that never closes its side does not hold the exit up for long.
    await Promise.race([
      Promise.all(closed),
      new Promise((resolve) => setTimeout(resolve, 1000).unref()),
    ]);
    for (const connection of this.#connections) connection.destroy();
  }
}
