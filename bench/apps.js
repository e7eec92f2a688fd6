#!/usr/bin/env node
// Framework applications under tsgi against the same applications on their
// own Node server, behind the same nginx (1 worker), measured in one run.
// For each of Express 5, Koa, Fastify and Hono, a hello ("Hello, world!",
// text/plain, on GET /; bench/apps/hello/) runs twice:
//   tsgi:   `node --max-semi-space-size=32 bin/tsgi.js fcgi` (the young
//           generation tsgi's workers get, and the README recommends for a
//           single process) through tsgi's adapters (fromNodeHandler for
//           Express, Koa's callback() and Fastify's routing after ready(),
//           fromFetchHandler for Hono's fetch), behind fastcgi_pass with the
//           upstream kept alive (fastcgi_keep_conn, keepalive 32);
//   native: express listen / http.createServer(koa.callback()) /
//           fastify.listen / @hono/node-server serve, behind proxy_pass with
//           the upstream kept alive (HTTP/1.1, keepalive 32), as `node app.js`
//           runs it; and the same with --max-semi-space-size=32 ("native 32"),
//           so the table also shows what the flag alone gives.
// Each round runs `wrk -t1 -c16` for --duration s on each backend, the two of
// a framework back to back (A,B in one round, B,A in the next), then
// `wrk -t1 -c1` for as long, for the median latency at concurrency 1. The
// table gives the median req/s over the rounds, and the median of the
// per-round ratios tsgi / native (so that load from elsewhere on the machine,
// which moves both, cancels out).
//
// usage: node bench/apps.js [--rounds 5] [--duration 10] [--frameworks express,koa,fastify,hono] [--json]
//        (run `npm run build` first; needs nginx and wrk)

import { join } from "node:path";
import { ProcessGroup, REPO, tempDir } from "../test/helpers/processes.js";
import { startTsgiFcgi } from "../test/helpers/tsgi.js";
import { commandLine, positive, usageExit } from "./lib/cli.js";
import {
  checkHello,
  cleanEnv,
  machineLine,
  measureRounds,
  medianRatio,
  requireTools,
  runStopping,
  sideProblems,
  spawnListening,
  startFront,
  startTargets,
} from "./lib/front.js";
import { median } from "./lib/wrk.js";

/** @typedef {import("./lib/front.js").Target} Target */
/** @typedef {import("./lib/front.js").Running} Running */
/** @typedef {import("./lib/front.js").Samples} Samples */

const SCRIPT = "bench/apps.js";
const USAGE =
  "usage: node bench/apps.js [--rounds 5] [--duration 10] [--frameworks express,koa,fastify,hono] [--json]\n" +
  "  --json  print the results as JSON instead of the markdown tables\n";
const FRAMEWORKS = ["express", "koa", "fastify", "hono"];
/** @type {Record<string, string>} */
const NAMES = { express: "Express 5", koa: "Koa", fastify: "Fastify", hono: "Hono" };
const HELLO = "Hello, world!";
const SEMI_SPACE = "--max-semi-space-size=32";
const apps = join(REPO, "bench/apps/hello");

function options() {
  const { values } = commandLine(SCRIPT, USAGE, {
    rounds: { type: "string" },
    duration: { type: "string" },
    frameworks: { type: "string" },
    json: { type: "boolean" },
  });
  const how = (/** @type {string} */ name, whole = false) => ({
    script: SCRIPT,
    usage: USAGE,
    name,
    whole,
  });
  const frameworks = values.frameworks?.split(",").map((f) => f.trim()) ?? FRAMEWORKS;
  const unknown = frameworks.filter((f) => !FRAMEWORKS.includes(f));
  if (unknown.length || !frameworks.length)
    usageExit(SCRIPT, USAGE, `--frameworks: choose from ${FRAMEWORKS.join(", ")}`);
  return {
    rounds: positive(values.rounds, 5, how("--rounds", true)),
    duration: positive(values.duration, 10, how("--duration")),
    frameworks,
    json: values.json ?? false,
  };
}

/**
 * The two backends of one framework.
 * @param {ProcessGroup} group
 * @param {string} framework
 * @returns {Target[]}
 */
function targets(group, framework) {
  const name = NAMES[framework] ?? framework;
  return [
    {
      key: `${framework}-tsgi`,
      name: `${name} under tsgi fcgi (fastcgi_pass)`,
      front: "fastcgi",
      start: async (port) =>
        (
          await startTsgiFcgi(group, {
            app: join(apps, `${framework}.tsgi.js`),
            listen: `127.0.0.1:${port}`,
            args: ["--grace", "1"],
            env: cleanEnv(),
            nodeArgs: [SEMI_SPACE],
          })
        ).proc,
    },
    nativeTarget(group, framework, "native", []),
    nativeTarget(group, framework, "native32", [SEMI_SPACE]),
  ];
}

/**
 * The framework on its own server, started with `nodeArgs`.
 * @param {ProcessGroup} group
 * @param {string} framework
 * @param {string} key
 * @param {string[]} nodeArgs
 * @returns {Target}
 */
function nativeTarget(group, framework, key, nodeArgs) {
  return {
    key: `${framework}-${key}`,
    name: `${NAMES[framework] ?? framework} on its own server (proxy_pass) ${nodeArgs.join(" ")}`,
    front: "http",
    start: (port) =>
      spawnListening(
        group,
        `${framework} ${key}`,
        process.execPath,
        [...nodeArgs, join(apps, "native.js"), framework, String(port)],
        port,
      ),
  };
}

/**
 * One row per framework.
 * @param {string[]} frameworks
 * @param {Map<string, Samples>} samples
 */
function rows(frameworks, samples) {
  return frameworks.map((framework) => {
    const tsgi = /** @type {Samples} */ (samples.get(`${framework}-tsgi`));
    const native = /** @type {Samples} */ (samples.get(`${framework}-native`));
    const native32 = /** @type {Samples} */ (samples.get(`${framework}-native32`));
    return {
      framework: NAMES[framework] ?? framework,
      rpsTsgi: median(tsgi.rps),
      rpsNative: median(native.rps),
      ratio: medianRatio(tsgi, native),
      rpsNative32: median(native32.rps),
      ratio32: medianRatio(tsgi, native32),
      cpuTsgi: median(tsgi.cpu),
      cpuNative: median(native.cpu),
      cpuNative32: median(native32.cpu),
      p50TsgiMs: median(tsgi.p50),
      p50NativeMs: median(native.p50),
      perRound: { tsgi: tsgi.rps, native: native.rps },
    };
  });
}

/**
 * @param {ReturnType<typeof rows>} table
 * @param {ReturnType<typeof options>} chosen
 */
function printMarkdown(table, chosen) {
  console.log(
    `\nFramework hellos behind nginx (1 worker), wrk -t1 -c16, ${chosen.rounds} rounds × ${chosen.duration} s, ` +
      "upstream kept alive; tsgi: `node --max-semi-space-size=32 bin/tsgi.js fcgi` + adapter behind fastcgi_pass; " +
      "native: the framework's own server behind proxy_pass (`node app.js`; native 32: with the same flag)",
  );
  console.log(
    "| framework | req/s tsgi | req/s native | median ratio tsgi/native | req/s native 32 | ratio tsgi/native 32 | median latency at -c1, tsgi | native |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of table)
    console.log(
      `| ${r.framework} | ${Math.round(r.rpsTsgi)} | ${Math.round(r.rpsNative)} | ${r.ratio.toFixed(2)}× | ` +
        `${Math.round(r.rpsNative32)} | ${r.ratio32.toFixed(2)}× | ` +
        `${(r.p50TsgiMs * 1000).toFixed(0)} µs | ${(r.p50NativeMs * 1000).toFixed(0)} µs |`,
    );
  console.log(
    "\nCPU of the backend process per request (user + system from /proc, median over the rounds):",
  );
  console.log("| framework | tsgi | native | native 32 | tsgi/native |");
  console.log("|---|---:|---:|---:|---:|");
  for (const r of table)
    console.log(
      `| ${r.framework} | ${r.cpuTsgi.toFixed(0)} µs | ${r.cpuNative.toFixed(0)} µs | ` +
        `${r.cpuNative32.toFixed(0)} µs | ${(r.cpuTsgi / r.cpuNative).toFixed(2)}× |`,
    );
  console.log("\nPer-round req/s, tsgi / native (ratio):");
  for (const r of table)
    console.log(
      `- ${r.framework}: ${r.perRound.tsgi
        .map((rps, i) => {
          const native = r.perRound.native[i] ?? NaN;
          return `${Math.round(rps)} / ${Math.round(native)} (${(rps / native).toFixed(2)}×)`;
        })
        .join(", ")}`,
    );
}

const chosen = options();
const group = new ProcessGroup();
await runStopping(SCRIPT, group, async () => {
  requireTools(["nginx", "wrk"]);
  const dir = tempDir(group, "tsgi-bench-apps-");
  const setup = machineLine();
  /** @type {Running[][]} */
  const pairs = [];
  for (const framework of chosen.frameworks)
    pairs.push(await startTargets(targets(group, framework)));
  const running = pairs.flat();
  await startFront(group, running, dir);
  for (const target of running) await checkHello(target, HELLO);
  process.stderr.write(`warm-up: 1 s per backend\n`);
  await measureRounds(pairs, { rounds: 1, duration: 1, connections: 16, latency: false });
  const samples = await measureRounds(pairs, { ...chosen, connections: 16, latency: true });
  const table = rows(chosen.frameworks, samples);
  const found = sideProblems(running, samples, dir);
  if (chosen.json) {
    console.log(JSON.stringify({ setup, ...chosen, results: table, problems: found }, null, 2));
    return;
  }
  console.log(`Setup: ${setup}`);
  printMarkdown(table, chosen);
  if (found.length) console.log(`\nProblems:\n${found.map((p) => `- ${p}`).join("\n")}`);
});
