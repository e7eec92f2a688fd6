// The load part of bench/fastcgi.js: wrk against nginx in front of each
// backend, round after round in a rotating order, and the tables.

import { copyFileSync, existsSync, readFileSync, readdirSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { childPids, memoryKb, REPO, sleep } from "../../test/helpers/processes.js";
import { cpuSeconds, describeErrors, errorLines, fmtMiB, logSince, median } from "./measure.js";
import {
  run,
  setup,
  setupLine,
  startBackend,
  startBenchNginx,
  checkHello,
  tail,
  tmp,
} from "./setup.js";

/** @typedef {import("./setup.js").Backend} Backend */
/** @typedef {{ rounds: number; duration: number; cpuProf: boolean; only: string[] | undefined }} LoadOptions */
/**
 * @typedef {object} Results
 * @property {number[]} rps
 * @property {number[]} p99
 * @property {(number | undefined)[]} rss
 * @property {number[]} ratios
 * @property {string[]} errors
 * @property {number} non2xx
 * @property {string[]} socketErrors
 * @property {number[]} backendCpu
 * @property {number[]} nginxCpu
 */

/** @type {Record<string, number>} */
const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

/**
 * One wrk run: req/s, p99 latency in ms, and what went wrong.
 * @param {number} port
 * @param {number} seconds
 */
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
  const p99 = p99Match ? Number(p99Match[1]) * (UNIT_MS[p99Match[2] ?? ""] ?? NaN) : NaN;
  const requests = Number(/(\d+) requests in/.exec(text)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const socketErrors = /Socket errors: (.*)/.exec(text)?.[1];
  if (!Number.isFinite(rps)) throw new Error(`cannot read wrk output:\n${text}`);
  return { rps, p99, requests, non2xx, socketErrors };
}

/** @returns {Results} */
const emptyResults = () => ({
  rps: [],
  p99: [],
  rss: [],
  ratios: [],
  errors: [],
  non2xx: 0,
  socketErrors: [],
  backendCpu: [],
  nginxCpu: [],
});

/**
 * The rounds: each backend under wrk in turn, rotating the order.
 * @param {Backend[]} backends
 * @param {LoadOptions} options
 * @param {() => number} nginxCpu
 * @param {(backend: Backend) => string[]} takeErrors
 */
async function rounds(backends, options, nginxCpu, takeErrors) {
  const results = new Map(backends.map((b) => [b.key, emptyResults()]));
  const baseline = backends.find((b) => b.baseline);
  for (let round = 0; round < options.rounds; round++) {
    /** @type {Map<string, number>} */
    const roundRps = new Map();
    const line = [];
    // Rotate the order so no backend always runs right after another.
    for (let k = 0; k < backends.length; k++) {
      const backend = /** @type {Backend} */ (backends[(round + k) % backends.length]);
      const proc = /** @type {import("../../test/helpers/processes.js").Proc} */ (backend.proc);
      if (!proc.running) throw new Error(`${backend.name} died:\n${tail(proc)}`);
      await sleep(500);
      const cpuBefore = [cpuSeconds(proc.pid), nginxCpu()];
      const wallBefore = performance.now();
      const r = await wrk(backend.listenPort, options.duration);
      const wall = (performance.now() - wallBefore) / 1000;
      const result = /** @type {Results} */ (results.get(backend.key));
      result.backendCpu.push((100 * (cpuSeconds(proc.pid) - (cpuBefore[0] ?? 0))) / wall);
      result.nginxCpu.push((100 * (nginxCpu() - (cpuBefore[1] ?? 0))) / wall);
      result.rps.push(r.rps);
      result.p99.push(r.p99);
      result.rss.push(memoryKb(proc.pid)?.rss);
      result.errors.push(...takeErrors(backend));
      result.non2xx += r.non2xx;
      if (r.socketErrors) result.socketErrors.push(r.socketErrors);
      roundRps.set(backend.key, r.rps);
      line.push(`${backend.key} ${Math.round(r.rps)}`);
    }
    const base = roundRps.get(baseline?.key ?? "") ?? NaN;
    for (const backend of backends)
      results.get(backend.key)?.ratios.push((roundRps.get(backend.key) ?? NaN) / base);
    process.stderr.write(`round ${round + 1}/${options.rounds}: ${line.join(", ")} req/s\n`);
  }
  return results;
}

/**
 * @param {Backend[]} backends
 * @param {Map<string, Results>} results
 * @param {LoadOptions} options
 */
function printTables(backends, results, options) {
  const get = (/** @type {Backend} */ backend) => /** @type {Results} */ (results.get(backend.key));
  console.log();
  console.log(
    `FastCGI hello world behind nginx (1 worker), wrk -t1 -c16, ${options.rounds} rounds × ${options.duration} s, upstream keepalive 32`,
  );
  console.log(
    "| backend | median req/s | ratio to node:http proxy_pass | p99 latency | backend RSS (MiB, after the load) | nginx [error] lines |",
  );
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const backend of backends) {
    const r = get(backend);
    console.log(
      `| ${backend.name} | ${Math.round(median(r.rps))} | ${median(r.ratios).toFixed(2)}× | ${median(r.p99).toFixed(2)} ms | ` +
        `${fmtMiB(median(r.rss))} | ${r.errors.length} |`,
    );
  }
  console.log();
  console.log(`CPU while wrk ran (median over the rounds; 100% = one core of ${cpus().length}):`);
  console.log(
    "| backend | backend CPU | nginx worker CPU | backend CPU µs per request | nginx CPU µs per request |",
  );
  console.log("|---|---:|---:|---:|---:|");
  for (const backend of backends) {
    const r = get(backend);
    const perRequest = (/** @type {number[]} */ cpu) =>
      median(cpu.map((c, i) => (c / 100 / (r.rps[i] ?? NaN)) * 1e6)).toFixed(0);
    console.log(
      `| ${backend.name} | ${median(r.backendCpu).toFixed(0)}% | ${median(r.nginxCpu).toFixed(0)}% | ${perRequest(r.backendCpu)} | ${perRequest(r.nginxCpu)} |`,
    );
  }
  console.log();
  console.log("Per-round req/s (ratio to node:http in the same round):");
  for (const backend of backends) {
    const r = get(backend);
    console.log(
      `- ${backend.name}: ${r.rps.map((v, i) => `${Math.round(v)} (${(r.ratios[i] ?? NaN).toFixed(2)}×)`).join(", ")}`,
    );
  }
}

/**
 * @param {Backend[]} backends
 * @param {Map<string, Results>} results
 * @param {Map<string, string[]>} warmupErrors
 * @param {string[]} mainErrors
 */
function notes(backends, results, warmupErrors, mainErrors) {
  const notes = [];
  for (const backend of backends) {
    const r = /** @type {Results} */ (results.get(backend.key));
    if (r.non2xx) notes.push(`${backend.name}: wrk saw ${r.non2xx} non-2xx/3xx responses`);
    if (r.socketErrors.length)
      notes.push(`${backend.name}: wrk socket errors: ${r.socketErrors.join("; ")}`);
    const warm = warmupErrors.get(backend.key) ?? [];
    if (warm.length)
      notes.push(
        `${backend.name}: ${warm.length} nginx [error] lines during the warm-up (not counted above)`,
      );
    notes.push(...describeErrors(backend.name, r.errors));
  }
  if (mainErrors.length)
    notes.push(`nginx main error log: ${mainErrors.length} [error] lines, e.g. ${mainErrors[0]}`);
  for (const backend of backends) {
    const proc = backend.proc;
    const log = (proc ? proc.stdout + proc.stderr : "")
      .trim()
      .split("\n")
      .filter((l) => l && !/serving .* on /.test(l) && !/SIGTERM|SIGINT/.test(l));
    if (log.length)
      notes.push(
        `${backend.name} wrote ${log.length} line(s) to stderr/stdout, e.g. ${log.slice(0, 3).join(" | ")}`,
      );
  }
  return notes;
}

/**
 * Top self-time functions of a backend's CPU profile, as shares of its busy time.
 * @param {Backend} backend
 */
function printProfile(backend) {
  const dir = join(tmp, `cpu-prof-${backend.key}`);
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")) : [];
  if (!files[0]) {
    console.log(`\nno CPU profile was written for ${backend.name} (did it exit cleanly?)`);
    return;
  }
  const saved = join(tmpdir(), `${backend.key}-fcgi-bench-${Date.now()}.cpuprofile`);
  copyFileSync(join(dir, files[0]), saved);
  /** @type {unknown} */
  const parsed = JSON.parse(readFileSync(saved, "utf8"));
  const profile =
    /** @type {{ nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]; samples: number[]; timeDeltas: number[] }} */ (
      parsed
    );
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  /** @type {Map<string, number>} */
  const self = new Map();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)?.callFrame;
    const dt = profile.timeDeltas[i] ?? 0;
    if (!frame || frame.functionName === "(idle)") return;
    const where = frame.url
      ? `${frame.url.replace(`file://${REPO}`, "").replace(/^\//, "")}:${frame.lineNumber + 1}`
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
  for (const [key, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 20))
    console.log(`| ${(us / 1000).toFixed(0)} | ${((100 * us) / busy).toFixed(1)} | \`${key}\` |`);
}

/**
 * The load part, from start-up to the report.
 * @param {LoadOptions} options
 * @param {() => Promise<void>} stopAll
 */
export async function loadPart(options, stopAll) {
  const { backends, goVersion } = await setup({ ...options, mode: "load" });
  console.log(`Setup: ${setupLine(goVersion)}`);
  for (const backend of backends) await startBackend(backend);
  const nginx = await startBenchNginx(backends);
  for (const backend of backends) await checkHello(backend);
  const nginxWorkers = childPids(nginx.proc.pid);
  const nginxCpu = () => nginxWorkers.reduce((sum, pid) => sum + cpuSeconds(pid), 0);

  /** @type {Map<string, number>} */
  const offsets = new Map(backends.map((b) => [b.key, 0]));
  const takeErrors = (/** @type {Backend} */ backend) => {
    const { text, offset } = logSince(backend.errorLog, offsets.get(backend.key) ?? 0);
    offsets.set(backend.key, offset);
    return errorLines(text);
  };
  const warmup = Math.min(2, options.duration);
  process.stderr.write(`warm-up: ${warmup} s per backend\n`);
  /** @type {Map<string, string[]>} */
  const warmupErrors = new Map();
  for (const backend of backends) {
    await wrk(backend.listenPort, warmup);
    warmupErrors.set(backend.key, takeErrors(backend));
  }
  const results = await rounds(backends, options, nginxCpu, takeErrors);
  const mainErrors = errorLines(nginx.errorLog());
  await stopAll();

  printTables(backends, results, options);
  const found = notes(backends, results, warmupErrors, mainErrors);
  if (found.length) {
    console.log();
    console.log("Notes:");
    for (const note of found) console.log(`- ${note}`);
  }
  if (options.cpuProf)
    for (const backend of backends)
      if (backend.key === "tsgi" || backend.key === "node-http") printProfile(backend);
}
