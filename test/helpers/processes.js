// The processes the end-to-end tests and the benchmarks start: spawned with
// their output collected, stopped by PID (SIGTERM, then SIGKILL) from a
// group's cleanUp() even when a test failed, in temp dirs removed afterwards.
// Plain JavaScript with JSDoc types (checked by tsc through checkJs) because
// the benchmarks run under plain `node`, which cannot import TypeScript, and
// use the same launchers as the tests.

import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** @typedef {import("node:child_process").ChildProcess} ChildProcess */
/** @typedef {import("node:child_process").SpawnOptions} SpawnOptions */
/** @typedef {{ path: string } | { host: string; port: number }} Address */
/** @typedef {{ code: number | null; signal: NodeJS.Signals | null }} Exit */

export const REPO = fileURLToPath(new URL("../..", import.meta.url));
export const TSGI_BIN = join(REPO, "bin", "tsgi.js");
export const FIXTURES = join(REPO, "test", "fixtures");

/** A PATH that finds the node running the tests, and the usual system tools. */
export const CLEAN_PATH = [dirname(process.execPath), "/usr/local/bin", "/usr/bin", "/bin"].join(
  ":",
);

export const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/**
 * @param {number} ms
 * @returns {Promise<void>}
 */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A fresh temp dir, removed by `group.cleanUp()`. World-traversable so a web
 * server worker that dropped to `nobody` can reach sockets in it.
 * @param {ProcessGroup} group
 */
export function tempDir(group, prefix = "tsgi-fcgi-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  group.onCleanUp(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A TCP port free right now on 127.0.0.1 (the kernel picks it).
 * @returns {Promise<number>}
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** @param {Address} address @returns {Promise<boolean>} */
function accepts(address) {
  return new Promise((resolve) => {
    const socket = "path" in address ? connect(address.path) : connect(address.port, address.host);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Resolves once something accepts connections at `address`; rejects early
 * when `alive()` turns false, and after `timeoutMs`.
 * @param {Address} address
 * @param {() => boolean} [alive]
 */
export async function waitForListening(address, timeoutMs = 10_000, alive) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await accepts(address)) return;
    if (alive && !alive())
      throw new Error(
        `the process exited before listening on ${"path" in address ? address.path : address.port}`,
      );
    if (Date.now() > deadline)
      throw new Error(`nothing listened on ${JSON.stringify(address)} within ${timeoutMs} ms`);
    await sleep(25);
  }
}

/**
 * Waits until the server `proc` listens on 127.0.0.1 at each of `ports`; on
 * failure the error carries its output and what `context()` adds (its logs).
 * @param {Proc} proc
 * @param {number[]} ports
 * @param {() => string} context
 */
export async function waitForServer(proc, ports, context, timeoutMs = 10_000) {
  try {
    for (const port of ports)
      await waitForListening({ host: "127.0.0.1", port }, timeoutMs, () => proc.running);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${message}\n${proc.name} output:\n${proc.stderr}\n${context()}`, {
      cause: error,
    });
  }
}

/**
 * @typedef {object} Server A web server the tests started.
 * @property {Proc} proc
 * @property {number} port Where it listens on 127.0.0.1.
 * @property {(path: string) => string} url
 * @property {() => string} errorLog Its error log so far.
 */

/**
 * @param {Proc} proc
 * @param {number} port
 * @param {() => string} errorLog
 * @returns {Server}
 */
export function serverHandle(proc, port, errorLog) {
  return { proc, port, url: (path) => `http://127.0.0.1:${port}${path}`, errorLog };
}

/** @param {number} pid */
function statFields(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  // Fields after the command name (which may hold spaces) start after the last ")".
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/**
 * Whether a process with this PID exists and is not a zombie (also one of another user).
 * @param {number} pid
 */
export function alive(pid) {
  try {
    return statFields(pid)[0] !== "Z";
  } catch {
    return false;
  }
}

/**
 * The pids of `pid`'s live child processes (from /proc, so it also works for
 * a process we did not spawn, such as nginx's workers).
 * @param {number} pid
 * @returns {number[]}
 */
export function childPids(pid) {
  /** @type {number[]} */
  const children = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = statFields(Number(entry));
      if (Number(fields[1]) === pid && fields[0] !== "Z") children.push(Number(entry));
    } catch (error) {
      // The process ended while we looked; anything else would make the count wrong.
      const code = /** @type {NodeJS.ErrnoException} */ (error).code;
      if (code !== "ENOENT" && code !== "ESRCH") throw error;
    }
  }
  return children.sort((a, b) => a - b);
}

/**
 * VmRSS and VmHWM of a process in KiB, or undefined once it is gone.
 * @param {number} pid
 * @returns {{ rss: number; hwm: number } | undefined}
 */
export function memoryKb(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "latin1");
    return {
      rss: Number(/VmRSS:\s*(\d+) kB/.exec(status)?.[1]),
      hwm: Number(/VmHWM:\s*(\d+) kB/.exec(status)?.[1]),
    };
  } catch {
    return undefined;
  }
}

/** A spawned process whose output is collected. */
export class Proc {
  /** @type {Buffer[]} */
  #out = [];
  /** @type {Buffer[]} */
  #err = [];
  /** @type {Exit | undefined} */
  #exit;
  /** @type {Set<() => void>} */
  #listeners = new Set();

  /** @param {string} name @param {ChildProcess} child */
  constructor(name, child) {
    /** @readonly */
    this.name = name;
    /** @readonly */
    this.child = child;
    child.stdout?.on("data", (/** @type {Buffer} */ chunk) => this.#collect(this.#out, chunk));
    child.stderr?.on("data", (/** @type {Buffer} */ chunk) => this.#collect(this.#err, chunk));
    child.stdin?.on("error", () => {});
    /** @readonly @type {Promise<Exit>} */
    this.exited = new Promise((resolve) => {
      child.on("error", (error) => {
        this.#err.push(Buffer.from(`spawn error: ${error.message}\n`));
        this.#exit ??= { code: null, signal: null };
        this.#notify();
        resolve(this.#exit);
      });
      child.on("exit", (code, signal) => {
        this.#exit = { code, signal };
        this.#notify();
      });
      // "close" comes after stdio is drained, so the output is complete.
      child.on("close", () => {
        this.#exit ??= { code: child.exitCode, signal: child.signalCode };
        this.#notify();
        resolve(this.#exit);
      });
    });
  }

  /** @returns {number} */
  get pid() {
    if (this.child.pid === undefined)
      throw new Error(`${this.name} has no pid (spawn failed): ${this.stderr}`);
    return this.child.pid;
  }

  get running() {
    return this.#exit === undefined;
  }

  get stdout() {
    return this.stdoutBytes.toString("utf8");
  }

  /** stdout as bytes (a CGI response body may be binary). */
  get stdoutBytes() {
    return Buffer.concat(this.#out);
  }

  get stderr() {
    return Buffer.concat(this.#err).toString("utf8");
  }

  /**
   * Resolves with the match once stderr matches `pattern` (searched from
   * `from`); rejects on timeout or exit.
   * @param {RegExp} pattern
   * @returns {Promise<RegExpMatchArray>}
   */
  waitForStderr(pattern, timeoutMs = 10_000, from = 0) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = this.stderr.slice(from).match(pattern);
        if (match) finish(undefined, match);
        else if (!this.running)
          finish(
            new Error(
              `${this.name} exited (${JSON.stringify(this.#exit)}) before stderr matched ${String(pattern)}; stderr:\n${this.stderr}`,
            ),
          );
      };
      /** @param {Error | undefined} error @param {RegExpMatchArray} [match] */
      const finish = (error, match) => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        if (match) resolve(match);
        else reject(error ?? new Error("no match"));
      };
      const timer = setTimeout(() => {
        const message = `${this.name}: stderr did not match ${String(pattern)} within ${timeoutMs} ms`;
        finish(new Error(`${message}; stderr:\n${this.stderr}`));
      }, timeoutMs);
      this.#listeners.add(check);
      check();
    });
  }

  /**
   * Resolves with how it exited; rejects if it is still running after `timeoutMs`.
   * @returns {Promise<Exit>}
   */
  waitForExit(timeoutMs = 10_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const message = `${this.name} still running after ${timeoutMs} ms`;
        reject(new Error(`${message}; stderr:\n${this.stderr}`));
      }, timeoutMs);
      void this.exited.then((exit) => {
        clearTimeout(timer);
        resolve(exit);
      });
    });
  }

  /** @param {NodeJS.Signals} signal */
  signal(signal) {
    if (!this.running) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // Already gone.
    }
  }

  /**
   * `signal` (SIGTERM by default; nginx stops gracefully on SIGQUIT), then
   * SIGKILL if it has not exited within `graceMs`.
   * @param {NodeJS.Signals} [signal]
   * @returns {Promise<Exit>}
   */
  async stop(graceMs = 3000, signal = "SIGTERM") {
    if (!this.running) return this.exited;
    this.signal(signal);
    const exit = await Promise.race([this.exited, sleep(graceMs).then(() => undefined)]);
    if (exit) return exit;
    this.signal("SIGKILL");
    return this.exited;
  }

  /** Resident memory in kB (VmRSS), or undefined once it is gone. */
  rssKb() {
    return this.child.pid === undefined ? undefined : memoryKb(this.child.pid)?.rss;
  }

  /** @param {Buffer[]} chunks @param {Buffer} chunk */
  #collect(chunks, chunk) {
    chunks.push(chunk);
    this.#notify();
  }

  #notify() {
    for (const listener of [...this.#listeners]) listener();
  }
}

/**
 * Samples a process's resident memory every 50 ms until stopped; stop() gives the peak in kB.
 * @param {Proc} proc
 * @returns {{ stop(): number }}
 */
export function sampleRss(proc) {
  let peak = proc.rssKb() ?? 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, proc.rssKb() ?? 0);
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, proc.rssKb() ?? 0);
    },
  };
}

/**
 * Every PID any group started in this process, killed if it exits without cleaning up.
 * @type {Set<number>}
 */
const everyPid = new Set();
process.once("exit", () => {
  for (const pid of everyPid) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
});

/** The processes and temp dirs of one test file (or one test, or one benchmark run). */
export class ProcessGroup {
  /** @type {Proc[]} */
  #procs = [];
  /** @type {(() => void)[]} */
  #cleanUps = [];

  /**
   * @param {string} name
   * @param {string} command
   * @param {readonly string[]} args
   * @param {SpawnOptions} [options]
   */
  spawn(name, command, args, options = {}) {
    const child = spawn(command, args, {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
      ...options,
    });
    const proc = new Proc(name, child);
    this.#procs.push(proc);
    if (child.pid !== undefined) {
      const pid = child.pid;
      everyPid.add(pid);
      void proc.exited.then(() => everyPid.delete(pid));
    }
    return proc;
  }

  /** @param {() => void} fn */
  onCleanUp(fn) {
    this.#cleanUps.push(fn);
  }

  /**
   * For a server started `detached` (its own process group, whose id is its
   * PID): after the processes were stopped, kill whatever is left in that
   * process group, e.g. FastCGI children it spawned.
   * @param {Proc} proc
   */
  killProcessGroupOnCleanUp(proc) {
    const pgid = proc.pid;
    this.onCleanUp(() => {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {
        // The group is empty: the server stopped its children itself.
      }
    });
  }

  /**
   * Stops every process still running, then removes the temp dirs. `first`
   * are stopped before the others (nginx, so it logs no errors about
   * backends going away), with `signal` when given.
   * @param {{ first?: string; signal?: NodeJS.Signals }} [order]
   */
  async cleanUp(order = {}) {
    const procs = this.#procs;
    this.#procs = [];
    const first = procs.filter((proc) => proc.name === order.first);
    await Promise.all(first.map((proc) => proc.stop(2000, order.signal)));
    await Promise.all(procs.map((proc) => proc.stop(2000)));
    const cleanUps = this.#cleanUps.reverse();
    this.#cleanUps = [];
    for (const fn of cleanUps) {
      try {
        fn();
      } catch {
        // Best effort.
      }
    }
  }
}
