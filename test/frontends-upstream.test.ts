// tsgi backends on TCP behind one nginx, configured from examples/deploy/nginx-upstream
// (tsgi-backend.service started as systemd would, tsgi-upstream.conf): the request
// matrix across two backends, the FCGI_WEB_SERVER_ADDRS allow-list, and a backend
// stopped (SIGTERM, then SIGKILL in a second run) under load without failing a
// GET. Needs `npm run build` first.

import { Agent } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FastCgiClient, paramsFor } from "./helpers/fastcgi-client.js";
import { CLEAN_PATH, freePort, ProcessGroup, TSGI_BIN, type Proc } from "./helpers/processes.js";
import { example, fetchHttp, httpCell, MATRIX_APP, matrixTests } from "./helpers/frontends.js";
import { startNginxSite, type Nginx } from "./helpers/nginx.js";
import { findBinary } from "./helpers/available.js";
import { parseReport } from "./helpers/reports.js";

const nginxBinary = findBinary("nginx", "nginx");

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

interface Backend {
  proc: Proc;
  port: number;
}

/**
 * Starts one backend from tsgi-backend.service the way systemd would: its
 * Environment= and ExecStart= lines, nothing else in the environment.
 */
async function startBackend(nginxHost: string): Promise<Backend> {
  const port = await freePort();
  const unit = example("nginx-upstream", "tsgi-backend.service", {
    NODE: process.execPath,
    TSGI: TSGI_BIN,
    APP: MATRIX_APP,
    LISTEN: `127.0.0.1:${port}`,
    NGINX_HOST: nginxHost,
    USER: "unused",
    GROUP: "unused",
  });
  const environment = Object.fromEntries(
    [...unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map((match) => [match[1], match[2]]),
  );
  const [command, ...args] = /^ExecStart=(.*)$/m.exec(unit)![1].split(" ");
  const proc = group.spawn(`backend :${port}`, command, args, {
    env: { PATH: CLEAN_PATH, ...environment },
  });
  await proc.waitForStderr(/serving \S+ on 127\.0\.0\.1:\d+ \(pid/);
  return { proc, port };
}

async function startPool(): Promise<{ backends: [Backend, Backend]; nginx: Nginx }> {
  const backends: [Backend, Backend] = await Promise.all([
    startBackend("127.0.0.1"),
    startBackend("127.0.0.1"),
  ]);
  const nginx = await startNginxSite(group, nginxBinary!, (listen) =>
    example("nginx-upstream", "tsgi-upstream.conf", {
      BACKEND1: `127.0.0.1:${backends[0].port}`,
      BACKEND2: `127.0.0.1:${backends[1].port}`,
      PREFIX: "/app",
      LISTEN: listen,
    }),
  );
  return { backends, nginx };
}

describe.skipIf(!nginxBinary)("nginx-upstream: two tsgi backends on TCP behind nginx", () => {
  let backends: [Backend, Backend];
  let nginx: Nginx;

  beforeAll(async () => {
    ({ backends, nginx } = await startPool());
  });

  matrixTests(() =>
    httpCell(() => nginx.url(""), {
      mount: "/app",
      persistent: true,
      errorLog: () => backends.map((backend) => backend.proc.stderr).join(""),
    }),
  );

  it("both backends serve (round robin)", async () => {
    const pids = new Set<number>();
    for (let index = 0; index < 6; index++)
      pids.add(parseReport((await fetchHttp(nginx.url("/app/env"))).body).pid);
    expect(pids).toEqual(new Set(backends.map((backend) => backend.proc.pid)));
  });

  it("a peer not in FCGI_WEB_SERVER_ADDRS is refused and logged; nginx's address is served", async () => {
    const [backend] = backends;
    const stranger = await FastCgiClient.connect(
      { host: "127.0.0.1", port: backend.port },
      { localAddress: "127.0.0.2" },
    );
    try {
      await stranger.waitForClose(5000);
      expect(stranger.records).toEqual([]);
    } finally {
      stranger.destroy();
    }
    await backend.proc.waitForStderr(
      /connection from 127\.0\.0\.2 refused: not in FCGI_WEB_SERVER_ADDRS/,
    );
    const allowed = await FastCgiClient.connect({ host: "127.0.0.1", port: backend.port });
    try {
      expect((await allowed.request({ params: paramsFor("/env") })).response().status).toBe(
        "200 OK",
      );
    } finally {
      allowed.destroy();
    }
  });
});

interface Outcome {
  startedAt: number;
  endedAt: number;
  pid?: number;
  error?: string;
}

/** `total` GETs of `url`, `concurrency` at a time, until done or `deadline`; calls `onDone(count)` after each. */
async function load(
  url: string,
  total: number,
  concurrency: number,
  deadline: number,
  onDone: (count: number) => void,
): Promise<Outcome[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const outcomes: Outcome[] = [];
  let next = 0;
  const worker = async () => {
    while (next < total && Date.now() < deadline) {
      next++;
      const startedAt = Date.now();
      try {
        const result = await fetchHttp(url, { agent, timeoutMs: 10_000 });
        const outcome: Outcome = { startedAt, endedAt: Date.now() };
        if (result.status === 200) outcome.pid = parseReport(result.body).pid;
        else
          outcome.error = `status ${result.status}: ${result.body.toString("utf8").slice(0, 200)}`;
        outcomes.push(outcome);
      } catch (error) {
        outcomes.push({ startedAt, endedAt: Date.now(), error: (error as Error).message });
      }
      onDone(outcomes.length);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return outcomes;
}

describe.skipIf(!nginxBinary).each(["SIGTERM", "SIGKILL"] as const)(
  "nginx-upstream: one backend gets %s under load",
  (signal) => {
    // A stopping backend gives nginx's kept connections up to 1 s ([fcgi.stop-keepalive]),
    // so the load runs on well past the stop.
    it("4000 GETs at concurrency 8: none fails, and the survivor serves everything after the stop", async () => {
      const { backends, nginx } = await startPool();
      const [victim, survivor] = backends;
      let stoppedAt = Number.POSITIVE_INFINITY;
      let stopping: Promise<void> | undefined;
      const total = 4000;
      // A few ms in the application: requests are in flight on the victim when the signal lands.
      const outcomes = await load(
        nginx.url("/app/env/load?sleep=3"),
        total,
        8,
        Date.now() + 60_000,
        (count) => {
          if (count !== 500 || stopping) return;
          victim.proc.signal(signal);
          stopping = victim.proc.waitForExit(10_000).then(() => {
            stoppedAt = Date.now();
          });
        },
      );
      await stopping;

      const failed = outcomes.filter((outcome) => outcome.error !== undefined);
      const after = outcomes.filter((outcome) => outcome.startedAt > stoppedAt);
      const nginxErrors = nginx.errorLines();
      console.log(
        `frontends-upstream ${signal}: ${outcomes.length} requests, ${failed.length} failed, victim served ` +
          `${outcomes.filter((outcome) => outcome.pid === victim.proc.pid).length}, survivor ` +
          `${outcomes.filter((outcome) => outcome.pid === survivor.proc.pid).length}; ${after.length} started after the victim exited; ` +
          `nginx error lines (retried): ${nginxErrors.length}${nginxErrors.length ? `, e.g. ${nginxErrors[0].replace(/^.*?\[error\] \S+ /, "")}` : ""}`,
      );
      expect(outcomes.length).toBe(total);
      expect(failed.map((outcome) => outcome.error)).toEqual([]);
      expect(after.length).toBeGreaterThan(500);
      expect(after.every((outcome) => outcome.pid === survivor.proc.pid)).toBe(true);
      if (signal === "SIGTERM") expect(victim.proc.stderr).toMatch(/SIGTERM: no new connections/);
      expect(survivor.proc.running).toBe(true);
    }, 90_000);
  },
);
