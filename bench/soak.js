#!/usr/bin/env node
// Soak test: a fixed number of requests through nginx to one `tsgi fcgi` (from
// dist/: run `npm run build` first), recording the backend's RSS as it goes, to
// show that memory does not creep and that no request fails over a long run.
//
// usage: node bench/soak.js [--requests 1000000] [--concurrency 32] [--samples 100]
//                           [--transport unix|tcp] [--app bench/fastcgi/tsgi-app.js]
//                           [--node-options "--min-semi-space-size=16"]   (flags for the backend's node)
//
// nginx (one process, generated config in a temp dir) talks to tsgi over
// upstream keepalive with `fastcgi_keep_conn on`. The client is this process:
// exactly --requests GETs, --concurrency at a time, over a keep-alive agent.
// The backend's VmRSS (/proc/<pid>/status) is read every requests/samples
// requests. Reported: the RSS table (every 10% of the run), the drift from the
// 10% mark (after warm-up) to the end (target: under 5%), and the errors
// (target: 0): non-2xx answers, wrong bodies, socket errors and nginx [error]
// (or worse) lines. Exits 1 if there were errors.
//
// RSS also moves when V8 resizes its heap, which is not a leak. So the backend
// runs with --expose-gc behind a thin wrapper of the app that answers one extra
// path, /__soak/heap, with process.memoryUsage() right after a full GC; it is
// asked at every 10% mark (those requests are not counted in --requests). A
// leak shows as heap-after-GC growing; V8 resizing only shows in RSS.

import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { Agent, request } from "node:http";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const HELLO = "Hello, world!\n";

// ---------------------------------------------------------------- arguments

function usage(message) {
  if (message) process.stderr.write(`bench/soak.js: ${message}\n`);
  process.stderr.write(
    "usage: node bench/soak.js [--requests 1000000] [--concurrency 32] [--samples 100] [--transport unix|tcp] [--app bench/fastcgi/tsgi-app.js] [--node-options FLAGS]\n",
  );
  process.exit(message ? 2 : 0);
}

const options = {
  requests: 1_000_000,
  concurrency: 32,
  samples: 100,
  transport: "unix",
  app: join(root, "bench/fastcgi/tsgi-app.js"),
  nodeOptions: [],
};
{
  const argv = process.argv.slice(2);
  const count = (i, name) => {
    const value = argv[i + 1];
    if (!/^[0-9]+$/.test(value ?? "") || Number(value) < 1)
      usage(`${name} needs a whole number of at least 1`);
    return Number(value);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--requests") options.requests = count(i++, arg);
    else if (arg === "--concurrency") options.concurrency = count(i++, arg);
    else if (arg === "--samples") options.samples = count(i++, arg);
    else if (arg === "--transport") {
      options.transport = argv[++i];
      if (options.transport !== "unix" && options.transport !== "tcp")
        usage("--transport is unix or tcp");
    } else if (arg === "--app") options.app = resolve(argv[++i] ?? usage("--app needs a path"));
    else if (arg === "--node-options")
      options.nodeOptions = (argv[++i] ?? usage("--node-options needs flags"))
        .split(/\s+/)
        .filter(Boolean);
    else if (arg === "-h" || arg === "--help") usage();
    else usage(`unknown argument ${arg}`);
  }
  options.samples = Math.min(options.samples, options.requests);
}
if (!existsSync(join(root, "dist/cli/main.js")))
  usage("dist/ is missing: run `npm run build` first");

// ------------------------------------------------------ processes and cleanup

const tmp = mkdtempSync(join(tmpdir(), "tsgi-soak-"));
const children = new Set();

function start(name, command, args) {
  const log = join(tmp, `${name}.log`);
  const fd = openSync(log, "a");
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  child.log = log;
  child.label = name;
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}

async function stop(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill(signal);
  if ((await Promise.race([exited.then(() => true), sleep(5000).then(() => false)])) === false)
    child.kill("SIGKILL");
}

process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));

function tail(file) {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-20).join("\n");
  } catch {
    return "";
  }
}

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once `address` accepts connections; bounded, and fails early if `child` exits. */
async function waitForListening(address, child, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${child.label} exited before listening:\n${tail(child.log)}`);
    const ok = await new Promise((resolve) => {
      const socket = connect(address);
      socket.once("connect", () => (socket.destroy(), resolve(true)));
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`${child.label} did not listen within ${timeoutMs} ms:\n${tail(child.log)}`);
    await sleep(50);
  }
}

function rssKiB(pid) {
  try {
    return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "latin1"))[1]);
  } catch {
    return NaN;
  }
}

// ------------------------------------------------------------------- set-up

const backendAddress =
  options.transport === "unix" ? join(tmp, "tsgi.sock") : `127.0.0.1:${await freePort()}`;
const wrapper = join(tmp, "soak-app.mjs");
writeFileSync(
  wrapper,
  `// Generated by bench/soak.js: the app under test, plus /__soak/heap (memory after a full GC).
import * as module from ${JSON.stringify(pathToFileURL(options.app).href)};
const app = module.default ?? module.application;
export default function soak(environ, startResponse) {
  if (environ.PATH_INFO !== "/__soak/heap") return app(environ, startResponse);
  globalThis.gc();
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [JSON.stringify(process.memoryUsage())];
}
`,
);
const tsgi = start("tsgi", process.execPath, [
  "--expose-gc",
  ...options.nodeOptions,
  join(root, "bin/tsgi.js"),
  "fcgi",
  wrapper,
  "--listen",
  backendAddress,
  "--socket-mode",
  "666",
]);
await waitForListening(
  options.transport === "unix"
    ? { path: backendAddress }
    : { host: "127.0.0.1", port: Number(backendAddress.split(":")[1]) },
  tsgi,
);

const port = await freePort();
const upstream = options.transport === "unix" ? `unix:${backendAddress}` : backendAddress;
const nginxConf = join(tmp, "nginx.conf");
writeFileSync(
  nginxConf,
  `# Generated by bench/soak.js
daemon off;
master_process off;
pid ${tmp}/nginx.pid;
error_log ${tmp}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${tmp}/client_body;
  fastcgi_temp_path ${tmp}/fastcgi_temp;
  proxy_temp_path ${tmp}/proxy_temp;
  uwsgi_temp_path ${tmp}/uwsgi_temp;
  scgi_temp_path ${tmp}/scgi_temp;
  keepalive_requests 1000000;
  upstream tsgi {
    server ${upstream};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      fastcgi_pass tsgi;
      fastcgi_keep_conn on;
      fastcgi_param QUERY_STRING $query_string;
      fastcgi_param REQUEST_METHOD $request_method;
      fastcgi_param CONTENT_TYPE $content_type;
      fastcgi_param CONTENT_LENGTH $content_length;
      fastcgi_param SCRIPT_NAME "";
      fastcgi_param PATH_INFO $uri;
      fastcgi_param REQUEST_URI $request_uri;
      fastcgi_param SERVER_PROTOCOL $server_protocol;
      fastcgi_param GATEWAY_INTERFACE CGI/1.1;
      fastcgi_param REMOTE_ADDR $remote_addr;
      fastcgi_param REMOTE_PORT $remote_port;
      fastcgi_param SERVER_ADDR $server_addr;
      fastcgi_param SERVER_PORT $server_port;
      fastcgi_param SERVER_NAME $server_name;
    }
  }
}
`,
);
const nginxBinary = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"].find(existsSync);
if (!nginxBinary) usage("nginx not found: apt-get install nginx");
const nginx = start("nginx", nginxBinary, [
  "-p",
  tmp,
  "-c",
  nginxConf,
  "-e",
  join(tmp, "error.log"),
]);
await waitForListening({ host: "127.0.0.1", port }, nginx);

// ---------------------------------------------------------------- the run

const agent = new Agent({
  keepAlive: true,
  maxSockets: options.concurrency,
  maxFreeSockets: options.concurrency,
});
const tally = { done: 0, ok: 0, non2xx: 0, wrongBody: 0, socketErrors: 0, statuses: new Map() };
const samples = [];
const sampleEvery = options.requests / options.samples;
let nextSample = sampleEvery;
let issued = 0;

/** The backend's memory right after a full GC (see /__soak/heap above). */
function heapAfterGc() {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/__soak/heap", agent: false }, (res) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => {
        try {
          resolve(JSON.parse(body));
        } catch {
          resolve(undefined);
        }
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve(undefined));
    req.end();
  });
}

function get() {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/", agent }, (res) => {
      let body = "";
      res.setEncoding("latin1");
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => {
        if (res.statusCode < 200 || res.statusCode > 299) {
          tally.non2xx++;
          tally.statuses.set(res.statusCode, (tally.statuses.get(res.statusCode) ?? 0) + 1);
        } else if (body !== HELLO) tally.wrongBody++;
        else tally.ok++;
        resolve();
      });
      res.on("error", () => {
        tally.socketErrors++;
        resolve();
      });
    });
    // Bounded: a request that hangs counts as an error instead of stalling the run.
    req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
    req.on("error", () => {
      tally.socketErrors++;
      resolve();
    });
    req.end();
  });
}

const rssAtStart = rssKiB(tsgi.pid);
const heapAtStart = await heapAfterGc();
/** Heap-after-GC at each 10% mark, probed once the run passes it. */
const heapMarks = [];
let nextMark = options.requests / 10;
const started = Date.now();
let lastProgress = Date.now();
await Promise.all(
  Array.from({ length: options.concurrency }, async () => {
    while (issued < options.requests) {
      issued++;
      await get();
      tally.done++;
      if (tally.done >= nextSample) {
        samples.push({
          requests: tally.done,
          rss: rssKiB(tsgi.pid),
          seconds: (Date.now() - started) / 1000,
        });
        nextSample += sampleEvery;
      }
      if (tally.done >= nextMark) {
        nextMark += options.requests / 10;
        const requests = tally.done;
        heapMarks.push({ requests, memory: await heapAfterGc() });
      }
      if (Date.now() - lastProgress > 10_000) {
        lastProgress = Date.now();
        const rate = tally.done / ((Date.now() - started) / 1000);
        process.stderr.write(
          `  ${tally.done} / ${options.requests} (${rate.toFixed(0)} req/s, RSS ${(rssKiB(tsgi.pid) / 1024).toFixed(1)} MiB)\n`,
        );
      }
    }
  }),
);
const seconds = (Date.now() - started) / 1000;
agent.destroy();

// ------------------------------------------------------------------- report

const nginxErrors = existsSync(join(tmp, "error.log"))
  ? readFileSync(join(tmp, "error.log"), "utf8")
      .split("\n")
      .filter((line) => /\[(error|crit|alert|emerg)\]/.test(line))
  : [];
const tsgiAlive = tsgi.exitCode === null && tsgi.signalCode === null;
await stop(nginx, "SIGQUIT");
await stop(tsgi, "SIGTERM");

const mib = (kib) => (kib / 1024).toFixed(1);
const at = (fraction) => samples[Math.max(0, Math.round(fraction * samples.length) - 1)];
console.log(
  `soak: ${options.requests} requests, concurrency ${options.concurrency}, nginx -> tsgi fcgi over ${options.transport === "unix" ? "a unix socket" : "TCP"} (fastcgi_keep_conn on, keepalive 64)`,
);
console.log(
  `app: ${options.app.startsWith(root) ? options.app.slice(root.length + 1) : options.app}; node ${process.version}${options.nodeOptions.length ? ` ${options.nodeOptions.join(" ")}` : ""}`,
);
console.log("");
const heapMiB = (memory) => (memory ? (memory.heapUsed / 1024 / 1024).toFixed(2) : "–");
console.log("| requests | % of run | backend RSS (MiB) | heap used after GC (MiB) | elapsed (s) |");
console.log("|---:|---:|---:|---:|---:|");
console.log(`| 0 | 0% | ${mib(rssAtStart)} | ${heapMiB(heapAtStart)} | 0 |`);
for (let tenth = 1; tenth <= 10; tenth++) {
  const sample = at(tenth / 10);
  console.log(
    `| ${sample.requests.toLocaleString("en-US")} | ${tenth * 10}% | ${mib(sample.rss)} | ${heapMiB(heapMarks[tenth - 1]?.memory)} | ${sample.seconds.toFixed(0)} |`,
  );
}
const base = at(0.1).rss;
const end = samples.at(-1).rss;
const drift = ((end - base) / base) * 100;
const heapBase = heapMarks[0]?.memory?.heapUsed;
const heapEnd = heapMarks.at(-1)?.memory?.heapUsed;
const peak = Math.max(...samples.map((sample) => sample.rss));
const errors = tally.non2xx + tally.wrongBody + tally.socketErrors + nginxErrors.length;
console.log("");
console.log(
  `RSS drift from 10% to 100% of the run: ${drift >= 0 ? "+" : ""}${drift.toFixed(2)}% (${mib(base)} -> ${mib(end)} MiB; peak ${mib(peak)} MiB; target under 5%)`,
);
// One RSS reading swings by a few MiB with V8's heap resizing: medians over a tenth of the run are steadier.
const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];
const early = samples
  .filter(
    (sample) =>
      sample.requests > options.requests * 0.1 && sample.requests <= options.requests * 0.2,
  )
  .map((sample) => sample.rss);
const late = samples
  .filter((sample) => sample.requests > options.requests * 0.9)
  .map((sample) => sample.rss);
if (early.length > 0 && late.length > 0) {
  const medianDrift = ((median(late) - median(early)) / median(early)) * 100;
  console.log(
    `RSS median over 10-20% vs 90-100% of the run: ${medianDrift >= 0 ? "+" : ""}${medianDrift.toFixed(2)}% (${mib(median(early))} -> ${mib(median(late))} MiB)`,
  );
}
if (heapBase && heapEnd) {
  const heapDrift = ((heapEnd - heapBase) / heapBase) * 100;
  console.log(
    `heap-after-GC drift from 10% to 100%: ${heapDrift >= 0 ? "+" : ""}${heapDrift.toFixed(2)}% (${(heapBase / 1048576).toFixed(2)} -> ${(heapEnd / 1048576).toFixed(2)} MiB): ${Math.abs(heapEnd - heapBase) < 1048576 ? "no leak" : "look for a leak"}`,
  );
}
console.log(
  `errors: ${errors} (non-2xx ${tally.non2xx}${tally.statuses.size ? ` ${JSON.stringify(Object.fromEntries(tally.statuses))}` : ""}, wrong body ${tally.wrongBody}, socket errors ${tally.socketErrors}, nginx [error] lines ${nginxErrors.length}; target 0)`,
);
for (const line of nginxErrors.slice(0, 5)) console.log(`  nginx: ${line}`);
console.log(
  `duration: ${seconds.toFixed(1)} s, ${(options.requests / seconds).toFixed(0)} req/s; backend ${tsgiAlive ? "alive at the end" : "DIED during the run"}`,
);
process.exitCode = errors === 0 && tsgiAlive ? 0 : 1;
