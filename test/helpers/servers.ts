// Starts the real processes the FastCGI end-to-end tests talk to: `tsgi fcgi`
// (from dist/, so run `npm run build` first), nginx and friends. Each gets a
// temp dir, free ports and a generated config, runs in the foreground, and is
// stopped by PID from afterAll/afterEach even when a test failed.

import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import {
  accessSync,
  constants,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  chmodSync,
} from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLEAN_PATH, REPO, TSGI_BIN } from "./cgi.js";
import type { FastCgiAddress } from "./fastcgi-client.js";

export { REPO, TSGI_BIN };

export const FCGI_FIXTURES = join(REPO, "test", "fixtures", "fcgi");

/** The path of a FastCGI fixture application. */
export function fcgiFixture(name: string): string {
  return join(FCGI_FIXTURES, name);
}

// ---------------------------------------------------------------------------
// Binaries from Debian packages

const SEARCH_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/**
 * The path of `binary`, or undefined with a warning naming the Debian package
 * to install. Under CI (CI=true) a missing binary throws instead: there the
 * web servers are installed on purpose and a silent skip would hide a break.
 */
export function findBinary(binary: string, debianPackage: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? "").split(":").filter(Boolean), ...SEARCH_PATH]) {
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  const message = `${binary} not found: install the Debian package "${debianPackage}" (apt-get install ${debianPackage})`;
  if (process.env.CI === "true")
    throw new Error(`${message}; CI=true, so this fails instead of skipping`);
  console.warn(`skipping tests that need ${binary}: ${message}`);
  return undefined;
}

export const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

// ---------------------------------------------------------------------------
// Temp dirs and ports

/** A fresh temp dir, removed by `group.cleanUp()`. World-traversable so a web server worker that dropped to `nobody` can reach sockets in it. */
export function tempDir(group: ProcessGroup, prefix = "tsgi-fcgi-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  group.onCleanUp(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A TCP port free right now on 127.0.0.1 (the kernel picks it). */
export function freePort(): Promise<number> {
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

/** Resolves once something accepts connections at `address`. */
export async function waitForListening(
  address: FastCgiAddress,
  timeoutMs = 10_000,
  alive?: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket =
        "path" in address ? connect(address.path) : connect(address.port, address.host);
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    if (alive && !alive())
      throw new Error(
        `the process exited before listening on ${"path" in address ? address.path : address.port}`,
      );
    if (Date.now() > deadline)
      throw new Error(`nothing listened on ${JSON.stringify(address)} within ${timeoutMs} ms`);
    await sleep(25);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------
// Processes

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A spawned process whose output is collected. */
export class Proc {
  readonly child: ChildProcess;
  readonly name: string;
  readonly exited: Promise<Exit>;
  private out: Buffer[] = [];
  private err: Buffer[] = [];
  private exitInfo: Exit | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.child = child;
    child.stdout?.on("data", (chunk: Buffer) => {
      this.out.push(chunk);
      this.notify();
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      this.err.push(chunk);
      this.notify();
    });
    child.stdin?.on("error", () => {});
    this.exited = new Promise((resolve) => {
      child.on("error", (error) => {
        this.err.push(Buffer.from(`spawn error: ${error.message}\n`));
        this.exitInfo ??= { code: null, signal: null };
        this.notify();
        resolve(this.exitInfo);
      });
      child.on("exit", (code, signal) => {
        this.exitInfo = { code, signal };
        this.notify();
      });
      // "close" comes after stdio is drained, so the output is complete.
      child.on("close", () => {
        this.exitInfo ??= { code: child.exitCode, signal: child.signalCode };
        this.notify();
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined)
      throw new Error(`${this.name} has no pid (spawn failed): ${this.stderr}`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  get stdout(): string {
    return this.stdoutBytes.toString("utf8");
  }

  /** stdout as bytes (a CGI response body may be binary). */
  get stdoutBytes(): Buffer {
    return Buffer.concat(this.out);
  }

  get stderr(): string {
    return Buffer.concat(this.err).toString("utf8");
  }

  /** Resolves with the match once stderr matches `pattern` (searched from `from`); rejects on timeout or exit. */
  waitForStderr(pattern: RegExp, timeoutMs = 10_000, from = 0): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = this.stderr.slice(from).match(pattern);
        if (match) return finish(undefined, match);
        if (!this.running)
          finish(
            new Error(
              `${this.name} exited (${JSON.stringify(this.exitInfo)}) before stderr matched ${pattern}; stderr:\n${this.stderr}`,
            ),
          );
      };
      const finish = (error: Error | undefined, match?: RegExpMatchArray) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        if (error) reject(error);
        else resolve(match!);
      };
      const timer = setTimeout(
        () =>
          finish(
            new Error(
              `${this.name}: stderr did not match ${pattern} within ${timeoutMs} ms; stderr:\n${this.stderr}`,
            ),
          ),
        timeoutMs,
      );
      this.listeners.add(check);
      check();
    });
  }

  /** Resolves with how it exited; rejects if it is still running after `timeoutMs`. */
  waitForExit(timeoutMs = 10_000): Promise<Exit> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`${this.name} still running after ${timeoutMs} ms; stderr:\n${this.stderr}`),
          ),
        timeoutMs,
      );
      void this.exited.then((exit) => {
        clearTimeout(timer);
        resolve(exit);
      });
    });
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) {
      try {
        process.kill(this.pid, signal);
      } catch {
        // Already gone.
      }
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 3000): Promise<Exit> {
    if (!this.running) return this.exited;
    this.signal("SIGTERM");
    const exit = await Promise.race([this.exited, sleep(graceMs).then(() => undefined)]);
    if (exit) return exit;
    this.signal("SIGKILL");
    return this.exited;
  }

  /** Resident memory in kB from /proc/<pid>/status (VmRSS), or undefined once it is gone. */
  rssKb(): number | undefined {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, "latin1");
      return Number(/VmRSS:\s*(\d+) kB/.exec(status)?.[1]);
    } catch {
      return undefined;
    }
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

/** Every PID any group started in this worker, killed if the worker exits without cleaning up. */
const everyPid = new Set<number>();
process.once("exit", () => {
  for (const pid of everyPid) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
});

/** The processes and temp dirs of one test file (or one test): `cleanUp()` from afterAll/afterEach. */
/** Samples a process's resident memory every 50 ms until stopped; stop() gives the peak in kB. */
export function sampleRss(proc: Proc): { stop(): number } {
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

export class ProcessGroup {
  private readonly procs: Proc[] = [];
  private cleanUps: (() => void)[] = [];

  spawn(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): Proc {
    const child = spawn(command, args, {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
      ...options,
    });
    const proc = new Proc(name, child);
    this.procs.push(proc);
    if (child.pid !== undefined) {
      const pid = child.pid;
      everyPid.add(pid);
      void proc.exited.then(() => everyPid.delete(pid));
    }
    return proc;
  }

  onCleanUp(fn: () => void): void {
    this.cleanUps.push(fn);
  }

  /** Stops every process still running (SIGTERM, then SIGKILL), then removes the temp dirs. */
  async cleanUp(): Promise<void> {
    await Promise.all(this.procs.map((proc) => proc.stop(2000)));
    this.procs.length = 0;
    const cleanUps = this.cleanUps;
    this.cleanUps = [];
    for (const fn of cleanUps.reverse()) {
      try {
        fn();
      } catch {
        // Best effort.
      }
    }
  }
}

// ---------------------------------------------------------------------------
// tsgi fcgi

export interface TsgiFcgiOptions {
  /** Application module (default: the fixture app). */
  app?: string;
  /**
   * Where to listen: "unix" (a socket in a temp dir, the default), "tcp"
   * (127.0.0.1 and a port the kernel picks), any --listen value, or null for
   * no --listen at all (then `stdio[0]` must be the listening socket).
   */
  listen?: "unix" | "tcp" | string | null;
  /** More command-line options. */
  args?: string[];
  /** Options for node itself, before the script (e.g. --disallow-code-generation-from-strings). */
  nodeArgs?: string[];
  /** Environment variables over a clean one (PATH only). */
  env?: Record<string, string>;
  /** stdio for the child; default ["ignore", "pipe", "pipe"]. */
  stdio?: SpawnOptions["stdio"];
  /** Runs it under `sh -c 'umask <umask>; exec ...'`. */
  umask?: string;
  /** Wait for the "serving ... on ..." line (default true). */
  waitReady?: boolean;
}

export interface TsgiFcgi {
  proc: Proc;
  /** Where to connect (undefined when it was not started with --listen). */
  address: FastCgiAddress;
}

/** Starts `node bin/tsgi.js fcgi <app>` and waits until it serves. */
export async function startTsgiFcgi(
  group: ProcessGroup,
  options: TsgiFcgiOptions = {},
): Promise<TsgiFcgi> {
  const app = options.app ?? fcgiFixture("app.js");
  const listenOption = options.listen === undefined ? "unix" : options.listen;
  let listen: string | null;
  if (listenOption === "unix") listen = join(tempDir(group), "tsgi.sock");
  else if (listenOption === "tcp") listen = "127.0.0.1:0";
  else listen = listenOption;

  const args = [
    ...(options.nodeArgs ?? []),
    TSGI_BIN,
    "fcgi",
    app,
    ...(listen !== null ? ["--listen", listen] : []),
    ...(options.args ?? []),
  ];
  const env = { PATH: CLEAN_PATH, ...options.env };
  const stdio = options.stdio ?? ["ignore", "pipe", "pipe"];
  const proc =
    options.umask !== undefined
      ? group.spawn(
          "tsgi fcgi",
          "/bin/sh",
          ["-c", `umask ${options.umask}; exec "$@"`, "sh", process.execPath, ...args],
          { env, stdio },
        )
      : group.spawn("tsgi fcgi", process.execPath, args, { env, stdio });

  let address: FastCgiAddress = { path: listen ?? "" };
  if (options.waitReady ?? true) {
    const match = await proc.waitForStderr(/serving \S+ on (.+?) \(pid/);
    const where = match[1]!;
    const tcp = /^(?:\[(.+)\]|([^/]+)):(\d+)$/.exec(where);
    address =
      where.includes("/") || !tcp
        ? { path: where }
        : { host: tcp[1] ?? tcp[2]!, port: Number(tcp[3]) };
  }
  return { proc, address };
}

// ---------------------------------------------------------------------------
// nginx

export interface NginxOptions {
  /** Text inside `http { }` before the server block (e.g. upstream blocks). */
  http?: string;
  /** Text inside `server { }` (locations). */
  server: string;
  /** Run a master and a worker process (the worker drops to nobody when we are root); default: one process. */
  masterProcess?: boolean;
}

export interface Nginx {
  proc: Proc;
  port: number;
  dir: string;
  url(path: string): string;
  /** nginx's error log so far. */
  errorLog(): string;
  /** Lines of the error log at level error or worse ([error], [crit], [alert], [emerg]). */
  errorLines(): string[];
}

/**
 * Starts nginx in the foreground with a generated config: listens on
 * 127.0.0.1 at a free port; pid file, error log and every temp path in a temp dir.
 */
export async function startNginx(
  group: ProcessGroup,
  nginxBinary: string,
  options: NginxOptions,
): Promise<Nginx> {
  const dir = tempDir(group, "tsgi-nginx-");
  const port = await freePort();
  const masterProcess = options.masterProcess ?? false;
  const config = `
# Generated by test/helpers/servers.ts
daemon off;
master_process ${masterProcess ? "on" : "off"};
${masterProcess && isRoot ? "user nobody nogroup;\nworker_processes 1;" : ""}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 512; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type application/octet-stream;
  client_max_body_size 0;
${options.http ?? ""}
  server {
    listen 127.0.0.1:${port};
    server_name localhost;
${options.server}
  }
}
`;
  writeFileSync(join(dir, "nginx.conf"), config);
  const proc = group.spawn(
    "nginx",
    nginxBinary,
    ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")],
    {
      env: { PATH: CLEAN_PATH },
    },
  );
  try {
    await waitForListening({ host: "127.0.0.1", port }, 10_000, () => proc.running);
  } catch (error) {
    const log = existsSync(join(dir, "error.log"))
      ? readFileSync(join(dir, "error.log"), "utf8")
      : "";
    throw new Error(
      `${(error as Error).message}\nnginx stderr:\n${proc.stderr}\nerror.log:\n${log}`,
    );
  }
  const errorLog = () =>
    existsSync(join(dir, "error.log")) ? readFileSync(join(dir, "error.log"), "utf8") : "";
  return {
    proc,
    port,
    dir,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    errorLog,
    errorLines: () =>
      errorLog()
        .split("\n")
        .filter((line) => /\[(error|crit|alert|emerg)\]/.test(line)),
  };
}
