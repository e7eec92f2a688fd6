// What `tsgi fcgi`, `tsgi scgi` and `tsgi uwsgi` share: load the module, run
// the gateway's server in this process, or with --workers as a primary and its
// worker processes (each of which runs this same command line again), recycle
// after --max-requests, and stop on SIGTERM or SIGINT.

import cluster from "node:cluster";
import { availableParallelism } from "node:os";
import { setFlagsFromString } from "node:v8";
import { loadApplicationWith } from "../load-app.js";
import { exitOnStartupError } from "./load-error.js";
import { commandLineLoader } from "../typescript/loader.js";
import { ListenError } from "../server/listen.js";
import type { GatewayServerOptions } from "../server/options.js";
import type { RunningServer } from "../server/serve.js";
import type { Application } from "../types.js";
import { askPrimaryForStatus, askToRetire, runPrimary, serveAsWorker } from "../server/workers.js";

export interface ServerCommandOptions extends GatewayServerOptions {
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
  if (semiSpaceFlagsGiven()) return;
  setFlagsFromString("--semi-space-growth-factor=16");
}

/** The young-generation maximum workers start with, unless the user gave semi-space flags. */
const WORKER_SEMI_SPACE = "--max-semi-space-size=32";

/** Whether the user gave semi-space flags (a worker's own WORKER_SEMI_SPACE is not the user's). */
function semiSpaceFlagsGiven(): boolean {
  const flags =
    cluster.isWorker && process.execArgv.at(-1) === WORKER_SEMI_SPACE
      ? process.execArgv.slice(0, -1)
      : process.execArgv;
  return /semi[-_]space/.test([...flags, process.env.NODE_OPTIONS ?? ""].join(" "));
}

/**
 * Node flags for worker processes: the primary's, and a young generation of
 * 2 × 32 MiB instead of V8's 2 × 16 MiB. An application framework allocates
 * tens of KiB per request, and each scavenge costs about as much whether the
 * young generation is 32 or 64 MiB: half as many scavenges cut an Express
 * hello's CPU per request by about a quarter (bench/README.md), for about 30 MiB
 * more RSS under load. The maximum is fixed when a process starts, so only a
 * process started with it gets it: workers here, a single process from its
 * own command line (`node --max-semi-space-size=32 bin/tsgi.js …`).
 */
function workerExecArgv(): string[] {
  if (semiSpaceFlagsGiven()) return process.execArgv;
  return [...process.execArgv, WORKER_SEMI_SPACE];
}

/** The --listen value for the listening socket inherited on fd 0 (systemd, spawn-fcgi, mod_fcgid). */
export const FD_0 = "fd:0";

/** A gateway as its command runs it. */
export interface GatewayCommand<O extends ServerCommandOptions> {
  /** Its name in log lines: `[tsgi] <name>: ...`. */
  name: string;
  /** What to do when fd 0 is no listening socket. */
  inheritedSocketHint: string;
  serve(app: Application, options: O): Promise<RunningServer>;
}

export async function runServerCommand<O extends ServerCommandOptions>(
  spec: string,
  options: O,
  gateway: GatewayCommand<O>,
): Promise<void> {
  const log = (message: string) => process.stderr.write(`[tsgi] ${gateway.name}: ${message}\n`);
  // `--listen fd:0` names the default of fcgi, scgi and uwsgi, and is how `tsgi serve` takes it.
  if (options.listen === FD_0) options = { ...options, listen: undefined };
  if (options.workers !== undefined && cluster.isPrimary) {
    await startPrimary(options.workers, options, gateway.inheritedSocketHint, log);
    return;
  }
  // Before start-up's own allocations, which then take the step: an idle process
  // stays small all the same (untouched young-generation pages are not resident).
  growYoungGenerationAtOnce();
  let app: Application;
  try {
    app = await loadApplicationWith(spec, commandLineLoader({ cacheDir: options.cacheDir }));
  } catch (error) {
    fail(error);
  }
  let running: RunningServer;
  try {
    running = await serve(app, options, gateway, log);
  } catch (error) {
    fail(error);
  }
  const stop = (grace: number) => void running.close(grace).then(() => process.exit(0));
  if (cluster.isWorker) {
    serveAsWorker({ stats: () => running.stats(), stop }, options.grace);
    return;
  }
  stopOnSignals(running, options.grace, log);
  // Only now: whoever waits for this line may signal at once, and before the
  // handlers exist a SIGTERM would kill the process instead of stopping it.
  log(`serving ${spec} on ${running.where} (pid ${process.pid})`);
}

async function startPrimary(
  workers: number | "auto",
  options: ServerCommandOptions,
  inheritedSocketHint: string,
  log: (message: string) => void,
): Promise<void> {
  try {
    await runPrimary({
      workers: workers === "auto" ? availableParallelism() : workers,
      listen: options.listen,
      socketMode: options.socketMode ?? 0o660,
      inheritedSocketHint,
      grace: options.grace,
      execArgv: workerExecArgv(),
      log,
    });
  } catch (error) {
    fail(error);
  }
}

/** The gateway's server as the command runs it: this process is ours, and may be one of several workers. */
function serve<O extends ServerCommandOptions>(
  app: Application,
  options: O,
  gateway: GatewayCommand<O>,
  log: (message: string) => void,
): Promise<RunningServer> {
  const inWorker = cluster.isWorker;
  let retiring = false;
  let running: RunningServer | undefined;
  const onRetire = () => {
    if (retiring) return;
    retiring = true;
    // A worker asks the primary to start its replacement first; alone, the
    // process exits and the web server (mod_fcgid, lighttpd) starts a new one.
    if (inWorker) return askToRetire();
    log(
      `served ${options.maxRequests} requests (--max-requests): exiting after the requests in flight`,
    );
    void running?.close(options.grace).then(() => process.exit(0));
  };
  return gateway
    .serve(app, {
      ...options,
      // Workers share the socket; otherwise the server decides from where it listens.
      multiprocess: inWorker || options.multiprocess ? true : undefined,
      onRetire,
      // This process is ours: its V8 flags may be set (see server/reclaim.ts).
      reclaimBodyMemory: true,
      clusterStatus: inWorker ? askPrimaryForStatus : undefined,
    })
    .then((server) => (running = server));
}

/** SIGTERM/SIGINT: requests in flight get the grace period; a second signal exits at once. */
function stopOnSignals(
  running: RunningServer,
  grace: number,
  log: (message: string) => void,
): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log(`${signal} again: exiting at once`);
      process.exit(1);
    }
    stopping = true;
    log(
      `${signal}: no new connections; ${running.stats().inFlight} request(s) in flight get up to ${grace} s`,
    );
    void running.close(grace).then(() => process.exit(0));
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

function fail(error: unknown): never {
  exitOnStartupError(error, [ListenError]);
}
