// tsgi with the FastCGI tools that are not web servers: libfcgi's cgi-fcgi
// bridging a CGI environment (the request matrix), spawn-fcgi starting tsgi
// from examples/deploy/spawn-fcgi/spawn-tsgi.sh behind nginx (the matrix), and
// the systemd units of examples/deploy/systemd and nginx-upstream (checked by
// systemd-analyze, and run the way systemd would: the listening socket on fd 0).
// Needs `npm run build` first.

import { execFile } from "node:child_process";
import { closeSync, openSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FastCgiClient, paramsFor } from "./helpers/fastcgi-client.js";
import { alive, CLEAN_PATH, ProcessGroup, sleep, tempDir, TSGI_BIN } from "./helpers/processes.js";
import {
  cgiEnvironment,
  cgiToHttp,
  effectiveUserAndGroup,
  example,
  httpCell,
  MATRIX_APP,
  matrixTests,
  readText,
  serverWritableDir,
  stopPid,
  waitForLog,
  writeFile,
  type HttpOptions,
  type HttpResult,
  type MatrixCell,
} from "./helpers/frontends.js";
import { findBinary } from "./helpers/available.js";
import { startNginxSite, type Nginx } from "./helpers/nginx.js";
import { startTsgiFcgi, type TsgiFcgi } from "./helpers/tsgi.js";
import { parseReport } from "./helpers/reports.js";

const cgiFcgi = findBinary("cgi-fcgi", "libfcgi-bin");
const spawnFcgi = findBinary("spawn-fcgi", "spawn-fcgi");
const nginxBinary = findBinary("nginx", "nginx");
// Optional also under CI: the CI image has no systemd.
const systemdAnalyze = findBinary("systemd-analyze", "systemd", { optional: true });

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

// ---------------------------------------------------------------------------
// cgi-fcgi

describe.skipIf(!cgiFcgi)("libfcgi's cgi-fcgi -bind -connect from a CGI environment", () => {
  let tsgi: TsgiFcgi;

  beforeAll(async () => {
    tsgi = await startTsgiFcgi(group, { app: MATRIX_APP, listen: "unix" });
  });

  /** Runs one request through `cgi-fcgi -bind -connect <socket>`, as a CGI-to-FastCGI bridge would. */
  async function viaCgiFcgi(path: string, options: HttpOptions = {}): Promise<HttpResult> {
    if (typeof options.body === "function") throw new Error("cgi-fcgi takes the body as bytes");
    const env = cgiEnvironment("/app", path, { ...options, bodyLength: options.body?.length });
    const proc = group.spawn(
      "cgi-fcgi",
      cgiFcgi!,
      ["-bind", "-connect", (tsgi.address as { path: string }).path],
      {
        env: { PATH: CLEAN_PATH, ...env },
        stdio: ["pipe", "pipe", "pipe"],
      },
    );
    proc.child.stdin!.end(options.body);
    const exit = await proc.waitForExit(20_000);
    if (exit.code !== 0) throw new Error(`cgi-fcgi exited ${JSON.stringify(exit)}: ${proc.stderr}`);
    return cgiToHttp(proc.stdoutBytes);
  }

  matrixTests((): MatrixCell => ({
    request: viaCgiFcgi,
    mount: "/app",
    persistent: true,
    errorLog: () => tsgi.proc.stderr,
  }));
});

// ---------------------------------------------------------------------------
// spawn-fcgi + nginx

describe.skipIf(!spawnFcgi || !nginxBinary)(
  "spawn-fcgi starting tsgi (spawn-tsgi.sh), nginx in front (nginx/tsgi.conf)",
  () => {
    let nginx: Nginx;
    let tsgiPid: number | undefined;
    let tsgiLog: string;
    let socket: string;

    beforeAll(async () => {
      const dir = tempDir(group, "tsgi-spawn-fcgi-");
      socket = join(dir, "tsgi.sock");
      const pidFile = join(dir, "tsgi.pid");
      // tsgi (as nobody, when we are root) appends to its log here.
      tsgiLog = join(serverWritableDir(join(dir, "log")), "tsgi.log");
      const { user, group: webGroup } = effectiveUserAndGroup();
      const script = writeFile(
        join(dir, "spawn-tsgi.sh"),
        example("spawn-fcgi", "spawn-tsgi.sh", {
          NODE: process.execPath,
          TSGI: TSGI_BIN,
          APP: MATRIX_APP,
          SOCKET: socket,
          PIDFILE: pidFile,
          LOG: tsgiLog,
          USER: user,
          WEB_GROUP: webGroup,
        }),
        0o755,
      );
      // As the README says: run the script, which returns once spawn-fcgi forked tsgi.
      const spawnerOutput = join(dir, "spawn-fcgi.out");
      const outFd = openSync(spawnerOutput, "a");
      const spawner = group.spawn("spawn-tsgi.sh", script, [], {
        env: { PATH: CLEAN_PATH },
        stdio: ["ignore", outFd, outFd],
      });
      closeSync(outFd);
      const exit = await spawner.waitForExit(10_000);
      expect(exit.code, readText(spawnerOutput)).toBe(0);
      expect(readText(spawnerOutput)).toMatch(/child spawned successfully/);
      tsgiPid = Number(readFileSync(pidFile, "utf8").trim());
      await waitForLog(() => readText(tsgiLog), /serving \S+ on fd 0/);
      nginx = await startNginxSite(group, nginxBinary!, (listen) =>
        example("nginx", "tsgi.conf", { SOCKET: socket, PREFIX: "/app", LISTEN: listen }),
      );
    });

    afterAll(async () => {
      if (tsgiPid !== undefined) await stopPid(tsgiPid);
    });

    matrixTests(() =>
      httpCell(() => nginx.url(""), {
        mount: "/app",
        persistent: true,
        errorLog: () => readText(tsgiLog),
      }),
    );

    it("the socket is 0660, owned by the user tsgi runs as and the web server's group", () => {
      const { user, group: webGroup } = effectiveUserAndGroup();
      const stats = statSync(socket);
      expect(stats.mode & 0o777).toBe(0o660);
      expect(stats.uid).toBe(
        Number(
          readFileSync("/etc/passwd", "utf8")
            .split("\n")
            .find((line) => line.startsWith(`${user}:`))!
            .split(":")[2],
        ),
      );
      expect(stats.gid).toBe(
        Number(
          readFileSync("/etc/group", "utf8")
            .split("\n")
            .find((line) => line.startsWith(`${webGroup}:`))!
            .split(":")[2],
        ),
      );
    });

    it("SIGTERM to the PID in the PID file stops tsgi (exit logged, process gone)", async () => {
      const pid = tsgiPid!;
      process.kill(pid, "SIGTERM");
      for (let attempt = 0; attempt < 100 && alive(pid); attempt++) await sleep(50);
      expect(alive(pid)).toBe(false);
      expect(readText(tsgiLog)).toMatch(/SIGTERM: no new connections/);
      tsgiPid = undefined;
    });
  },
);

// ---------------------------------------------------------------------------
// systemd units

/** The units filled with values systemd-analyze accepts without a warning (not "nobody", which it calls unsafe). */
function unitValues(dir: string): Record<string, string> {
  return {
    NODE: process.execPath,
    TSGI: TSGI_BIN,
    APP: MATRIX_APP,
    SOCKET: join(dir, "tsgi.sock"),
    USER: "tsgi",
    GROUP: "tsgi",
    WEB_GROUP: "www-data",
    LISTEN: "127.0.0.1:9000",
    NGINX_HOST: "10.0.0.1",
  };
}

/** `Key=value` lines of a unit file (the last one wins, as in systemd for these keys). */
function unitKeys(text: string): Record<string, string> {
  const keys: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (match) keys[match[1]] = match[2]!;
  }
  return keys;
}

/** Runs `systemd-analyze verify` on unit files; its exit code and everything it printed. */
function verifyUnits(files: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      systemdAnalyze!,
      ["verify", ...files],
      { timeout: 20_000, env: { PATH: CLEAN_PATH } },
      (error, stdout, stderr) =>
        resolve({
          code: error ? Number((error as NodeJS.ErrnoException).code ?? 1) : 0,
          output: stdout + stderr,
        }),
    );
  });
}

describe.skipIf(!systemdAnalyze)(
  "examples/deploy/systemd and nginx-upstream/tsgi-backend.service under systemd-analyze verify",
  () => {
    it("the filled-in units verify without a single warning", async () => {
      const dir = tempDir(group, "tsgi-systemd-");
      const values = unitValues(dir);
      const files = [
        writeFile(join(dir, "tsgi.socket"), example("systemd", "tsgi.socket", values)),
        writeFile(join(dir, "tsgi.service"), example("systemd", "tsgi.service", values)),
        writeFile(
          join(dir, "tsgi-backend.service"),
          example("nginx-upstream", "tsgi-backend.service", values),
        ),
      ];
      expect(await verifyUnits(files)).toEqual({ code: 0, output: "" });
    });

    it("a wrong node path is named (`Command … is not executable`)", async () => {
      const dir = tempDir(group, "tsgi-systemd-");
      const values = { ...unitValues(dir), NODE: "/nonexistent/bin/node" };
      const files = [
        writeFile(join(dir, "tsgi.socket"), example("systemd", "tsgi.socket", values)),
        writeFile(join(dir, "tsgi.service"), example("systemd", "tsgi.service", values)),
      ];
      const result = await verifyUnits(files);
      expect(result.code).not.toBe(0);
      expect(result.output).toContain("Command /nonexistent/bin/node is not executable");
    });
  },
);

describe.skipIf(!spawnFcgi)(
  "examples/deploy/systemd/tsgi.service run the way systemd would (the listening socket on fd 0)",
  () => {
    it("serves on the socket from tsgi.socket given as fd 0 (StandardInput=socket), and exits 0 on SIGTERM", async () => {
      const dir = tempDir(group, "tsgi-systemd-");
      const values = unitValues(dir);
      const socketUnit = unitKeys(example("systemd", "tsgi.socket", values));
      const serviceUnit = unitKeys(example("systemd", "tsgi.service", values));
      expect(serviceUnit.StandardInput).toBe("socket");
      expect(serviceUnit.StandardError).toBe("journal");
      // systemd binds ListenStream with SocketMode, listens, and starts ExecStart with it as fd 0 and a clean environment;
      // spawn-fcgi -n does the same system calls (socket, bind, chmod, listen, dup2 to 0, exec), staying this PID.
      const execStart = serviceUnit.ExecStart.split(" ");
      const proc = group.spawn(
        "tsgi.service",
        spawnFcgi!,
        ["-n", "-s", socketUnit.ListenStream, "-M", socketUnit.SocketMode, "--", ...execStart],
        {
          env: { PATH: CLEAN_PATH },
        },
      );
      await proc.waitForStderr(/serving \S+ on fd 0 \(pid (\d+)\)/);
      expect(statSync(socketUnit.ListenStream).mode & 0o777).toBe(0o660);
      const client = await FastCgiClient.connect({ path: socketUnit.ListenStream });
      try {
        const response = (
          await client.request({ params: paramsFor("/env/from-systemd?x=1") })
        ).response();
        expect(response.status).toBe("200 OK");
        const report = parseReport(response.body);
        expect(report.pid).toBe(proc.pid);
        expect(report.environ).toMatchObject({
          PATH_INFO: "/env/from-systemd",
          QUERY_STRING: "x=1",
        });
      } finally {
        client.destroy();
      }
      proc.signal("SIGTERM");
      expect(await proc.waitForExit(5000)).toEqual({ code: 0, signal: null });
    });
  },
);
