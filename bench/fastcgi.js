#!/usr/bin/env node
// FastCGI behind nginx, measured in one run: `tsgi fcgi`, node-fastcgi with the
// same application, Go's net/http/fcgi (if `go` is installed) and, as the
// baseline, a node:http server behind nginx `proxy_pass` (what a Node user
// would otherwise do). The applications are in bench/fastcgi/.
//
// usage: node bench/fastcgi.js [--rounds 5] [--duration 5] [--cpu-prof]
//        node bench/fastcgi.js upload [--size-mib 100] [--delay-ms 2000] [--rounds 1]
//        --only tsgi,node-fastcgi,go,node-http   runs only those backends (the load
//        part always keeps node-http, its baseline)
//
// Load part: `wrk -t1 -c16` against nginx (1 worker) for each backend, round
// after round in a rotating order. nginx keeps its upstream connections open
// (`keepalive 32`, with `fastcgi_keep_conn on`, or `proxy_http_version 1.1`
// and an empty Connection header). Each round's req/s of a backend is divided
// by node:http's req/s in the same round; the table shows the median of those
// per-round ratios, the median req/s and p99 latency over the rounds, the
// backend's RSS after its load (median over the rounds) and the `[error]`
// lines nginx logged for that backend during the rounds (0 expected). A
// second table gives the CPU the backend and the nginx worker used while wrk
// ran (from /proc/<pid>/stat), also per request: less noisy than req/s when
// other work shares the machine.
// --cpu-prof runs the tsgi and node:http backends under `node --cpu-prof`
// (which slows them) and prints their top self-time functions at the end.
//
// Upload part: one POST of --size-mib MiB per backend through nginx with
// request buffering off, to the same applications, which hash the body with
// SHA-256 (checked against the hash of what was sent): once reading at once,
// once starting to read --delay-ms late. Each case runs on a freshly started
// backend; the table shows its peak RSS above idle, from VmRSS sampled every
// 50 ms and from VmHWM (reset through /proc/<pid>/clear_refs before the
// upload, so it is the true peak).
//
// Backends listen on 127.0.0.1 ports found free at run time; nginx runs from a
// temp dir with a generated config; every process started here is stopped at
// the end, also on failure or Ctrl-C. Backends get a clean environment (PATH
// only), so an inherited NODE_OPTIONS does not change them.

import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { request } from "node:http";
import { connect, createServer } from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const here = join(root, "bench/fastcgi");
const node = process.execPath;
const MiB = 1024 * 1024;
const HELLO = "Hello, world!\n";

// ---------------------------------------------------------------- arguments

function parseArgs(argv) {
  const options = {
    mode: "load",
    rounds: undefined,
    duration: 5,
    sizeMiB: 100,
    delayMs: 2000,
    cpuProf: false,
    only: undefined,
  };
  const value = (i, name) => {
    const v = argv[i + 1];
    if (v === undefined || !/^[0-9]+(\.[0-9]+)?$/.test(v) || Number(v) <= 0)
      usage(`${name} needs a positive number`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "upload" || arg === "--upload") options.mode = "upload";
    else if (arg === "--rounds") options.rounds = Math.round(value(i++, arg));
    else if (arg === "--duration") options.duration = value(i++, arg);
    else if (arg === "--size-mib") options.sizeMiB = Math.round(value(i++, arg));
    else if (arg === "--delay-ms") options.delayMs = Math.round(value(i++, arg));
    else if (arg === "--cpu-prof") options.cpuProf = true;
    else if (arg === "--only") {
      if (!argv[i + 1]) usage("--only needs a list such as tsgi,go");
      options.only = argv[++i].split(",").map((key) => key.trim());
    } else if (arg === "-h" || arg === "--help") usage();
    else usage(`unknown argument ${arg}`);
  }
  options.rounds ??= options.mode === "load" ? 5 : 1;
  return options;
}

function usage(message) {
  if (message) process.stderr.write(`bench/fastcgi.js: ${message}\n`);
  process.stderr.write(
    "usage: node bench/fastcgi.js [--rounds 5] [--duration 5] [--cpu-prof]\n" +
      "       node bench/fastcgi.js upload [--size-mib 100] [--delay-ms 2000] [--rounds 1]\n" +
      "       --only tsgi,node-fastcgi,go,node-http: only those backends\n",
  );
  process.exit(message ? 2 : 0);
}

// ------------------------------------------------------ processes and cleanup

const tmp = mkdtempSync(join(tmpdir(), "tsgi-bench-fastcgi-"));
/** @type {Set<import("node:child_process").ChildProcess>} */
const children = new Set();
let cleaningUp = false;

function alive(child) {
  return child.exitCode === null && child.signalCode === null;
}

/** Starts a long-lived process with its output in a log file under tmp. */
function start(name, command, args, env = cleanEnv()) {
  const logFile = join(tmp, `${name.replace(/[^a-z0-9]+/gi, "_")}.${Date.now()}.log`);
  const fd = openSync(logFile, "a");
  const child = spawn(command, args, { env, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  child.logFile = logFile;
  child.label = name;
  children.add(child);
  child.on("exit", () => children.delete(child));
  child.on("error", (error) => process.stderr.write(`${name}: ${error.message}\n`));
  return child;
}

function cleanEnv() {
  return { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin" };
}

/** Sends `signal`, waits up to `timeoutMs` for the exit, then SIGKILL. */
async function stop(child, signal = "SIGTERM", timeoutMs = 5000) {
  if (!alive(child)) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill(signal);
  const done = await Promise.race([exited.then(() => true), sleep(timeoutMs).then(() => false)]);
  if (!done && alive(child)) {
    child.kill("SIGKILL");
    await Promise.race([exited, sleep(2000)]);
  }
}

async function stopAll() {
  // nginx first, so it does not log errors about backends going away.
  const list = [...children].sort((a, b) => (b.label === "nginx") - (a.label === "nginx"));
  for (const child of list) await stop(child, child.label === "nginx" ? "SIGQUIT" : "SIGTERM");
}

function killAllSync() {
  for (const child of children) if (alive(child)) child.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
}

process.on("exit", killAllSync);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    if (cleaningUp) process.exit(130);
    cleaningUp = true;
    process.stderr.write(`\n${signal}: stopping everything\n`);
    const timer = setTimeout(() => process.exit(130), 10_000);
    stopAll().finally(() => {
      clearTimeout(timer);
      process.exit(130);
    });
  });
}

function tail(file, lines = 20) {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

// ------------------------------------------------------------------ helpers

async function freePorts(count) {
  const servers = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      await new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", resolve);
      });
      servers.push(server);
    }
    return servers.map((server) => server.address().port);
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    const timer = setTimeout(() => finish(false), 500);
    function finish(ok) {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    }
    socket.once("connect", () => finish(true));
    socket.once("error", () => finish(false));
  });
}

/** Waits until something accepts on `port`, bounded; fails early if `child` exits. */
async function waitForPort(port, child, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && !alive(child))
      throw new Error(
        `${child.label} exited (${child.exitCode ?? child.signalCode}) before listening:\n${tail(child.logFile)}`,
      );
    if (await canConnect(port)) return;
    await sleep(100);
  }
  throw new Error(
    `nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms${child ? ` (${child.label}):\n${tail(child.logFile)}` : ""}`,
  );
}

/** One HTTP request through nginx; resolves { status, headers, body }. */
function httpRequest(
  port,
  { method = "GET", path = "/", headers = {}, body, timeoutMs = 10_000 } = {},
) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        headers,
        agent: false,
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        const chunks = [];
        res.on("data", (chunk) => chunks.push(chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("latin1"),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (body === undefined) req.end();
    else pipeline(body, req).catch(reject);
  });
}

/** Runs a command to completion, bounded; resolves { code, stdout, stderr }. */
function run(command, args, { env = cleanEnv(), timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    child.label = command;
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")}: still running after ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      children.delete(child);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** VmRSS, VmHWM of a process, in KiB (undefined if it is gone). */
function memory(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return {
      rss: Number(/^VmRSS:\s+(\d+)/m.exec(status)[1]),
      hwm: Number(/^VmHWM:\s+(\d+)/m.exec(status)[1]),
    };
  } catch {
    return undefined;
  }
}

const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout) || 100;

/** CPU time (user + system) a process has used so far, in seconds (NaN if it is gone). */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime (fields 14, 15)
  } catch {
    return NaN;
  }
}

/** The pids of the children of `pid` (nginx's workers). */
function childPids(pid) {
  const found = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid)
        found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Resets VmHWM to the current RSS (Linux >= 4.0); false if not allowed. */
function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** Reads what was appended to an nginx error log since `offset`. */
function logSince(file, offset) {
  if (!existsSync(file)) return { text: "", offset: 0 };
  const size = statSync(file).size;
  if (size <= offset) return { text: "", offset: size };
  const fd = openSync(file, "r");
  try {
    const buffer = Buffer.alloc(size - offset);
    let read = 0;
    while (read < buffer.length) {
      const n = readSync(fd, buffer, read, buffer.length - read, offset + read);
      if (n <= 0) break;
      read += n;
    }
    return { text: buffer.subarray(0, read).toString("utf8"), offset: offset + read };
  } finally {
    closeSync(fd);
  }
}

const errorLines = (text) => text.split("\n").filter((line) => line.includes("[error]"));
/** An nginx log line without its time stamp, pid, connection and client parts, for grouping. */
const errorKind = (line) =>
  line
    .replace(/^\S+ \S+ \[error\] \d+#\d+: \*\d+ /, "")
    .replace(/, client: .*$/, "")
    .replace(/:\d{2,5}\b/g, ":PORT");

const median = (values) => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

const fmtMiB = (kib) => (Number.isFinite(kib) ? (kib / 1024).toFixed(1) : "–");

// ----------------------------------------------------------------- backends

function goAvailable() {
  const result = spawnSync("go", ["version"], { encoding: "utf8", timeout: 10_000 });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

async function buildGo() {
  const output = join(tmp, "go-fcgi");
  // go needs HOME (or GOCACHE) for its build cache: build with the full environment.
  const result = await run("go", ["build", "-o", output, join(here, "go-fcgi.go")], {
    env: process.env,
    timeoutMs: 300_000,
  });
  if (result.code !== 0) throw new Error(`go build failed:\n${result.stderr}`);
  return output;
}

/** The backends in table order; node:http behind proxy_pass is the baseline. */
function backendList(goBinary, cpuProf) {
  const list = [
    {
      key: "tsgi",
      name: "tsgi fcgi",
      kind: "fastcgi",
      command: (port) => [
        node,
        [
          ...(cpuProf ? ["--cpu-prof", "--cpu-prof-dir", join(tmp, "cpu-prof-tsgi")] : []),
          join(root, "bin/tsgi.js"),
          "fcgi",
          join(here, "tsgi-app.js"),
          "--listen",
          `127.0.0.1:${port}`,
          "--grace",
          "1",
        ],
      ],
    },
    {
      key: "node-fastcgi",
      name: "node-fastcgi",
      kind: "fastcgi",
      command: (port) => [node, [join(here, "node-fastcgi-app.cjs"), String(port)]],
    },
  ];
  if (goBinary) {
    list.push({
      key: "go",
      name: "Go net/http/fcgi",
      kind: "fastcgi",
      command: (port) => [goBinary, [`127.0.0.1:${port}`]],
    });
  }
  list.push({
    key: "node-http",
    name: "node:http behind proxy_pass",
    kind: "http",
    baseline: true,
    command: (port) => [
      node,
      [
        ...(cpuProf ? ["--cpu-prof", "--cpu-prof-dir", join(tmp, "cpu-prof-node-http")] : []),
        join(here, "node-http-app.js"),
        String(port),
      ],
    ],
  });
  return list;
}

async function startBackend(backend) {
  const [command, args] = backend.command(backend.port);
  const child = start(backend.key, command, args);
  await waitForPort(backend.port, child);
  backend.child = child;
  return child;
}

function writeNginxConfig(backends, maxBodyMiB) {
  const fill = (template, values) =>
    template.replace(/@([A-Z_]+)@/g, (whole, name) => (name in values ? values[name] : whole));
  const servers = backends.map((backend) => {
    const file =
      backend.kind === "fastcgi" ? "nginx-fastcgi.server.template" : "nginx-proxy.server.template";
    return fill(readFileSync(join(here, file), "utf8"), {
      NAME: backend.name,
      KEY: backend.key,
      UPSTREAM: `backend_${backend.key.replace(/[^a-z0-9]/g, "_")}`,
      BACKEND_PORT: String(backend.port),
      LISTEN_PORT: String(backend.listenPort),
      TMP: tmp,
    });
  });
  const config = fill(readFileSync(join(here, "nginx.conf.template"), "utf8"), {
    // As root, nginx workers would run as nobody, who cannot write into tmp.
    USER: process.getuid?.() === 0 ? "user root;" : "",
    TMP: tmp,
    MAX_BODY: `${Math.max(1, maxBodyMiB + 1)}m`,
    SERVERS: servers.join("\n"),
  });
  const file = join(tmp, "nginx.conf");
  writeFileSync(file, config);
  for (const backend of backends) backend.errorLog = join(tmp, `error-${backend.key}.log`);
  return file;
}

async function startNginx(configFile, backends) {
  const test = await run("nginx", ["-t", "-q", "-p", tmp, "-c", configFile], { timeoutMs: 15_000 });
  if (test.code !== 0) throw new Error(`nginx -t failed:\n${test.stderr}`);
  const child = start("nginx", "nginx", ["-p", tmp, "-c", configFile]);
  for (const backend of backends) await waitForPort(backend.listenPort, child);
  return child;
}

async function checkHello(backend) {
  const res = await httpRequest(backend.listenPort);
  const problems = [];
  if (res.status !== 200) problems.push(`status ${res.status}`);
  if (res.body !== HELLO) problems.push(`body ${JSON.stringify(res.body.slice(0, 200))}`);
  if (!String(res.headers["content-type"]).startsWith("text/plain"))
    problems.push(`content-type ${res.headers["content-type"]}`);
  if (res.headers["content-length"] !== String(HELLO.length))
    problems.push(
      `content-length ${res.headers["content-length"]} (transfer-encoding ${res.headers["transfer-encoding"]})`,
    );
  if (problems.length)
    throw new Error(
      `${backend.name}: unexpected hello response through nginx: ${problems.join(", ")}`,
    );
}

async function setup(options, maxBodyMiB) {
  if (!existsSync(join(root, "dist/cli/main.js")))
    throw new Error("dist/ is missing: run `npm run build` first");
  for (const [tool, args] of [
    ["nginx", ["-v"]],
    ...(options.mode === "load" ? [["wrk", ["-v"]]] : []),
  ]) {
    const r = spawnSync(tool, args, { encoding: "utf8", timeout: 10_000 });
    if (r.error) throw new Error(`${tool} is not installed (${r.error.message})`);
  }
  const goVersion = goAvailable();
  const goBinary =
    goVersion && (!options.only || options.only.includes("go")) ? await buildGo() : undefined;
  let backends = backendList(goBinary, options.cpuProf);
  if (options.only) {
    const unknown = options.only.filter((key) => !backends.some((b) => b.key === key));
    if (unknown.length)
      throw new Error(
        `--only: unknown backend(s) ${unknown.join(", ")} (have ${backends.map((b) => b.key).join(", ")})`,
      );
    backends = backends.filter(
      (b) => options.only.includes(b.key) || (b.baseline && options.mode === "load"),
    );
  }
  const ports = await freePorts(backends.length * 2);
  backends.forEach((backend, i) => {
    backend.port = ports[2 * i];
    backend.listenPort = ports[2 * i + 1];
  });
  const configFile = writeNginxConfig(backends, maxBodyMiB);
  return { backends, configFile, goVersion };
}

function setupLine(goVersion) {
  const nginxVersion = spawnSync("nginx", ["-v"], { encoding: "utf8" })
    .stderr.trim()
    .replace(/^nginx version: /, "");
  const wrkVersion = (spawnSync("wrk", ["-v"], { encoding: "utf8" }).stdout || "")
    .split("\n")[0]
    .split(" [")[0]
    .trim();
  const cpu = cpus();
  return (
    `node ${process.version}, ${nginxVersion}, ${wrkVersion || "wrk"}, ` +
    `${goVersion ? goVersion.replace(/^go version /, "") : "no go (Go backend skipped)"}, ` +
    `${cpu.length} cores (${cpu[0]?.model.trim() ?? "?"}), load average at start ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`
  );
}

// ---------------------------------------------------------------- load part

async function wrk(port, seconds) {
  const args = ["-t1", "-c16", `-d${seconds}s`, "--latency", `http://127.0.0.1:${port}/`];
  const result = await run("wrk", args, { timeoutMs: (seconds + 30) * 1000 });
  if (result.code !== 0)
    throw new Error(
      `wrk ${args.join(" ")} failed (${result.code}):\n${result.stdout}${result.stderr}`,
    );
  const text = result.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
  const p99Match = /^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(text);
  const unit = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
  const p99 = p99Match ? Number(p99Match[1]) * unit[p99Match[2]] : NaN;
  const requests = Number(/(\d+) requests in/.exec(text)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const socketErrors = /Socket errors: (.*)/.exec(text)?.[1];
  if (!Number.isFinite(rps)) throw new Error(`cannot read wrk output:\n${text}`);
  return { rps, p99, requests, non2xx, socketErrors };
}

async function loadPart(options) {
  const { backends, configFile, goVersion } = await setup(options, 1);
  console.log(`Setup: ${setupLine(goVersion)}`);
  for (const backend of backends) await startBackend(backend);
  const nginx = await startNginx(configFile, backends);
  for (const backend of backends) await checkHello(backend);
  const nginxWorkers = childPids(nginx.pid);
  const nginxCpu = () => nginxWorkers.reduce((sum, pid) => sum + cpuSeconds(pid), 0);

  const offsets = new Map(backends.map((b) => [b.key, 0]));
  const warmupErrors = new Map();
  const takeErrors = (backend) => {
    const { text, offset } = logSince(backend.errorLog, offsets.get(backend.key));
    offsets.set(backend.key, offset);
    return errorLines(text);
  };

  const warmup = Math.min(2, options.duration);
  process.stderr.write(`warm-up: ${warmup} s per backend\n`);
  for (const backend of backends) {
    await wrk(backend.listenPort, warmup);
    warmupErrors.set(backend.key, takeErrors(backend));
  }

  const results = new Map(
    backends.map((b) => [
      b.key,
      {
        rps: [],
        p99: [],
        rss: [],
        ratios: [],
        errors: [],
        non2xx: 0,
        socketErrors: [],
        backendCpu: [],
        nginxCpu: [],
      },
    ]),
  );
  const baseline = backends.find((b) => b.baseline);
  for (let round = 0; round < options.rounds; round++) {
    const roundRps = new Map();
    const line = [];
    // Rotate the order so no backend always runs right after another.
    for (let k = 0; k < backends.length; k++) {
      const backend = backends[(round + k) % backends.length];
      if (!alive(backend.child))
        throw new Error(`${backend.name} died:\n${tail(backend.child.logFile)}`);
      await sleep(500);
      const cpuBefore = [cpuSeconds(backend.child.pid), nginxCpu()];
      const wallBefore = performance.now();
      const r = await wrk(backend.listenPort, options.duration);
      const wall = (performance.now() - wallBefore) / 1000;
      const mem = memory(backend.child.pid);
      const result = results.get(backend.key);
      result.backendCpu.push((100 * (cpuSeconds(backend.child.pid) - cpuBefore[0])) / wall);
      result.nginxCpu.push((100 * (nginxCpu() - cpuBefore[1])) / wall);
      result.rps.push(r.rps);
      result.p99.push(r.p99);
      result.rss.push(mem?.rss);
      result.errors.push(...takeErrors(backend));
      result.non2xx += r.non2xx;
      if (r.socketErrors) result.socketErrors.push(r.socketErrors);
      roundRps.set(backend.key, r.rps);
      line.push(`${backend.key} ${Math.round(r.rps)}`);
    }
    for (const backend of backends)
      results.get(backend.key).ratios.push(roundRps.get(backend.key) / roundRps.get(baseline.key));
    process.stderr.write(`round ${round + 1}/${options.rounds}: ${line.join(", ")} req/s\n`);
  }

  const mainErrors = errorLines(logSince(join(tmp, "error-main.log"), 0).text);
  await stopAll();

  console.log();
  console.log(
    `FastCGI hello world behind nginx (1 worker), wrk -t1 -c16, ${options.rounds} rounds × ${options.duration} s, upstream keepalive 32`,
  );
  console.log(
    "| backend | median req/s | ratio to node:http proxy_pass | p99 latency | backend RSS (MiB, after the load) | nginx [error] lines |",
  );
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const backend of backends) {
    const r = results.get(backend.key);
    console.log(
      `| ${backend.name} | ${Math.round(median(r.rps))} | ${median(r.ratios).toFixed(2)}× | ${median(r.p99).toFixed(2)} ms | ` +
        `${fmtMiB(median(r.rss))} | ${r.errors.length} |`,
    );
  }
  console.log();
  console.log(
    "CPU while wrk ran (median over the rounds; 100% = one core of " + cpus().length + "):",
  );
  console.log(
    "| backend | backend CPU | nginx worker CPU | backend CPU µs per request | nginx CPU µs per request |",
  );
  console.log("|---|---:|---:|---:|---:|");
  for (const backend of backends) {
    const r = results.get(backend.key);
    const perRequest = (cpu) => median(cpu.map((c, i) => (c / 100 / r.rps[i]) * 1e6)).toFixed(0);
    console.log(
      `| ${backend.name} | ${median(r.backendCpu).toFixed(0)}% | ${median(r.nginxCpu).toFixed(0)}% | ${perRequest(r.backendCpu)} | ${perRequest(r.nginxCpu)} |`,
    );
  }
  console.log();
  console.log("Per-round req/s (ratio to node:http in the same round):");
  for (const backend of backends) {
    const r = results.get(backend.key);
    console.log(
      `- ${backend.name}: ${r.rps.map((v, i) => `${Math.round(v)} (${r.ratios[i].toFixed(2)}×)`).join(", ")}`,
    );
  }

  const notes = [];
  for (const backend of backends) {
    const r = results.get(backend.key);
    if (r.non2xx) notes.push(`${backend.name}: wrk saw ${r.non2xx} non-2xx/3xx responses`);
    if (r.socketErrors.length)
      notes.push(`${backend.name}: wrk socket errors: ${r.socketErrors.join("; ")}`);
    const warm = warmupErrors.get(backend.key);
    if (warm.length)
      notes.push(
        `${backend.name}: ${warm.length} nginx [error] lines during the warm-up (not counted above)`,
      );
    notes.push(...describeErrors(backend.name, r.errors));
  }
  if (mainErrors.length)
    notes.push(`nginx main error log: ${mainErrors.length} [error] lines, e.g. ${mainErrors[0]}`);
  for (const backend of backends) {
    const log = readFileSync(backend.child.logFile, "utf8")
      .trim()
      .split("\n")
      .filter((l) => l && !/serving .* on /.test(l) && !/SIGTERM|SIGINT/.test(l));
    if (log.length)
      notes.push(
        `${backend.name} wrote ${log.length} line(s) to stderr/stdout, e.g. ${log.slice(0, 3).join(" | ")}`,
      );
  }
  if (notes.length) {
    console.log();
    console.log("Notes:");
    for (const note of notes) console.log(`- ${note}`);
  }

  if (options.cpuProf)
    for (const backend of backends)
      if (backend.key === "tsgi" || backend.key === "node-http") printProfile(backend);
}

function describeErrors(name, lines) {
  if (lines.length === 0) return [];
  const kinds = new Map();
  for (const line of lines) {
    const kind = errorKind(line);
    const entry = kinds.get(kind) ?? { count: 0, example: line };
    entry.count++;
    kinds.set(kind, entry);
  }
  return [...kinds.values()]
    .sort((a, b) => b.count - a.count)
    .slice(0, 5)
    .map(({ count, example }) => `${name}: ${count}× \`${example}\``);
}

/** Top self-time functions of a backend's CPU profile, as shares of its busy time. */
function printProfile(backend) {
  const dir = join(tmp, `cpu-prof-${backend.key}`);
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")) : [];
  if (files.length === 0) {
    console.log(`\nno CPU profile was written for ${backend.name} (did it exit cleanly?)`);
    return;
  }
  const saved = join(tmpdir(), `${backend.key}-fcgi-bench-${Date.now()}.cpuprofile`);
  copyFileSync(join(dir, files[0]), saved);
  const profile = JSON.parse(readFileSync(saved, "utf8"));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id).callFrame;
    const dt = profile.timeDeltas[i] ?? 0;
    if (frame.functionName === "(idle)") return;
    const where = frame.url
      ? `${frame.url.replace(`file://${root}/`, "")}:${frame.lineNumber + 1}`
      : "";
    const key = `${frame.functionName || "(anonymous)"} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
    busy += dt;
  });
  console.log(
    `\n${backend.name} CPU profile (${saved}): busy ${(busy / 1e6).toFixed(1)} s, top self time:`,
  );
  console.log("| self ms | % of busy | function |");
  console.log("|---:|---:|---|");
  for (const [key, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 20)) {
    console.log(`| ${(us / 1000).toFixed(0)} | ${((100 * us) / busy).toFixed(1)} | \`${key}\` |`);
  }
}

// -------------------------------------------------------------- upload part

/** `size` bytes of deterministic pseudo-random data in 64 KiB chunks; hashes what it yields. */
function* generatedBody(size, hash) {
  const blockSize = MiB;
  const block = Buffer.alloc(blockSize);
  let x = 0x2545f491;
  for (let i = 0; i < blockSize; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    block.writeInt32LE(x | 0, i);
  }
  const chunkSize = 64 * 1024;
  for (let sent = 0, n = 0; sent < size; n++) {
    const length = Math.min(chunkSize, size - sent);
    const offset = (n * chunkSize) % blockSize;
    const chunk = Buffer.from(block.subarray(offset, offset + length));
    if (length >= 4) chunk.writeUInt32LE(n, 0);
    hash.update(chunk);
    sent += length;
    yield chunk;
  }
}

async function uploadCase(backend, options, delayMs) {
  const child = await startBackend(backend);
  const pid = child.pid;
  try {
    // Warm up: a few hellos and a 1 MiB upload, then let the process settle.
    for (let i = 0; i < 20; i++) await checkHello(backend);
    const small = await httpRequest(backend.listenPort, {
      method: "POST",
      path: "/upload",
      headers: { "Content-Type": "application/octet-stream", "Content-Length": String(MiB) },
      body: Readable.from(generatedBody(MiB, createHash("sha256"))),
    });
    if (small.status !== 200)
      throw new Error(
        `${backend.name}: warm-up upload got status ${small.status}: ${small.body.slice(0, 200)}`,
      );
    await sleep(1000);

    const idle = memory(pid);
    const peakReset = resetPeak(pid);
    let peakRss = idle.rss;
    let samples = 0;
    const sampler = setInterval(() => {
      const m = memory(pid);
      if (m) {
        samples++;
        if (m.rss > peakRss) peakRss = m.rss;
      }
    }, 50);

    const logOffset = existsSync(backend.errorLog) ? statSync(backend.errorLog).size : 0;
    const size = options.sizeMiB * MiB;
    const hash = createHash("sha256");
    const started = process.hrtime.bigint();
    let res;
    try {
      res = await httpRequest(backend.listenPort, {
        method: "POST",
        path: `/upload?delay=${delayMs}`,
        headers: { "Content-Type": "application/octet-stream", "Content-Length": String(size) },
        body: Readable.from(generatedBody(size, hash)),
        timeoutMs: 180_000,
      });
    } finally {
      clearInterval(sampler);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const after = memory(pid);
    if (after && after.rss > peakRss) peakRss = after.rss;
    const expected = `${size} ${hash.digest("hex")}\n`;
    return {
      ok: res.status === 200 && res.body === expected,
      detail:
        res.status === 200 && res.body === expected
          ? ""
          : `status ${res.status}, body ${JSON.stringify(res.body.slice(0, 120))}, expected ${JSON.stringify(expected)}`,
      idle: idle.rss,
      sampledPeak: peakRss - idle.rss,
      hwmPeak: peakReset && after ? after.hwm - idle.rss : NaN,
      errors: errorLines(logSince(backend.errorLog, logOffset).text),
      samples,
      seconds,
    };
  } finally {
    await stop(child);
  }
}

async function uploadPart(options) {
  const { backends, configFile, goVersion } = await setup(options, options.sizeMiB);
  console.log(`Setup: ${setupLine(goVersion)}`);
  // nginx needs its upstreams only per request: start it first, then one backend at a time.
  await startNginx(configFile, backends);

  const delays = [0, options.delayMs];
  const results = new Map();
  const errors = new Map(backends.map((b) => [b.key, []])); // during the big uploads
  const otherErrors = new Map(backends.map((b) => [b.key, []])); // during warm-ups
  const failures = [];
  for (const backend of backends) {
    let offset = 0;
    for (const delay of delays) {
      const runs = [];
      for (let round = 0; round < options.rounds; round++) {
        let r;
        try {
          r = await uploadCase(backend, options, delay);
          runs.push(r);
          errors.get(backend.key).push(...r.errors);
          if (!r.ok)
            failures.push(
              `${backend.name}, reading ${delay ? `${delay} ms late` : "at once"}: ${r.detail}`,
            );
          process.stderr.write(
            `${backend.name}, read ${delay ? `${delay} ms late` : "at once"}: +${fmtMiB(r.sampledPeak)} MiB sampled, +${fmtMiB(r.hwmPeak)} MiB VmHWM, ${r.seconds.toFixed(2)} s, ${r.ok ? "hash ok" : "HASH MISMATCH"}\n`,
          );
        } catch (error) {
          failures.push(
            `${backend.name}, reading ${delay ? `${delay} ms late` : "at once"}: ${error.message}`,
          );
          process.stderr.write(`${backend.name}: ${error.message}\n`);
        }
        const log = logSince(backend.errorLog, offset);
        offset = log.offset;
        // Everything logged for this case that was not logged during the big upload.
        const uploadLines = new Set(r?.errors ?? []);
        otherErrors
          .get(backend.key)
          .push(...errorLines(log.text).filter((line) => !uploadLines.has(line)));
      }
      results.set(`${backend.key}/${delay}`, runs);
    }
  }
  const mainErrors = errorLines(logSince(join(tmp, "error-main.log"), 0).text);
  const warnings = backends.flatMap((b) =>
    logSince(b.errorLog, 0)
      .text.split("\n")
      .filter((l) => l.includes("[warn]"))
      .map((l) => `${b.name}: ${l}`),
  );
  await stopAll();

  const cell = (runs, field) =>
    runs.length ? `+${fmtMiB(median(runs.map((r) => r[field])))}` : "failed";
  console.log();
  console.log(
    `${options.sizeMiB} MiB upload through nginx (request buffering off), app hashes the body (SHA-256); ` +
      `peak backend RSS above idle, median of ${options.rounds} run(s), fresh backend per run`,
  );
  console.log(
    `| backend | idle RSS (MiB) | reading at once: peak above idle, sampled / VmHWM (MiB) | reading ${options.delayMs / 1000} s late: peak above idle, sampled / VmHWM (MiB) | upload time at once / late (s) | SHA-256 ok | nginx [error] lines during the uploads |`,
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const backend of backends) {
    const now = results.get(`${backend.key}/0`) ?? [];
    const late = results.get(`${backend.key}/${options.delayMs}`) ?? [];
    const all = [...now, ...late];
    const okCount = all.filter((r) => r.ok).length;
    const time = (runs) => (runs.length ? median(runs.map((r) => r.seconds)).toFixed(2) : "–");
    console.log(
      `| ${backend.name} | ${fmtMiB(median(all.map((r) => r.idle)))} | ${cell(now, "sampledPeak")} / ${cell(now, "hwmPeak")} | ` +
        `${cell(late, "sampledPeak")} / ${cell(late, "hwmPeak")} | ${time(now)} / ${time(late)} | ` +
        `${okCount}/${delays.length * options.rounds} | ${errors.get(backend.key).length} |`,
    );
  }
  const notes = [...failures];
  for (const backend of backends) {
    notes.push(...describeErrors(backend.name, errors.get(backend.key)));
    const other = otherErrors.get(backend.key);
    if (other.length)
      notes.push(
        `${backend.name}: ${other.length} nginx [error] lines during the warm-up requests (not counted above), e.g. \`${other[0]}\``,
      );
  }
  if (mainErrors.length)
    notes.push(`nginx main error log: ${mainErrors.length} [error] lines, e.g. ${mainErrors[0]}`);
  if (warnings.length) notes.push(`${warnings.length} nginx [warn] lines, e.g. ${warnings[0]}`);
  if (notes.length) {
    console.log();
    console.log("Notes:");
    for (const note of notes) console.log(`- ${note}`);
  }
  if (failures.length) process.exitCode = 1;
}

// --------------------------------------------------------------------- main

const options = parseArgs(process.argv.slice(2));
try {
  if (options.mode === "upload") await uploadPart(options);
  else await loadPart(options);
} catch (error) {
  process.stderr.write(
    `bench/fastcgi.js: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exitCode = 1;
} finally {
  cleaningUp = true;
  await stopAll();
}
