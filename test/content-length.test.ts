// A body that disagrees with its declared Content-Length, through every gateway
// and behind nginx: the bytes past it are never sent (they would begin the next
// response on a kept-alive connection), and a body that ends short is cut off
// so no client waits for bytes that never come.

import { Agent } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FIXTURES, ProcessGroup } from "./helpers/processes.js";
import { runCgi } from "./helpers/cgi.js";
import { fetchHttp } from "./helpers/frontends.js";
import { findBinary } from "./helpers/available.js";
import { startNginx, type Nginx } from "./helpers/nginx.js";
import { startTsgiFcgi, type TsgiFcgi } from "./helpers/tsgi.js";
import { trackClients, paramsFor } from "./helpers/fastcgi-client.js";

const APP = join(FIXTURES, "content-length-app.js");
const nginxBinary = findBinary("nginx", "nginx");
const group = new ProcessGroup();
afterAll(() => group.cleanUp());

describe("CGI", () => {
  it("sends no byte past the declared Content-Length and logs the overrun", async () => {
    const result = await runCgi({ module: APP, vars: { PATH_INFO: "/long" } });
    expect(result.code).toBe(0);
    expect(result.response!.body.toString()).toBe("abc");
    expect(result.stderr).toMatch(/the body is longer than its Content-Length \(3\)/);
  });

  it("ends a body short of its Content-Length as a cut-off response: exit status 1 and a log line", async () => {
    const result = await runCgi({ module: APP, vars: { PATH_INFO: "/short" } });
    expect(result.code).toBe(1);
    expect(result.response!.body.toString()).toBe("abc");
    expect(result.stderr).toMatch(
      /response cut off: the body ended after 3 of the 50 bytes its Content-Length announced/,
    );
  });
});

describe("FastCGI, raw records", () => {
  let server: TsgiFcgi;
  const connect = trackClients();
  beforeAll(async () => {
    server = await startTsgiFcgi(group, { app: APP });
  });

  it("sends exactly the declared bytes on STDOUT and ends the request cleanly; the connection serves the next request", async () => {
    const client = await connect(server.address);
    const long = await client.request({ params: paramsFor("/long"), keepConn: true });
    expect(long.response().body.toString()).toBe("abc");
    expect(long.endRequest).toEqual({ appStatus: 0, protocolStatus: 0 });
    const next = await client.request({ params: paramsFor("/"), keepConn: true, requestId: 2 });
    expect(next.response().body.toString()).toBe("ok\n");
  });

  it("never ends a short body with FCGI_END_REQUEST: the connection closes instead", async () => {
    const client = await connect(server.address);
    await client.beginRequest(1, { keepConn: true });
    await client.sendParams(1, paramsFor("/short"));
    await client.sendStream(5, 1, Buffer.alloc(0));
    await client.waitForClose(5000);
    const stdout = Buffer.concat(
      client
        .recordsFor(1)
        .filter((record) => record.type === 6)
        .map((record) => record.content),
    );
    expect(stdout.toString("latin1")).toMatch(/Content-Length: 50\r\n\r\nabc$/);
    expect(client.recordsFor(1).some((record) => record.type === 3)).toBe(false);
    expect(server.proc.stderr).toMatch(/response cut off: the body ended after 3 of the 50 bytes/);
  });
});

describe.skipIf(!nginxBinary)("behind nginx (fastcgi_keep_conn on)", () => {
  let nginx: Nginx;
  beforeAll(async () => {
    const server = await startTsgiFcgi(group, { app: APP });
    const address = "path" in server.address ? `unix:${server.address.path}` : "";
    nginx = await startNginx(group, nginxBinary!, {
      http: `upstream tsgi { server ${address}; keepalive 4; }`,
      server: `
    location / {
      fastcgi_param REQUEST_METHOD $request_method;
      fastcgi_param SCRIPT_NAME "";
      fastcgi_param PATH_INFO $uri;
      fastcgi_param QUERY_STRING $query_string;
      fastcgi_param SERVER_NAME $server_name;
      fastcgi_param SERVER_PORT $server_port;
      fastcgi_param SERVER_PROTOCOL $server_protocol;
      fastcgi_pass tsgi;
      fastcgi_keep_conn on;
    }`,
    });
  });

  it("a body longer than its Content-Length reaches the client trimmed, and the next request is answered right", async () => {
    const long = await fetchHttp(nginx.url("/long"));
    expect(long.body.toString()).toBe("abc");
    const next = await fetchHttp(nginx.url("/"));
    expect(next.body.toString()).toBe("ok\n");
  });

  it("a body shorter than its Content-Length fails at the client at once instead of leaving it waiting", async () => {
    // A kept-alive client connection: nginx would otherwise close it after the response, which also ends the wait.
    const agent = new Agent({ keepAlive: true });
    try {
      const started = Date.now();
      await expect(fetchHttp(nginx.url("/short"), { timeoutMs: 8000, agent })).rejects.toThrow(
        /cut off|socket hang up|aborted|ECONNRESET/,
      );
      expect(Date.now() - started).toBeLessThan(5000);
      const next = await fetchHttp(nginx.url("/"), { agent });
      expect(next.body.toString()).toBe("ok\n");
    } finally {
      agent.destroy();
    }
  });
});
