// End to end through a real nginx: HTTP requests to nginx, which talks FastCGI
// to `tsgi fcgi` (from dist/ — run `npm run build` first) over a unix socket or
// TCP, with and without fastcgi_keep_conn + upstream keepalive.

import { randomBytes } from "node:crypto";
import { Agent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { createServer, connect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProcessGroup, tempDir } from "./helpers/processes.js";
import { findBinary } from "./helpers/available.js";
import { STOCK_FASTCGI_PARAMS, startNginx, type Nginx } from "./helpers/nginx.js";
import { startTsgiFcgi, type TsgiFcgi } from "./helpers/tsgi.js";
import { sha256, streamPattern } from "./helpers/bytes.js";
import { parseReport } from "./helpers/reports.js";

const nginxBinary = findBinary("nginx", "nginx");

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function fetchRaw(
  url: string,
  options: { method?: string; body?: Buffer; agent?: Agent; timeoutMs?: number } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      { method: options.method ?? "GET", agent: options.agent ?? false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({
            status: response.statusCode!,
            headers: response.headers,
            body: Buffer.concat(chunks),
          }),
        );
        response.on("error", reject);
      },
    );
    request.setTimeout(options.timeoutMs ?? 10_000, () =>
      request.destroy(new Error(`no answer from ${url} in time`)),
    );
    request.on("error", reject);
    request.end(options.body);
  });
}

/** nginx's stock fastcgi_params, inlined so the config does not depend on /etc/nginx, plus PATH_INFO from the split. */
const FASTCGI_PARAMS = `${STOCK_FASTCGI_PARAMS}fastcgi_param PATH_INFO $fastcgi_path_info;`;

/** A location that serves /app/* from `pass` (an upstream name, or unix:/path, or host:port). */
function appLocation(prefix: string, pass: string, keepConn: boolean): string {
  return `
    location ${prefix}/ {
      fastcgi_split_path_info ^(${prefix})(/.*)$;
${FASTCGI_PARAMS}
      fastcgi_pass ${pass};
      fastcgi_keep_conn ${keepConn ? "on" : "off"};
    }`;
}

function upstreamAddress(server: TsgiFcgi): string {
  return "path" in server.address
    ? `unix:${server.address.path}`
    : `${server.address.host}:${server.address.port}`;
}

const MODES = [
  {
    name: "unix socket, fastcgi_keep_conn on + upstream keepalive",
    transport: "unix",
    keepAlive: true,
  },
  { name: "unix socket, a connection per request", transport: "unix", keepAlive: false },
  { name: "TCP, fastcgi_keep_conn on + upstream keepalive", transport: "tcp", keepAlive: true },
  { name: "TCP, a connection per request", transport: "tcp", keepAlive: false },
] as const;

describe.skipIf(!nginxBinary).each(MODES)("through nginx ($name)", ({ transport, keepAlive }) => {
  let tsgi: TsgiFcgi;
  let nginx: Nginx;
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });

  beforeAll(async () => {
    // 666: when we are root, nginx workers could run as nobody and must reach the socket.
    tsgi = await startTsgiFcgi(group, { listen: transport, args: ["--socket-mode", "666"] });
    const upstream = keepAlive
      ? `upstream tsgi { server ${upstreamAddress(tsgi)}; keepalive 4; }`
      : "";
    nginx = await startNginx(group, nginxBinary!, {
      http: upstream,
      server: appLocation("/app", keepAlive ? "tsgi" : upstreamAddress(tsgi), keepAlive),
    });
  });
  afterAll(() => agent.destroy());

  const get = (path: string, options: Parameters<typeof fetchRaw>[1] = {}) =>
    fetchRaw(nginx.url(path), { agent, ...options });

  it("GET with PATH_INFO (fastcgi_split_path_info) and a query string: the environ holds what nginx sent", async () => {
    const result = await get("/app/inspect/some%20path/x?a=1&b=%C3%A9");
    expect(result.status).toBe(200);
    const report = parseReport(result.body);
    expect(report.environ).toMatchObject({
      REQUEST_METHOD: "GET",
      SCRIPT_NAME: "/app",
      PATH_INFO: "/inspect/some path/x",
      QUERY_STRING: "a=1&b=%C3%A9",
      REQUEST_URI: "/app/inspect/some%20path/x?a=1&b=%C3%A9",
      SERVER_PROTOCOL: "HTTP/1.1",
      SERVER_PORT: String(nginx.port),
      REQUEST_SCHEME: "http",
    });
    expect(report.tsgi).toMatchObject({ url_scheme: "http", run_once: false, role: "responder" });
  });

  it("a POST body reaches the app whole (it answers the body's SHA-256)", async () => {
    const body = randomBytes(1024 * 1024 + 17);
    const result = await get("/app/sha256", { method: "POST", body });
    expect(result.status).toBe(200);
    expect(JSON.parse(result.body.toString("utf8"))).toEqual({
      length: body.length,
      sha256: sha256(body),
    });
  });

  it("a non-200 status with a custom header passes through", async () => {
    const result = await get("/app/status");
    expect(result.status).toBe(418);
    expect(result.headers["x-custom"]).toBe("tea; kind=green");
    expect(result.body.toString()).toBe("short and stout\n");
  });

  it("a 10 MiB streamed response arrives byte-exact", async () => {
    const size = 10 * 1024 * 1024;
    const result = await get(`/app/stream?bytes=${size}`);
    expect(result.status).toBe(200);
    expect(result.headers["content-length"]).toBe(String(size));
    expect(result.body.length).toBe(size);
    expect(result.body.equals(streamPattern(size))).toBe(true);
  });

  it("an app exception gives a 500 and the next request is served", async () => {
    const failed = await get("/app/throw");
    expect(failed.status).toBe(500);
    expect(failed.body.toString()).toBe("Internal Server Error\n");
    expect((await get("/app/hello")).body.toString()).toBe("hello\n");
    await tsgi.proc.waitForStderr(/boom on purpose/);
  });

  it("state persists between requests (one long-lived process)", async () => {
    const first = Number((await get("/app/counter")).body.toString());
    const second = Number((await get("/app/counter")).body.toString());
    const third = Number((await get("/app/counter")).body.toString());
    expect([second - first, third - second]).toEqual([1, 1]);
  });

  it("a 10 MB POST body the app ignores, then another request: both answered", async () => {
    const ignored = await get("/app/ignore-body", {
      method: "POST",
      body: Buffer.alloc(10 * 1024 * 1024, 7),
    });
    expect(ignored.status).toBe(200);
    expect(ignored.body.toString()).toBe("ignored\n");
    expect((await get("/app/hello")).body.toString()).toBe("hello\n");
  });

  it("nginx logged no [error], [crit] or [alert] lines, and tsgi no protocol errors", () => {
    expect(nginx.errorLines()).toEqual([]);
    expect(tsgi.proc.stderr).not.toMatch(/protocol error|bad FCGI_PARAMS/);
  });
});

/**
 * A TCP-to-`target` relay that counts the connections nginx opens to the
 * FastCGI server (tsgi keeps no such statistic on its command line).
 */
async function countingRelay(
  target: { path: string },
  path: string,
): Promise<{ server: Server; connections(): number }> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (downstream) => {
    count++;
    const upstream = connect({ path: target.path, allowHalfOpen: true });
    for (const socket of [downstream, upstream]) {
      sockets.add(socket);
      socket.on("error", () => {
        downstream.destroy();
        upstream.destroy();
      });
      socket.on("close", () => sockets.delete(socket));
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  group.onCleanUp(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { server, connections: () => count };
}

describe.skipIf(!nginxBinary)("nginx keep-alive to tsgi", () => {
  it("200 sequential requests with fastcgi_keep_conn on use few connections; with it off, one each", async () => {
    const tsgi = await startTsgiFcgi(group, { args: ["--socket-mode", "666"] });
    const dir = tempDir(group);
    const kept = await countingRelay(tsgi.address as { path: string }, join(dir, "kept.sock"));
    const unkept = await countingRelay(tsgi.address as { path: string }, join(dir, "unkept.sock"));
    const nginx = await startNginx(group, nginxBinary!, {
      http: `upstream kept { server unix:${join(dir, "kept.sock")}; keepalive 4; }`,
      server:
        appLocation("/kept", "kept", true) +
        appLocation("/unkept", `unix:${join(dir, "unkept.sock")}`, false),
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let index = 0; index < 200; index++) {
        const result = await fetchRaw(nginx.url("/kept/counter"), { agent });
        expect(result.status).toBe(200);
      }
      for (let index = 0; index < 50; index++) {
        const result = await fetchRaw(nginx.url("/unkept/hello"), { agent });
        expect(result.status).toBe(200);
      }
    } finally {
      agent.destroy();
    }
    expect(kept.connections()).toBeLessThanOrEqual(2);
    expect(unkept.connections()).toBe(50);
    expect(nginx.errorLines()).toEqual([]);
  });
});
