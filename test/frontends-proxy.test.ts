// `tsgi serve --workers` behind nginx `proxy_pass`, configured from
// examples/deploy/nginx-proxy (tsgi-serve.service started as systemd would,
// tsgi-proxy.conf): the request matrix under a prefix (--script-name), the
// environ nginx's headers give, uploads and Server-Sent Events streaming
// through, the status page, and SIGHUP under load with no failed request.
// Needs `npm run build` first.

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findBinary } from "./helpers/available.js";
import {
  environFor,
  example,
  expectFirstEventEarly,
  fetchHttp,
  httpCell,
  MATRIX_APP,
  MATRIX_GET,
  matrixTests,
  postChunkedUpload,
} from "./helpers/frontends.js";
import { startNginxSite, type Nginx } from "./helpers/nginx.js";
import {
  alive,
  childPids,
  CLEAN_PATH,
  ProcessGroup,
  sleep,
  tempDir,
  TSGI_BIN,
  waitForListening,
  type Proc,
} from "./helpers/processes.js";
import { until } from "./helpers/proof.js";

const nginxBinary = findBinary("nginx", "nginx");

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

/**
 * tsgi-serve.service's ExecStart= as systemd runs it, with two workers and a
 * socket nginx's user (nobody, when the tests run as root) may open.
 */
async function startService(socket: string, prefix: string): Promise<Proc> {
  const unit = example("nginx-proxy", "tsgi-serve.service", {
    NODE: process.execPath,
    TSGI: TSGI_BIN,
    APP: MATRIX_APP,
    SOCKET: socket,
    PREFIX: prefix,
    USER: "unused",
    GROUP: "unused",
  });
  const line = /^ExecStart=(.*)$/m.exec(unit)![1];
  const [command, ...args] = line
    .replace("--workers 4", "--workers 2")
    .replace("--socket-mode 660", "--socket-mode 666")
    .split(" ");
  const proc = group.spawn("tsgi serve (service)", command, args, { env: { PATH: CLEAN_PATH } });
  await waitForListening({ path: socket }, 15_000, () => proc.running);
  return proc;
}

describe.skipIf(!nginxBinary)("nginx-proxy: tsgi serve --workers 2 behind proxy_pass", () => {
  let tsgi: Proc;
  let nginx: Nginx;

  beforeAll(async () => {
    const socket = join(tempDir(group), "app.sock");
    tsgi = await startService(socket, "/app");
    nginx = await startNginxSite(group, nginxBinary!, (listen) =>
      example("nginx-proxy", "tsgi-proxy.conf", { SOCKET: socket, PREFIX: "/app", LISTEN: listen }),
    );
  });

  matrixTests(() =>
    httpCell(() => nginx.url(""), { mount: "/app", persistent: true, errorLog: () => tsgi.stderr }),
  );

  it("the environ: nginx's Host and X-Forwarded-* headers, SERVER_PROTOCOL HTTP/1.1 (keep-alive upstream), no REMOTE_ADDR on a unix socket", async () => {
    const environ = await environFor(
      { request: (path) => fetchHttp(nginx.url(path)) },
      "/app" + MATRIX_GET,
    );
    expect(environ).toMatchObject({
      SERVER_PROTOCOL: "HTTP/1.1",
      HTTP_X_FORWARDED_FOR: "127.0.0.1",
      HTTP_X_FORWARDED_PROTO: "http",
      HTTP_HOST: "127.0.0.1",
    });
    expect(environ.HTTP_CONNECTION).toBeUndefined();
    expect(environ.REMOTE_ADDR).toBeUndefined();
  });

  it("a path outside the prefix never reaches the application: nginx's 404", async () => {
    const result = await fetchHttp(nginx.url("/other"));
    expect(result.status).toBe(404);
    expect(result.body.toString("utf8")).toMatch(/nginx/);
  });

  it("an 8 MiB chunked upload streams to the application and is hashed whole", async () => {
    const { reported, sent } = await postChunkedUpload(
      nginx.url("/app/sha256"),
      8 * 1024 * 1024 + 3,
    );
    expect(reported).toMatchObject(sent);
  });

  it("a response streams through: the first Server-Sent Event arrives before the stream ends", async () => {
    await expectFirstEventEarly(nginx.url("/app/sse"));
  });

  it("the status page under the prefix (--status-path) shows both workers", async () => {
    const result = await fetchHttp(nginx.url("/app/tsgi-status"));
    expect(result.status).toBe(200);
    expect(result.body.toString("utf8")).toMatch(/process manager:\s+2 workers/);
  });

  it("SIGHUP (ExecReload) under load through nginx: the workers are replaced and no request fails", async () => {
    const old = childPids(tsgi.pid);
    expect(old).toHaveLength(2);
    const failures: string[] = [];
    let served = 0;
    let stop = false;
    const loop = async () => {
      for (let n = 0; !stop && n < 2000; n++) {
        const result = await fetchHttp(nginx.url("/app/counter"), { timeoutMs: 10_000 }).catch(
          (error: Error) => ({ status: 0, body: Buffer.from(error.message) }),
        );
        if (result.status === 200) served++;
        else failures.push(`${result.status} ${result.body.toString("utf8").slice(0, 200)}`);
      }
    };
    const loops = [loop(), loop(), loop()];
    await sleep(300);
    tsgi.signal("SIGHUP");
    await until(() => old.every((pid) => !alive(pid)), 10_000, "the old workers to exit");
    await sleep(300);
    stop = true;
    await Promise.all(loops);
    expect(failures).toEqual([]);
    expect(served).toBeGreaterThan(50);
    const now = childPids(tsgi.pid);
    expect(now).toHaveLength(2);
    for (const pid of old) expect(now).not.toContain(pid);
  });
});
