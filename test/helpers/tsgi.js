// `tsgi fcgi`, `tsgi scgi` and `tsgi uwsgi` as their own processes (from dist/, so run `npm run build` first),
// for the end-to-end tests and the benchmarks alike. Plain JavaScript with
// JSDoc types for the reason given in processes.js.

import { join } from "node:path";
import { CLEAN_PATH, REPO, TSGI_BIN, tempDir, waitForListening } from "./processes.js";

/** @typedef {import("./processes.js").ProcessGroup} ProcessGroup */
/** @typedef {import("./processes.js").Proc} Proc */
/** @typedef {import("./processes.js").Address} Address */

export const FCGI_FIXTURES = join(REPO, "test", "fixtures", "fcgi");

/**
 * The path of a FastCGI fixture application.
 * @param {string} name
 */
export function fcgiFixture(name) {
  return join(FCGI_FIXTURES, name);
}

/**
 * @typedef {object} TsgiFcgiOptions
 * @property {string} [app] Application module (default: the fixture app).
 * @property {string | null} [listen] Where to listen: "unix" (a socket in a temp dir, the default), "tcp" (127.0.0.1 and a port the kernel picks), any --listen value, or null for no --listen at all (then `stdio[0]` must be the listening socket).
 * @property {string[]} [args] More command-line options.
 * @property {string[]} [nodeArgs] Options for node itself, before the script (e.g. --cpu-prof).
 * @property {Record<string, string>} [env] Environment variables over a clean one (PATH only).
 * @property {import("node:child_process").SpawnOptions["stdio"]} [stdio] Default ["ignore", "pipe", "pipe"].
 * @property {string} [umask] Runs it under `sh -c 'umask <umask>; exec ...'`.
 * @property {boolean} [waitReady] Wait for the "serving ... on ..." line (default true).
 */

/**
 * @typedef {object} TsgiFcgi
 * @property {Proc} proc
 * @property {Address} address Where to connect (a path "" when it was not started with --listen).
 */

/**
 * The address in tsgi's "serving <app> on <where> (pid …)" line.
 * @param {string} where
 * @returns {Address}
 */
function parseAddress(where) {
  // `tsgi serve` names its TCP address as a URL: http://host:port/
  const url = /^http:\/\/(.+)\/$/.exec(where);
  if (url) return parseAddress(url[1] ?? "");
  const tcp = /^(?:\[(.+)\]|([^/]+)):(\d+)$/.exec(where);
  if (where.includes("/") || !tcp) return { path: where };
  return { host: tcp[1] ?? tcp[2] ?? "", port: Number(tcp[3]) };
}

/**
 * The --listen value for the `listen` option.
 * @param {ProcessGroup} group
 * @param {string | null | undefined} listen
 */
function listenValue(group, listen) {
  if (listen === undefined || listen === "unix") return join(tempDir(group), "tsgi.sock");
  if (listen === "tcp") return "127.0.0.1:0";
  return listen;
}

/**
 * Starts `node bin/tsgi.js fcgi <app>` and waits until it serves.
 * @param {ProcessGroup} group
 * @param {TsgiFcgiOptions} [options]
 * @returns {Promise<TsgiFcgi>}
 */
export function startTsgiFcgi(group, options = {}) {
  return startTsgiServer(group, "fcgi", options);
}

/**
 * Starts `node bin/tsgi.js <command> <app>` (`fcgi`, `scgi`, `uwsgi` or `serve`; the
 * app defaults to the FastCGI fixture, which serves them all) and waits until it serves.
 * @param {ProcessGroup} group
 * @param {"fcgi" | "scgi" | "uwsgi" | "serve"} command
 * @param {TsgiFcgiOptions} [options]
 * @returns {Promise<TsgiFcgi>}
 */
export async function startTsgiServer(group, command, options = {}) {
  const listen = listenValue(group, options.listen);
  const args = [
    ...(options.nodeArgs ?? []),
    TSGI_BIN,
    command,
    options.app ?? fcgiFixture("app.js"),
    ...(listen !== null ? ["--listen", listen] : []),
    ...(options.args ?? []),
  ];
  const env = { PATH: CLEAN_PATH, ...options.env };
  const stdio = options.stdio ?? ["ignore", "pipe", "pipe"];
  const proc =
    options.umask !== undefined
      ? group.spawn(
          `tsgi ${command}`,
          "/bin/sh",
          ["-c", `umask ${options.umask}; exec "$@"`, "sh", process.execPath, ...args],
          { env, stdio },
        )
      : group.spawn(`tsgi ${command}`, process.execPath, args, { env, stdio });
  if (!(options.waitReady ?? true)) return { proc, address: { path: listen ?? "" } };
  const match = await proc.waitForStderr(/serving \S+ on (.+?) \(pid/);
  return { proc, address: parseAddress(match[1] ?? "") };
}

/**
 * Starts `tsgi <command> <app>` without --listen, on a unix socket it inherits
 * on fd 0, as under systemd's socket activation: `spawn-fcgi -n` binds the
 * socket (mode 666), puts it on fd 0 and execs tsgi in its own place.
 * @param {ProcessGroup} group
 * @param {"fcgi" | "scgi" | "uwsgi" | "serve"} command
 * @param {string} spawnFcgi The spawn-fcgi binary.
 * @param {string} app
 * @param {string[]} [args] More arguments (`tsgi serve` needs `--listen fd:0`).
 * @returns {Promise<TsgiFcgi>}
 */
export async function startTsgiOnFd0(group, command, spawnFcgi, app, args = []) {
  const path = join(tempDir(group), "fd0.sock");
  const proc = group.spawn(
    `tsgi ${command} (fd 0)`,
    spawnFcgi,
    ["-n", "-s", path, "-M", "0666", "--", process.execPath, TSGI_BIN, command, app, ...args],
    { env: { PATH: CLEAN_PATH } },
  );
  await waitForListening({ path }, 10_000, () => proc.running);
  return { proc, address: { path } };
}
