// The upload part of bench/fastcgi.js: one large POST per backend through
// nginx with request buffering off, read at once and read late, on a freshly
// started backend each time, with its peak memory above idle.

import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { Readable } from "node:stream";
import { memoryKb, sleep } from "../../test/helpers/processes.js";
import { describeErrors, errorLines, fmtMiB, logSince, median, resetPeak } from "./measure.js";
import {
  checkHello,
  httpRequest,
  setup,
  setupLine,
  startBackend,
  startBenchNginx,
} from "./setup.js";

/** @typedef {import("./setup.js").Backend} Backend */
/** @typedef {{ rounds: number; sizeMiB: number; delayMs: number; cpuProf: boolean; only: string[] | undefined }} UploadOptions */
/** @typedef {Awaited<ReturnType<typeof uploadCase>>} Case */

const MiB = 1024 * 1024;

/**
 * `size` bytes of deterministic pseudo-random data in 64 KiB chunks; hashes what it yields.
 * @param {number} size
 * @param {import("node:crypto").Hash} hash
 */
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

/**
 * A few hellos and a 1 MiB upload, then a pause for the process to settle.
 * @param {Backend} backend
 */
async function warmUp(backend) {
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
}

/**
 * Samples VmRSS every 50 ms; stop() gives the peak and the sample count.
 * @param {number} pid
 * @param {number} start
 */
function sampler(pid, start) {
  let peak = start;
  let samples = 0;
  const timer = setInterval(() => {
    const rss = memoryKb(pid)?.rss;
    if (rss === undefined) return;
    samples++;
    peak = Math.max(peak, rss);
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      return { peak: Math.max(peak, memoryKb(pid)?.rss ?? 0), samples };
    },
  };
}

/**
 * One upload on a fresh backend, read `delayMs` late.
 * @param {Backend} backend
 * @param {UploadOptions} options
 * @param {number} delayMs
 */
async function uploadCase(backend, options, delayMs) {
  const proc = await startBackend(backend);
  const pid = proc.pid;
  try {
    await warmUp(backend);
    const idle = memoryKb(pid)?.rss ?? NaN;
    const peakReset = resetPeak(pid);
    const sampling = sampler(pid, idle);
    const logOffset = existsSync(backend.errorLog) ? statSync(backend.errorLog).size : 0;
    const size = options.sizeMiB * MiB;
    const hash = createHash("sha256");
    const started = process.hrtime.bigint();
    let res;
    let sampled;
    try {
      res = await httpRequest(backend.listenPort, {
        method: "POST",
        path: `/upload?delay=${delayMs}`,
        headers: { "Content-Type": "application/octet-stream", "Content-Length": String(size) },
        body: Readable.from(generatedBody(size, hash)),
        timeoutMs: 180_000,
      });
    } finally {
      sampled = sampling.stop();
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const after = memoryKb(pid);
    const expected = `${size} ${hash.digest("hex")}\n`;
    const ok = res.status === 200 && res.body === expected;
    return {
      ok,
      detail: ok
        ? ""
        : `status ${res.status}, body ${JSON.stringify(res.body.slice(0, 120))}, expected ${JSON.stringify(expected)}`,
      idle,
      sampledPeak: sampled.peak - idle,
      hwmPeak: peakReset && after ? after.hwm - idle : NaN,
      errors: errorLines(logSince(backend.errorLog, logOffset).text),
      samples: sampled.samples,
      seconds,
    };
  } finally {
    await proc.stop(5000);
  }
}

/** @param {number} delay */
const reading = (delay) => (delay ? `${delay} ms late` : "at once");

/**
 * Every case of one backend, recording its results, failures and error lines.
 * @param {Backend} backend
 * @param {UploadOptions} options
 * @param {number[]} delays
 */
async function backendCases(backend, options, delays) {
  /** @type {Map<number, Case[]>} */
  const runs = new Map();
  /** @type {string[]} */
  const failures = [];
  /** @type {string[]} */
  const errors = []; // during the big uploads
  /** @type {string[]} */
  const otherErrors = []; // during warm-ups
  let offset = 0;
  for (const delay of delays) {
    /** @type {Case[]} */
    const done = [];
    for (let round = 0; round < options.rounds; round++) {
      /** @type {Case | undefined} */
      let r;
      try {
        r = await uploadCase(backend, options, delay);
        done.push(r);
        errors.push(...r.errors);
        if (!r.ok) failures.push(`${backend.name}, reading ${reading(delay)}: ${r.detail}`);
        process.stderr.write(
          `${backend.name}, read ${reading(delay)}: +${fmtMiB(r.sampledPeak)} MiB sampled, +${fmtMiB(r.hwmPeak)} MiB VmHWM, ${r.seconds.toFixed(2)} s, ${r.ok ? "hash ok" : "HASH MISMATCH"}\n`,
        );
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        failures.push(`${backend.name}, reading ${reading(delay)}: ${message}`);
        process.stderr.write(`${backend.name}: ${message}\n`);
      }
      const log = logSince(backend.errorLog, offset);
      offset = log.offset;
      // Everything logged for this case that was not logged during the big upload.
      const uploadLines = new Set(r?.errors ?? []);
      otherErrors.push(...errorLines(log.text).filter((line) => !uploadLines.has(line)));
    }
    runs.set(delay, done);
  }
  return { runs, failures, errors, otherErrors };
}

/**
 * @param {Backend[]} backends
 * @param {Map<string, Awaited<ReturnType<typeof backendCases>>>} results
 * @param {UploadOptions} options
 * @param {number[]} delays
 */
function printTable(backends, results, options, delays) {
  const cell = (/** @type {Case[]} */ runs, /** @type {"sampledPeak" | "hwmPeak"} */ field) =>
    runs.length ? `+${fmtMiB(median(runs.map((r) => r[field])))}` : "failed";
  const time = (/** @type {Case[]} */ runs) =>
    runs.length ? median(runs.map((r) => r.seconds)).toFixed(2) : "–";
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
    const result = results.get(backend.key);
    const now = result?.runs.get(0) ?? [];
    const late = result?.runs.get(options.delayMs) ?? [];
    const all = [...now, ...late];
    const okCount = all.filter((r) => r.ok).length;
    console.log(
      `| ${backend.name} | ${fmtMiB(median(all.map((r) => r.idle)))} | ${cell(now, "sampledPeak")} / ${cell(now, "hwmPeak")} | ` +
        `${cell(late, "sampledPeak")} / ${cell(late, "hwmPeak")} | ${time(now)} / ${time(late)} | ` +
        `${okCount}/${delays.length * options.rounds} | ${result?.errors.length ?? 0} |`,
    );
  }
}

/**
 * The upload part, from start-up to the report; exit code 1 on a failed case.
 * @param {UploadOptions} options
 * @param {() => Promise<void>} stopAll
 */
export async function uploadPart(options, stopAll) {
  const { backends, goVersion } = await setup({ ...options, mode: "upload" });
  console.log(`Setup: ${setupLine(goVersion)}`);
  // nginx needs its upstreams only per request: start it first, then one backend at a time.
  const nginx = await startBenchNginx(backends);
  const delays = [0, options.delayMs];
  /** @type {Map<string, Awaited<ReturnType<typeof backendCases>>>} */
  const results = new Map();
  for (const backend of backends)
    results.set(backend.key, await backendCases(backend, options, delays));
  const mainErrors = errorLines(nginx.errorLog());
  const warnings = backends.flatMap((b) =>
    logSince(b.errorLog, 0)
      .text.split("\n")
      .filter((l) => l.includes("[warn]"))
      .map((l) => `${b.name}: ${l}`),
  );
  await stopAll();

  printTable(backends, results, options, delays);
  const failures = backends.flatMap((b) => results.get(b.key)?.failures ?? []);
  const notes = [...failures];
  for (const backend of backends) {
    const result = results.get(backend.key);
    notes.push(...describeErrors(backend.name, result?.errors ?? []));
    const other = result?.otherErrors ?? [];
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
