// What bench/apps.js and bench/anchors.js share: backends started on free
// ports, one nginx (1 worker) in front of all of them with a server block per
// backend for the way it is reached (fastcgi_pass, proxy_pass, uwsgi_pass,
// scgi_pass), a check that each answers the hello through nginx, and the
// rounds of wrk, interleaved so that the backends compared with each other
// run back to back. The processes are started through the launchers the
// end-to-end tests use (test/helpers/).

import { closeSync, openSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { findBinary } from "../../test/helpers/available.js";
import { startNginx } from "../../test/helpers/nginx.js";
import {
  CLEAN_PATH,
  REPO,
  freePort,
  isRoot,
  sleep,
  waitForListening,
} from "../../test/helpers/processes.js";
import { fill } from "../../test/helpers/templates.js";
import { median, wrk } from "./wrk.js";

/** @typedef {import("../../test/helpers/processes.js").Proc} Proc */
/** @typedef {import("../../test/helpers/processes.js").ProcessGroup} ProcessGroup */
/** @typedef {import("./wrk.js").WrkResult} WrkResult */

/**
 * @typedef {object} Target A backend and how nginx reaches it.
 * @property {string} key
 * @property {string} name
 * @property {"fastcgi" | "http" | "uwsgi" | "scgi"} front
 * @property {(port: number) => Promise<Proc>} start Starts it listening on 127.0.0.1:port.
 */
/**
 * @typedef {Target & { port: number; listenPort: number; proc: Proc }} Running
 * `port`: where the backend listens; `listenPort`: where nginx listens for it.
 */
/**
 * @typedef {object} Samples What the rounds measured for one backend.
 * @property {number[]} rps req/s at the load's concurrency, one per round.
 * @property {number[]} p50 Median latency (ms) at concurrency 1, one per round.
 * @property {number[]} cpu The backend process's CPU time (user + system, µs) per request under the load, one per round.
 * @property {number} non2xx
 * @property {string[]} socketErrors
 */

const TEMPLATES = {
  fastcgi: join(REPO, "bench/fastcgi/nginx-fastcgi.server.template"),
  http: join(REPO, "bench/fastcgi/nginx-proxy.server.template"),
  uwsgi: join(REPO, "bench/lib/nginx-uwsgi.server.template"),
  scgi: join(REPO, "bench/lib/nginx-scgi.server.template"),
};

/** Backends get a clean environment (PATH only), so an inherited NODE_OPTIONS does not change them. */
export const cleanEnv = () => ({ PATH: CLEAN_PATH });

/**
 * Spawns a backend and waits until it accepts on 127.0.0.1:port. With
 * `stderrFile`, its stderr goes to that file instead of into memory (for a
 * backend that logs every request).
 * @param {ProcessGroup} group
 * @param {string} name
 * @param {string} command
 * @param {string[]} args
 * @param {number} port
 * @param {{ stderrFile?: string; env?: Record<string, string> }} [options] `env`: added to the clean one
 */
export async function spawnListening(group, name, command, args, port, options = {}) {
  const file = options.stderrFile;
  const fd = file === undefined ? undefined : openSync(file, "w");
  /** @type {import("node:child_process").StdioOptions} */
  const stdio = ["ignore", "pipe", fd ?? "pipe"];
  const env = { ...cleanEnv(), ...options.env };
  const proc = group.spawn(name, command, args, { env, stdio });
  if (fd !== undefined) closeSync(fd);
  try {
    await waitForListening({ host: "127.0.0.1", port }, 20_000, () => proc.running);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const output = file === undefined ? tail(proc) : readFileSync(file, "utf8").slice(-4000);
    throw new Error(`${name}: ${message}:\n${output}`, { cause: error });
  }
  return proc;
}

/** @param {Proc} proc */
export const tail = (proc, lines = 20) =>
  (proc.stdout + proc.stderr).split("\n").slice(-lines).join("\n");

/**
 * Whether `command args` exits 0 (for example a subcommand's --help).
 * @param {string} command
 * @param {string[]} args
 */
export const succeeds = (command, args) =>
  spawnSync(command, args, { stdio: "ignore", timeout: 20_000 }).status === 0;

/**
 * Throws unless every tool is on PATH.
 * @param {string[]} tools
 */
export function requireTools(tools) {
  if (!succeeds("node", [join(REPO, "bin/tsgi.js"), "--version"]))
    throw new Error("bin/tsgi.js does not run: run `npm run build` first");
  for (const tool of tools)
    if (spawnSync(tool, ["--version"], { stdio: "ignore" }).error)
      throw new Error(`${tool} is not installed`);
}

/**
 * Picks the ports and starts every backend, one after the other.
 * @param {Target[]} targets
 * @returns {Promise<Running[]>}
 */
export async function startTargets(targets) {
  /** @type {Set<number>} */
  const used = new Set();
  const pick = async () => {
    for (;;) {
      const port = await freePort();
      if (!used.has(port)) return (used.add(port), port);
    }
  };
  /** @type {Running[]} */
  const running = [];
  for (const target of targets) {
    const port = await pick();
    const listenPort = await pick();
    running.push({ ...target, port, listenPort, proc: await target.start(port) });
  }
  return running;
}

/**
 * nginx (a master and 1 worker) with a server block per backend.
 * @param {ProcessGroup} group
 * @param {Running[]} running
 * @param {string} dir its prefix directory (and where the per-backend error logs go)
 */
export function startFront(group, running, dir) {
  const servers = running.map((target) =>
    fill(readFileSync(TEMPLATES[target.front], "utf8"), {
      NAME: target.name,
      KEY: target.key,
      UPSTREAM: `backend_${target.key.replace(/[^a-z0-9]/g, "_")}`,
      BACKEND_PORT: String(target.port),
      LISTEN_PORT: String(target.listenPort),
      TMP: dir,
    }),
  );
  const [first, ...rest] = running.map((target) => target.listenPort);
  return startNginx(group, findBinary("nginx", "nginx") ?? "nginx", {
    dir: join(dir, "nginx"),
    port: first,
    morePorts: rest,
    http: servers.join("\n"),
    masterProcess: true,
    // As root, nginx workers would run as nobody, who cannot write into dir.
    user: isRoot ? "root" : undefined,
    workerConnections: 1024,
    errorLogLevel: "warn",
    accessLog: false,
  });
}

/**
 * Fails unless the backend answers GET / through nginx with 200 and `hello`.
 * @param {Running} target
 * @param {string} hello
 */
export async function checkHello(target, hello) {
  const { status, body } = await get(target.listenPort);
  if (status !== 200 || body.trim() !== hello.trim())
    throw new Error(
      `${target.name}: GET / through nginx gave ${status} ${JSON.stringify(body.slice(0, 200))}:\n${tail(target.proc)}`,
    );
}

/**
 * GET / on 127.0.0.1:port, on a connection of its own.
 * @param {number} port
 * @returns {Promise<{ status: number | undefined; body: string }>}
 */
function get(port) {
  return new Promise((resolve, reject) => {
    const signal = AbortSignal.timeout(10_000);
    const req = request({ host: "127.0.0.1", port, path: "/", agent: false, signal }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (/** @type {string} */ chunk) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * The [error] lines nginx logged for one backend's server block.
 * @param {string} dir
 * @param {Running} target
 */
function nginxErrors(dir, target) {
  try {
    const text = readFileSync(join(dir, `error-${target.key}.log`), "utf8");
    return text.split("\n").filter((line) => /\[(error|crit|alert|emerg)\]/.test(line));
  } catch {
    return [];
  }
}

/**
 * What went wrong on the side: non-2xx answers, socket errors, nginx error lines.
 * @param {Running[]} running
 * @param {Map<string, Samples>} samples
 * @param {string} dir
 */
export function sideProblems(running, samples, dir) {
  return running.flatMap((target) => {
    const s = /** @type {Samples} */ (samples.get(target.key));
    const errors = nginxErrors(dir, target);
    return [
      ...(s.non2xx ? [`${target.name}: ${s.non2xx} non-2xx/3xx responses`] : []),
      ...(s.socketErrors.length ? [`${target.name}: socket errors ${s.socketErrors[0]}`] : []),
      ...(errors.length
        ? [`${target.name}: ${errors.length} nginx [error] lines: ${errors[0]}`]
        : []),
    ];
  });
}

/**
 * The rounds. In each, the groups run one after the other (their order
 * rotating), and inside a group its backends run back to back, their order
 * rotating too (A,B then B,A): what is compared is measured close in time.
 * Each backend gets `duration` s of `wrk -c<connections>`, then, if
 * `latency`, `duration` s of `wrk -c1` for its median latency.
 * @param {Running[][]} groups
 * @param {{ rounds: number; duration: number; connections: number; latency: boolean }} options
 */
export async function measureRounds(groups, options) {
  /** @type {Map<string, Samples>} */
  const samples = new Map(
    groups.flat().map((t) => [t.key, { rps: [], p50: [], cpu: [], non2xx: 0, socketErrors: [] }]),
  );
  for (let round = 0; round < options.rounds; round++) {
    const line = [];
    for (const group of rotate(groups, round))
      for (const target of rotate(group, round)) {
        if (!target.proc.running) throw new Error(`${target.name} died:\n${tail(target.proc)}`);
        const got = /** @type {Samples} */ (samples.get(target.key));
        await sleep(300);
        const before = cpuMicros(target.proc.pid);
        const load = await wrk(target.listenPort, {
          seconds: options.duration,
          connections: options.connections,
        });
        got.rps.push(load.rps);
        got.cpu.push((cpuMicros(target.proc.pid) - before) / (load.rps * options.duration));
        note(got, load);
        if (options.latency) {
          const one = await wrk(target.listenPort, { seconds: options.duration, connections: 1 });
          got.p50.push(one.p50);
          note(got, one);
        }
        line.push(`${target.key} ${Math.round(load.rps)}`);
      }
    process.stderr.write(`round ${round + 1}/${options.rounds}: ${line.join(", ")} req/s\n`);
  }
  return samples;
}

/**
 * CPU time (user + system) a process has used so far, in µs, from /proc
 * (clock ticks of 10 ms: over a few seconds of load, enough to compare).
 * @param {number} pid
 */
function cpuMicros(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** @param {Samples} samples @param {WrkResult} result */
function note(samples, result) {
  samples.non2xx += result.non2xx;
  if (result.socketErrors) samples.socketErrors.push(result.socketErrors);
}

/**
 * `list` rotated left by `by` places.
 * @template T
 * @param {T[]} list
 * @param {number} by
 */
const rotate = (list, by) => list.map((_, i) => /** @type {T} */ (list[(i + by) % list.length]));

/**
 * The median over the rounds of a's req/s divided by b's in the same round.
 * @param {Samples} a
 * @param {Samples} b
 */
export const medianRatio = (a, b) => median(a.rps.map((rps, i) => rps / (b.rps[i] ?? NaN)));

/**
 * Runs `main`, stopping every process of `group` at the end, on failure and on Ctrl-C.
 * @param {string} script
 * @param {ProcessGroup} group
 * @param {() => Promise<void>} main
 */
export async function runStopping(script, group, main) {
  // nginx first, gracefully, so it does not log errors about backends going away.
  const stopAll = () => group.cleanUp({ first: "nginx", signal: "SIGQUIT" });
  for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM", "SIGHUP"]))
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: stopping everything\n`);
      setTimeout(() => process.exit(130), 10_000).unref();
      void stopAll().finally(() => process.exit(130));
    });
  try {
    await main();
  } catch (error) {
    process.stderr.write(`${script}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  } finally {
    await stopAll();
  }
}

/** The versions and the machine, for the report. */
export function machineLine() {
  const nginx = spawnSync("nginx", ["-v"], { encoding: "utf8" }).stderr.trim();
  const wrkVersion = spawnSync("wrk", ["-v"], { encoding: "utf8" }).stdout.split(" [")[0];
  const cpu = cpus();
  return (
    `node ${process.version}, ${nginx.replace(/^nginx version: /, "")}, ${wrkVersion?.trim() ?? "wrk"}, ` +
    `${cpu.length} cores (${cpu[0]?.model.trim() ?? "?"}), load average at start ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`
  );
}
