// Runs a TSGI application for a node:http request: `toNodeHandler(app)` mounts
// an application in any node:http server or Express app, and the HTTP gateway
// is this handler behind http.createServer.

import type { IncomingMessage, ServerResponse } from "node:http";
import { runApplication, type Outcome } from "../engine.js";
import type { Application, Environ } from "../types.js";
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

/**
 * What a server runs around one application call (the HTTP gateway's
 * --request-timeout and --slow-request): called with the environ before the
 * call, it returns what to call after it, with the outcome, which it may change.
 */
export type AroundRequest = (environ: Environ) => (outcome: Outcome) => Outcome;

/** Serves one request with `app`. Never rejects. */
export async function serveNodeRequest(
  app: Application,
  req: IncomingMessage,
  res: ServerResponse,
  options: HttpEnvironOptions = {},
  around?: AroundRequest,
  sink: NodeResponseSink = new NodeResponseSink(res),
): Promise<ServedRequest> {
  const started = performance.now();
  const environ = environFromHttpRequest(req, options);
  const after = around?.(environ);
  const outcome = await runApplication(app, environ, sink);
  return {
    outcome: after ? after(outcome) : outcome,
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
