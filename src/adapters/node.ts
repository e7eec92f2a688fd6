// Runs a Node-style application — `(req, res) => void`, such as an Express app —
// as a TSGI application, with real http.IncomingMessage and http.ServerResponse
// objects and without patching anything global.

import type { IncomingMessage, ServerResponse } from "node:http";
import { onSignalAbort } from "../abort-watch.js";
import type { Application } from "../types.js";
import { incomingMessageFromEnviron } from "./node-request.js";
import { ResponseBridge } from "./node-response.js";
import { BridgeSocket } from "./node-socket.js";

export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => unknown;

/**
 * The application that serves each request by calling `handler(req, res)`.
 * `req` carries the method, the URL it routes on (PATH_INFO and the query;
 * `req.baseUrl` is SCRIPT_NAME, `req.originalUrl` the public path), headers,
 * peer address (`req.socket.remoteAddress`) and a body streamed from
 * tsgi.input; `res` streams what the handler writes. When the client goes
 * away (`tsgi.get_signal`), even before the handler wrote anything, `req` emits
 * 'aborted' and `req` and `res` emit 'close', as under node:http.
 */
export function fromNodeHandler(handler: NodeHandler): Application {
  if (typeof handler !== "function")
    throw new TypeError("fromNodeHandler() takes a function (req, res) => void");
  return (environ, startResponse) => {
    const socket = new BridgeSocket({
      remoteAddress: environ.REMOTE_ADDR,
      remotePort: port(environ.REMOTE_PORT),
      localAddress: typeof environ.SERVER_ADDR === "string" ? environ.SERVER_ADDR : undefined,
      localPort: port(environ.SERVER_PORT),
      encrypted: environ["tsgi.url_scheme"] === "https",
    });
    const req = incomingMessageFromEnviron(environ, socket);
    const bridge = new ResponseBridge(req, socket, environ, startResponse);
    try {
      const result = handler(req, bridge.res);
      // An async handler's rejection is an error before the response, as a throw is.
      if (result instanceof Promise) result.catch((error: unknown) => bridge.fail(error));
    } catch (error) {
      bridge.fail(error);
    }
    // A response ended at once is in the engine's hands; only one still to come needs the client watched:
    // node:http sees a client leave on its socket at once, whatever the handler is doing; here tsgi.get_signal's signal tells.
    if (!bridge.res.writableEnded)
      bridge.watchUntilDone(onSignalAbort(environ, () => bridge.clientLeft()));
    return bridge.body();
  };
}

function port(value: unknown): number | undefined {
  return typeof value === "string" && /^[0-9]+$/.test(value) ? Number(value) : undefined;
}
