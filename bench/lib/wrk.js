// wrk as the load generator of bench/apps.js and bench/anchors.js: one run
// against a port, read back as req/s and latency, and the median the tables
// are made of.

import { spawn } from "node:child_process";

/** @type {Record<string, number>} */
const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

/**
 * @typedef {object} WrkResult
 * @property {number} rps
 * @property {number} p50 Median latency in ms.
 * @property {number} p99 99th percentile latency in ms.
 * @property {number} non2xx Responses with a status other than 2xx or 3xx.
 * @property {string | undefined} socketErrors wrk's "Socket errors" line, if any.
 */

/**
 * One latency percentile from wrk's --latency distribution, in ms.
 * @param {string} text
 * @param {string} percent
 */
function percentile(text, percent) {
  const match = new RegExp(`^\\s+${percent}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(text);
  return match ? Number(match[1]) * (UNIT_MS[match[2] ?? ""] ?? NaN) : NaN;
}

/**
 * `wrk -t1 -c<connections> -d<seconds>s --latency` against 127.0.0.1:port.
 * @param {number} port
 * @param {{ seconds: number; connections: number }} how
 * @returns {Promise<WrkResult>}
 */
export function wrk(port, { seconds, connections }) {
  const args = [
    "-t1",
    `-c${connections}`,
    `-d${seconds}s`,
    "--latency",
    `http://127.0.0.1:${port}/`,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    child.stdout.on("data", (/** @type {Buffer} */ chunk) => (text += chunk.toString()));
    child.stderr.on("data", (/** @type {Buffer} */ chunk) => (text += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), (seconds + 30) * 1000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
      if (code !== 0 || !Number.isFinite(rps))
        return reject(new Error(`wrk ${args.join(" ")} failed (exit ${code}):\n${text}`));
      resolve({
        rps,
        p50: percentile(text, "50"),
        p99: percentile(text, "99"),
        non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0),
        socketErrors: /Socket errors: (.*)/.exec(text)?.[1],
      });
    });
  });
}

/** @param {number[]} values */
export function median(values) {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const high = sorted[middle] ?? NaN;
  return sorted.length % 2 ? high : ((sorted[middle - 1] ?? NaN) + high) / 2;
}
