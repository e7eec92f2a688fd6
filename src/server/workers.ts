// Worker processes (node:cluster) for any gateway server: a primary that keeps
// N workers serving one shared listening socket, replaces those that die,
// recycles them after --max-requests, and reloads them on SIGHUP; and the
// worker's side of their conversation.

import cluster, { type Worker } from "node:cluster";
import { chmod, unlink } from "node:fs/promises";
import { checkInheritedSocket, parseListenAddress, removeStaleSocket } from "./listen.js";
import type { ClusterMessage, ClusterStatus, ServerStats } from "./stats.js";

export interface PrimaryOptions {
  workers: number;
  listen: string | undefined;
  socketMode: number;
  /** What the user should do when fd 0 is no listening socket. */
  inheritedSocketHint: string;
  grace: number;
  /** Node flags the workers start with. */
  execArgv: string[];
  log: (message: string) => void;
}

/** Deaths within this window that count as a crash loop. */
const CRASH_WINDOW_MS = 10_000;
const CRASH_LOOP_DEATHS = 5;
const MAX_RESTART_DELAY_MS = 30_000;

/**
 * Runs the primary: forks the workers (each re-runs this same command line
 * and sees `cluster.isWorker`), and manages them until SIGTERM/SIGINT.
 */
export async function runPrimary(options: PrimaryOptions): Promise<void> {
  const socketPath = await prepareListeningSocket(options.listen, options.inheritedSocketHint);
  new Primary(options, socketPath).start();
}

/**
 * Before any worker listens: check the inherited socket, or replace a stale
 * unix socket file. Returns the socket path the primary must chmod and remove.
 */
async function prepareListeningSocket(
  listen: string | undefined,
  hint: string,
): Promise<string | undefined> {
  if (listen === undefined) {
    checkInheritedSocket(hint);
    return undefined;
  }
  const address = parseListenAddress(listen);
  if (!("path" in address)) return undefined;
  await removeStaleSocket(address.path);
  return address.path;
}

export class Primary {
  readonly #options: PrimaryOptions;
  /** The unix socket the primary sets the mode of and removes; undefined for TCP or fd 0. */
  readonly #socketPath: string | undefined;
  readonly #startedAt = new Date();
  readonly #stats = new Map<number, ServerStats>();
  /** Workers that should be serving; others are draining to exit. */
  readonly #serving = new Set<Worker>();
  readonly #retiring = new Set<Worker>();
  readonly #deaths: number[] = [];
  readonly #restartTimers = new Set<NodeJS.Timeout>();
  #restartDelay = 0;
  #stopping = false;
  #socketModeApplied: boolean;

  constructor(options: PrimaryOptions, socketPath: string | undefined) {
    this.#options = options;
    this.#socketPath = socketPath;
    this.#socketModeApplied = socketPath === undefined;
  }

  start(): void {
    // Workers accept on the shared socket themselves: no extra hop through the primary.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ execArgv: this.#options.execArgv });
    cluster.on("exit", (worker, code, signal) => this.#onExit(worker, code, signal));
    for (let i = 0; i < this.#options.workers; i++) this.#fork();
    this.#log(`primary ${process.pid} started ${this.#options.workers} worker(s)`);
    process.on("SIGHUP", () => this.#reload());
    process.on("SIGTERM", (signal) => this.#stop(signal));
    process.on("SIGINT", (signal) => this.#stop(signal));
  }

  #log(message: string): void {
    this.#options.log(message);
  }

  #fork(): Worker {
    const worker = cluster.fork();
    this.#serving.add(worker);
    worker.on("message", (message: ClusterMessage) => this.#onMessage(worker, message));
    return worker;
  }

  #stopWorker(worker: Worker): void {
    this.#serving.delete(worker);
    this.#retiring.add(worker);
    if (worker.isConnected())
      worker.send({ tsgi: "stop", grace: this.#options.grace } satisfies ClusterMessage);
  }

  #onMessage(worker: Worker, message: ClusterMessage | undefined): void {
    switch (message?.tsgi) {
      case "listening":
        this.#applySocketMode();
        worker.emit("tsgi-listening");
        break;
      case "retire":
        this.#replace(worker);
        break;
      case "stats":
        if (worker.process.pid !== undefined) this.#stats.set(worker.process.pid, message.stats);
        break;
      case "status-request":
        if (worker.isConnected())
          worker.send({
            tsgi: "status",
            nonce: message.nonce,
            status: this.#status(),
          } satisfies ClusterMessage);
        break;
    }
  }

  /** Once the first worker has created the unix socket, it gets its mode. */
  #applySocketMode(): void {
    const path = this.#socketPath;
    if (this.#socketModeApplied || path === undefined) return;
    this.#socketModeApplied = true;
    chmod(path, this.#options.socketMode).catch((error: Error) =>
      this.#log(`cannot set the mode of ${path}: ${error.message}`),
    );
  }

  /** A worker reached --max-requests: its replacement takes over first, so no moment passes with one worker fewer. */
  #replace(worker: Worker): void {
    if (this.#stopping || !this.#serving.has(worker)) return;
    this.#log(`worker ${worker.process.pid} reached --max-requests: starting its replacement`);
    this.#fork().once("tsgi-listening", () => this.#stopWorker(worker));
  }

  #status(): ClusterStatus {
    return {
      primaryPid: process.pid,
      startedAt: this.#startedAt.toISOString(),
      workers: [...this.#serving].map((w) => ({
        pid: w.process.pid ?? 0,
        stats: this.#stats.get(w.process.pid ?? 0),
      })),
    };
  }

  #onExit(worker: Worker, code: number, signal: string): void {
    const pid = worker.process.pid ?? 0;
    this.#stats.delete(pid);
    const expected = this.#retiring.delete(worker) || this.#stopping;
    this.#serving.delete(worker);
    if (expected) return;
    this.#log(
      `worker ${pid} died (${signal ? `signal ${signal}` : `exit code ${code}`}); starting a new one`,
    );
    this.#updateRestartDelay();
    // Not unref()'d: with every worker dead this timer is all that keeps the primary alive.
    const timer = setTimeout(() => {
      this.#restartTimers.delete(timer);
      if (!this.#stopping) this.#fork();
    }, this.#restartDelay);
    this.#restartTimers.add(timer);
  }

  /** Workers dying in quick succession are restarted ever more slowly. */
  #updateRestartDelay(): void {
    const now = Date.now();
    const deaths = this.#deaths;
    deaths.push(now);
    while (deaths.length > 0 && now - deaths[0] > CRASH_WINDOW_MS) deaths.shift();
    if (deaths.length < CRASH_LOOP_DEATHS) {
      this.#restartDelay = 0;
      return;
    }
    this.#restartDelay = Math.min(Math.max(this.#restartDelay * 2, 1000), MAX_RESTART_DELAY_MS);
    this.#log(
      `CRASH LOOP: ${deaths.length} workers died within ${CRASH_WINDOW_MS / 1000} s; waiting ${this.#restartDelay / 1000} s before the next start`,
    );
  }

  /** SIGHUP: new workers start; the old ones stop once all the new ones listen. */
  #reload(): void {
    if (this.#stopping) return;
    this.#log("SIGHUP: starting new workers; the old ones finish their requests and exit");
    const old = [...this.#serving];
    const count = this.#options.workers;
    let ready = 0;
    for (let i = 0; i < count; i++) {
      this.#fork().once("tsgi-listening", () => {
        if (++ready === count) for (const worker of old) this.#stopWorker(worker);
      });
    }
  }

  #stop(signal: NodeJS.Signals): void {
    if (this.#stopping) {
      this.#log(`${signal} again: stopping the workers at once`);
      killAllWorkers();
      process.exit(1);
    }
    this.#stopping = true;
    for (const timer of this.#restartTimers) clearTimeout(timer);
    this.#restartTimers.clear();
    const grace = this.#options.grace;
    this.#log(`${signal}: workers finish their requests (up to ${grace} s) and exit`);
    for (const worker of [...this.#serving]) this.#stopWorker(worker);
    setTimeout(killAllWorkers, (grace + 5) * 1000).unref();
    cluster.on("exit", () => void this.#exitWhenAlone());
    void this.#exitWhenAlone();
  }

  async #exitWhenAlone(): Promise<void> {
    if (Object.keys(cluster.workers ?? {}).length > 0) return;
    if (this.#socketPath !== undefined) await unlink(this.#socketPath).catch(() => {});
    process.exit(0);
  }
}

function killAllWorkers(): void {
  for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGKILL");
}

/** A worker's server, as its side of the conversation with the primary sees it. */
export interface WorkerServer {
  stats(): ServerStats;
  /** Finishes the requests in flight (up to `grace` seconds) and exits. */
  stop(grace: number): void;
}

/**
 * In a worker, once its server listens: tells the primary, sends it the
 * figures every second, and stops when the primary says so or is gone.
 */
export function serveAsWorker(server: WorkerServer, grace: number): void {
  process.send?.({ tsgi: "listening" } satisfies ClusterMessage);
  setInterval(
    () => process.send?.({ tsgi: "stats", stats: server.stats() } satisfies ClusterMessage),
    1000,
  ).unref();
  process.on("message", (message: ClusterMessage | undefined) => {
    if (message?.tsgi === "stop") server.stop(message.grace);
  });
  // The primary is gone: finish what is in flight and leave.
  process.on("disconnect", () => server.stop(grace));
  // The primary relays SIGTERM/SIGINT as "stop"; a terminal's Ctrl-C reaches every process.
  process.on("SIGINT", () => {});
  process.on("SIGTERM", () => server.stop(grace));
}

/** A worker asks the primary to start its replacement, then stop it (--max-requests). */
export function askToRetire(): void {
  process.send?.({ tsgi: "retire" } satisfies ClusterMessage);
}

let nextNonce = 1;

/** The status page in a worker shows every worker: the primary has their figures. */
export function askPrimaryForStatus(): Promise<ClusterStatus | undefined> {
  const nonce = nextNonce++;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      process.off("message", onMessage);
      resolve(undefined);
    }, 1000);
    const onMessage = (message: ClusterMessage | undefined) => {
      if (message?.tsgi !== "status" || message.nonce !== nonce) return;
      clearTimeout(timer);
      process.off("message", onMessage);
      resolve(message.status);
    };
    process.on("message", onMessage);
    process.send?.({ tsgi: "status-request", nonce } satisfies ClusterMessage);
  });
}
