// The long-lived FastCGI server: listens where the web server expects it (the
// socket inherited on fd 0, a unix socket, or TCP; see server/listen.ts),
// admits peers, applies the limits, and shuts down gracefully.

import cluster from "node:cluster";
import { createServer, type Server, type Socket } from "node:net";
import type { Writable } from "node:stream";
import type { Outcome } from "../engine.js";
import type { Application } from "../types.js";
import { listen, ListenError, PeerAllowList, type Listening } from "../server/listen.js";
import { RequestCounters, type ClusterStatus, type ServerStats } from "../server/stats.js";
import { statusReport, type BuiltInPages } from "../server/status.js";
import { FastCgiConnection } from "./connection.js";
import type { ConnectionOptions, ServerConnection, ServerHooks } from "./interfaces.js";
import { DEFAULT_MAX_PARAMS_BYTES } from "./protocol.js";

export { ListenError };

/** What to do when fd 0 is no listening socket, for `tsgi fcgi` without --listen. */
export const FASTCGI_INHERITED_SOCKET_HINT =
  "tsgi fcgi without --listen expects the web server (mod_fcgid, lighttpd bin-path, spawn-fcgi) to pass a listening " +
  "socket as fd 0; to run it yourself, give --listen /path/to.sock or --listen 127.0.0.1:9000";

export interface FastCgiOptions {
  /**
   * Where to listen: a unix socket path (anything with a `/`), `host:port`,
   * `[v6]:port` or a bare port (host 127.0.0.1). Without it, the listening
   * socket the web server passed as fd 0 (mod_fcgid, lighttpd, spawn-fcgi).
   */
  listen?: string | undefined;
  /** Permissions of a unix socket, applied whatever the umask. Default 0o660. */
  socketMode?: number;
  /** Peer addresses allowed to connect over TCP, added to FCGI_WEB_SERVER_ADDRS. */
  allow?: string[];
  /** Connections open at once; more are refused. Reported as FCGI_MAX_CONNS. Default 1024. */
  maxConnections?: number;
  /** Requests in progress at once in this process; more get FCGI_OVERLOADED. Reported as FCGI_MAX_REQS. Default 1024. */
  concurrency?: number;
  /** Requests in progress at once on one connection when the peer multiplexes. Default 64. */
  maxRequestsPerConnection?: number;
  /** Total bytes of one request's FCGI_PARAMS stream. Default 1 MiB. */
  maxParamsBytes?: number;
  /** Accept several requests on one connection (FCGI_MPXS_CONNS=1). Default true. */
  multiplex?: boolean;
  /** Seconds a request may wait for more params or body before it is given up. Default 60. */
  receiveTimeout?: number;
  /** Where tsgi.errors and tsgi's own log lines go. Default process.stderr. */
  errors?: Writable;
  /** Send tsgi.errors to the web server as FCGI_STDERR records instead. Default false. */
  stderrToWebServer?: boolean;
  /**
   * The value of tsgi.multiprocess: whether other processes may be serving the
   * same application. Default true when listening on the socket inherited on
   * fd 0 (mod_fcgid and lighttpd `bin-path` start several processes on one such
   * socket) or in a cluster worker; false for a process on its own `listen` socket.
   */
  multiprocess?: boolean;
  /**
   * Run a minor garbage collection after every 2 MiB of request body, which
   * keeps the memory of large uploads small. It turns on V8's `--expose-gc` for
   * the whole process (at the first collection), so it is off by default;
   * `tsgi fcgi` sets it. Default false.
   */
  reclaimBodyMemory?: boolean;
  /** After this many requests, `onRetire` is called once (recycling, like PHP-FPM's pm.max_requests and Gunicorn's --max-requests). */
  maxRequests?: number | undefined;
  /** Called once when `maxRequests` requests have been served. */
  onRetire?: (() => void) | undefined;
  /** Figures of every worker for the status page, when this process is one of several. */
  clusterStatus?: (() => Promise<ClusterStatus | undefined>) | undefined;
  /** Seconds an application call may run before it is given up: 504, or the response cut off. Default: no limit. */
  requestTimeout?: number | undefined;
  /** Seconds after which a request still running gets a log line. Default: never. */
  slowRequest?: number | undefined;
  /** A path tsgi answers itself with its status (plain text, or JSON with `?json`). Default: off. */
  statusPath?: string | undefined;
  /** A path tsgi answers itself with `pong`. Default: off. */
  pingPath?: string | undefined;
}

export type FastCgiStats = ServerStats;

/** A running FastCGI server. */
export interface FastCgiServer {
  readonly server: Server;
  /** Where it listens, for log lines: a path, `host:port`, or `fd 0`. */
  readonly where: string;
  stats(): FastCgiStats;
  /**
   * Stops accepting, lets requests in flight finish for up to `graceSeconds`,
   * then closes every connection (and removes a unix socket it created).
   */
  close(graceSeconds?: number): Promise<void>;
}

export async function serveFastCgi(
  app: Application,
  options: FastCgiOptions = {},
): Promise<FastCgiServer> {
  const server = new FastCgiListener(app, options);
  await server.listen();
  return {
    server: server.server,
    where: server.where,
    stats: () => server.stats(),
    close: (graceSeconds = 30) => server.close(graceSeconds),
  };
}

function connectionOptions(
  options: FastCgiOptions,
  pages: BuiltInPages["report"],
): ConnectionOptions {
  return {
    maxConnections: options.maxConnections ?? 1024,
    concurrency: options.concurrency ?? 1024,
    maxRequestsPerConnection:
      options.multiplex === false ? 1 : (options.maxRequestsPerConnection ?? 64),
    maxParamsBytes: options.maxParamsBytes ?? DEFAULT_MAX_PARAMS_BYTES,
    multiplex: options.multiplex ?? true,
    receiveTimeout: (options.receiveTimeout ?? 60) * 1000,
    errors: options.errors ?? process.stderr,
    stderrToWebServer: options.stderrToWebServer ?? false,
    // [fcgi.multiprocess] `tsgi.multiprocess` is `true` when the listening socket came on fd 0
    // (the web server or spawn-fcgi starts the processes: mod_fcgid and lighttpd start several
    // on one socket), with `--workers`, or when the user says so (option `multiprocess: true` /
    // `--multiprocess`); it is `false` only for a single process listening on its own `--listen`
    // socket.
    multiprocess: options.multiprocess ?? (options.listen === undefined || cluster.isWorker),
    reclaimBodyMemory: options.reclaimBodyMemory ?? false,
    requestTimeout: (options.requestTimeout ?? 0) * 1000,
    slowRequest: (options.slowRequest ?? 0) * 1000,
    pages:
      options.statusPath || options.pingPath
        ? { statusPath: options.statusPath, pingPath: options.pingPath, report: pages }
        : undefined,
  };
}

/** The listening socket and the connections accepted on it. */
class FastCgiListener implements ServerHooks {
  readonly server: Server;
  readonly #options: FastCgiOptions;
  readonly #settings: ConnectionOptions;
  readonly #allowed: PeerAllowList;
  readonly #connections = new Set<ServerConnection>();
  readonly #counters: RequestCounters;
  #shuttingDown = false;
  #listening: Listening | undefined;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(app: Application, options: FastCgiOptions) {
    this.#options = options;
    this.#settings = connectionOptions(options, () =>
      statusReport(this.server, this.stats(), options.clusterStatus),
    );
    this.#allowed = new PeerAllowList(process.env.FCGI_WEB_SERVER_ADDRS ?? "", options.allow);
    this.#counters = new RequestCounters(
      this.#settings.concurrency,
      options.maxRequests,
      options.onRetire,
    );
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (socket: Socket) =>
      this.#accept(socket, app),
    );
    this.server.maxConnections = this.#settings.maxConnections;
  }

  get where(): string {
    return this.#listening?.where ?? "";
  }

  async listen(): Promise<void> {
    this.#listening = await listen(this.server, {
      spec: this.#options.listen,
      socketMode: this.#options.socketMode ?? 0o660,
      inheritedSocketHint: FASTCGI_INHERITED_SOCKET_HINT,
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

  #log(message: string): void {
    this.#settings.errors.write(`[tsgi] fastcgi: ${message}\n`);
  }

  #accept(socket: Socket, app: Application): void {
    if (!this.#allowed.allows(socket.remoteAddress)) {
      this.#log(
        `connection from ${socket.remoteAddress} refused: not in FCGI_WEB_SERVER_ADDRS / --allow`,
      );
      socket.destroy();
      return;
    }
    if (this.#shuttingDown) {
      socket.destroy();
      return;
    }
    this.#connections.add(new FastCgiConnection(socket, this.#settings, this, app));
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
    clearInterval(this.#sweeper);
    this.server.close();
    await this.#closeIdleConnections();
    await this.#counters.idle(graceSeconds);
    const inFlight = this.#counters.inFlight;
    if (inFlight > 0) this.#log(`grace period over: cutting off ${inFlight} request(s) in flight`);
    await this.#closeConnections();
    await this.#listening?.cleanUp();
  }

  async #closeIdleConnections(): Promise<void> {
    // A connection accepted a moment ago has its first request on the way (or still
    // unread in the socket): give it a moment to arrive before idle ones are closed.
    const connections = [...this.#connections];
    if (connections.some((connection) => !connection.used && connection.activeRequests === 0))
      await new Promise((resolve) => setTimeout(resolve, 200));
    for (const connection of this.#connections)
      if (connection.used || connection.activeRequests > 0) connection.closeIfIdle();
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
