// `tsgi fcgi <module>`: runs the FastCGI server in this process, or with
// --workers as a primary and its worker processes (each of which runs this
// same command line again), until SIGTERM or SIGINT.

import cluster from "node:cluster";
import { availableParallelism } from "node:os";
import { setFlagsFromString } from "node:v8";
import { loadApplicationWith } from "../load-app.js";
import { exitOnStartupError } from "./load-error.js";
import { commandLineLoader } from "../typescript/loader.js";
import {
  ListenError,
  serveFastCgi,
  type FastCgiOptions,
  type FastCgiServer,
} from "../fastcgi/server.js";
import { runPrimary, type ClusterMessage, type ClusterStatus } from "../fastcgi/workers.js";

export interface FcgiCommandOptions extends FastCgiOptions {
  /** Seconds requests in flight get to finish after SIGTERM/SIGINT. */
  grace: number;
  /** Worker processes; undefined runs everything in this one process. */
  workers?: number | "auto" | undefined;
  /** Where a TypeScript application is compiled to (--cache-dir). */
  cacheDir?: string | undefined;
}

/**
 * Under steady load V8 doubles its young generation every so often until it
 * reaches its maximum (32 MiB in Node 20), so a server's RSS creeps up for
 * hours and collects more often meanwhile. A request server reaches that size
 * anyway; growing there in one step makes its memory flat from the first
 * busy second and spares the extra scavenges. Only the growth factor is read
 * at run time, so that is the flag set; a process given its own semi-space
 * flags keeps them.
 */
function growYoungGenerationAtOnce(): void {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ""].join(" ");
  if (/semi[-_]space/.test(given)) return;
  setFlagsFromString("--semi-space-growth-factor=16");
}

const log = (message: string) => process.stderr.write(`[tsgi] fastcgi: ${message}\n`);

export async function runFcgiCommand(spec: string, options: FcgiCommandOptions): Promise<void> {
  if (options.workers !== undefined && cluster.isPrimary) {
    const workers = options.workers === "auto" ? availableParallelism() : options.workers;
    try {
      await runPrimary({
        workers,
        listen: options.listen,
        socketMode: options.socketMode ?? 0o660,
        grace: options.grace,
        log,
      });
    } catch (error) {
      fail(error);
    }
    return;
  }
  // Before start-up's own allocations, which then take the step: an idle process
  // stays small all the same (untouched young-generation pages are not resident).
  growYoungGenerationAtOnce();
  let app;
  try {
    app = await loadApplicationWith(spec, commandLineLoader({ cacheDir: options.cacheDir }));
  } catch (error) {
    fail(error);
  }
  const inWorker = cluster.isWorker;
  let running: FastCgiServer;
  let retiring = false;
  const stop = (grace: number) => running.close(grace).then(() => process.exit(0));
  try {
    running = await serveFastCgi(app, {
      ...options,
      // Workers share the socket; otherwise serveFastCgi decides from where it listens.
      multiprocess: inWorker || options.multiprocess ? true : undefined,
      // This process is ours: its V8 flags may be set (see fastcgi/reclaim.ts).
      reclaimBodyMemory: true,
      onRetire: () => {
        if (retiring) return;
        retiring = true;
        // A worker asks the primary to start its replacement first; alone, the
        // process exits and the web server (mod_fcgid, lighttpd) starts a new one.
        if (inWorker) process.send?.({ tsgi: "retire" } satisfies ClusterMessage);
        else {
          log(
            `served ${options.maxRequests} requests (--max-requests): exiting after the requests in flight`,
          );
          void stop(options.grace);
        }
      },
      clusterStatus: inWorker ? askPrimaryForStatus : undefined,
    });
  } catch (error) {
    fail(error);
  }

  if (inWorker) {
    process.send?.({ tsgi: "listening" } satisfies ClusterMessage);
    setInterval(
      () => process.send?.({ tsgi: "stats", stats: running.stats() } satisfies ClusterMessage),
      1000,
    ).unref();
    process.on("message", (message: ClusterMessage) => {
      if (message?.tsgi === "stop") void stop(message.grace);
    });
    // The primary is gone: finish what is in flight and leave.
    process.on("disconnect", () => void stop(options.grace));
    // The primary relays SIGTERM/SIGINT as "stop"; a terminal's Ctrl-C reaches every process.
    process.on("SIGINT", () => {});
    process.on("SIGTERM", () => void stop(options.grace));
    return;
  }

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log(`${signal} again: exiting at once`);
      process.exit(1);
    }
    stopping = true;
    log(
      `${signal}: no new connections; ${running.stats().inFlight} request(s) in flight get up to ${options.grace} s`,
    );
    void stop(options.grace);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  // Only now: whoever waits for this line may signal at once, and before the
  // handlers exist a SIGTERM would kill the process instead of stopping it.
  log(`serving ${spec} on ${running.where} (pid ${process.pid})`);
}

function fail(error: unknown): never {
  exitOnStartupError(error, [ListenError]);
}

let nextNonce = 1;

/** The status page in a worker shows every worker: the primary has their figures. */
function askPrimaryForStatus(): Promise<ClusterStatus | undefined> {
  const nonce = nextNonce++;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      process.off("message", onMessage);
      resolve(undefined);
    }, 1000);
    const onMessage = (message: ClusterMessage) => {
      if (message?.tsgi !== "status" || message.nonce !== nonce) return;
      clearTimeout(timer);
      process.off("message", onMessage);
      resolve(message.status);
    };
    process.on("message", onMessage);
    process.send?.({ tsgi: "status-request", nonce } satisfies ClusterMessage);
  });
}
