// `tsgi serve <module>`: runs the development HTTP server until SIGINT or
// SIGTERM, then closes it and exits 0.

import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { AppLoadError, loadApplicationWith } from "../load-app.js";
import { commandLineLoader } from "../typescript/loader.js";
import { makeServer } from "./server.js";

export interface ServeCommandOptions {
  host: string;
  port: number;
  /** Where a TypeScript application is compiled to (--cache-dir). */
  cacheDir?: string | undefined;
  /** Restart the application when a file it loaded changes (--watch). */
  watch?: boolean;
}

/** How long requests in flight get to finish after the first signal; streaming responses would otherwise hold the exit. */
const GRACE_MS = 2000;

const say = (message: string) => process.stderr.write(`[tsgi] http: ${message}\n`);

export async function runServeCommand(spec: string, options: ServeCommandOptions): Promise<void> {
  if (options.watch) {
    const { WATCH_CHILD, runWatchChild, runWatchPrimary } = await import("./watch.js");
    return process.env[WATCH_CHILD] ? runWatchChild(spec, options) : runWatchPrimary(spec, options);
  }
  let server: Server;
  try {
    const app = await loadApplicationWith(spec, commandLineLoader({ cacheDir: options.cacheDir }));
    server = await makeServer(app, { host: options.host, port: options.port });
  } catch (error) {
    const message =
      error instanceof AppLoadError
        ? error.message
        : `cannot listen on ${options.host}:${options.port}: ${(error as Error).message}`;
    say(message);
    process.exitCode = 1;
    return;
  }
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(":") ? `[${address}]` : address;
  say(`serving ${spec} on http://${host}:${port}/ (Ctrl-C to stop)`);
  stopOnSignals(server);
}

function stopOnSignals(server: Server): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second Ctrl-C: do not wait for requests in flight.
      server.closeAllConnections();
      return;
    }
    stopping = true;
    say(`${signal}: stopping`);
    // process.exit rather than waiting for the event loop to empty: the application may hold timers or pools.
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), GRACE_MS).unref();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
