// `tsgi serve --watch`: the development server restarts the application when a
// file it loaded changes. A small primary process owns the listening socket and
// accepts every connection; the application runs in a child process that gets
// each connection handed over. On a change the primary starts a new child, holds
// new connections until it is ready, then retires the old one: the socket never
// closes, so a browser refresh during a restart waits a moment instead of
// getting "connection refused". A child whose application fails to load (a
// syntax error) answers every request with a 500 page naming the error, and the
// next save starts a fresh one.

import { fork, type ChildProcess } from "node:child_process";
import { watch, type FSWatcher } from "node:fs";
import { createRequire } from "node:module";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { dirname, resolve } from "node:path";
import { startupErrorMessage } from "../cli/load-error.js";
import { loadApplicationWith, parseAppSpec } from "../load-app.js";
import { commandLineLoader } from "../typescript/loader.js";
import type { Application } from "../types.js";
import { createAppServer } from "./server.js";

/** Set in a child's environment: this process runs the application, not the primary. */
export const WATCH_CHILD = "TSGI_SERVE_WATCH_CHILD";

export interface WatchOptions {
  host: string;
  port: number;
  cacheDir?: string | undefined;
}

type ToPrimary = { tsgi: "ready"; files: string[]; failed: boolean };
type ToChild = { tsgi: "stop" };

/** Changes closer together than this restart once (an editor writes a file in several steps). */
const DEBOUNCE_MS = 100;
/** How long a retired child's requests in flight may take. */
const GRACE_MS = 2000;
/** Wait before starting again after a child died on its own. */
const RESTART_DELAY_MS = 500;

/** Files whose change restarts an application that failed to load. */
const SOURCE = /\.(?:[cm]?[jt]s|json)$/;

const say = (message: string) => process.stderr.write(`[tsgi] http: ${message}\n`);

export async function runWatchPrimary(spec: string, options: WatchOptions): Promise<void> {
  const children = new Children(spec);
  const listener = createServer({ pauseOnConnect: true }, (socket) => children.take(socket));
  try {
    await new Promise<void>((done, fail) => {
      listener.once("error", fail);
      listener.listen(options.port, options.host, () => done());
    });
  } catch (error) {
    say(`cannot listen on ${options.host}:${options.port}: ${(error as Error).message}`);
    process.exitCode = 1;
    return;
  }
  const { address, port } = listener.address() as AddressInfo;
  const host = address.includes(":") ? `[${address}]` : address;
  say(
    `serving ${spec} on http://${host}:${port}/, restarting it when a file it loaded changes (Ctrl-C to stop)`,
  );
  children.start();
  const stop = () => {
    listener.close();
    children.stopAll();
    setTimeout(() => process.exit(0), GRACE_MS).unref();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

/** The application's processes: the one serving, the one starting, and the connections waiting for it. */
class Children {
  private current: ChildProcess | undefined;
  private starting: ChildProcess | undefined;
  private readonly waiting: Socket[] = [];
  private watchers: FSWatcher[] = [];
  private debounce: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(private readonly spec: string) {}

  /** A new connection: to the serving child, or held until the next one is ready. */
  take(socket: Socket): void {
    if (this.current && !this.starting) this.hand(this.current, socket);
    else this.waiting.push(socket);
  }

  start(): void {
    if (this.stopping) return;
    this.starting?.kill();
    const child = fork(process.argv[1], process.argv.slice(2), {
      env: { ...process.env, [WATCH_CHILD]: "1" },
      stdio: "inherit",
    });
    this.starting = child;
    child.on("message", (message: ToPrimary) => {
      if (message?.tsgi === "ready" && child === this.starting) this.promote(child, message);
    });
    child.on("exit", (code, signal) => this.exited(child, code, signal));
  }

  stopAll(): void {
    this.stopping = true;
    for (const watcher of this.watchers) watcher.close();
    for (const socket of this.waiting.splice(0)) socket.destroy();
    this.starting?.kill();
    if (this.current?.connected) this.current.send({ tsgi: "stop" } satisfies ToChild);
  }

  private promote(child: ChildProcess, ready: ToPrimary): void {
    const old = this.current;
    this.current = child;
    this.starting = undefined;
    for (const socket of this.waiting.splice(0)) this.hand(child, socket);
    if (old?.connected) old.send({ tsgi: "stop" } satisfies ToChild);
    this.watch(ready);
  }

  private hand(child: ChildProcess, socket: Socket): void {
    child.send("socket", socket, (error) => {
      if (error) socket.destroy();
    });
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping) return;
    if (child === this.starting) this.starting = undefined;
    if (child !== this.current) return;
    this.current = undefined;
    say(`the application process ended (${signal ?? `exit code ${code}`}); starting it again`);
    setTimeout(() => this.start(), RESTART_DELAY_MS).unref();
  }

  /**
   * Watches the files the application loaded; when it failed to load, the
   * folder of its module (what the error names may be any file below it).
   */
  private watch(ready: ToPrimary): void {
    for (const watcher of this.watchers) watcher.close();
    this.watchers = [];
    const onChange = (file: string) => {
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => {
        say(`${file} changed: restarting the application`);
        this.start();
      }, DEBOUNCE_MS);
    };
    const add = (path: string, recursive: boolean) => {
      try {
        const watcher = watch(path, { recursive }, (_event, name) => {
          const file = recursive && name ? resolve(path, name.toString()) : path;
          // In a folder only sources count: a log file written there must not restart the application.
          if (!recursive || (SOURCE.test(file) && !/(^|\/)(node_modules|\.git)(\/|$)/.test(file)))
            onChange(file);
        });
        watcher.on("error", () => {});
        this.watchers.push(watcher);
      } catch {
        // A file that is gone by now: the next change elsewhere restarts all the same.
      }
    };
    if (ready.failed) add(dirname(resolve(parseAppSpec(this.spec).file)), true);
    for (const file of ready.files) add(file, false);
  }
}

/** The child: loads the application (or a page showing why it could not) and serves the connections it is handed. */
export async function runWatchChild(spec: string, options: WatchOptions): Promise<void> {
  delete process.env[WATCH_CHILD];
  let app: Application;
  let failed = false;
  try {
    app = await loadApplicationWith(spec, commandLineLoader({ cacheDir: options.cacheDir }));
  } catch (error) {
    failed = true;
    const message = startupErrorMessage(error);
    say(`${message} (waiting for a change)`);
    app = loadErrorPage(message);
  }
  const server = createAppServer(app);
  // Ctrl-C reaches every process of the terminal; the primary decides when this one ends.
  process.on("SIGINT", () => {});
  process.on("disconnect", () => process.exit(0));
  process.on("message", (message: "socket" | ToChild, socket?: Socket) => {
    if (message === "socket" && socket) {
      server.emit("connection", socket);
      socket.resume();
    } else if (typeof message === "object" && message?.tsgi === "stop") {
      server.close(() => process.exit(0));
      server.closeIdleConnections();
      setTimeout(() => process.exit(0), GRACE_MS).unref();
    }
  });
  process.send?.({ tsgi: "ready", files: loadedFiles(spec), failed } satisfies ToPrimary);
}

/** The application's own files among those Node loaded: its module and what it required, without node_modules. */
function loadedFiles(spec: string): string[] {
  const files = new Set([resolve(parseAppSpec(spec).file)]);
  // The CommonJS loader's cache also holds ES modules loaded with require() and compiled TypeScript.
  for (const file of Object.keys(createRequire(import.meta.url).cache))
    if (!file.includes("/node_modules/")) files.add(file);
  return [...files];
}

/** What a child whose application failed to load answers: the reason, as a 500. */
function loadErrorPage(message: string): Application {
  return (_environ, startResponse) => {
    startResponse("500 Internal Server Error", [["Content-Type", "text/plain; charset=utf-8"]]);
    return [
      `tsgi: the application could not be loaded; save a fix and reload this page.\n\n${message}\n`,
    ];
  };
}
