// The long-lived FastCGI server: the gateway-neutral core (server/serve.ts)
// with FastCGI connections (connection.ts) on it.

import type { Application } from "../types.js";
import { ListenError } from "../server/listen.js";
import { serveConnections, type RunningServer } from "../server/serve.js";
import type { ServerStats } from "../server/stats.js";
import {
  coreOptions,
  defaultMultiprocess,
  requestTimes,
  type GatewayServerOptions,
} from "../server/options.js";
import { FastCgiConnection } from "./connection.js";
import type { ConnectionOptions } from "./interfaces.js";
import { DEFAULT_MAX_PARAMS_BYTES } from "./protocol.js";

export { ListenError };

/** What to do when fd 0 is no listening socket, for `tsgi fcgi` without --listen. */
export const FASTCGI_INHERITED_SOCKET_HINT =
  "tsgi fcgi without --listen expects the web server (mod_fcgid, lighttpd bin-path, spawn-fcgi) to pass a listening " +
  "socket as fd 0; to run it yourself, give --listen /path/to.sock or --listen 127.0.0.1:9000";

export interface FastCgiOptions extends GatewayServerOptions {
  /** Requests in progress at once on one connection when the peer multiplexes. Default 64. */
  maxRequestsPerConnection?: number;
  /** Total bytes of one request's FCGI_PARAMS stream. Default 1 MiB. */
  maxParamsBytes?: number;
  /** Accept several requests on one connection (FCGI_MPXS_CONNS=1). Default true. */
  multiplex?: boolean;
  /** Send tsgi.errors to the web server as FCGI_STDERR records instead. Default false. */
  stderrToWebServer?: boolean;
}

/** A running FastCGI server. */
export type FastCgiServer = RunningServer;

export type FastCgiStats = ServerStats;

export function serveFastCgi(
  app: Application,
  options: FastCgiOptions = {},
): Promise<FastCgiServer> {
  const settings = connectionOptions(options);
  const identity = {
    name: "fastcgi",
    inheritedSocketHint: FASTCGI_INHERITED_SOCKET_HINT,
    allowVariable: "FCGI_WEB_SERVER_ADDRS",
    // Records are parsed as they are read; of what is read, only a request body's bytes are
    // kept, and those are copied (RecordInput.add).
    reuseReadBuffer: true,
  };
  return serveConnections(coreOptions(identity, options), ({ hooks, pages }) => {
    const withPages = { ...settings, pages };
    return (socket) => new FastCgiConnection(socket, withPages, hooks, app);
  });
}

function connectionOptions(options: FastCgiOptions): Omit<ConnectionOptions, "pages"> {
  return {
    maxConnections: options.maxConnections ?? 1024,
    concurrency: options.concurrency ?? 1024,
    maxRequestsPerConnection:
      options.multiplex === false ? 1 : (options.maxRequestsPerConnection ?? 64),
    maxParamsBytes: options.maxParamsBytes ?? DEFAULT_MAX_PARAMS_BYTES,
    multiplex: options.multiplex ?? true,
    errors: options.errors ?? process.stderr,
    stderrToWebServer: options.stderrToWebServer ?? false,
    // [fcgi.multiprocess] `tsgi.multiprocess` is `true` when the listening socket came on fd 0
    // (the web server or spawn-fcgi starts the processes: mod_fcgid and lighttpd start several
    // on one socket), with `--workers`, or when the user says so (option `multiprocess: true` /
    // `--multiprocess`); it is `false` only for a single process listening on its own `--listen`
    // socket.
    multiprocess: defaultMultiprocess(options),
    reclaimBodyMemory: options.reclaimBodyMemory ?? false,
    ...requestTimes(options),
  };
}
