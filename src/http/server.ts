// A plain node:http server for an application, with an access log and nothing
// else: `makeServer` for embedding, and what `tsgi serve --watch` restarts.
// `tsgi serve` itself runs serveHttp (gateway.ts), on the server core.

import { createServer, type Server } from "node:http";
import type { Writable } from "node:stream";
import type { Application } from "../types.js";
import { accessLogLine, batchedWrites } from "./access-log.js";
import { serveNodeRequest } from "./handler.js";

export interface ServerOptions {
  /** Default 127.0.0.1: a development server is not for the network. */
  host?: string;
  /** Default 8000; 0 lets the OS pick a free port (read it from `server.address()`). */
  port?: number;
  /** Where the access log goes: default process.stderr; `false` for none. */
  accessLog?: Writable | false;
  /** `tsgi.errors`; default process.stderr. */
  errors?: Writable;
}

/** An HTTP server for `app` that is not listening yet: connections are handed to it (`emit("connection")`) or it is told to listen. */
export function createAppServer(
  app: Application,
  options: Pick<ServerOptions, "accessLog" | "errors"> = {},
): Server {
  const log = options.accessLog ?? process.stderr;
  const errors = options.errors;
  const logLine = log ? batchedWrites(log) : undefined;
  return createServer((req, res) => {
    void serveNodeRequest(app, req, res, { errors }).then((served) => {
      logLine?.(accessLogLine(req, served));
    });
  });
}

/** Starts an HTTP server for `app`; resolves once it listens, rejects when it cannot (port taken). */
export function makeServer(app: Application, options: ServerOptions = {}): Promise<Server> {
  const server = createAppServer(app, options);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8000, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
