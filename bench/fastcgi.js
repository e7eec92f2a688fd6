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
// only), so an inherited NODE_OPTIONS does not change them. The processes are
// started by bench/fastcgi/setup.js through the launchers the end-to-end tests
// use (test/helpers/); the two parts are bench/fastcgi/load.js and upload.js.

import { commandLine, positive, usageExit } from "./lib/cli.js";

const SCRIPT = "bench/fastcgi.js";
const USAGE =
  "usage: node bench/fastcgi.js [--rounds 5] [--duration 5] [--cpu-prof]\n" +
  "       node bench/fastcgi.js upload [--size-mib 100] [--delay-ms 2000] [--rounds 1]\n" +
  "       --only tsgi,node-fastcgi,go,node-http: only those backends\n";

function options() {
  const { values, positionals } = commandLine(
    SCRIPT,
    USAGE,
    {
      upload: { type: "boolean" },
      rounds: { type: "string" },
      duration: { type: "string" },
      "size-mib": { type: "string" },
      "delay-ms": { type: "string" },
      "cpu-prof": { type: "boolean" },
      only: { type: "string" },
    },
    1,
  );
  if (positionals[0] !== undefined && positionals[0] !== "upload")
    usageExit(SCRIPT, USAGE, `unknown argument ${positionals[0]}`);
  const mode = values.upload || positionals[0] === "upload" ? "upload" : "load";
  const number = (
    /** @type {string | undefined} */ value,
    /** @type {number} */ fallback,
    /** @type {string} */ name,
  ) => positive(value, fallback, { script: SCRIPT, usage: USAGE, name });
  if (values.only === "") usageExit(SCRIPT, USAGE, "--only needs a list such as tsgi,go");
  return {
    mode,
    rounds: Math.round(number(values.rounds, mode === "load" ? 5 : 1, "--rounds")),
    duration: number(values.duration, 5, "--duration"),
    sizeMiB: Math.round(number(values["size-mib"], 100, "--size-mib")),
    delayMs: Math.round(number(values["delay-ms"], 2000, "--delay-ms")),
    cpuProf: values["cpu-prof"] ?? false,
    only: values.only?.split(",").map((key) => key.trim()),
  };
}

// Parsed before the parts are loaded: setup.js makes its temp dir on import.
const chosen = options();
const { group } = await import("./fastcgi/setup.js");
const { loadPart } = await import("./fastcgi/load.js");
const { uploadPart } = await import("./fastcgi/upload.js");

let cleaningUp = false;
/** nginx first, gracefully, so it does not log errors about backends going away. */
const stopAll = () => group.cleanUp({ first: "nginx", signal: "SIGQUIT" });

for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM", "SIGHUP"])) {
  process.on(signal, () => {
    if (cleaningUp) process.exit(130);
    cleaningUp = true;
    process.stderr.write(`\n${signal}: stopping everything\n`);
    const timer = setTimeout(() => process.exit(130), 10_000);
    void stopAll().finally(() => {
      clearTimeout(timer);
      process.exit(130);
    });
  });
}

try {
  if (chosen.mode === "upload") await uploadPart(chosen, stopAll);
  else await loadPart(chosen, stopAll);
} catch (error) {
  process.stderr.write(`${SCRIPT}: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
} finally {
  cleaningUp = true;
  await stopAll();
}
