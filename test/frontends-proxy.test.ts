// `tsgi serve --workers` behind nginx `proxy_pass`, configured from
// examples/deploy/nginx-proxy (tsgi-serve.service started as systemd would,
// tsgi-proxy.conf): the request matrix under a prefix (--script-name), the
// environ nginx's headers give, uploads and Server-Sent Events streaming
// through, the status page, and SIGHUP and --max-requests under a load of POSTs
// (which nginx never retries) with no failed request; then what the example's
// README says of other settings (proxy_pass to a URI, nginx's default
// buffering and HTTP/1.0, X-Accel-Buffering).
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
  MATRIX_PATH_INFO,
  matrixTests,
  postChunkedUpload,
  postLoad,
  timedGet,
  type TimedResponse,
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
import { startTsgiServer } from "./helpers/tsgi.js";

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

  it("X-Forwarded-For: nginx appends the client's address to the one the client sent (only the last is nginx's word)", async () => {
    const environ = await environFor(
      {
        request: (path) =>
          fetchHttp(nginx.url(path), { headers: { "X-Forwarded-For": "203.0.113.9" } }),
      },
      "/app" + MATRIX_GET,
    );
    expect(environ.HTTP_X_FORWARDED_FOR).toBe("203.0.113.9, 127.0.0.1");
  });

  it("the path goes on as the client sent it: %2F and // reach REQUEST_URI unchanged, --script-name splits it", async () => {
    const environ = await environFor(
      { request: (path) => fetchHttp(nginx.url(path)) },
      "/app/env/a%2Fb//c%3Fd?q=%2F",
    );
    expect({
      SCRIPT_NAME: environ.SCRIPT_NAME,
      PATH_INFO: environ.PATH_INFO,
      REQUEST_URI: environ.REQUEST_URI,
    }).toEqual({
      SCRIPT_NAME: "/app",
      PATH_INFO: "/env/a/b//c?d",
      REQUEST_URI: "/app/env/a%2Fb//c%3Fd?q=%2F",
    });
  });

  it("the prefix without its slash gets nginx's 301 to the prefix with it", async () => {
    const result = await fetchHttp(nginx.url("/app"));
    expect(result.status).toBe(301);
    expect(result.headers.location).toBe(nginx.url("/app/"));
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

  it("SIGHUP (ExecReload) under POST load through nginx: the workers are replaced and no request fails", async () => {
    const old = childPids(tsgi.pid);
    expect(old).toHaveLength(2);
    const failures: string[] = [];
    let served = 0;
    let stop = false;
    const loop = async () => {
      for (let n = 0; !stop && n < 2000; n++) {
        // POSTs: nginx retries a GET that failed on a kept-alive connection, never a POST.
        const result = await fetchHttp(nginx.url("/app/sha256"), {
          method: "POST",
          body: Buffer.from("reload"),
          timeoutMs: 10_000,
        }).catch((error: Error) => ({ status: 0, body: Buffer.from(error.message) }));
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

/**
 * tsgi-proxy.conf for the tsgi serve on `socket`, with `change` applied to its
 * text; throws when a line it replaces is not there, so the variants follow the
 * example as it changes.
 */
function variant(socket: string, prefix: string, change: [string, string][]) {
  return (listen: string) => {
    let conf = example("nginx-proxy", "tsgi-proxy.conf", {
      SOCKET: socket,
      PREFIX: prefix,
      LISTEN: listen,
    });
    for (const [from, to] of change) {
      if (!conf.includes(from)) throw new Error(`tsgi-proxy.conf has no ${JSON.stringify(from)}`);
      conf = conf.replace(from, to);
    }
    return conf;
  };
}

/** The SSE route's timings through `site` for `path`, the second event `WAIT_MS` after the first. */
const WAIT_MS = 1000;
const sseTimes = async (site: Nginx, path: string) => {
  const result = await timedGet(`${site.url(path)}?wait=${WAIT_MS}`);
  expect(result.body).toBe("data: first\n\ndata: second\n\n");
  expect(result.endMs).toBeGreaterThanOrEqual(WAIT_MS - 50);
  return result;
};

describe.skipIf(!nginxBinary)(
  "nginx-proxy, what the README says of other settings (tsgi serve without --script-name)",
  () => {
    let strip: Nginx;
    let buffered: Nginx;
    let http10: Nginx;

    beforeAll(async () => {
      const socket = join(tempDir(group), "plain.sock");
      await startTsgiServer(group, "serve", {
        app: MATRIX_APP,
        listen: socket,
        args: ["--socket-mode", "666", "--no-access-log"],
      });
      [strip, buffered, http10] = await Promise.all([
        // proxy_pass to a URI: nginx replaces the location's prefix with it.
        startNginxSite(
          group,
          nginxBinary!,
          variant(socket, "/app", [
            ["proxy_pass http://tsgi_http;", "proxy_pass http://tsgi_http/;"],
          ]),
        ),
        // nginx's default proxy_buffering on, the example's HTTP/1.1 kept.
        startNginxSite(group, nginxBinary!, variant(socket, "", [["proxy_buffering off;", ""]])),
        // nginx's defaults: HTTP/1.0 to the upstream (so no keepalive), buffering on.
        startNginxSite(
          group,
          nginxBinary!,
          variant(socket, "", [
            ["proxy_buffering off;", ""],
            ["proxy_http_version 1.1;", ""],
            ['proxy_set_header Connection "";', ""],
            ["keepalive 16;", ""],
          ]),
        ),
      ]);
    });

    it("proxy_pass to a URI strips the prefix: SCRIPT_NAME empty, and the path nginx normalized (%2F decoded, // merged) re-encoded", async () => {
      const request = (path: string) => fetchHttp(strip.url(path));
      const plain = await environFor({ request }, "/app" + MATRIX_GET);
      expect({
        SCRIPT_NAME: plain.SCRIPT_NAME,
        PATH_INFO: plain.PATH_INFO,
        REQUEST_URI: plain.REQUEST_URI,
      }).toEqual({
        SCRIPT_NAME: "",
        PATH_INFO: MATRIX_PATH_INFO,
        REQUEST_URI: MATRIX_GET,
      });
      const odd = await environFor({ request }, "/app/env/a%2Fb//c%3Fd?q=%2F");
      expect({
        PATH_INFO: odd.PATH_INFO,
        REQUEST_URI: odd.REQUEST_URI,
        QUERY_STRING: odd.QUERY_STRING,
      }).toEqual({
        PATH_INFO: "/env/a/b/c?d",
        REQUEST_URI: "/env/a/b/c%3Fd?q=%2F",
        QUERY_STRING: "q=%2F",
      });
    });

    it("where proxy_buffering is on: with HTTP/1.1 tsgi's chunked stream passes event by event; with HTTP/1.0 (nginx's default) the first event waits for the end, unless the application sends X-Accel-Buffering: no", async () => {
      const [chunked, held, released] = await Promise.all([
        sseTimes(buffered, "/sse"),
        sseTimes(http10, "/sse"),
        sseTimes(http10, "/sse/unbuffered"),
      ]);
      const timing = (result: TimedResponse) =>
        `first ${result.firstChunkMs} ms, end ${result.endMs} ms`;
      expect(chunked.firstChunkMs, timing(chunked)).toBeLessThan(WAIT_MS / 2);
      expect(held.firstChunkMs, timing(held)).toBeGreaterThanOrEqual(WAIT_MS - 50);
      expect(released.firstChunkMs, timing(released)).toBeLessThan(WAIT_MS / 2);
      // nginx takes the header for itself.
      expect(released.headers["x-accel-buffering"]).toBeUndefined();
    });
  },
);

describe.skipIf(!nginxBinary)(
  "nginx-proxy: workers retiring under POST load (--max-requests)",
  () => {
    it("a worker that retires closes no kept-alive connection under nginx: no POST fails (nginx retries only idempotent requests)", async () => {
      const socket = join(tempDir(group), "retire.sock");
      const tsgi = await startTsgiServer(group, "serve", {
        app: MATRIX_APP,
        listen: socket,
        args: ["--socket-mode", "666", "--no-access-log", "--workers", "2", "--max-requests", "25"],
        waitReady: false,
      });
      await waitForListening({ path: socket }, 15_000, () => tsgi.proc.running);
      const nginx = await startNginxSite(group, nginxBinary!, variant(socket, "", []));
      const { served, failures } = await postLoad(nginx.url("/sha256"), 4, 200);
      const retired = tsgi.proc.stderr.match(/reached --max-requests/g) ?? [];
      expect(retired.length).toBeGreaterThanOrEqual(3);
      expect(failures, nginx.errorLines().slice(0, 3).join("\n")).toEqual([]);
      expect(served).toBe(800);
    });
  },
);
