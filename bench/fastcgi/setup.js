// The processes of bench/fastcgi.js: the backends (tsgi fcgi, node-fastcgi,
// Go's net/http/fcgi, node:http) and nginx in front of them, started through
// the launchers the end-to-end tests use (test/helpers/*.js), one nginx server
// block per backend from the templates next to this file.

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { findBinary } from "../../test/helpers/available.js";
import { startNginx } from "../../test/helpers/nginx.js";
import {
  ProcessGroup,
  REPO,
  freePort,
  isRoot,
  tempDir,
  waitForListening,
} from "../../test/helpers/processes.js";
import { fill } from "../../test/helpers/templates.js";
import { startTsgiFcgi } from "../../test/helpers/tsgi.js";

/** @typedef {import("../../test/helpers/processes.js").Proc} Proc */
/** @typedef {import("../../test/helpers/nginx.js").Nginx} Nginx */

const here = join(REPO, "bench/fastcgi");
const node = process.execPath;
export const HELLO = "Hello, world!\n";

/** Every process this benchmark starts, stopped at the end, also on failure or Ctrl-C. */
export const group = new ProcessGroup();
export const tmp = tempDir(group, "tsgi-bench-fastcgi-");

/** Backends get a clean environment (PATH only), so an inherited NODE_OPTIONS does not change them. */
const cleanEnv = () => ({ PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin" });

/**
 * @typedef {object} Backend
 * @property {string} key
 * @property {string} name
 * @property {"fastcgi" | "http"} kind
 * @property {boolean} [baseline] node:http behind proxy_pass, what the others are divided by.
 * @property {(port: number) => Promise<Proc>} start
 * @property {number} port Where the backend listens.
 * @property {number} listenPort Where nginx listens for it.
 * @property {string} errorLog nginx's error log for its server block.
 * @property {Proc} [proc] The running backend.
 */

/**
 * Runs a command to completion, bounded.
 * @param {string} command
 * @param {string[]} args
 * @param {{ env?: NodeJS.ProcessEnv; timeoutMs?: number }} [options]
 */
export async function run(command, args, { env = cleanEnv(), timeoutMs = 60_000 } = {}) {
  const proc = group.spawn(command, command, args, { env });
  try {
    const exit = await proc.waitForExit(timeoutMs);
    return { code: exit.code, stdout: proc.stdout, stderr: proc.stderr };
  } catch (error) {
    proc.signal("SIGKILL");
    throw error;
  }
}

/**
 * The last lines a backend wrote.
 * @param {Proc} proc
 */
export const tail = (proc, lines = 20) =>
  (proc.stdout + proc.stderr).split("\n").slice(-lines).join("\n");

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

/**
 * A backend other than tsgi: `command` started with `args`, ready once it accepts on `port`.
 * @param {string} name
 * @param {string} command
 * @param {string[]} args
 * @param {number} port
 */
async function startPlain(name, command, args, port) {
  const proc = group.spawn(name, command, args, { env: cleanEnv() });
  try {
    await waitForListening({ host: "127.0.0.1", port }, 15_000, () => proc.running);
  } catch (error) {
    throw new Error(
      `${name}: ${error instanceof Error ? error.message : String(error)}:\n${tail(proc)}`,
      { cause: error },
    );
  }
  return proc;
}

/** @param {boolean} cpuProf @param {string} key */
const profiling = (cpuProf, key) =>
  cpuProf ? ["--cpu-prof", "--cpu-prof-dir", join(tmp, `cpu-prof-${key}`)] : [];

/**
 * The backends in table order; node:http behind proxy_pass is the baseline.
 * @param {string | undefined} goBinary
 * @param {boolean} cpuProf
 * @returns {Omit<Backend, "port" | "listenPort" | "errorLog">[]}
 */
function backendList(goBinary, cpuProf) {
  /** @type {Omit<Backend, "port" | "listenPort" | "errorLog">[]} */
  const list = [
    {
      key: "tsgi",
      name: "tsgi fcgi",
      kind: "fastcgi",
      start: async (port) =>
        (
          await startTsgiFcgi(group, {
            app: join(here, "tsgi-app.js"),
            listen: `127.0.0.1:${port}`,
            args: ["--grace", "1"],
            nodeArgs: profiling(cpuProf, "tsgi"),
            env: cleanEnv(),
          })
        ).proc,
    },
    {
      key: "node-fastcgi",
      name: "node-fastcgi",
      kind: "fastcgi",
      start: (port) =>
        startPlain("node-fastcgi", node, [join(here, "node-fastcgi-app.cjs"), String(port)], port),
    },
  ];
  if (goBinary)
    list.push({
      key: "go",
      name: "Go net/http/fcgi",
      kind: "fastcgi",
      start: (port) => startPlain("go", goBinary, [`127.0.0.1:${port}`], port),
    });
  list.push({
    key: "node-http",
    name: "node:http behind proxy_pass",
    kind: "http",
    baseline: true,
    start: (port) =>
      startPlain(
        "node-http",
        node,
        [...profiling(cpuProf, "node-http"), join(here, "node-http-app.js"), String(port)],
        port,
      ),
  });
  return list;
}

/**
 * Starts a backend (again) and keeps its process on it.
 * @param {Backend} backend
 */
export async function startBackend(backend) {
  backend.proc = await backend.start(backend.port);
  return backend.proc;
}

/**
 * nginx with one server block per backend (the templates next to this file).
 * @param {Backend[]} backends
 * @returns {Promise<Nginx>}
 */
export function startBenchNginx(backends) {
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
  const [first, ...rest] = backends.map((backend) => backend.listenPort);
  return startNginx(group, findBinary("nginx", "nginx") ?? "nginx", {
    dir: join(tmp, "nginx"),
    port: first,
    morePorts: rest,
    http: servers.join("\n"),
    masterProcess: true,
    // As root, nginx workers would run as nobody, who cannot write into tmp.
    user: isRoot ? "root" : undefined,
    workerConnections: 1024,
    errorLogLevel: "warn",
    accessLog: false,
  });
}

/**
 * One HTTP request through nginx.
 * @param {number} port
 * @param {{ method?: string; path?: string; headers?: Record<string, string>; body?: NodeJS.ReadableStream; timeoutMs?: number }} [options]
 * @returns {Promise<{ status: number | undefined; headers: import("node:http").IncomingHttpHeaders; body: string }>}
 */
export function httpRequest(port, options = {}) {
  const { method = "GET", path = "/", headers = {}, body, timeoutMs = 10_000 } = options;
  return new Promise((resolve, reject) => {
    const signal = AbortSignal.timeout(timeoutMs);
    const req = request({ host: "127.0.0.1", port, method, path, headers, agent: false, signal });
    req.on("response", (res) => {
      /** @type {Buffer[]} */
      const chunks = [];
      res.on("data", (/** @type {Buffer} */ chunk) => chunks.push(chunk));
      res.on("end", () =>
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: Buffer.concat(chunks).toString("latin1"),
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body === undefined) req.end();
    else pipeline(body, req).catch(reject);
  });
}

/**
 * Fails unless the backend answers the hello world through nginx as expected.
 * @param {Backend} backend
 */
export async function checkHello(backend) {
  const res = await httpRequest(backend.listenPort);
  const problems = [];
  if (res.status !== 200) problems.push(`status ${res.status}`);
  if (res.body !== HELLO) problems.push(`body ${JSON.stringify(res.body.slice(0, 200))}`);
  const type = res.headers["content-type"] ?? "";
  if (!type.startsWith("text/plain")) problems.push(`content-type ${type}`);
  if (res.headers["content-length"] !== String(HELLO.length))
    problems.push(
      `content-length ${res.headers["content-length"]} (transfer-encoding ${res.headers["transfer-encoding"]})`,
    );
  if (problems.length)
    throw new Error(
      `${backend.name}: unexpected hello response through nginx: ${problems.join(", ")}`,
    );
}

/**
 * Checks the tools, builds the Go backend if it can, and picks the ports.
 * @param {{ mode: "load" | "upload"; only: string[] | undefined; cpuProf: boolean }} options
 */
export async function setup(options) {
  if (!existsSync(join(REPO, "dist/cli/main.js")))
    throw new Error("dist/ is missing: run `npm run build` first");
  for (const tool of options.mode === "load" ? ["nginx", "wrk"] : ["nginx"]) {
    const r = spawnSync(tool, ["-v"], { encoding: "utf8", timeout: 10_000 });
    if (r.error) throw new Error(`${tool} is not installed (${r.error.message})`);
  }
  const only = options.only;
  const goVersion = goAvailable();
  const goBinary = goVersion && (!only || only.includes("go")) ? await buildGo() : undefined;
  let list = backendList(goBinary, options.cpuProf);
  if (only) {
    const unknown = only.filter((key) => !list.some((b) => b.key === key));
    if (unknown.length)
      throw new Error(
        `--only: unknown backend(s) ${unknown.join(", ")} (have ${list.map((b) => b.key).join(", ")})`,
      );
    list = list.filter((b) => only.includes(b.key) || (b.baseline && options.mode === "load"));
  }
  /** @type {Set<number>} */
  const used = new Set();
  const pickPort = async () => {
    for (;;) {
      const port = await freePort();
      if (!used.has(port)) return (used.add(port), port);
    }
  };
  /** @type {Backend[]} */
  const backends = [];
  for (const backend of list)
    backends.push({
      ...backend,
      port: await pickPort(),
      listenPort: await pickPort(),
      errorLog: join(tmp, `error-${backend.key}.log`),
    });
  return { backends, goVersion };
}

/**
 * The versions and the machine, for the report.
 * @param {string | undefined} goVersion
 */
export function setupLine(goVersion) {
  const nginxVersion = spawnSync("nginx", ["-v"], { encoding: "utf8" })
    .stderr.trim()
    .replace(/^nginx version: /, "");
  const wrkVersion = (spawnSync("wrk", ["-v"], { encoding: "utf8" }).stdout || "")
    .split("\n")[0]
    ?.split(" [")[0]
    ?.trim();
  const cpu = cpus();
  return (
    `node ${process.version}, ${nginxVersion}, ${wrkVersion || "wrk"}, ` +
    `${goVersion ? goVersion.replace(/^go version /, "") : "no go (Go backend skipped)"}, ` +
    `${cpu.length} cores (${cpu[0]?.model.trim() ?? "?"}), load average at start ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`
  );
}
