// The options every long-lived gateway server takes (FastCGI, SCGI, uwsgi),
// and how they become the core's settings.

import cluster from "node:cluster";
import type { Writable } from "node:stream";
import type { CoreOptions } from "./serve.js";
import type { ClusterStatus } from "./stats.js";

export interface GatewayServerOptions {
  /**
   * Where to listen: a unix socket path (anything with a `/`), `host:port`,
   * `[v6]:port` or a bare port (host 127.0.0.1). Without it, the listening
   * socket the web server passed as fd 0 (mod_fcgid, lighttpd, spawn-fcgi).
   */
  listen?: string | undefined;
  /** Permissions of a unix socket, applied whatever the umask. Default 0o660. */
  socketMode?: number;
  /** Peer addresses allowed to connect over TCP (for FastCGI, added to FCGI_WEB_SERVER_ADDRS). */
  allow?: string[];
  /** Connections open at once; more are refused. Default 1024. */
  maxConnections?: number;
  /** Requests in progress at once in this process; more are refused. Default 1024. */
  concurrency?: number;
  /** Seconds a request may wait for more of its head or body before it is given up. Default 60. */
  receiveTimeout?: number;
  /** Where tsgi.errors and tsgi's own log lines go. Default process.stderr. */
  errors?: Writable;
  /**
   * Run a minor garbage collection after every 2 MiB of request body, which
   * keeps the memory of large uploads small. It turns on V8's `--expose-gc` for
   * the whole process (at the first collection), so it is off by default;
   * the `tsgi` server commands set it. Default false.
   */
  reclaimBodyMemory?: boolean;
  /**
   * The value of tsgi.multiprocess: whether other processes may be serving the
   * same application. Default true when listening on the socket inherited on
   * fd 0 (mod_fcgid and lighttpd `bin-path` start several processes on one such
   * socket) or in a cluster worker; false for a process on its own `listen` socket.
   */
  multiprocess?: boolean;
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

/** What differs between the protocols in the core's settings. */
export interface ProtocolIdentity {
  name: string;
  inheritedSocketHint: string;
  /** The environment variable with more allowed peers (FastCGI's FCGI_WEB_SERVER_ADDRS), if any. */
  allowVariable?: string;
  /**
   * The protocol's connections turn Nagle's algorithm off themselves, and only
   * when a response is written more than once (see StreamResponse); otherwise
   * every accepted socket gets TCP_NODELAY at once.
   */
  ownNoDelay?: boolean;
  /** The protocol's connections copy what they keep of a chunk read, so reads may reuse one buffer. */
  reuseReadBuffer?: boolean;
}

/** The core's settings for a protocol's server. */
export function coreOptions(
  protocol: ProtocolIdentity,
  options: GatewayServerOptions,
): CoreOptions {
  const variable = protocol.allowVariable;
  return {
    name: protocol.name,
    listen: options.listen,
    socketMode: options.socketMode ?? 0o660,
    allowFromEnvironment: variable === undefined ? "" : (process.env[variable] ?? ""),
    allow: options.allow,
    allowName: variable === undefined ? "--allow" : `${variable} / --allow`,
    inheritedSocketHint: protocol.inheritedSocketHint,
    noDelay: !protocol.ownNoDelay,
    reuseReadBuffer: protocol.reuseReadBuffer ?? false,
    maxConnections: options.maxConnections ?? 1024,
    concurrency: options.concurrency ?? 1024,
    errors: options.errors ?? process.stderr,
    maxRequests: options.maxRequests,
    onRetire: options.onRetire,
    clusterStatus: options.clusterStatus,
    statusPath: options.statusPath,
    pingPath: options.pingPath,
  };
}

/** tsgi.multiprocess unless the user said: other processes share fd 0's socket or the workers'. */
export function defaultMultiprocess(options: GatewayServerOptions): boolean {
  return options.multiprocess ?? (options.listen === undefined || cluster.isWorker);
}

/** The time limits of a request, in milliseconds. */
export function requestTimes(options: GatewayServerOptions): {
  receiveTimeout: number;
  requestTimeout: number;
  slowRequest: number;
} {
  return {
    receiveTimeout: (options.receiveTimeout ?? 60) * 1000,
    requestTimeout: (options.requestTimeout ?? 0) * 1000,
    slowRequest: (options.slowRequest ?? 0) * 1000,
  };
}
