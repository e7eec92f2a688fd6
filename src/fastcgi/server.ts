// The long-lived FastCGI server: listens where the web server expects it (the
// socket inherited on fd 0, a unix socket, or TCP), admits peers, applies the
// limits, and shuts down gracefully.

import cluster from "node:cluster";
import { chmod, lstat, unlink } from "node:fs/promises";
import { fstatSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import type { Writable } from "node:stream";
import type { Outcome } from "../engine.js";
import type { Application } from "../types.js";
import { FastCgiConnection, type ConnectionOptions, type ServerHooks } from "./connection.js";
import { DEFAULT_MAX_PARAMS_BYTES } from "./protocol.js";
import type { ClusterStatus } from "./workers.js";
import { tcpListenQueue, type StatusReport } from "./status.js";

const zeroFigures = { requestsServed: 0, inFlight: 0, maxInFlight: 0, errors: 0, connections: 0 };

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
  /** After this many requests, `onRetire` is called once (recycling, like PHP-FPM's pm.max_requests). */
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

export interface FastCgiStats {
  startedAt: Date;
  requestsServed: number;
  inFlight: number;
  maxInFlight: number;
  errors: number;
  connections: number;
}

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

/** The server could not start listening; the message says why and what to do. */
export class ListenError extends Error {
  override name = "ListenError";
}

export async function serveFastCgi(
  app: Application,
  options: FastCgiOptions = {},
): Promise<FastCgiServer> {
  const settings: ConnectionOptions = {
    maxConnections: options.maxConnections ?? 1024,
    maxRequests: options.concurrency ?? 1024,
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
        ? {
            statusPath: options.statusPath,
            pingPath: options.pingPath,
            report: () => statusReport(),
          }
        : undefined,
  };
  const allowed = allowedPeers(options.allow);
  const connections = new Set<FastCgiConnection>();
  const stats: FastCgiStats = {
    startedAt: new Date(),
    requestsServed: 0,
    inFlight: 0,
    maxInFlight: 0,
    errors: 0,
    connections: 0,
  };
  let shuttingDown = false;
  let onIdle: (() => void) | undefined;

  const hooks: ServerHooks = {
    admit() {
      if (stats.inFlight >= settings.maxRequests) return false;
      stats.inFlight++;
      if (stats.inFlight > stats.maxInFlight) stats.maxInFlight = stats.inFlight;
      return true;
    },
    release() {
      stats.inFlight--;
      if (stats.inFlight === 0) onIdle?.();
    },
    requestFinished(outcome: Outcome) {
      stats.requestsServed++;
      if (outcome === "failed" || outcome === "cut") stats.errors++;
      if (stats.requestsServed === options.maxRequests) options.onRetire?.();
    },
    connectionClosed(connection) {
      connections.delete(connection);
    },
    get shuttingDown() {
      return shuttingDown;
    },
  };

  const log = (message: string) => settings.errors.write(`[tsgi] fastcgi: ${message}\n`);
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket: Socket) => {
    if (
      allowed.size > 0 &&
      socket.remoteAddress !== undefined &&
      !allowed.has(normalizeAddress(socket.remoteAddress))
    ) {
      log(
        `connection from ${socket.remoteAddress} refused: not in FCGI_WEB_SERVER_ADDRS / --allow`,
      );
      socket.destroy();
      return;
    }
    if (shuttingDown) {
      socket.destroy();
      return;
    }
    connections.add(new FastCgiConnection(socket, settings, hooks, app));
  });
  server.maxConnections = settings.maxConnections;

  const { where, cleanUp } = await listen(server, options.listen, options.socketMode ?? 0o660);
  // Only now: a listen failure is reported once, as the ListenError that explains it.
  server.on("error", (error) => log(`server error: ${error.message}`));

  const statusReport = async (): Promise<StatusReport> => {
    const bound = server.address();
    const listenQueue = bound && typeof bound === "object" ? tcpListenQueue(bound.port) : null;
    const own = { pid: process.pid, ...stats, connections: connections.size };
    const cluster = await options.clusterStatus?.();
    if (cluster === undefined)
      return {
        startedAt: stats.startedAt,
        processManager: "single process",
        listenQueue,
        processes: [own],
      };
    return {
      startedAt: new Date(cluster.startedAt),
      processManager: `${cluster.workers.length} workers (primary ${cluster.primaryPid})`,
      listenQueue,
      processes: cluster.workers.map((worker) =>
        worker.pid === process.pid ? own : { pid: worker.pid, ...zeroFigures, ...worker.stats },
      ),
    };
  };

  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const connection of connections)
      for (const request of connection.stalledRequests(now)) request.timeOut();
  }, 1000);
  sweeper.unref();

  return {
    server,
    where,
    stats: () => ({ ...stats, connections: connections.size }),
    async close(graceSeconds = 30) {
      if (shuttingDown) return;
      shuttingDown = true;
      clearInterval(sweeper);
      server.close();
      // A connection accepted a moment ago has its first request on the way (or still
      // unread in the socket): give it a moment to arrive before idle ones are closed.
      if (
        [...connections].some((connection) => !connection.used && connection.requests.size === 0)
      ) {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      for (const connection of connections)
        if (connection.used || connection.requests.size > 0) connection.closeIfIdle();
      if (stats.inFlight > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, graceSeconds * 1000);
          onIdle = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        if (stats.inFlight > 0)
          log(`grace period over: cutting off ${stats.inFlight} request(s) in flight`);
      }
      // The last response may still be queued (it is written on the next tick):
      // destroying its socket now would drop it. Idle connections end once their
      // output is written; only those with requests still in flight are cut.
      const closed = [...connections].map(
        (connection) => new Promise((resolve) => connection.socket.once("close", resolve)),
      );
      for (const connection of connections) {
        if (connection.requests.size > 0) connection.socket.destroy();
        else connection.closeIfIdle();
      }
      // A peer that never closes its side does not hold the exit up for long.
      await Promise.race([
        Promise.all(closed),
        new Promise((resolve) => setTimeout(resolve, 1000).unref()),
      ]);
      for (const connection of connections) connection.socket.destroy();
      await cleanUp();
    },
  };
}

function normalizeAddress(address: string): string {
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

function allowedPeers(extra: string[] | undefined): Set<string> {
  const fromEnvironment = (process.env.FCGI_WEB_SERVER_ADDRS ?? "").split(",");
  return new Set(
    [...fromEnvironment, ...(extra ?? [])]
      .map((address) => normalizeAddress(address.trim()))
      .filter(Boolean),
  );
}

/** Splits a `--listen` value into a unix path or a TCP host and port. */
export function parseListenAddress(
  spec: string,
): { path: string } | { host: string; port: number } {
  if (spec.includes("/")) return { path: spec };
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(spec) ?? /^()()(\d+)$/.exec(spec);
  if (!match)
    throw new ListenError(
      `cannot understand --listen ${JSON.stringify(spec)}: use /path/to.sock, host:port or port`,
    );
  const port = Number(match[3]);
  if (port > 65535) throw new ListenError(`port ${port} is out of range`);
  return { host: match[1] || match[2] || "127.0.0.1", port };
}

async function listen(
  server: Server,
  spec: string | undefined,
  socketMode: number,
): Promise<{ where: string; cleanUp: () => Promise<void> }> {
  if (spec === undefined) {
    checkInheritedSocket();
    await listenOn(server, { fd: 0 }, "fd 0");
    return { where: "fd 0", cleanUp: async () => {} };
  }
  const address = parseListenAddress(spec);
  if ("port" in address) {
    await listenOn(server, { host: address.host, port: address.port }, spec);
    const bound = server.address();
    const where =
      bound && typeof bound === "object"
        ? `${bound.address.includes(":") ? `[${bound.address}]` : bound.address}:${bound.port}`
        : spec;
    return { where, cleanUp: async () => {} };
  }
  if (cluster.isWorker) {
    // The primary owns the socket file: it replaced a stale one and sets the mode.
    await listenOn(server, { path: address.path }, address.path);
    return { where: address.path, cleanUp: async () => {} };
  }
  await removeStaleSocket(address.path);
  await listenOn(server, { path: address.path }, address.path);
  await chmod(address.path, socketMode);
  return { where: address.path, cleanUp: () => unlink(address.path).catch(() => {}) };
}

function listenOn(
  server: Server,
  options: { fd: number } | { host: string; port: number } | { path: string },
  where: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      reject(new ListenError(listenFailure(error, where)));
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(options);
  });
}

function listenFailure(error: NodeJS.ErrnoException, where: string): string {
  if (
    where === "fd 0" &&
    (error.code === "EINVAL" || error.code === "ENOTSOCK" || error.code === "ENOTSUP")
  ) {
    return (
      "fd 0 is a socket but not a listening one (a connected socket, as under mod_cgid?): " +
      NOT_FASTCGI_HINT
    );
  }
  if (error.code === "EADDRINUSE")
    return `cannot listen on ${where}: the address is already in use`;
  if (error.code === "EACCES") return `cannot listen on ${where}: permission denied`;
  return `cannot listen on ${where}: ${error.message}`;
}

const NOT_FASTCGI_HINT =
  "tsgi fcgi without --listen expects the web server (mod_fcgid, lighttpd bin-path, spawn-fcgi) to pass a listening " +
  "socket as fd 0; to run it yourself, give --listen /path/to.sock or --listen 127.0.0.1:9000";

/** Started from a terminal, a pipe or a file, fd 0 is no FastCGI listening socket. */
export function checkInheritedSocket(): void {
  let isSocket = false;
  try {
    isSocket = fstatSync(0).isSocket();
  } catch {
    // fd 0 is closed.
  }
  if (!isSocket)
    throw new ListenError(
      `fd 0 is not a socket (started from a terminal or a pipe?): ${NOT_FASTCGI_HINT}`,
    );
}

/** A socket file left by a process that died is replaced; one that still answers is not. */
export async function removeStaleSocket(path: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch {
    return;
  }
  if (!stats.isSocket())
    throw new ListenError(`cannot listen on ${path}: the file exists and is not a socket`);
  const answered = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (answered)
    throw new ListenError(`cannot listen on ${path}: another process is listening there`);
  await unlink(path);
}
