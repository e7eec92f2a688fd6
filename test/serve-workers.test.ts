// `tsgi serve` as a production HTTP server (from dist/: `npm run build` first):
// the process manager the other long-lived gateways have — workers sharing a
// socket, --max-requests, SIGHUP, SIGTERM — and the limits around each request
// (--request-timeout, --slow-request, --concurrency, --allow, --receive-timeout,
// the status and ping pages), driven over real HTTP connections.

import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { exchange } from "./helpers/scgi-client.js";
import {
  alive,
  childPids,
  freePort,
  ProcessGroup,
  sleep,
  tempDir,
  waitForListening,
} from "./helpers/processes.js";
import {
  ask,
  listeningWorkers,
  proofFixture,
  ProofLog,
  startLoad,
  until,
  type HttpAddress,
} from "./helpers/proof.js";
import { findBinary } from "./helpers/available.js";
import { startTsgiOnFd0, startTsgiServer, type TsgiFcgi } from "./helpers/tsgi.js";

const spawnFcgi = findBinary("spawn-fcgi", "spawn-fcgi");

const group = new ProcessGroup();
afterEach(() => group.cleanUp());

interface Served {
  server: TsgiFcgi;
  address: HttpAddress;
  log: ProofLog;
  /** The TCP address, when it listens on TCP. */
  tcp: { host: string; port: number };
}

/** `tsgi serve <proof app>` on a unix socket (or TCP) with `args`. */
async function serve(
  args: string[],
  options: { listen?: "unix" | "tcp"; env?: Record<string, string> } = {},
): Promise<Served> {
  const log = new ProofLog(group);
  // Under --workers no "serving" line names a port the kernel picked: pick one first.
  const listen =
    options.listen === "tcp" ? `127.0.0.1:${await freePort()}` : join(tempDir(group), "http.sock");
  // Workers say nothing when they listen (the primary says it started them): wait for the socket.
  const workers = args.includes("--workers");
  const server = await startTsgiServer(group, "serve", {
    app: proofFixture("app.js"),
    listen,
    args,
    env: { PROOF_LOG: log.path, ...options.env },
    waitReady: !workers,
  });
  const tcp = { host: "127.0.0.1", port: Number(listen.split(":")[1]) };
  const socket = listen.includes("/") ? { path: listen } : tcp;
  if (workers) await waitForListening(socket, 10_000, () => server.proc.running);
  return { server, address: { http: true, ...socket }, log, tcp };
}

describe("tsgi serve --workers", () => {
  it("two worker processes of the primary accept on one unix socket; tsgi.multiprocess is true in them", async () => {
    const { server, address } = await serve(["--workers", "2"]);
    const workers = await listeningWorkers(address, 2);
    expect(childPids(server.proc.pid)).toEqual(expect.arrayContaining(workers));
    expect(server.proc.stderr).toMatch(/\[tsgi\] http: primary \d+ started 2 worker\(s\)/);
    expect((await ask(address, "/pid")).json).toMatchObject({ multiprocess: true });
  });

  it.skipIf(!spawnFcgi)(
    "--listen fd:0 --workers 2: both workers accept on the socket inherited on fd 0 (spawn-fcgi -n, as systemd hands it over)",
    async () => {
      const args = ["--listen", "fd:0", "--workers", "2"];
      const server = await startTsgiOnFd0(group, "serve", spawnFcgi!, proofFixture("app.js"), args);
      const address = { http: true, ...(server.address as { path: string }) } as const;
      const workers = await listeningWorkers(address, 2);
      expect(childPids(server.proc.pid)).toEqual(expect.arrayContaining(workers));
      expect((await ask(address, "/pid")).json).toMatchObject({ multiprocess: true });
    },
  );

  it("a single process on TCP: tsgi.multiprocess is false, and it serves the access log", async () => {
    const { server, address } = await serve([], { listen: "tcp" });
    expect((await ask(address, "/pid")).json).toMatchObject({
      multiprocess: false,
      pid: server.proc.pid,
    });
    await server.proc.waitForStderr(/"GET \/pid HTTP\/1\.1" 200 \d+ /, 2000);
  });

  it("--no-access-log: requests are served and no line is written for them", async () => {
    const { server, address } = await serve(["--no-access-log"]);
    for (let i = 0; i < 3; i++) expect((await ask(address, "/pid")).ok).toBe(true);
    await sleep(100);
    expect(server.proc.stderr).not.toMatch(/"GET /);
  });

  it("--max-requests 20 under load: workers are replaced while requests go on, and none fails", async () => {
    const { server, address } = await serve(["--workers", "2", "--max-requests", "20"]);
    await listeningWorkers(address, 2);
    const load = startLoad(address, {
      concurrency: 4,
      maxMs: 4000,
      target: (tag) => `/slow?ms=10&tag=${tag}`,
    });
    await sleep(2500);
    const results = await load.stop();
    expect(results.filter((answer) => !answer.ok)).toEqual([]);
    expect(results.length).toBeGreaterThan(80);
    const pids = new Set(results.map((answer) => answer.json?.pid));
    expect(pids.size).toBeGreaterThanOrEqual(4);
    expect(server.proc.stderr).toMatch(/reached --max-requests: starting its replacement/);
    await until(() => childPids(server.proc.pid).length === 2, 5000, "2 workers again");
  });

  it("SIGHUP under load: new workers load the app afresh and take over, a long request on an old one finishes, none fails", async () => {
    const versionFile = join(tempDir(group), "version");
    writeFileSync(versionFile, "v1");
    const { server, address } = await serve(["--workers", "2"], {
      env: { PROOF_VERSION_FILE: versionFile },
    });
    const old = await listeningWorkers(address, 2);
    const load = startLoad(address, {
      concurrency: 4,
      maxMs: 10_000,
      target: (tag) => `/slow?ms=30&tag=${tag}`,
    });
    const long = ask(address, "/slow?ms=1500&tag=long", { timeoutMs: 5000 });
    await sleep(300);
    writeFileSync(versionFile, "v2");
    server.proc.signal("SIGHUP");
    await until(() => old.every((pid) => !alive(pid)), 8000, "the old workers to exit");
    const reloadedAt = Date.now();
    await sleep(300);
    const results = await load.stop();
    expect(results.filter((answer) => !answer.ok)).toEqual([]);
    expect(await long).toMatchObject({ ok: true, json: { version: "v1" } });
    const after = results.filter((answer) => answer.startedAt > reloadedAt);
    expect(after.length).toBeGreaterThan(0);
    expect(new Set(after.map((answer) => answer.json?.version))).toEqual(new Set(["v2"]));
  });

  it("SIGTERM: requests in flight finish, the workers and the primary exit 0, the socket file goes", async () => {
    const { server, address } = await serve(["--workers", "2"]);
    await listeningWorkers(address, 2);
    const inFlight = [0, 1, 2, 3].map((i) => ask(address, `/slow?ms=800&tag=t${i}`));
    await sleep(200);
    server.proc.signal("SIGTERM");
    const answers = await Promise.all(inFlight);
    expect(answers.filter((answer) => !answer.ok)).toEqual([]);
    expect(await server.proc.waitForExit(5000)).toEqual({ code: 0, signal: null });
    expect(existsSync((address as { path: string }).path)).toBe(false);
  });

  it("--status-path and --ping-path: tsgi answers them itself, the status page with every worker", async () => {
    const { address } = await serve([
      "--workers",
      "2",
      "--status-path",
      "/tsgi-status",
      "--ping-path",
      "/tsgi-ping",
    ]);
    await listeningWorkers(address, 2);
    expect((await ask(address, "/tsgi-ping")).body?.toString()).toBe("pong\n");
    const status = (await ask(address, "/tsgi-status")).body?.toString() ?? "";
    expect(status).toMatch(/process manager:\s+2 workers/);
    expect(status.match(/^\d+\s+\d+\s+\d+/gm)).toHaveLength(2);
  });
});

describe("tsgi serve: the limits around a request", () => {
  it("--request-timeout: a call still running is answered 504 and logged; a response already started is cut off", async () => {
    const { server, address, log } = await serve(["--request-timeout", "0.5"]);
    const slow = await ask(address, "/slow?ms=3000&tag=t");
    expect(slow.status).toBe("504 Gateway Timeout");
    await server.proc.waitForStderr(
      /request timed out after 0\.\d s \(--request-timeout\), answered 504: GET \/slow/,
    );
    const streaming = await ask(address, "/watch?tag=w", { timeoutMs: 4000 });
    expect(streaming.ok).toBe(false);
    expect(streaming.error).toMatch(/aborted|reset|premature|socket hang up/i);
    await server.proc.waitForStderr(/response cut off: GET \/watch/);
    await until(() => log.lines(/^watch-close tag=w/).length === 1, 2000, "the body's close()");
    expect((await ask(address, "/pid")).ok).toBe(true);
  });

  it("--slow-request: a request still running is logged, and still answered", async () => {
    const { server, address } = await serve(["--slow-request", "0.2"]);
    expect((await ask(address, "/slow?ms=600&tag=s")).ok).toBe(true);
    expect(server.proc.stderr).toMatch(/slow request: still running after 0\.2 s: GET \/slow/);
  });

  it("--concurrency 1: a second request while one runs is answered 503 and logged", async () => {
    const { server, address } = await serve(["--concurrency", "1"]);
    const first = ask(address, "/slow?ms=600&tag=c");
    await sleep(200);
    expect((await ask(address, "/pid")).status).toBe("503 Service Unavailable");
    expect((await first).ok).toBe(true);
    expect(server.proc.stderr).toMatch(/overloaded: answered 503: GET \/pid/);
  });

  it("--allow: a TCP peer not on the list is refused at once and logged", async () => {
    const { server, address } = await serve(["--allow", "10.9.9.9"], { listen: "tcp" });
    const answer = await ask(address, "/pid", { timeoutMs: 2000 });
    expect(answer.ok).toBe(false);
    await server.proc.waitForStderr(/connection from 127\.0\.0\.1 refused: not in --allow/);
  });

  it("--receive-timeout: a head that stalls is answered 408, a body that stalls while the app reads it too; the next request is served", async () => {
    const {
      server,
      address,
      tcp: target,
    } = await serve(["--receive-timeout", "0.5"], {
      listen: "tcp",
    });
    const head = await exchange(target, Buffer.alloc(0), {
      drive: (socket) => void socket.write("GET /pid HTTP/1.1\r\nHost: x\r\n"),
    });
    expect(head.bytes.toString("latin1")).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    await server.proc.waitForStderr(/no input for 0\.5 s in its request head, answered 408/);
    const body = await exchange(target, Buffer.alloc(0), {
      drive: (socket) =>
        void socket.write(
          "POST /read-all HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + "x".repeat(500),
        ),
    });
    expect(body.bytes.toString("latin1")).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    await server.proc.waitForStderr(/no input for 0\.5 s in its body, giving up/);
    expect((await ask(address, "/pid")).ok).toBe(true);
  });

  it("a request node:http cannot parse is answered 400 (a head over its limit 431) and logged; the next is served", async () => {
    const { server, address, tcp } = await serve([], { listen: "tcp" });
    const garbage = await exchange(tcp, Buffer.from("NOT HTTP AT ALL\r\n\r\n"));
    expect(garbage.bytes.toString("latin1")).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    await server.proc.waitForStderr(/bad request, answered 400: HPE_/);
    const huge = `GET /pid HTTP/1.1\r\nHost: x\r\nX-Big: ${"x".repeat(20_000)}\r\n\r\n`;
    const tooBig = await exchange(tcp, Buffer.from(huge));
    expect(tooBig.bytes.toString("latin1")).toMatch(/^HTTP\/1\.1 431 /);
    await server.proc.waitForStderr(/bad request, answered 431: HPE_HEADER_OVERFLOW/);
    expect((await ask(address, "/pid")).ok).toBe(true);
  });

  it("a connection that never sends anything is closed after --receive-timeout, quietly", async () => {
    const { server, tcp: target } = await serve(["--receive-timeout", "0.5"], {
      listen: "tcp",
    });
    // exchange() rejects if the server has not closed it within 5 s.
    const idle = await exchange(target, Buffer.alloc(0), { drive: () => {}, timeoutMs: 5000 });
    expect(idle.bytes.length).toBe(0);
    expect(server.proc.stderr).not.toMatch(/no input/);
  });
});
