#!/usr/bin/env node
// Runs Express's or Koa's own test suite twice from a checkout — plainly, then
// with wrap-servers.mjs preloaded so that every server the suite creates
// serves through toNodeHandler(fromNodeHandler(listener)) — and prints both
// counts and the tests that fail only through tsgi.
//
// usage: node test/compat/run.js <checkout> [--only plain|tsgi] [--timeout minutes] [--errors]
//
// The checkout's dev dependencies are installed with npm in the checkout when
// missing; tsgi's dist/ must be built (`npm run build`). See README.md.

import { spawn, spawnSync } from "node:child_process";
import console from "node:console";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { clearTimeout, setTimeout } from "node:timers";
import { URL, fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const WRAPPER = join(HERE, "wrap-servers.mjs");
const NODE_TEST_REPORTER = join(HERE, "node-test-reporter.mjs");
const TSGI_BUILD = resolve(HERE, "../../dist/index.js");

/** @typedef {"passed" | "failed" | "pending"} State */
/** @typedef {{ title: string, state: State, error?: string }} TestResult */
/** @typedef {{ results: TestResult[], wrappedListeners: number, timedOut: boolean }} Run */
/** @typedef {{ fullTitle: string, err: { message?: string } }} MochaTest */
/** @typedef {{ tests: MochaTest[], failures: MochaTest[], pending: MochaTest[] }} MochaReport */
/** @typedef {{ name?: string, version?: string, devDependencies?: Record<string, string> }} Manifest */
/**
 * @typedef {object} Suite
 * @property {string} name
 * @property {(report: string) => string[]} args node's arguments, run in the checkout
 * @property {(report: string) => TestResult[]} read the results from the report file
 */

/** @type {Record<string, Suite>} */
const SUITES = {
  // The checkout's `npm test`, with Mocha's JSON reporter writing to a file.
  express: {
    name: "Express",
    args: (report) => [
      "node_modules/mocha/bin/mocha.js",
      "--require",
      "test/support/env",
      "--reporter",
      "json",
      "--reporter-option",
      `output=${report}`,
      "--check-leaks",
      "test/",
      "test/acceptance/",
    ],
    read: readMochaReport,
  },
  // `npm test` is `node --test`, which has no time limit of its own: a hung
  // test would hang the run, so each test gets one.
  koa: {
    name: "Koa",
    args: (report) => [
      "--test",
      "--test-timeout=20000",
      `--test-reporter=${NODE_TEST_REPORTER}`,
      `--test-reporter-destination=${report}`,
    ],
    read: readJsonLines,
  },
};

/** JSON.parse, typed to return unknown so that each use states what it expects. */
const parseJson = /** @type {(text: string) => unknown} */ (JSON.parse);

/** @param {string} file */
function readMochaReport(file) {
  const report = /** @type {MochaReport} */ (parseJson(readFileSync(file, "utf8")));
  const failed = new Set(report.failures.map((t) => t.fullTitle));
  const pending = new Set(report.pending.map((t) => t.fullTitle));
  return report.tests.map((t) => {
    /** @type {State} */
    const state = failed.has(t.fullTitle)
      ? "failed"
      : pending.has(t.fullTitle)
        ? "pending"
        : "passed";
    return { title: t.fullTitle, state, error: t.err.message };
  });
}

/** @param {string} file */
function readJsonLines(file) {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => /** @type {TestResult} */ (parseJson(line)));
}

/** @param {string} checkout */
function suiteOf(checkout) {
  const manifest = join(checkout, "package.json");
  if (!existsSync(manifest)) fail(`${checkout} has no package.json`);
  const pkg = /** @type {Manifest} */ (parseJson(readFileSync(manifest, "utf8")));
  const suite = SUITES[pkg.name ?? ""];
  if (!suite) fail(`${checkout} is ${pkg.name ?? "unnamed"}; this runs express or koa`);
  return { suite, pkg };
}

/**
 * `npm install` in the checkout when one of its dev dependencies is missing
 * (Koa's `prepare` also builds the dist/koa.mjs its ESM test loads).
 * @param {string} checkout
 * @param {Record<string, string>} devDependencies
 */
function ensureDependencies(checkout, devDependencies) {
  const missing = Object.keys(devDependencies).filter(
    (name) => !existsSync(join(checkout, "node_modules", name, "package.json")),
  );
  if (missing.length === 0) return;
  console.log(`installing the checkout's dependencies (missing: ${missing.join(", ")})`);
  const npm = spawnSync("npm", ["install", "--no-audit", "--no-fund"], {
    cwd: checkout,
    stdio: "inherit",
  });
  if (npm.status !== 0) fail(`npm install in ${checkout} failed`);
}

/**
 * Runs the suite once; under tsgi, NODE_OPTIONS carries the preload so that
 * the processes `node --test` starts for each file get it too.
 * @param {Suite} suite
 * @param {string} checkout
 * @param {boolean} throughTsgi
 * @param {number} timeoutMs
 * @returns {Promise<Run>}
 */
async function runSuite(suite, checkout, throughTsgi, timeoutMs) {
  const dir = mkdtempSync(join(tmpdir(), "tsgi-compat-"));
  const report = join(dir, "report");
  const counts = join(dir, "wrapped");
  /** @type {NodeJS.ProcessEnv} */
  const env = { ...process.env, TSGI_COMPAT_COUNT_FILE: counts };
  if (throughTsgi)
    env.NODE_OPTIONS = [process.env.NODE_OPTIONS, `--import=${WRAPPER}`].join(" ").trim();
  try {
    const timedOut = await runNode(suite.args(report), checkout, env, timeoutMs);
    if (!existsSync(report)) fail(`${suite.name}'s suite wrote no report (see its output above)`);
    const wrappedListeners = existsSync(counts)
      ? readFileSync(counts, "utf8")
          .split("\n")
          .reduce((sum, n) => sum + Number(n || 0), 0)
      : 0;
    return { results: suite.read(report), wrappedListeners, timedOut };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The suite's own output goes to stderr, apart from what this script prints.
 * Resolves to whether the run was cut off at timeoutMs (its process group is
 * killed: an open handle left by a failing test must not hold the run).
 * @param {string[]} args
 * @param {string} cwd
 * @param {NodeJS.ProcessEnv} env
 * @param {number} timeoutMs
 * @returns {Promise<boolean>}
 */
function runNode(args, cwd, env, timeoutMs) {
  return new Promise((done) => {
    const child = spawn(process.execPath, args, {
      cwd,
      env,
      stdio: ["ignore", 2, 2],
      detached: true,
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    }, timeoutMs);
    child.on("exit", () => {
      clearTimeout(timer);
      done(timedOut);
    });
  });
}

/** @param {TestResult[]} results */
function count(results) {
  /** @type {Record<State, number>} */
  const counts = { passed: 0, failed: 0, pending: 0 };
  for (const { state } of results) counts[state]++;
  return counts;
}

/**
 * @param {string} label
 * @param {Run} run
 */
function printCounts(label, run) {
  const { passed, failed, pending } = count(run.results);
  const wrapped = label === "tsgi" ? `, ${run.wrappedListeners} request listeners wrapped` : "";
  const cut = run.timedOut ? " (cut off at the time limit)" : "";
  console.log(
    `${label.padEnd(5)}: ${passed} passed, ${failed} failed, ${pending} pending${wrapped}${cut}`,
  );
}

/**
 * Tests that fail through tsgi but passed plainly (or were not reached plainly).
 * @param {Run} plain
 * @param {Run} tsgi
 * @param {boolean} errors
 */
function printOnlyUnderTsgi(plain, tsgi, errors) {
  const failedPlainly = new Set(
    plain.results.filter((t) => t.state === "failed").map((t) => t.title),
  );
  const only = tsgi.results.filter((t) => t.state === "failed" && !failedPlainly.has(t.title));
  console.log(`\nfailing only under tsgi: ${only.length}`);
  for (const test of only) {
    console.log(`  - ${test.title}`);
    if (errors && test.error) console.log(`      ${test.error.split("\n")[0]}`);
  }
}

/** @param {string} message @returns {never} */
function fail(message) {
  console.error(`compat: ${message}`);
  process.exit(2);
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      only: { type: "string" },
      timeout: { type: "string", default: "15" },
      errors: { type: "boolean", default: false },
    },
  });
  if (positionals.length !== 1)
    fail(
      "usage: node test/compat/run.js <express-or-koa-checkout> [--only plain|tsgi] [--timeout minutes] [--errors]",
    );
  if (values.only !== undefined && values.only !== "plain" && values.only !== "tsgi")
    fail("--only takes plain or tsgi");
  if (!existsSync(TSGI_BUILD)) fail(`${TSGI_BUILD} is missing: run npm run build first`);
  const checkout = resolve(positionals[0]);
  const { suite, pkg } = suiteOf(checkout);
  const timeoutMs = Number(values.timeout) * 60_000;
  ensureDependencies(checkout, pkg.devDependencies ?? {});
  console.log(`${suite.name} ${pkg.version ?? ""} at ${checkout}`);

  const plain =
    values.only === "tsgi" ? undefined : await runSuite(suite, checkout, false, timeoutMs);
  const tsgi =
    values.only === "plain" ? undefined : await runSuite(suite, checkout, true, timeoutMs);
  console.log("");
  if (plain) printCounts("plain", plain);
  if (tsgi) printCounts("tsgi", tsgi);
  if (plain && tsgi) printOnlyUnderTsgi(plain, tsgi, values.errors);
  else if (tsgi)
    printOnlyUnderTsgi({ results: [], wrappedListeners: 0, timedOut: false }, tsgi, values.errors);
}

await main();
