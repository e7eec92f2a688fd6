// The pages tsgi answers itself, like PHP-FPM's pm.status_path and ping.path:
// a status page (plain text, or JSON with ?json) and a ping that says "pong".
// Any gateway whose requests carry CGI variables can offer them.

import { readFileSync } from "node:fs";
import type { Server } from "node:net";
import type { Application } from "../types.js";
import type { ClusterStatus, ServerStats } from "./stats.js";

/** One process's figures, as the status page shows them. */
export interface ProcessFigures {
  pid: number;
  requestsServed: number;
  inFlight: number;
  maxInFlight: number;
  errors: number;
  connections: number;
}

export interface StatusReport {
  startedAt: Date;
  /** "single process", or the number of workers under a primary. */
  processManager: string;
  /** Connections waiting to be accepted, where the OS tells (a TCP socket on Linux). */
  listenQueue: number | null;
  processes: ProcessFigures[];
}

export interface BuiltInPages {
  statusPath?: string | undefined;
  pingPath?: string | undefined;
  report: () => Promise<StatusReport>;
}

/** The built-in page a request asks for, if any, by the path of its REQUEST_URI (else SCRIPT_NAME + PATH_INFO). */
export function builtInPage(
  vars: Record<string, string>,
  pages: BuiltInPages,
): Application | undefined {
  const uri = vars.REQUEST_URI;
  const path =
    uri !== undefined ? uri.split("?", 1)[0] : (vars.SCRIPT_NAME ?? "") + (vars.PATH_INFO ?? "");
  if (path === pages.pingPath) return ping;
  if (path === pages.statusPath) return statusPage(pages.report);
  return undefined;
}

const ping: Application = (_environ, startResponse) => {
  startResponse("200 OK", [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Cache-Control", "no-store"],
  ]);
  return ["pong\n"];
};

function statusPage(report: () => Promise<StatusReport>): Application {
  return async (environ, startResponse) => {
    const status = await report();
    const wantsJson = /(^|&)json(=|&|$)/.test(environ.QUERY_STRING);
    startResponse("200 OK", [
      ["Content-Type", wantsJson ? "application/json" : "text/plain; charset=utf-8"],
      ["Cache-Control", "no-store"],
    ]);
    return [wantsJson ? statusJson(status) : statusText(status)];
  };
}

function uptimeSeconds(status: StatusReport): number {
  return Math.round((Date.now() - status.startedAt.getTime()) / 1000);
}

function statusJson(status: StatusReport): string {
  const totals = sumFigures(status.processes);
  const body = {
    "start time": status.startedAt.toISOString(),
    "start since": uptimeSeconds(status),
    "process manager": status.processManager,
    "requests served": totals.requestsServed,
    "in flight": totals.inFlight,
    "max in flight": totals.maxInFlight,
    errors: totals.errors,
    connections: totals.connections,
    "listen queue": status.listenQueue,
    processes: status.processes.map((figures) => ({
      pid: figures.pid,
      "requests served": figures.requestsServed,
      "in flight": figures.inFlight,
      "max in flight": figures.maxInFlight,
      errors: figures.errors,
      connections: figures.connections,
    })),
  };
  return JSON.stringify(body, null, 2) + "\n";
}

function statusText(status: StatusReport): string {
  const totals = sumFigures(status.processes);
  const line = (name: string, value: string | number | null) =>
    `${(name + ":").padEnd(20)}${value ?? "-"}\n`;
  let text =
    line("start time", status.startedAt.toISOString()) +
    line("start since", uptimeSeconds(status)) +
    line("process manager", status.processManager) +
    line("requests served", totals.requestsServed) +
    line("in flight", totals.inFlight) +
    line("max in flight", totals.maxInFlight) +
    line("errors", totals.errors) +
    line("connections", totals.connections) +
    line("listen queue", status.listenQueue);
  text += "\npid       served  in flight  max in flight  errors  connections\n";
  for (const f of status.processes) {
    text += `${String(f.pid).padEnd(10)}${String(f.requestsServed).padStart(6)}${String(f.inFlight).padStart(11)}${String(f.maxInFlight).padStart(15)}${String(f.errors).padStart(8)}${String(f.connections).padStart(13)}\n`;
  }
  return text;
}

function sumFigures(processes: ProcessFigures[]): Omit<ProcessFigures, "pid"> {
  const totals = { requestsServed: 0, inFlight: 0, maxInFlight: 0, errors: 0, connections: 0 };
  for (const f of processes) {
    totals.requestsServed += f.requestsServed;
    totals.inFlight += f.inFlight;
    totals.maxInFlight += f.maxInFlight;
    totals.errors += f.errors;
    totals.connections += f.connections;
  }
  return totals;
}

/**
 * Connections waiting in the accept queue of a TCP listening socket, read from
 * /proc/net/tcp (for a listening socket its rx_queue column is that queue).
 * Null where the OS does not tell: unix sockets, other systems.
 */
export function tcpListenQueue(port: number): number | null {
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "latin1");
    } catch {
      continue;
    }
    for (const row of text.split("\n").slice(1)) {
      const fields = row.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A is LISTEN; tx_queue:rx_queue in hex.
      if (fields.length < 5 || fields[3] !== "0A") continue;
      if (parseInt(fields[1].split(":")[1], 16) !== port) continue;
      return parseInt(fields[4].split(":")[1], 16);
    }
  }
  return null;
}

const zeroFigures = { requestsServed: 0, inFlight: 0, maxInFlight: 0, errors: 0, connections: 0 };

/**
 * The status of this process (`own`), or of every worker when it is one of
 * several (the primary's figures, with this process's own fresher ones).
 */
export async function statusReport(
  server: Server,
  own: ServerStats,
  clusterStatus: (() => Promise<ClusterStatus | undefined>) | undefined,
): Promise<StatusReport> {
  const bound = server.address();
  const listenQueue = bound && typeof bound === "object" ? tcpListenQueue(bound.port) : null;
  const figures = { pid: process.pid, ...own };
  const cluster = await clusterStatus?.();
  if (cluster === undefined)
    return {
      startedAt: own.startedAt,
      processManager: "single process",
      listenQueue,
      processes: [figures],
    };
  return {
    startedAt: new Date(cluster.startedAt),
    processManager: `${cluster.workers.length} workers (primary ${cluster.primaryPid})`,
    listenQueue,
    processes: cluster.workers.map((worker) =>
      worker.pid === process.pid ? figures : { pid: worker.pid, ...zeroFigures, ...worker.stats },
    ),
  };
}
