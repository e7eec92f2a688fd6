// Worker processes for `tsgi fcgi --workers N` (node:cluster): a primary that
// keeps N workers serving one shared listening socket, replaces those that
// die, recycles them after --max-requests, and reloads them on SIGHUP.

import cluster, { type Worker } from "node:cluster";
import { chmod, unlink } from "node:fs/promises";
import type { FastCgiStats } from "./server.js";
import { parseListenAddress, removeStaleSocket, checkInheritedSocket } from "./server.js";

/** Messages between the primary and its workers. */
export type ClusterMessage =
  | { tsgi: "listening" }
  | { tsgi: "retire" }
  | { tsgi: "stop"; grace: number }
  | { tsgi: "stats"; stats: FastCgiStats }
  | { tsgi: "status-request"; nonce: number }
  | { tsgi: "status"; nonce: number; status: ClusterStatus };

export interface WorkerStatus {
  pid: number;
  stats: FastCgiStats | undefined;
}

export interface ClusterStatus {
  primaryPid: number;
  startedAt: string;
  workers: WorkerStatus[];
}

export interface PrimaryOptions {
  workers: number;
  listen: string | undefined;
  socketMode: number;
  grace: number;
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
  const { log } = options;
  const socketPath = await prepareListeningSocket(options.listen);
  // Workers accept on the shared socket themselves: no extra hop through the primary.
  cluster.schedulingPolicy = cluster.SCHED_NONE;

  const startedAt = new Date();
  const stats = new Map<number, FastCgiStats>();
  /** Workers that should be serving; others are draining to exit. */
  const serving = new Set<Worker>();
  const retiring = new Set<Worker>();
  const deaths: number[] = [];
  let restartDelay = 0;
  const restartTimers = new Set<NodeJS.Timeout>();
  let stopping = false;
  let socketModeApplied = socketPath === undefined;

  const fork = (): Worker => {
    const worker = cluster.fork();
    serving.add(worker);
    worker.on("message", (message: ClusterMessage) => onMessage(worker, message));
    return worker;
  };

  const stopWorker = (worker: Worker) => {
    serving.delete(worker);
    retiring.add(worker);
    if (worker.isConnected())
      worker.send({ tsgi: "stop", grace: options.grace } satisfies ClusterMessage);
  };

  const onMessage = (worker: Worker, message: ClusterMessage) => {
    switch (message?.tsgi) {
      case "listening":
        if (!socketModeApplied && socketPath !== undefined) {
          socketModeApplied = true;
          chmod(socketPath, options.socketMode).catch((error: Error) =>
            log(`cannot set the mode of ${socketPath}: ${error.message}`),
          );
        }
        worker.emit("tsgi-listening");
        break;
      case "retire": {
        // Its replacement takes over first, so no moment passes with one worker fewer.
        if (stopping || !serving.has(worker)) break;
        log(`worker ${worker.process.pid} reached --max-requests: starting its replacement`);
        const replacement = fork();
        replacement.once("tsgi-listening", () => stopWorker(worker));
        break;
      }
      case "stats":
        if (worker.process.pid !== undefined) stats.set(worker.process.pid, message.stats);
        break;
      case "status-request": {
        const status: ClusterStatus = {
          primaryPid: process.pid,
          startedAt: startedAt.toISOString(),
          workers: [...serving].map((w) => ({
            pid: w.process.pid ?? 0,
            stats: stats.get(w.process.pid ?? 0),
          })),
        };
        if (worker.isConnected())
          worker.send({ tsgi: "status", nonce: message.nonce, status } satisfies ClusterMessage);
        break;
      }
    }
  };

  cluster.on("exit", (worker, code, signal) => {
    const pid = worker.process.pid ?? 0;
    stats.delete(pid);
    const expected = retiring.delete(worker) || stopping;
    serving.delete(worker);
    if (expected) return;
    log(
      `worker ${pid} died (${signal ? `signal ${signal}` : `exit code ${code}`}); starting a new one`,
    );
    const now = Date.now();
    deaths.push(now);
    while (deaths.length > 0 && now - deaths[0]! > CRASH_WINDOW_MS) deaths.shift();
    if (deaths.length >= CRASH_LOOP_DEATHS) {
      restartDelay = Math.min(Math.max(restartDelay * 2, 1000), MAX_RESTART_DELAY_MS);
      log(
        `CRASH LOOP: ${deaths.length} workers died within ${CRASH_WINDOW_MS / 1000} s; waiting ${restartDelay / 1000} s before the next start`,
      );
    } else {
      restartDelay = 0;
    }
    // Not unref()'d: with every worker dead this timer is all that keeps the primary alive.
    const timer = setTimeout(() => {
      restartTimers.delete(timer);
      if (!stopping) fork();
    }, restartDelay);
    restartTimers.add(timer);
  });

  for (let i = 0; i < options.workers; i++) fork();
  log(`primary ${process.pid} started ${options.workers} worker(s)`);

  process.on("SIGHUP", () => {
    if (stopping) return;
    log("SIGHUP: starting new workers; the old ones finish their requests and exit");
    const old = [...serving];
    let ready = 0;
    for (let i = 0; i < options.workers; i++) {
      fork().once("tsgi-listening", () => {
        if (++ready === options.workers) for (const worker of old) stopWorker(worker);
      });
    }
  });

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      log(`${signal} again: stopping the workers at once`);
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGKILL");
      process.exit(1);
    }
    stopping = true;
    for (const timer of restartTimers) clearTimeout(timer);
    restartTimers.clear();
    log(`${signal}: workers finish their requests (up to ${options.grace} s) and exit`);
    for (const worker of [...serving]) stopWorker(worker);
    const deadline = setTimeout(
      () => {
        for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGKILL");
      },
      (options.grace + 5) * 1000,
    );
    deadline.unref();
    const finish = async () => {
      if (Object.keys(cluster.workers ?? {}).length > 0) return;
      if (socketPath !== undefined) await unlink(socketPath).catch(() => {});
      process.exit(0);
    };
    cluster.on("exit", () => void finish());
    void finish();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

/**
 * Before any worker listens: check the inherited socket, or replace a stale
 * unix socket file. Returns the socket path the primary must chmod and remove.
 */
async function prepareListeningSocket(listen: string | undefined): Promise<string | undefined> {
  if (listen === undefined) {
    checkInheritedSocket();
    return undefined;
  }
  const address = parseListenAddress(listen);
  if (!("path" in address)) return undefined;
  await removeStaleSocket(address.path);
  return address.path;
}
