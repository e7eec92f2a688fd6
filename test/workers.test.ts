// `tsgi fcgi --workers N` end to end (from dist/: `npm run build` first): a real
// primary and workers sharing one socket, dying, crash-looping, recycled, signalled.

import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FastCgiClient, paramsFor, type FastCgiAddress } from "./helpers/fastcgi-client.js";
import {
  alive as isAlive,
  childPids,
  CLEAN_PATH,
  freePort,
  ProcessGroup,
  sleep,
  tempDir,
  TSGI_BIN,
  waitForListening,
  type Proc,
} from "./helpers/processes.js";
import { findBinary } from "./helpers/available.js";
import { startTsgiFcgi } from "./helpers/tsgi.js";
import {
  ask,
  listeningWorkers,
  proofFixture,
  ProofLog,
  startLoad,
  until,
} from "./helpers/proof.js";

const spawnFcgi = findBinary("spawn-fcgi", "spawn-fcgi");

// Known bug (see the report): a process told to stop (--max-requests, SIGHUP,
// SIGTERM) at once closes the connections it accepted a moment before, without
// reading the request already on its way, so under load a few requests get no
// answer at all. The load tests below let exactly those through (and say how
// many); set this to false once src/server/serve.ts is fixed.
const TOLERATE_FRESH_CONNECTIONS_CLOSED = false;

/** Failures other than the known one above. */
function unexpectedFailures<T extends { ok: boolean; error?: string }>(answers: T[]): T[] {
  // The connection was closed on us before anything came back: while we were still sending, or after.
  const signature =
    /closed before END_REQUEST for request 1; got: \[\] closed|the connection closed while sending|the connection is closed/;
  const known = (answer: T) =>
    TOLERATE_FRESH_CONNECTIONS_CLOSED && signature.test(answer.error ?? "");
  const tolerated = answers.filter((answer) => !answer.ok && known(answer)).length;
  if (tolerated > 0) console.warn(`${tolerated} request(s) lost to the known fresh-connection bug`);
  return answers.filter((answer) => !answer.ok && !known(answer));
}

const group = new ProcessGroup();
afterEach(() => group.cleanUp());

interface Cluster {
  proc: Proc;
  address: FastCgiAddress;
  log: ProofLog;
  /** pids of the workers answering once all listen. */
  workers: number[];
}

/** Starts `tsgi fcgi <proof app> --workers N` and waits until all N workers accept. */
async function startCluster(
  options: {
    listen?: "unix" | "tcp";
    workers?: number;
    args?: string[];
    app?: string;
    env?: Record<string, string>;
    waitWorkers?: boolean;
  } = {},
): Promise<Cluster> {
  const log = new ProofLog(group);
  const workers = options.workers ?? 2;
  let listen: string;
  let address: FastCgiAddress;
  if (options.listen === "tcp") {
    // No "serving ... on" line names a port picked by the kernel in cluster mode: pick one first.
    const port = await freePort();
    listen = `127.0.0.1:${port}`;
    address = { host: "127.0.0.1", port };
  } else {
    listen = join(tempDir(group), "tsgi.sock");
    address = { path: listen };
  }
  const { proc } = await startTsgiFcgi(group, {
    app: options.app ?? proofFixture("app.js"),
    listen,
    args: ["--workers", String(workers), ...(options.args ?? [])],
    env: { PROOF_LOG: log.path, ...options.env },
    waitReady: false,
  });
  if (options.waitWorkers === false) return { proc, address, log, workers: [] };
  await waitForListening(address, 10_000, () => proc.running);
  return { proc, address, log, workers: await listeningWorkers(address, workers) };
}

describe("sharing the listening socket", () => {
  it("--workers 2 on a unix socket: two worker processes of the primary both accept on it", async () => {
    const cluster = await startCluster({ listen: "unix" });
    expect(cluster.workers).toHaveLength(2);
    expect(childPids(cluster.proc.pid)).toEqual(expect.arrayContaining(cluster.workers));
    expect(cluster.proc.stderr).toMatch(
      new RegExp(`primary ${cluster.proc.pid} started 2 worker\\(s\\)`),
    );
  });

  it("--workers 2 on TCP: two worker processes of the primary both accept on it", async () => {
    const cluster = await startCluster({ listen: "tcp" });
    expect(cluster.workers).toHaveLength(2);
    expect(childPids(cluster.proc.pid)).toEqual(expect.arrayContaining(cluster.workers));
  });

  it.skipIf(!spawnFcgi)(
    "--workers 2 on the socket inherited on fd 0 (spawn-fcgi -n): both workers accept on it",
    async () => {
      const dir = tempDir(group);
      const path = join(dir, "spawned.sock");
      const log = new ProofLog(group);
      // -n: spawn-fcgi binds the socket, puts it on fd 0 and execs tsgi in its own place (same pid).
      const proc = group.spawn(
        "spawn-fcgi",
        spawnFcgi!,
        [
          "-n",
          "-s",
          path,
          "--",
          process.execPath,
          TSGI_BIN,
          "fcgi",
          proofFixture("app.js"),
          "--workers",
          "2",
        ],
        {
          env: { PATH: CLEAN_PATH, PROOF_LOG: log.path },
        },
      );
      await waitForListening({ path }, 10_000, () => proc.running);
      const workers = await listeningWorkers({ path }, 2);
      expect(workers).toHaveLength(2);
      expect(childPids(proc.pid)).toEqual(expect.arrayContaining(workers));
      expect(proc.stderr).toMatch(/started 2 worker\(s\)/);
    },
  );

  it("tsgi.multiprocess is true in workers (and false in a single process)", async () => {
    const cluster = await startCluster();
    const answer = await ask(cluster.address, "/pid");
    expect(answer.json).toMatchObject({ multiprocess: true, multithread: false });
    expect(cluster.workers).toContain(answer.json?.pid);

    const single = await startTsgiFcgi(group, { app: proofFixture("app.js") });
    expect((await ask(single.address, "/pid")).json).toMatchObject({
      multiprocess: false,
      pid: single.proc.pid,
    });
  });
});

describe("workers that die", () => {
  it("a worker that exits is logged and replaced by a new process that serves", async () => {
    const cluster = await startCluster();
    const from = cluster.proc.stderr.length;
    await ask(cluster.address, "/exit?code=7", { timeoutMs: 2000 }); // fails: the worker exits instead of answering
    const victim = Number(/pid=(\d+)/.exec(await cluster.log.waitFor(/^exit tag=7 /))![1]);
    expect(cluster.workers).toContain(victim);
    await cluster.proc.waitForStderr(
      new RegExp(`worker ${victim} died \\(exit code 7\\); starting a new one`),
      3000,
      from,
    );
    await until(() => !isAlive(victim), 3000, `worker ${victim} to be gone`);
    const now = await listeningWorkers(cluster.address, 2);
    expect(now).not.toContain(victim);
    expect(now.filter((pid) => !cluster.workers.includes(pid))).toHaveLength(1);
    expect(childPids(cluster.proc.pid).sort()).toEqual(now);
  });

  // With every worker dead (here: both, waiting out the crash-loop delay) the restart
  // timer is all that keeps the primary alive (src/server/workers.ts does not unref it).
  it("a crash loop (an app that exits 50 ms after start) is logged as CRASH LOOP and slowed down: few forks in the 3 s after, the primary stays up", async () => {
    const cluster = await startCluster({ app: proofFixture("crash-loop.js"), waitWorkers: false });
    await cluster.proc.waitForStderr(
      /CRASH LOOP: \d+ workers died within 10 s; waiting \d+ s before the next start/,
      8000,
    );
    const atCrashLoop = cluster.log.lines(/^start /).length;
    await sleep(3000);
    const starts = cluster.log.lines(/^start /).length;
    // Unslowed, two workers that live ~150 ms each would be forked ~40 more times in 3 s.
    expect(atCrashLoop).toBeGreaterThanOrEqual(5);
    expect(starts - atCrashLoop).toBeGreaterThanOrEqual(1); // slowed, not stopped
    expect(starts - atCrashLoop).toBeLessThanOrEqual(5);
    expect(cluster.proc.running).toBe(true);
    cluster.proc.signal("SIGTERM");
    expect((await cluster.proc.waitForExit(5000)).code).toBe(0);
  });
});

describe("--max-requests", () => {
  it("--workers 2 --max-requests 20: workers are retired and replaced (replacement first) while sequential and concurrent requests go on; none fails", async () => {
    const cluster = await startCluster({ args: ["--max-requests", "20"] });
    const from = cluster.proc.stderr.length;
    // Replacement first: the primary never has fewer than 2 workers (one more while each hands over).
    const counts: number[] = [];
    const counting = setInterval(() => counts.push(childPids(cluster.proc.pid).length), 25);
    // A concurrent stream of requests ...
    const load = startLoad(cluster.address, {
      concurrency: 4,
      maxMs: 8000,
      target: (tag) => `/slow?ms=20&tag=${tag}`,
    });
    // ... and sequential ones on fresh connections.
    const sequential: Awaited<ReturnType<typeof ask>>[] = [];
    const stopAt = Date.now() + 2500;
    while (Date.now() < stopAt) sequential.push(await ask(cluster.address, "/pid"));
    const concurrent = await load.stop();
    clearInterval(counting);
    const diagnosis = `worker counts every 25 ms: ${counts.join(",")}\nprimary's log:\n${cluster.proc.stderr.slice(from)}`;
    // Retiring workers drain while their replacements serve, so under this load there
    // may never be a moment with exactly 2; there must never be one with fewer.
    expect(Math.min(...counts), diagnosis).toBeGreaterThanOrEqual(2);
    expect(Math.max(...counts)).toBeGreaterThanOrEqual(3);
    const all = [...sequential, ...concurrent];
    expect(unexpectedFailures(all)).toEqual([]);
    expect(all.length).toBeGreaterThan(100);
    const pids = new Set(
      all.filter((answer) => answer.ok).map((answer) => answer.json?.pid as number),
    );
    expect(pids.size).toBeGreaterThanOrEqual(4);
    expect(
      cluster.proc.stderr.slice(from).match(/reached --max-requests: starting its replacement/g)
        ?.length ?? 0,
    ).toBeGreaterThanOrEqual(2);
    // The retired ones exit: in the end the primary has its 2 workers again.
    await until(() => childPids(cluster.proc.pid).length === 2, 5000, "2 workers again");
  });

  // The deterministic case of the fresh-connection bug (TOLERATE_FRESH_CONNECTIONS_CLOSED above). Flip to it() once fixed.
  it("single process --max-requests 1: a connection accepted just before the process retires still gets its request served", async () => {
    const server = await startTsgiFcgi(group, {
      app: proofFixture("app.js"),
      args: ["--max-requests", "1"],
    });
    const early = await FastCgiClient.connect(server.address); // accepted, request not sent yet (as a web server between connect() and write())
    try {
      await sleep(50);
      expect((await ask(server.address, "/pid")).ok).toBe(true); // the 1st request: the process retires
      await server.proc.waitForStderr(/served 1 requests \(--max-requests\)/, 2000);
      const answer = await early.request({ params: paramsFor("/pid"), timeoutMs: 3000 });
      expect(answer.response().status).toBe("200 OK");
    } finally {
      early.destroy();
    }
    expect((await server.proc.waitForExit(5000)).code).toBe(0);
  });

  it("single process --max-requests 5: requests in flight past the 5th are finished, then the process exits 0", async () => {
    const server = await startTsgiFcgi(group, {
      app: proofFixture("app.js"),
      args: ["--max-requests", "5"],
    });
    for (let i = 0; i < 3; i++) expect((await ask(server.address, "/pid")).ok).toBe(true);
    // Four at once: the 5th request served retires the process while the others still run.
    const concurrent = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        ask(server.address, `/slow?ms=${300 + i * 100}&tag=c${i}`),
      ),
    );
    expect(concurrent.map((answer) => answer.ok)).toEqual([true, true, true, true]);
    expect(await server.proc.waitForExit(5000)).toEqual({ code: 0, signal: null });
    expect(server.proc.stderr).toMatch(
      /served 5 requests \(--max-requests\): exiting after the requests in flight/,
    );
  });
});

describe("signals to the primary", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`${signal}: requests in flight on both workers finish, new connections are refused, the workers and the primary exit 0 and the socket file goes`, async () => {
      const cluster = await startCluster();
      // Slow requests, one more every 30 ms, until both workers have some in flight (the kernel need not spread them).
      const inFlight: Promise<Awaited<ReturnType<typeof ask>>>[] = [];
      const busyWorkers = () =>
        new Set(cluster.log.lines(/^begin /).map((line) => Number(/pid=(\d+)/.exec(line)![1])));
      while (busyWorkers().size < 2 && inFlight.length < 30) {
        inFlight.push(ask(cluster.address, `/slow?ms=1000&tag=${signal}-${inFlight.length}`));
        await sleep(30);
      }
      expect(busyWorkers().size).toBe(2);
      cluster.proc.signal(signal);
      await cluster.proc.waitForStderr(
        new RegExp(`${signal}: workers finish their requests`),
        2000,
      );
      await sleep(200);
      expect((await ask(cluster.address, "/pid", { timeoutMs: 1000 })).ok).toBe(false);
      const answers = await Promise.all(inFlight);
      expect(answers.filter((answer) => !answer.ok)).toEqual([]);
      expect(await cluster.proc.waitForExit(5000)).toEqual({ code: 0, signal: null });
      for (const pid of cluster.workers) expect(isAlive(pid)).toBe(false);
      expect(existsSync((cluster.address as { path: string }).path)).toBe(false);
    });
  }

  it("the primary killed with SIGKILL: its workers notice, finish, and exit (no orphans keep the socket)", async () => {
    const cluster = await startCluster();
    cluster.proc.signal("SIGKILL");
    await cluster.proc.waitForExit(3000);
    await until(
      () => cluster.workers.every((pid) => !isAlive(pid)),
      5000,
      "the orphaned workers to exit",
    );
  });

  it("SIGHUP under load: new workers load the app afresh (new version) and take over, the old ones drain and exit, and no request fails", async () => {
    const versionFile = join(tempDir(group), "version");
    writeFileSync(versionFile, "v1");
    const cluster = await startCluster({ env: { PROOF_VERSION_FILE: versionFile } });
    const old = cluster.workers;
    const load = startLoad(cluster.address, {
      concurrency: 4,
      maxMs: 12_000,
      target: (tag) => `/slow?ms=40&tag=${tag}`,
    });
    // A long request on an old worker must drain, not be cut.
    const long = ask(cluster.address, "/slow?ms=1500&tag=long", { timeoutMs: 5000 });
    await sleep(500);
    writeFileSync(versionFile, "v2");
    const from = cluster.proc.stderr.length;
    cluster.proc.signal("SIGHUP");
    await cluster.proc.waitForStderr(/SIGHUP: starting new workers/, 2000, from);
    await until(() => old.every((pid) => !isAlive(pid)), 8000, "the old workers to exit");
    const reloadedAt = Date.now();
    await sleep(300);
    const results = await load.stop();
    const longAnswer = await long;

    expect(unexpectedFailures(results)).toEqual([]);
    expect(longAnswer).toMatchObject({ ok: true, json: { version: "v1" } });
    expect(old).toContain(longAnswer.json?.pid);
    const after = results.filter((answer) => answer.ok && answer.startedAt > reloadedAt);
    expect(after.length).toBeGreaterThan(0);
    expect(new Set(after.map((answer) => answer.json?.version))).toEqual(new Set(["v2"]));
    const newPids = new Set(after.map((answer) => answer.json?.pid as number));
    for (const pid of old) expect(newPids.has(pid)).toBe(false);
    expect(results.some((answer) => answer.ok && answer.json?.version === "v1")).toBe(true);
    expect(childPids(cluster.proc.pid)).toHaveLength(2);
  });
});
