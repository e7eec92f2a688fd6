// What bench/fastcgi.js reads off the processes it runs: CPU time and memory
// from /proc, what nginx appended to its error logs, and medians.

import { spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
} from "node:fs";

const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout) || 100;

/**
 * CPU time (user + system) a process has used so far, in seconds (NaN if it is gone).
 * @param {number} pid
 */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime (fields 14, 15)
  } catch {
    return NaN;
  }
}

/**
 * Resets VmHWM to the current RSS (Linux >= 4.0); false if not allowed.
 * @param {number} pid
 */
export function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/**
 * What was appended to a log file since `offset`, and the new offset.
 * @param {string} file
 * @param {number} offset
 */
export function logSince(file, offset) {
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

/** @param {string} text */
export const errorLines = (text) => text.split("\n").filter((line) => line.includes("[error]"));

/**
 * An nginx log line without its time stamp, pid, connection and client parts, for grouping.
 * @param {string} line
 */
const errorKind = (line) =>
  line
    .replace(/^\S+ \S+ \[error\] \d+#\d+: \*\d+ /, "")
    .replace(/, client: .*$/, "")
    .replace(/:\d{2,5}\b/g, ":PORT");

/**
 * The five most frequent kinds of nginx error lines, each with a count and an example.
 * @param {string} name
 * @param {string[]} lines
 */
export function describeErrors(name, lines) {
  /** @type {Map<string, { count: number; example: string }>} */
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

/**
 * The median of the finite values, NaN if there are none.
 * @param {(number | undefined)[]} values
 */
export function median(values) {
  const sorted = /** @type {number[]} */ (values.filter((v) => Number.isFinite(v))).sort(
    (a, b) => a - b,
  );
  if (sorted.length === 0) return NaN;
  const middle = sorted.length >> 1;
  const high = sorted[middle] ?? NaN;
  return sorted.length % 2 ? high : ((sorted[middle - 1] ?? NaN) + high) / 2;
}

/** @param {number | undefined} kib */
export const fmtMiB = (kib) =>
  kib !== undefined && Number.isFinite(kib) ? (kib / 1024).toFixed(1) : "–";
