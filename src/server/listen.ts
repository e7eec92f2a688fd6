// Where a gateway server listens, whatever protocol it speaks: the listening
// socket a web server or process manager passed as fd 0, a unix socket (its
// mode applied whatever the umask, a stale file from a dead process replaced),
// or TCP; and which peers may connect.

import cluster from "node:cluster";
import { fstatSync } from "node:fs";
import { chmod, lstat, unlink } from "node:fs/promises";
import { connect, type Server } from "node:net";

/** The server could not start listening; the message says why and what to do. */
export class ListenError extends Error {
  override name = "ListenError";
}

/** How to listen: `spec` as for {@link parseListenAddress}, or undefined for fd 0. */
export interface ListenPlan {
  spec: string | undefined;
  /** Permissions of a unix socket. */
  socketMode: number;
  /** What the user should do when fd 0 is no listening socket (names the command and its options). */
  inheritedSocketHint: string;
}

export interface Listening {
  /** Where it listens, for log lines: a path, `host:port`, or `fd 0`. */
  where: string;
  /** Removes a unix socket this process created. */
  cleanUp: () => Promise<void>;
}

type ListenTarget = { fd: number } | { host: string; port: number } | { path: string };

const nothingToClean = async (): Promise<void> => {};

/** Splits a `--listen` value into a unix path or a TCP host and port. */
export function parseListenAddress(
  spec: string,
): { path: string } | { host: string; port: number } {
  if (spec.includes("/")) return { path: spec };
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(spec) ?? /^()()(\d+)$/.exec(spec);
  if (!match)
    throw new ListenError(
      `cannot understand --listen ${JSON.stringify(spec)}: use /path/to.sock, host:port or port`,
    );
  const port = Number(match[3]);
  if (port > 65535) throw new ListenError(`port ${port} is out of range`);
  return { host: match[1] || match[2] || "127.0.0.1", port };
}

/** Starts `server` listening as planned; a failure is a ListenError that explains it. */
export async function listen(server: Server, plan: ListenPlan): Promise<Listening> {
  const { spec } = plan;
  if (spec === undefined) {
    checkInheritedSocket(plan.inheritedSocketHint);
    await listenOn(server, { fd: 0 }, "fd 0", plan.inheritedSocketHint);
    return { where: "fd 0", cleanUp: nothingToClean };
  }
  const address = parseListenAddress(spec);
  if ("port" in address) {
    await listenOn(server, address, spec, plan.inheritedSocketHint);
    return { where: tcpWhere(server, spec), cleanUp: nothingToClean };
  }
  const { path } = address;
  if (cluster.isWorker) {
    // The primary owns the socket file: it replaced a stale one and sets the mode.
    await listenOn(server, { path }, path, plan.inheritedSocketHint);
    return { where: path, cleanUp: nothingToClean };
  }
  await removeStaleSocket(path);
  await listenOn(server, { path }, path, plan.inheritedSocketHint);
  await chmod(path, plan.socketMode);
  return { where: path, cleanUp: () => unlink(path).catch(() => {}) };
}

function tcpWhere(server: Server, spec: string): string {
  const bound = server.address();
  if (!bound || typeof bound !== "object") return spec;
  return `${bound.address.includes(":") ? `[${bound.address}]` : bound.address}:${bound.port}`;
}

function listenOn(
  server: Server,
  target: ListenTarget,
  where: string,
  hint: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      reject(new ListenError(listenFailure(error, where, hint)));
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(target);
  });
}

function listenFailure(error: NodeJS.ErrnoException, where: string, hint: string): string {
  if (
    where === "fd 0" &&
    (error.code === "EINVAL" || error.code === "ENOTSOCK" || error.code === "ENOTSUP")
  ) {
    return (
      "fd 0 is a socket but not a listening one (a connected socket, as under mod_cgid?): " + hint
    );
  }
  if (error.code === "EADDRINUSE")
    return `cannot listen on ${where}: the address is already in use`;
  if (error.code === "EACCES") return `cannot listen on ${where}: permission denied`;
  return `cannot listen on ${where}: ${error.message}`;
}

/** Started from a terminal, a pipe or a file, fd 0 is no listening socket. */
export function checkInheritedSocket(hint: string): void {
  let isSocket = false;
  try {
    isSocket = fstatSync(0).isSocket();
  } catch {
    // fd 0 is closed.
  }
  if (!isSocket)
    throw new ListenError(`fd 0 is not a socket (started from a terminal or a pipe?): ${hint}`);
}

/** A socket file left by a process that died is replaced; one that still answers is not. */
export async function removeStaleSocket(path: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch {
    return;
  }
  if (!stats.isSocket())
    throw new ListenError(`cannot listen on ${path}: the file exists and is not a socket`);
  if (await answers(path))
    throw new ListenError(`cannot listen on ${path}: another process is listening there`);
  await unlink(path);
}

function answers(path: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}

function normalizeAddress(address: string): string {
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

/**
 * The peers allowed to connect, from a comma-separated list (such as
 * FCGI_WEB_SERVER_ADDRS) and more addresses; an empty list allows everyone.
 * IPv4-mapped IPv6 addresses count as their IPv4 form.
 */
export class PeerAllowList {
  readonly #addresses: Set<string>;

  constructor(commaSeparated: string, extra: readonly string[] = []) {
    this.#addresses = new Set(
      [...commaSeparated.split(","), ...extra]
        .map((address) => normalizeAddress(address.trim()))
        .filter(Boolean),
    );
  }

  /** Whether `peer` may connect; its address is only asked for (a getpeername call) when there is a list. */
  allows(peer: { readonly remoteAddress?: string | undefined }): boolean {
    if (this.#addresses.size === 0) return true;
    const remoteAddress = peer.remoteAddress;
    return remoteAddress === undefined || this.#addresses.has(normalizeAddress(remoteAddress));
  }
}
