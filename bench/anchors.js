#!/usr/bin/env node
// tsgi's long-lived gateways beside the servers people already run, behind
// the same nginx (1 worker), measured in one run. All serve the same hello
// ("Hello, world!\n", text/plain, Content-Length):
//   proxy_pass (upstream kept alive, HTTP/1.1, keepalive 32):
//     `tsgi serve` (bench/fastcgi/tsgi-app.js), plain node:http
//     (bench/fastcgi/node-http-app.js, the baseline), Gunicorn (sync worker,
//     1 worker) with the Python WSGI hello bench/anchors/hello.py;
//   uwsgi_pass: uWSGI (`--plugin python3`, 1 process) with the same Python
//     hello, and `tsgi uwsgi` when `tsgi uwsgi --help` succeeds;
//   scgi_pass: `tsgi scgi` when `tsgi scgi --help` succeeds;
//   and, behind uwsgi_pass, the floor of Node itself: bench/anchors/net-floor.js
//     writes a fixed response on each connection and closes it (node:net alone).
// nginx cannot keep uwsgi or SCGI upstream connections alive, so behind
// uwsgi_pass and scgi_pass every request opens a connection; Gunicorn's sync
// worker closes each connection too. Each round runs `wrk -t1 -c16` for
// --duration s on every backend, those with a target back to back
// (node:http and tsgi serve, uWSGI and tsgi uwsgi; the order rotating from
// round to round, A,B then B,A); each round's req/s is divided by node:http's
// and by the backend it is compared with in the same round, and the tables
// give the medians.
//
// usage: node bench/anchors.js [--rounds 5] [--duration 10] [--json]
//        (run `npm run build` first; needs nginx, wrk, gunicorn, uwsgi + uwsgi-plugin-python3)

import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ProcessGroup, REPO, TSGI_BIN, tempDir } from "../test/helpers/processes.js";
import { startTsgiServer } from "../test/helpers/tsgi.js";
import { commandLine, positive } from "./lib/cli.js";
import {
  checkHello,
  machineLine,
  measureRounds,
  medianRatio,
  requireTools,
  runStopping,
  sideProblems,
  spawnListening,
  startFront,
  startTargets,
  succeeds,
} from "./lib/front.js";
import { median } from "./lib/wrk.js";

/** @typedef {import("./lib/front.js").Target} Target */
/** @typedef {import("./lib/front.js").Running} Running */
/** @typedef {import("./lib/front.js").Samples} Samples */

const SCRIPT = "bench/anchors.js";
const USAGE =
  "usage: node bench/anchors.js [--rounds 5] [--duration 10] [--json]\n" +
  "  --json  print the results as JSON instead of the markdown tables\n";
const HELLO = "Hello, world!\n";
const TSGI_APP = join(REPO, "bench/fastcgi/tsgi-app.js");
const NO_KEEPALIVE =
  "nginx cannot keep uwsgi or SCGI upstream connections alive: behind uwsgi_pass and scgi_pass " +
  "each request opens a new connection to the backend (Gunicorn's sync worker also closes " +
  "every connection, so nginx reconnects to it as well).";
const ACCESS_LOG =
  "No backend logs per request (`tsgi serve --no-access-log`, uWSGI `--disable-logging`, " +
  "Gunicorn and node:http by default): behind nginx, its access log is the one kept.";

/** Python writes no __pycache__ into bench/anchors/. */
const PYTHON_ENV = { env: { PYTHONDONTWRITEBYTECODE: "1" } };

/**
 * The backends measured back to back in a round, so that load from elsewhere
 * on the machine moves both sides of a targeted ratio alike.
 */
const BACK_TO_BACK = [
  ["node-http", "tsgi-serve"],
  ["uwsgi", "tsgi-uwsgi", "net-floor"],
  ["gunicorn"],
  ["tsgi-scgi"],
];

/**
 * The running backends in their back-to-back groups (a backend missing from
 * this build drops out of its group; one in no group runs on its own).
 * @param {Running[]} running
 */
const backToBack = (running) => [
  ...BACK_TO_BACK.map((keys) => running.filter((t) => keys.includes(t.key))).filter(
    (g) => g.length,
  ),
  ...running.filter((t) => !BACK_TO_BACK.flat().includes(t.key)).map((t) => [t]),
];

/** Which backends are compared with which, and the target ratio where there is one. */
const PAIRS = [
  { a: "tsgi-serve", b: "node-http", target: 0.95 },
  { a: "tsgi-serve", b: "gunicorn" },
  { a: "uwsgi", b: "node-http" },
  { a: "tsgi-uwsgi", b: "uwsgi", target: 1.0 },
  { a: "tsgi-uwsgi", b: "node-http" },
  { a: "net-floor", b: "uwsgi" },
  { a: "tsgi-uwsgi", b: "net-floor" },
  { a: "tsgi-scgi", b: "node-http" },
];

function options() {
  const { values } = commandLine(SCRIPT, USAGE, {
    rounds: { type: "string" },
    duration: { type: "string" },
    json: { type: "boolean" },
  });
  const how = (/** @type {string} */ name, whole = false) => ({
    script: SCRIPT,
    usage: USAGE,
    name,
    whole,
  });
  return {
    rounds: positive(values.rounds, 5, how("--rounds", true)),
    duration: positive(values.duration, 10, how("--duration")),
    json: values.json ?? false,
  };
}

/**
 * What `tsgi <args>` prints on stdout ("" if it fails).
 * @param {string[]} args
 */
const helpText = (args) =>
  spawnSync(process.execPath, [TSGI_BIN, ...args], { encoding: "utf8", timeout: 20_000 }).stdout ??
  "";

/**
 * Whether this build has `tsgi <command>`: its --help succeeds and is its own
 * (commander answers an unknown command's --help with the general help, exit 0).
 * @param {string} command
 */
const tsgiHas = (command) =>
  succeeds(process.execPath, [TSGI_BIN, command, "--help"]) &&
  new RegExp(`^Usage: tsgi ${command}\\b`, "m").test(helpText([command, "--help"]));

/**
 * A `tsgi uwsgi` / `tsgi scgi` backend, if this build has the command.
 * @param {ProcessGroup} group
 * @param {"uwsgi" | "scgi"} command
 * @returns {Target[]}
 */
function tsgiGateway(group, command) {
  if (!tsgiHas(command)) return [];
  return [
    {
      key: `tsgi-${command}`,
      name: `tsgi ${command} (${command}_pass)`,
      front: command,
      start: async (port) =>
        (
          await startTsgiServer(group, command, {
            app: TSGI_APP,
            listen: `127.0.0.1:${port}`,
            args: ["--grace", "1"],
          })
        ).proc,
    },
  ];
}

/**
 * Every backend this machine can run, node:http first.
 * @param {ProcessGroup} group
 * @param {string} dir
 * @returns {Target[]}
 */
function targets(group, dir) {
  const serveHelp = helpText(["serve", "--help"]);
  const workers = /--workers\b/.test(serveHelp) ? ["--workers", "1"] : [];
  const quiet = /--no-access-log\b/.test(serveHelp) ? ["--no-access-log"] : [];
  const anchors = join(REPO, "bench/anchors");
  return [
    {
      key: "node-http",
      name: "node:http (proxy_pass)",
      front: "http",
      start: (port) =>
        spawnListening(
          group,
          "node-http",
          process.execPath,
          [join(REPO, "bench/fastcgi/node-http-app.js"), String(port)],
          port,
        ),
    },
    {
      key: "tsgi-serve",
      name: `tsgi serve${workers.length ? " --workers 1" : ""} (proxy_pass)`,
      front: "http",
      // Its stderr (and the access log, where this build cannot turn it off) goes to a file.
      start: (port) =>
        spawnListening(
          group,
          "tsgi serve",
          process.execPath,
          [TSGI_BIN, "serve", TSGI_APP, "--host", "127.0.0.1", "--port", String(port)].concat(
            workers,
            quiet,
          ),
          port,
          { stderrFile: join(dir, "tsgi-serve.log") },
        ),
    },
    {
      key: "gunicorn",
      name: "Gunicorn, sync worker (proxy_pass)",
      front: "http",
      start: (port) =>
        spawnListening(
          group,
          "gunicorn",
          "gunicorn",
          [
            ...["--workers", "1", "--worker-class", "sync", "--bind", `127.0.0.1:${port}`],
            ...["--chdir", anchors, "hello:application"],
          ],
          port,
          PYTHON_ENV,
        ),
    },
    {
      key: "uwsgi",
      name: "uWSGI, Python (uwsgi_pass)",
      front: "uwsgi",
      start: (port) =>
        spawnListening(
          group,
          "uwsgi",
          "uwsgi",
          [
            ...["--plugin", "python3", "--socket", `127.0.0.1:${port}`, "--processes", "1"],
            ...["--wsgi-file", join(anchors, "hello.py"), "--disable-logging"],
            ...["--die-on-term", "--need-app"],
          ],
          port,
          PYTHON_ENV,
        ),
    },
    ...tsgiGateway(group, "uwsgi"),
    ...tsgiGateway(group, "scgi"),
    {
      key: "net-floor",
      name: "node:net floor: fixed answer, no parsing (uwsgi_pass)",
      front: "uwsgi",
      start: (port) =>
        spawnListening(
          group,
          "net-floor",
          process.execPath,
          [join(anchors, "net-floor.js"), String(port)],
          port,
        ),
    },
  ];
}

/**
 * @param {Running[]} running
 * @param {Map<string, Samples>} samples
 */
function results(running, samples) {
  const base = /** @type {Samples} */ (samples.get("node-http"));
  const get = (/** @type {string} */ key) => samples.get(key);
  const name = (/** @type {string} */ key) => running.find((t) => t.key === key)?.name ?? key;
  return {
    backends: running.map((target) => {
      const s = /** @type {Samples} */ (samples.get(target.key));
      return {
        key: target.key,
        name: target.name,
        rps: median(s.rps),
        ratioToNodeHttp: medianRatio(s, base),
        perRound: s.rps,
      };
    }),
    pairs: PAIRS.flatMap(({ a, b, target }) => {
      const sa = get(a);
      const sb = get(b);
      if (!sa || !sb) return [];
      return [{ a: name(a), b: name(b), ratio: medianRatio(sa, sb), target }];
    }),
  };
}

/**
 * @param {ReturnType<typeof results>} found
 * @param {ReturnType<typeof options>} chosen
 * @param {string[]} missing
 */
function printMarkdown(found, chosen, missing) {
  console.log(
    `\nHello world behind nginx (1 worker), wrk -t1 -c16, ${chosen.rounds} rounds × ${chosen.duration} s`,
  );
  console.log(`\n${NO_KEEPALIVE} ${ACCESS_LOG}\n`);
  console.log("| backend | median req/s | median ratio to node:http (proxy_pass) |");
  console.log("|---|---:|---:|");
  for (const b of found.backends)
    console.log(`| ${b.name} | ${Math.round(b.rps)} | ${b.ratioToNodeHttp.toFixed(2)}× |`);
  console.log("\n| compared | median of the per-round ratios | target |");
  console.log("|---|---:|---:|");
  for (const p of found.pairs)
    console.log(
      `| ${p.a} / ${p.b} | ${p.ratio.toFixed(2)}× | ${p.target === undefined ? "–" : `≥ ${p.target.toFixed(2)}×`} |`,
    );
  console.log("\nPer-round req/s:");
  for (const b of found.backends)
    console.log(`- ${b.name}: ${b.perRound.map((rps) => Math.round(rps)).join(", ")}`);
  if (missing.length) console.log(`\nNot run: ${missing.join("; ")}`);
}

const chosen = options();
const group = new ProcessGroup();
await runStopping(SCRIPT, group, async () => {
  requireTools(["nginx", "wrk", "gunicorn", "uwsgi"]);
  const dir = tempDir(group, "tsgi-bench-anchors-");
  const setup = machineLine();
  const list = targets(group, dir);
  const missing = ["uwsgi", "scgi"]
    .filter((command) => !list.some((t) => t.key === `tsgi-${command}`))
    .map((command) => `tsgi ${command} (this build has no \`tsgi ${command}\`)`);
  const running = await startTargets(list);
  await startFront(group, running, dir);
  for (const target of running) await checkHello(target, HELLO);
  process.stderr.write("warm-up: 1 s per backend\n");
  const groups = backToBack(running);
  await measureRounds(groups, { rounds: 1, duration: 1, connections: 16, latency: false });
  const samples = await measureRounds(groups, { ...chosen, connections: 16, latency: false });
  const found = results(running, samples);
  const side = sideProblems(running, samples, dir);
  if (chosen.json) {
    const report = {
      setup,
      ...chosen,
      notes: [NO_KEEPALIVE, ACCESS_LOG],
      ...found,
      missing,
      problems: side,
    };
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  console.log(`Setup: ${setup}`);
  printMarkdown(found, chosen, missing);
  if (side.length) console.log(`\nProblems:\n${side.map((p) => `- ${p}`).join("\n")}`);
});
