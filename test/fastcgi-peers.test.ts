// `tsgi fcgi` (from dist/ — run `npm run build` first) with other FastCGI peers:
// libfcgi's cgi-fcgi, spawn-fcgi and lighttpd (both hand the listening socket over
// as fd 0), and node-fastcgi side by side with tsgi on the defects tsgi's tests name.

import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RecordType, encodeNameValuePairs } from "../src/fastcgi/protocol.js";
import {
  CLEAN_PATH,
  freePort,
  ProcessGroup,
  sleep,
  tempDir,
  TSGI_BIN,
  waitForListening,
} from "./helpers/processes.js";
import { parseCgiResponse } from "./helpers/cgi.js";
import { fcgiFixture, startTsgiFcgi } from "./helpers/tsgi.js";
import { findBinary } from "./helpers/available.js";
import { sha256 } from "./helpers/bytes.js";
import { FastCgiClient, paramsFor } from "./helpers/fastcgi-client.js";
import { parseReport } from "./helpers/reports.js";

const cgiFcgi = findBinary("cgi-fcgi", "libfcgi-bin");
const spawnFcgi = findBinary("spawn-fcgi", "spawn-fcgi");
const lighttpd = findBinary("lighttpd", "lighttpd");

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

/** Runs `cgi-fcgi -bind -connect <socket>` with a CGI environment, as a CGI-to-FastCGI bridge does. */
async function runCgiFcgi(socket: string, vars: Record<string, string>, stdin?: Buffer) {
  const proc = group.spawn("cgi-fcgi", cgiFcgi!, ["-bind", "-connect", socket], {
    env: { PATH: CLEAN_PATH, ...vars },
    stdio: ["pipe", "pipe", "pipe"],
  });
  proc.child.stdin!.end(stdin);
  const exit = await proc.waitForExit(10_000);
  return { exit, stdout: proc.stdoutBytes, stderr: proc.stderr };
}

describe.skipIf(!cgiFcgi)("libfcgi's cgi-fcgi (Debian package libfcgi-bin)", () => {
  it("GET and a POST with a body on stdin, from a CGI environment", async () => {
    const tsgi = await startTsgiFcgi(group);
    const socket = (tsgi.address as { path: string }).path;
    const base = {
      GATEWAY_INTERFACE: "CGI/1.1",
      SERVER_PROTOCOL: "HTTP/1.1",
      SERVER_NAME: "localhost",
      SERVER_PORT: "80",
      SCRIPT_NAME: "/cgi",
    };

    const got = await runCgiFcgi(socket, {
      ...base,
      REQUEST_METHOD: "GET",
      PATH_INFO: "/inspect/a",
      QUERY_STRING: "x=1",
    });
    expect(got.exit.code).toBe(0);
    const response = parseCgiResponse(got.stdout);
    expect(response.status).toBe("200 OK");
    expect(parseReport(response.body).environ).toMatchObject({
      REQUEST_METHOD: "GET",
      SCRIPT_NAME: "/cgi",
      PATH_INFO: "/inspect/a",
      QUERY_STRING: "x=1",
    });

    const body = randomBytes(300_000);
    const posted = await runCgiFcgi(
      socket,
      {
        ...base,
        REQUEST_METHOD: "POST",
        PATH_INFO: "/sha256",
        CONTENT_LENGTH: String(body.length),
      },
      body,
    );
    expect(posted.exit.code).toBe(0);
    expect(JSON.parse(parseCgiResponse(posted.stdout).body.toString("utf8"))).toEqual({
      length: body.length,
      sha256: sha256(body),
    });
  });
});

describe.skipIf(!spawnFcgi)("spawn-fcgi (Debian package spawn-fcgi)", () => {
  it("tsgi fcgi without --listen serves on the socket spawn-fcgi passes as fd 0, and exits 0 on SIGTERM", async () => {
    const socket = join(tempDir(group), "spawned.sock");
    // -n: no fork, spawn-fcgi execs tsgi in its own process, so this PID is tsgi's.
    const proc = group.spawn(
      "spawn-fcgi",
      spawnFcgi!,
      [
        "-s",
        socket,
        "-M",
        "0600",
        "-n",
        "--",
        process.execPath,
        TSGI_BIN,
        "fcgi",
        fcgiFixture("app.js"),
      ],
      {
        env: { PATH: CLEAN_PATH },
      },
    );
    await proc.waitForStderr(/serving \S+ on fd 0 \(pid (\d+)\)/);
    await waitForListening({ path: socket });
    const client = await FastCgiClient.connect({ path: socket });
    try {
      const result = await client.request({ params: paramsFor("/inspect") });
      expect(parseReport(result.response().body).pid).toBe(proc.pid);
    } finally {
      client.destroy();
    }
    proc.signal("SIGTERM");
    expect(await proc.waitForExit(3000)).toEqual({ code: 0, signal: null });
  });
});

function httpGet(url: string, body?: Buffer): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      { method: body ? "POST" : "GET", agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({ status: response.statusCode!, body: Buffer.concat(chunks) }),
        );
        response.on("error", reject);
      },
    );
    request.setTimeout(10_000, () => request.destroy(new Error(`no answer from ${url} in time`)));
    request.on("error", reject);
    request.end(body);
  });
}

describe.skipIf(!lighttpd)("lighttpd spawning tsgi with bin-path (Debian package lighttpd)", () => {
  it("serves GET and POST through lighttpd, which started tsgi with the listening socket on fd 0, and stops it on shutdown", async () => {
    const dir = tempDir(group, "tsgi-lighttpd-");
    const port = await freePort();
    writeFileSync(
      join(dir, "lighttpd.conf"),
      `# Generated by test/fastcgi-peers.test.ts
server.document-root = "${dir}"
server.bind = "127.0.0.1"
server.port = ${port}
server.errorlog = "${dir}/error.log"
server.modules += ( "mod_fastcgi" )
fastcgi.server = ( "/app" => ((
  "socket" => "${dir}/tsgi.sock",
  "bin-path" => "${process.execPath} ${TSGI_BIN} fcgi ${fcgiFixture("app.js")}",
  "bin-environment" => ( "PATH" => "${CLEAN_PATH}" ),
  "check-local" => "disable",
  "max-procs" => 1,
)))
`,
    );
    const server = group.spawn("lighttpd", lighttpd!, ["-D", "-f", join(dir, "lighttpd.conf")], {
      env: { PATH: CLEAN_PATH },
    });
    await waitForListening({ host: "127.0.0.1", port }, 10_000, () => server.running);

    const got = await httpGet(`http://127.0.0.1:${port}/app/inspect/x?y=1`);
    expect(got.status).toBe(200);
    const report = parseReport(got.body);
    const tsgiPid = report.pid;
    // lighttpd, not this group, started tsgi: make sure it goes even if the test fails.
    group.onCleanUp(() => {
      try {
        process.kill(tsgiPid, "SIGKILL");
      } catch {
        // Already gone.
      }
    });
    expect(report.environ).toMatchObject({
      SCRIPT_NAME: "/app",
      PATH_INFO: "/inspect/x",
      QUERY_STRING: "y=1",
      REQUEST_METHOD: "GET",
    });

    const body = randomBytes(200_000);
    const posted = await httpGet(`http://127.0.0.1:${port}/app/sha256`, body);
    expect(JSON.parse(posted.body.toString("utf8"))).toEqual({
      length: body.length,
      sha256: sha256(body),
    });

    server.signal("SIGTERM");
    await server.waitForExit(5000);
    const deadline = Date.now() + 3000;
    const alive = () => {
      try {
        process.kill(tsgiPid, 0);
        return true;
      } catch {
        return false;
      }
    };
    while (alive() && Date.now() < deadline) await sleep(50);
    expect(alive()).toBe(false);
  });
});

describe("node-fastcgi (the npm package) next to tsgi", () => {
  async function startNodeFastCgi() {
    const socket = join(tempDir(group), "node-fastcgi.sock");
    const proc = group.spawn("node-fastcgi", process.execPath, [
      fcgiFixture("node-fastcgi-server.cjs"),
      socket,
    ]);
    await proc.waitForStderr(/node-fastcgi listening/);
    return { proc, address: { path: socket } };
  }

  it("a record of unknown type: node-fastcgi's process dies (TypeError: fcgiRecords[type] is not a constructor); tsgi answers FCGI_UNKNOWN_TYPE and serves on", async () => {
    const theirs = await startNodeFastCgi();
    const theirClient = await FastCgiClient.connect(theirs.address);
    await theirClient.sendRecord(12, 0, Buffer.alloc(8));
    const exit = await theirs.proc.waitForExit(3000);
    theirClient.destroy();
    expect(exit.code).toBe(1);
    expect(theirs.proc.stderr).toContain("TypeError: fcgiRecords[type] is not a constructor");

    const ours = await startTsgiFcgi(group);
    const client = await FastCgiClient.connect(ours.address);
    try {
      await client.sendRecord(12, 0, Buffer.alloc(8));
      const [record] = await client.waitForRecords((records) => records.length >= 1);
      expect(record).toMatchObject({ type: RecordType.UNKNOWN_TYPE, requestId: 0 });
      expect(
        (await client.request({ params: paramsFor("/hello") })).response().body.toString(),
      ).toBe("hello\n");
      expect(ours.proc.running).toBe(true);
    } finally {
      client.destroy();
    }
  });

  it("a 70,000-byte HTTP_COOKIE across two FCGI_PARAMS records: node-fastcgi keeps only the part in the first record (59,984 bytes in the reference run); tsgi delivers all of it", async () => {
    const cookie = "c".repeat(70_000);
    const params = paramsFor("/inspect", { HTTP_COOKIE: cookie });
    const stream = encodeNameValuePairs(Object.entries(params));
    // node-fastcgi decodes each record on its own: the value is cut where the first 65535-byte record ends.
    const inFirstRecord = 65535 - stream.indexOf(cookie.slice(0, 1000));

    const theirs = await startNodeFastCgi();
    const theirClient = await FastCgiClient.connect(theirs.address);
    const theirResult = await theirClient.request({ params });
    theirClient.destroy();
    const theirLength = Number(
      /cookie length (\d+)/.exec(theirResult.response().body.toString())![1],
    );
    expect(theirLength).toBeLessThan(70_000);
    expect(theirLength).toBe(inFirstRecord);

    const ours = await startTsgiFcgi(group);
    const client = await FastCgiClient.connect(ours.address);
    try {
      const result = await client.request({ params });
      expect(parseReport(result.response().body).environ.HTTP_COOKIE).toBe(cookie);
    } finally {
      client.destroy();
    }
  });

  it("two requests interleaved with KEEP_CONN, id 2 finishing first: node-fastcgi closes the connection and loses id 1; tsgi answers both", async () => {
    const send = async (client: FastCgiClient) => {
      for (const [id, path] of [
        [1, "/slow"],
        [2, "/"],
      ] as const) {
        await client.beginRequest(id, { keepConn: true });
        await client.sendParams(id, { ...paramsFor("/"), PATH_INFO: path, QUERY_STRING: "ms=300" });
        await client.sendStream(RecordType.STDIN, id, Buffer.alloc(0));
      }
    };
    const theirs = await startNodeFastCgi();
    const theirClient = await FastCgiClient.connect(theirs.address);
    await send(theirClient);
    await theirClient.waitForEndRequest(2);
    await theirClient.waitForClose(2000);
    expect(
      theirClient.records.some(
        (record) => record.type === RecordType.END_REQUEST && record.requestId === 1,
      ),
    ).toBe(false);

    const ours = await startTsgiFcgi(group);
    const client = await FastCgiClient.connect(ours.address);
    try {
      await send(client);
      // tsgi's fixture routes on PATH_INFO: /slow?ms=300 and / (a 404 page), both answered.
      expect((await client.response(1)).response().body.toString()).toBe("slept 300\n");
      expect((await client.response(2)).response().status).toBe("404 Not Found");
      expect(client.closed).toBe(false);
    } finally {
      client.destroy();
    }
  });
});
