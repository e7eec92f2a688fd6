#!/usr/bin/env node
// Start-up cost of a CGI request: median wall time of `node -e ""`, bare
// hand-written CGI hellos, `tsgi cgi examples/hello.js`, and
// `tsgi cgi examples/hello.ts` from a warm compile cache next to the same app
// compiled to .js beforehand, measured in one run, interleaved round by round,
// each as a ratio to `node -e ""`. Then the cold-cache start of hello.ts
// (compiling it), a few times, each with an empty cache. Also an Express and a
// Hono app (bench/apps/) under `tsgi cgi` next to the one file `tsgi build` makes.
//
// usage: node bench/cgi-startup.js [rounds]   (default 40; also --rounds N)
//
// Every command runs in a clean environment (PATH plus the CGI variables), as
// a web server runs a CGI child: an inherited NODE_OPTIONS or
// NODE_EXTRA_CA_CERTS would slow every Node start and hide the rest.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { transformSync } from "esbuild";
import { commandLine, positive } from "./lib/cli.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const SCRIPT = "bench/cgi-startup.js";
const USAGE = "usage: node bench/cgi-startup.js [rounds]   (default 40; also --rounds N)";
const { values, positionals } = commandLine(SCRIPT, USAGE, { rounds: { type: "string" } }, 1);
const rounds = positive(values.rounds ?? positionals[0], 40, {
  script: SCRIPT,
  usage: USAGE,
  name: "rounds",
  whole: true,
});
const node = process.execPath;

const env = {
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  GATEWAY_INTERFACE: "CGI/1.1",
  REQUEST_METHOD: "GET",
  SCRIPT_NAME: "/cgi-bin/hello",
  PATH_INFO: "",
  QUERY_STRING: "",
  SERVER_NAME: "localhost",
  SERVER_PORT: "80",
  SERVER_PROTOCOL: "HTTP/1.1",
  REMOTE_ADDR: "127.0.0.1",
};

// examples/hello.ts compiled to .js ahead of time, as tsc would (an ES module), in
// a directory of its own whose package.json makes .js an ES module.
const scratch = mkdtempSync(join(tmpdir(), "tsgi-bench-"));
process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));
const helloTs = join(root, "examples/hello.ts");
writeFileSync(join(scratch, "package.json"), '{ "type": "module" }\n');
writeFileSync(
  join(scratch, "hello.js"),
  transformSync(readFileSync(helloTs, "utf8"), { loader: "ts", format: "esm" }).code,
);
const warmCache = join(scratch, "cache");
/** @param {string} app */
const tsgi = (app) => [join(root, "bin/tsgi.js"), "cgi", app];

// An Express and a Hono app in TypeScript (bench/apps/), each run by
// `tsgi cgi` (warm compile cache) and as one file built by `tsgi build`.
const frameworkEnv = { SCRIPT_NAME: "", PATH_INFO: "/hello", TSGI_CACHE_DIR: warmCache };
const frameworks = ["express", "hono"].flatMap((name) => {
  const app = join(root, "bench/apps", `${name}-app.ts`);
  const bundle = join(scratch, `${name}.cgi.cjs`);
  const built = spawnSync(node, [join(root, "bin/tsgi.js"), "build", app, "--out", bundle], {
    encoding: "utf8",
  });
  if (built.status !== 0) throw new Error(`tsgi build ${name} failed: ${built.stderr}`);
  const expect = `hello from ${name}`;
  return [
    { name: `tsgi cgi ${name}-app.ts (warm cache)`, args: tsgi(app), env: frameworkEnv, expect },
    { name: `node ${name}.cgi.cjs (tsgi build)`, args: [bundle], env: frameworkEnv, expect },
  ];
});

/** @typedef {{ name: string; args: string[]; env?: Record<string, string>; expect?: string }} Command */

/** @type {Command} */
const helloCompiled = {
  name: "tsgi cgi examples/hello.ts compiled to .js",
  args: tsgi(join(scratch, "hello.js")),
  expect: "Hello, world!",
};
/** @type {Command} */
const helloWarm = {
  name: "tsgi cgi examples/hello.ts (warm cache)",
  args: tsgi(helloTs),
  env: { TSGI_CACHE_DIR: warmCache },
  expect: "Hello, world!",
};

/** @type {Command[]} */
const commands = [
  { name: 'node -e ""', args: ["-e", ""] },
  {
    name: "bare CGI hello (CommonJS)",
    args: [join(root, "bench/hello-bare.cjs")],
    expect: "Hello, world!",
  },
  {
    name: "bare CGI hello (ESM)",
    args: [join(root, "bench/hello-bare.mjs")],
    expect: "Hello, world!",
  },
  {
    name: "tsgi cgi examples/hello.js",
    args: tsgi(join(root, "examples/hello.js")),
    expect: "Hello, world!",
  },
  helloCompiled,
  helloWarm,
  ...frameworks,
];

/** @param {Command} command */
function runOnce(command) {
  const start = process.hrtime.bigint();
  const result = spawnSync(node, command.args, {
    env: { ...env, ...command.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  if (
    result.status !== 0 ||
    (command.expect && !result.stdout.toString().includes(command.expect))
  ) {
    throw new Error(
      `${command.name} failed: exit ${result.status}\n${result.stdout.toString()}\n${result.stderr.toString()}`,
    );
  }
  return elapsed;
}

/** @param {number[]} values */
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const high = sorted[middle] ?? NaN;
  return sorted.length % 2 ? high : ((sorted[middle - 1] ?? NaN) + high) / 2;
};

for (const command of commands) for (let i = 0; i < 3; i++) runOnce(command); // warm the file cache
/** @type {number[][]} */
const times = commands.map(() => []);
for (let round = 0; round < rounds; round++) {
  // Rotate the order so no command always runs right after another.
  for (let k = 0; k < commands.length; k++) {
    const index = (round + k) % commands.length;
    times[index]?.push(runOnce(/** @type {Command} */ (commands[index])));
  }
}

const base = median(times[0] ?? []);
console.log(`CGI start-up, ${rounds} rounds, node ${process.version}`);
console.log('| command | median ms | ratio to node -e "" |');
console.log("|---|---:|---:|");
for (let i = 0; i < commands.length; i++) {
  const m = median(times[i] ?? []);
  console.log(`| ${commands[i]?.name} | ${m.toFixed(1)} | ${(m / base).toFixed(2)}× |`);
}
const compiledTimes = times[commands.indexOf(helloCompiled)] ?? [];
const warmTimes = times[commands.indexOf(helloWarm)] ?? [];
const compiled = median(compiledTimes);
const warm = median(warmTimes);
// Also the median of each round's own ratio: the two run back to back, so load from elsewhere on the machine, which
// moves both, cancels out better than in the ratio of the medians.
const pairRatios = warmTimes.map((time, round) => time / (compiledTimes[round] ?? NaN));
console.log(
  `\nhello.ts from a warm cache vs compiled to .js beforehand: ${(warm / compiled).toFixed(3)}× ratio of medians, ` +
    `${median(pairRatios).toFixed(3)}× median of per-round ratios (target: at most 1.05×)`,
);

// Cold: every run gets an empty cache, so it loads esbuild and compiles.
/** @type {number[]} */
const coldTimes = [];
for (let i = 0; i < 5; i++) {
  coldTimes.push(runOnce({ ...helloWarm, env: { TSGI_CACHE_DIR: join(scratch, `cold-${i}`) } }));
}
console.log(
  `hello.ts with a cold cache (compiling): median of 5: ${median(coldTimes).toFixed(1)} ms, ${(median(coldTimes) / base).toFixed(2)}× node -e ""`,
);
