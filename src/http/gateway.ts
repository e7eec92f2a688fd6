// The HTTP gateway as a long-lived server (`serveHttp`, `tsgi serve`): the
// server core (server/serve.ts) listens, admits peers, counts requests, holds
// the limits and shuts down gracefully, and the process manager runs it in
// workers, as for FastCGI, SCGI and uwsgi. node:http parses each accepted
// connection (handed to it with emit("connection"), so no second listening
// socket); this file adds what every gateway does around an application call:
// the concurrency limit (503), the status and ping pages, --request-timeout
// and --slow-request, a request head or body that stalls, and the access log.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex, Writable } from "node:stream";
import {
  coreOptions,
  defaultMultiprocess,
  requestTimes,
  type GatewayServerOptions,
} from "../server/options.js";
import {
  statusApplication,
  timeoutMessage,
  watchRequest,
  type WatchSettings,
} from "../server/request-watch.js";
import {
  serveConnections,
  gatewayLog,
  type ConnectionContext,
  type RunningServer,
} from "../server/serve.js";
import { builtInPage } from "../server/status.js";
import type { Application } from "../types.js";
import { accessLogLine, batchedWrites } from "./access-log.js";
import { underScriptName, type HttpEnvironOptions } from "./environ.js";
import { serveNodeRequest, type AroundRequest } from "./handler.js";
import { HttpConnection } from "./http-connection.js";
import { NodeResponseSink } from "./sink.js";

export interface HttpServerOptions extends GatewayServerOptions {
  /** Where the access log goes: default process.stderr; `false` for none. */
  accessLog?: Writable | false;
  /** Seconds an idle keep-alive connection stays open. Default 5 (node:http's). */
  keepAliveTimeout?: number;
  /**
   * The URL path prefix the application is mounted at, when the proxy in front
   * passes the whole path (nginx `proxy_pass` without a URI), as Gunicorn's
   * SCRIPT_NAME: it becomes SCRIPT_NAME, the rest PATH_INFO; other paths get a 404.
   */
  scriptName?: string | undefined;
}

export const HTTP_INHERITED_SOCKET_HINT =
  "with --listen fd:0, start tsgi serve with a listening socket on fd 0 (systemd, spawn-fcgi -n), or give --listen a path or host:port";

const OVERLOADED = statusApplication("503 Service Unavailable");
const NOT_MOUNTED = statusApplication("404 Not Found");

/** --request-timeout and --slow-request, and where they log. */
interface RequestWatch extends WatchSettings {
  log: (message: string) => void;
}

/** What runs around one call under --request-timeout or --slow-request (request-watch.ts). */
function watching(watch: RequestWatch, res: ServerResponse, sink: NodeResponseSink): AroundRequest {
  return (environ) => {
    let timedOut = false;
    const stop = watchRequest(environ, watch, watch.log, (line, elapsed) => {
      if (res.writableEnded) return;
      watch.log(timeoutMessage(line, elapsed, res.headersSent));
      timedOut = true;
      sink.giveUp("504 Gateway Timeout", "request timed out");
    });
    return (outcome) => {
      stop?.();
      return timedOut ? "failed" : outcome;
    };
  };
}

/** Serves `app` over HTTP/1.1 on `options.listen` (without it, on the listening socket on fd 0). */
export function serveHttp(
  app: Application,
  options: HttpServerOptions = {},
): Promise<RunningServer> {
  const core = coreOptions(
    { name: "http", inheritedSocketHint: HTTP_INHERITED_SOCKET_HINT },
    options,
  );
  const times = requestTimes(options);
  const log = gatewayLog(core.errors, core.name);
  return serveConnections(core, (context) => {
    const gateway = new HttpGateway(app, context, options, { ...times, log });
    return (socket) => gateway.open(socket, times.receiveTimeout, log);
  }).then((running) => ({
    ...running,
    // The address a browser or proxy_pass takes.
    where: running.where.includes("/") ? running.where : `http://${running.where}/`,
  }));
}

/** The node:http server that parses the core's connections, and what runs around each request. */
class HttpGateway {
  readonly #app: Application;
  readonly #context: ConnectionContext;
  readonly #http: Server;
  readonly #environ: HttpEnvironOptions;
  /** The environ options under --script-name; undefined without it. */
  readonly #mounted: HttpEnvironOptions | undefined;
  readonly #watch: RequestWatch | undefined;
  readonly #logLine: ((line: string) => void) | undefined;
  readonly #log: (message: string) => void;

  constructor(
    app: Application,
    context: ConnectionContext,
    options: HttpServerOptions,
    watch: RequestWatch & { receiveTimeout: number },
  ) {
    this.#app = app;
    this.#context = context;
    this.#log = watch.log;
    this.#environ = {
      errors: options.errors ?? process.stderr,
      multiprocess: defaultMultiprocess(options),
    };
    const scriptName = options.scriptName?.replace(/\/+$/, "");
    this.#mounted = scriptName ? { ...this.#environ, scriptName } : undefined;
    this.#watch = watch.requestTimeout > 0 || watch.slowRequest > 0 ? watch : undefined;
    const accessLog = options.accessLog ?? process.stderr;
    this.#logLine = accessLog ? batchedWrites(accessLog) : undefined;
    this.#http = createServer(
      {
        keepAliveTimeout: (options.keepAliveTimeout ?? 5) * 1000,
        // The core's sweep gives up stalled heads and bodies (--receive-timeout); a long
        // upload that keeps arriving is not cut off by node:http's whole-request limit.
        requestTimeout: 0,
      },
      (req, res) => this.#onRequest(req, res),
    );
    this.#http.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) =>
      this.#onClientError(error, socket),
    );
  }

  /**
   * A request node:http cannot parse: answered 400 (431 for a head over its
   * limit) with a log line, as the other gateways answer bad input; the
   * connection closes, and others go on.
   */
  #onClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
    // A response still going out on it cannot be followed by another: just close.
    const busy = (HttpConnection.of(socket as Socket)?.activeRequests ?? 0) > 0;
    if (error.code === "ECONNRESET" || !socket.writable || busy) {
      socket.destroy();
      return;
    }
    const status =
      error.code === "HPE_HEADER_OVERFLOW"
        ? "431 Request Header Fields Too Large"
        : "400 Bad Request";
    this.#log(`bad request, answered ${status.slice(0, 3)}: ${error.code ?? error.message}`);
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }

  open(socket: Socket, receiveTimeout: number, log: (message: string) => void): HttpConnection {
    const connection = new HttpConnection(socket, receiveTimeout, this.#context.hooks, log);
    this.#http.emit("connection", socket);
    return connection;
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const sink = new NodeResponseSink(res);
    const connection = HttpConnection.of(req.socket);
    connection?.requestStarted(req, res, sink);
    const hooks = this.#context.hooks;
    // Stopping: this response is the connection's last.
    if (hooks.shuttingDown) res.shouldKeepAlive = false;
    const admitted = hooks.admit();
    let app = this.#app;
    let environ = this.#environ;
    if (!admitted) {
      this.#log(`overloaded: answered 503: ${req.method} ${req.url}`);
      app = OVERLOADED;
    } else if (this.#context.pages) {
      app = builtInPage({ REQUEST_URI: req.url ?? "/" }, this.#context.pages) ?? app;
    }
    if (this.#mounted && app === this.#app) {
      if (underScriptName(req.url ?? "/", this.#mounted.scriptName!)) environ = this.#mounted;
      else app = NOT_MOUNTED;
    }
    const around = this.#watch && watching(this.#watch, res, sink);
    void serveNodeRequest(app, req, res, environ, around, sink).then((served) => {
      if (admitted) hooks.release();
      hooks.requestFinished(served.outcome);
      connection?.requestFinished(sink);
      this.#logLine?.(accessLogLine(req, served));
    });
  }
}
