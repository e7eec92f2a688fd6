// Runs a TSGI application for a node:http request: `toNodeHandler(app)` mounts
// an application in any node:http server or Express app, and the HTTP gateway
// is this handler behind http.createServer.

import type { IncomingMessage, ServerResponse } from "node:http";
import { runApplication, type Outcome } from "../engine.js";
import type { Application } from "../types.js";
import { timeoutMessage, watchRequest, type WatchSettings } from "../server/request-watch.js";
import { environFromHttpRequest, type HttpEnvironOptions } from "./environ.js";
import { NodeResponseSink } from "./sink.js";

/** How one request went, for an access log. */
export interface ServedRequest {
  outcome: Outcome;
  /** The status code sent, or undefined when the response never started. */
  status: number | undefined;
  /** Body bytes sent. */
  bytes: number;
  durationMs: number;
}

/** The HTTP gateway's server: --slow-request and --request-timeout (request-watch.ts), and where they log. */
export interface RequestWatch extends WatchSettings {
  log: (message: string) => void;
}

/** Serves one request with `app`. Never rejects. */
export async function serveNodeRequest(
  app: Application,
  req: IncomingMessage,
  res: ServerResponse,
  options: HttpEnvironOptions = {},
  watch?: RequestWatch,
  sink: NodeResponseSink = new NodeResponseSink(res),
): Promise<ServedRequest> {
  const started = performance.now();
  const environ = environFromHttpRequest(req, options);
  let timedOut = false;
  const stopWatching =
    watch &&
    watchRequest(environ, watch, watch.log, (line, elapsed) => {
      if (res.writableEnded) return;
      watch.log(timeoutMessage(line, elapsed, res.headersSent));
      timedOut = true;
      sink.giveUp("504 Gateway Timeout", "request timed out");
    });
  const outcome = await runApplication(app, environ, sink);
  stopWatching?.();
  return {
    outcome: timedOut ? "failed" : outcome,
    status: sink.sentStatus,
    bytes: sink.bytesSent,
    durationMs: performance.now() - started,
  };
}

/**
 * A node:http request listener (or Express handler) that serves requests with
 * a TSGI application. Mounted in Express under a path, the mount point becomes
 * SCRIPT_NAME and the rest of the path PATH_INFO.
 */
export function toNodeHandler(
  app: Application,
  options: HttpEnvironOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void serveNodeRequest(app, req, res, options);
  };
}
