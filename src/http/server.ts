// The HTTP gateway for development: toNodeHandler's request handling behind
// http.createServer, with an access log.

import { createServer, type Server } from "node:http";
import type { Writable } from "node:stream";
import type { Application } from "../types.js";
import { accessLogLine } from "./access-log.js";
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

/** The flushes of batched writes that have lines waiting, run at exit if their turn has not come. */
const pendingFlushes = new Set<() => void>();
let flushAtExit = false;

/**
 * Writes the lines given in one turn of the event loop together, at its end: a
 * write per request (synchronous to a file or a terminal) cost `tsgi serve`
 * about a fifth of its throughput behind a proxy. What is pending is written
 * before the process exits.
 */
function batchedWrites(stream: Writable): (line: string) => void {
  let pending = "";
  const flush = () => {
    pendingFlushes.delete(flush);
    if (pending === "") return;
    const text = pending;
    pending = "";
    try {
      stream.write(text);
    } catch {
      // Nowhere left to write to.
    }
  };
  return (line) => {
    if (pending === "") {
      setImmediate(flush);
      pendingFlushes.add(flush);
      if (!flushAtExit) {
        flushAtExit = true;
        process.once("exit", () => {
          for (const pendingFlush of pendingFlushes) pendingFlush();
        });
      }
    }
    pending += line;
  };
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
