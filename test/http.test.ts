// Tests for the HTTP development gateway (src/http/): the environ it builds,
// HTTP/1.1 behaviour through node:http (keep-alive, HEAD, chunked, Content-
// Length, backpressure, clients that leave), the access log and `tsgi serve`.

import { spawn } from "node:child_process";
import { Agent, request as httpRequest, type IncomingMessage } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { cgiVariables } from "../src/http/environ.js";
import { decodePath, encodePath, encodeQuery } from "../src/percent.js";
import { makeServer } from "../src/http/server.js";
import { serveHttp, type HttpServerOptions } from "../src/http/gateway.js";
import type { RunningServer } from "../src/server/serve.js";
import type { Application, Body, Environ } from "../src/types.js";
import { validator } from "../src/validator/index.js";
import { deferred, rawRequest, within } from "./helpers/engine-harness.js";
import { CLEAN_PATH, REPO, TSGI_BIN } from "./helpers/processes.js";

class LineCollector extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    callback();
  }
}

let server: RunningServer | undefined;
let accessLog: LineCollector;

afterEach(async () => {
  await server?.close(0);
  server = undefined;
});

/** serveHttp, as `tsgi serve` runs it, on a free port. */
async function serve(app: Application, options: HttpServerOptions = {}): Promise<number> {
  accessLog = new LineCollector();
  server = await serveHttp(app, {
    listen: "127.0.0.1:0",
    accessLog,
    errors: new LineCollector(),
    ...options,
  });
  return (server.server.address() as AddressInfo).port;
}

interface Reply {
  status: number;
  headers: IncomingMessage["headers"];
  body: Buffer;
  reusedSocket: boolean;
}

function send(
  port: number,
  options: {
    method?: string;
    path?: string;
    headers?: Record<string, string | string[]>;
    body?: string;
    agent?: Agent;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        method: options.method ?? "GET",
        path: options.path ?? "/",
        headers: options.headers,
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body: Buffer.concat(chunks),
            reusedSocket: req.reusedSocket,
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

/** Answers with the environ's string values and tsgi.* flags as JSON. */
const environEcho: Application = (environ: Environ, startResponse) => {
  const strings = Object.fromEntries(
    Object.entries(environ).filter(([, value]) => typeof value === "string"),
  );
  const flags = {
    multithread: environ["tsgi.multithread"],
    multiprocess: environ["tsgi.multiprocess"],
    run_once: environ["tsgi.run_once"],
  };
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  // JSON of Latin-1 strings: each byte stays one character.
  return [
    Buffer.from(
      JSON.stringify({ ...strings, flags, url_scheme: environ["tsgi.url_scheme"] }),
      "latin1",
    ),
  ];
};

describe("the environ of `tsgi serve`", () => {
  it.each([
    ["/app/users/7?x=1", "/app", "/users/7", "/app/users/7?x=1"],
    ["/app", "/app", "", "/app"],
    ["/app?x=1", "/app", "", "/app?x=1"],
    ["/app/", "/app", "/", "/app/"],
  ])(
    "--script-name /app [http.script-name]: %s has SCRIPT_NAME %s, PATH_INFO %j",
    async (target, scriptName, pathInfo, requestUri) => {
      const port = await serve(environEcho, { scriptName: "/app/" });
      const reply = await send(port, { path: target });
      expect(JSON.parse(reply.body.toString("latin1"))).toMatchObject({
        SCRIPT_NAME: scriptName,
        PATH_INFO: pathInfo,
        REQUEST_URI: requestUri,
      });
    },
  );

  it("--script-name /app [http.script-name]: a path outside it is answered 404", async () => {
    const port = await serve(environEcho, { scriptName: "/app" });
    for (const path of ["/", "/application", "/other/app"])
      expect((await send(port, { path })).status).toBe(404);
  });

  it("is built as a CGI server builds it", async () => {
    const port = await serve(environEcho);
    const head =
      "POST /caf%C3%A9/a%2Fb?x=%FF&y=1 HTTP/1.1\r\n" +
      `Host: 127.0.0.1:${port}\r\n` +
      "Content-Type: text/plain\r\n" +
      "Content-Length: 3\r\n" +
      "X-Forwarded-For: 10.0.0.1\r\n" +
      "X_Forwarded_For: 6.6.6.6\r\n" +
      "Accept: text/html\r\n" +
      "Accept: application/json\r\n" +
      "Cookie: a=1\r\n" +
      "Cookie: b=2\r\n" +
      "Connection: close\r\n\r\nabc";
    const response = await rawRequest(port, head);
    const body = response.subarray(response.indexOf("\r\n\r\n") + 4);
    const env = JSON.parse(body.toString("latin1")) as Record<string, string>;
    expect(env).toMatchObject({
      REQUEST_METHOD: "POST",
      SCRIPT_NAME: "",
      // Percent-decoded to bytes, shown one character per byte; %2F becomes "/" as under any CGI server.
      PATH_INFO: "/caf\xc3\xa9/a/b",
      QUERY_STRING: "x=%FF&y=1",
      REQUEST_URI: "/caf%C3%A9/a%2Fb?x=%FF&y=1",
      SERVER_PROTOCOL: "HTTP/1.1",
      SERVER_NAME: "127.0.0.1",
      SERVER_PORT: String(port),
      REMOTE_ADDR: "127.0.0.1",
      CONTENT_TYPE: "text/plain",
      CONTENT_LENGTH: "3",
      HTTP_HOST: `127.0.0.1:${port}`,
      HTTP_X_FORWARDED_FOR: "10.0.0.1",
      HTTP_ACCEPT: "text/html, application/json",
      HTTP_COOKIE: "a=1; b=2",
      GATEWAY_INTERFACE: "CGI/1.1",
      flags: { multithread: false, multiprocess: false, run_once: false },
      url_scheme: "http",
    });
    expect(env.REMOTE_PORT).toMatch(/^\d+$/);
    expect(env).not.toHaveProperty("HTTP_CONTENT_TYPE");
    expect(env).not.toHaveProperty("HTTP_CONTENT_LENGTH");
  });

  it("gives the application the request itself as tsgi.input, streaming", async () => {
    const gotFirstPiece = deferred();
    const port = await serve(async (environ, startResponse) => {
      const pieces: string[] = [];
      for await (const chunk of environ["tsgi.input"]) {
        pieces.push(Buffer.from(chunk).toString());
        if (pieces.length === 1) gotFirstPiece.resolve();
      }
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return [pieces.join("")];
    });
    // A chunked upload whose second half is sent only once the application has read the first.
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    const closed = new Promise((resolve) => socket.on("close", resolve));
    socket.write(
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n",
    );
    await within(gotFirstPiece.promise, 2000, "the application to read the first piece");
    socket.write("6\r\n world\r\n0\r\n\r\n");
    await within(closed, 2000, "the response");
    expect(Buffer.concat(chunks).toString()).toMatch(/\r\n\r\nhello world$/);
  });
});

describe("the HTTP gateway under the validator", () => {
  it("keeps every gateway rule, also for a chunked upload and HEAD", async () => {
    const app = validator(async (environ, startResponse) => {
      let length = 0;
      for await (const chunk of environ["tsgi.input"]) length += chunk.length;
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return [`read ${length}`];
    });
    const port = await serve(app);
    expect((await send(port, { method: "POST", body: "x".repeat(100_000) })).body.toString()).toBe(
      "read 100000",
    );
    const chunked = await rawRequest(
      port,
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    expect(chunked.toString()).toMatch(/read 3$/);
    await send(port, { method: "HEAD", path: "/x%00y%FF?%FF" });
    await within(
      waitFor(() => accessLog.lines.length === 3),
      2000,
      "three access log lines",
    );
    expect(() => app.assertNoViolations()).not.toThrow();
  });
});

describe("cgiVariables", () => {
  const base = { method: "GET", httpVersion: "1.1", rawHeaders: [], secure: false };

  it("takes the path of an absolute-form target and leaves PATH_INFO empty for OPTIONS *", () => {
    expect(cgiVariables({ ...base, target: "http://example.test/x?y=1" })).toMatchObject({
      PATH_INFO: "/x",
      QUERY_STRING: "y=1",
    });
    expect(cgiVariables({ ...base, method: "OPTIONS", target: "*" })).toMatchObject({
      PATH_INFO: "",
      QUERY_STRING: "",
    });
  });

  it("reads SERVER_NAME from a Host with an IPv6 address, and shows an IPv4 peer without ::ffff:", () => {
    const vars = cgiVariables({
      ...base,
      target: "/",
      rawHeaders: ["Host", "[::1]:8080"],
      remoteAddress: "::ffff:192.0.2.1",
    });
    expect(vars).toMatchObject({
      SERVER_NAME: "[::1]",
      SERVER_PORT: "8080",
      REMOTE_ADDR: "192.0.2.1",
    });
  });

  it("marks TLS with HTTPS=on, and takes a mount prefix as SCRIPT_NAME", () => {
    const vars = cgiVariables({
      ...base,
      target: "/rest",
      scriptName: "/app%20one",
      requestUri: "/app%20one/rest",
      secure: true,
    });
    expect(vars).toMatchObject({
      HTTPS: "on",
      REQUEST_SCHEME: "https",
      SCRIPT_NAME: "/app one",
      PATH_INFO: "/rest",
      REQUEST_URI: "/app%20one/rest",
    });
  });
});

describe("percent helpers", () => {
  it("decode a path to bytes as Latin-1 and leave a stray % alone", () => {
    expect(decodePath("/caf%C3%A9/%zz/%4")).toBe("/caf\xc3\xa9/%zz/%4");
    expect(decodePath("/plain")).toBe("/plain");
  });

  it("encode a byte string for a URL path, and only what a URL cannot hold in a query", () => {
    expect(encodePath("/caf\xc3\xa9/50% off?#")).toBe("/caf%C3%A9/50%25%20off%3F%23");
    expect(encodeQuery("a=%20b&c=\xff d#")).toBe("a=%20b&c=%FF%20d%23");
    expect(decodePath(encodePath("/a b/\x00\xff%"))).toBe("/a b/\x00\xff%");
  });
});

describe("HTTP/1.1 through `tsgi serve`", () => {
  const hello: Application = (_environ, startResponse) => {
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return ["hello"];
  };

  it("shutting down, it answers a request still sent on an idle kept-alive connection (with Connection: close) rather than closing it under the client", async () => {
    const port = await serve(hello);
    const socket = connect(port, "127.0.0.1");
    let received = "";
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.on("error", () => {});
    socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const first = new Promise<void>((resolve) =>
      socket.on("data", () => received.endsWith("hello") && resolve()),
    );
    await within(first, 2000, "the first response");
    const stopping = server!.close(5);
    server = undefined;
    // A proxy picks its kept-alive connection and sends a POST as the server begins to stop.
    await new Promise((resolve) => setTimeout(resolve, 50));
    received = "";
    socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    await within(closed, 3000, "the connection to close after the second response");
    await stopping;
    expect(received).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(received).toMatch(/\r\nConnection: close\r\n/i);
    expect(received.endsWith("hello")).toBe(true);
  });

  it("keeps the connection alive between requests", async () => {
    const port = await serve(hello);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await send(port, { agent });
      const second = await send(port, { agent });
      expect(first.body.toString()).toBe("hello");
      expect(second.body.toString()).toBe("hello");
      expect(second.reusedSocket).toBe(true);
    } finally {
      agent.destroy();
    }
  });

  it.each([
    ["a UTF-8 string", ["caf\u00e9 \u2603"]],
    ["every byte value", [Uint8Array.from({ length: 256 }, (_, i) => i)]],
    ["strings and bytes together", ["a\u00e9", Buffer.from([0, 255]), "\u2603"]],
    ["a body over 16 KiB", [Buffer.alloc(20_000, 0xe9)]],
  ] as const)(
    "sends a whole response (%s) byte for byte, beside a Latin-1 header value",
    async (_name, chunks) => {
      const port = await serve((_environ, startResponse) => {
        startResponse("200 OK", [["X-Latin", "caf\u00e9"]]);
        return [...chunks];
      });
      // HTTP/1.0: no chunked framing around a body of several chunks (which gets no Content-Length).
      const raw = await rawRequest(port, "GET / HTTP/1.0\r\nHost: x\r\n\r\n");
      const expected = Buffer.concat(
        chunks.map((chunk) => (typeof chunk === "string" ? Buffer.from(chunk) : chunk)),
      );
      const split = raw.indexOf("\r\n\r\n");
      const head = raw.subarray(0, split).toString("latin1");
      expect(head).toMatch(/\r\nX-Latin: caf\u00e9\r\n/);
      if (chunks.length === 1)
        expect(head).toMatch(new RegExp(`\r\nContent-Length: ${expected.length}\r\n`, "i"));
      expect(raw.subarray(split + 4).equals(expected)).toBe(true);
    },
  );

  it("gives a one-chunk body a Content-Length, and a HEAD response the headers without the body", async () => {
    const port = await serve(hello);
    const get = await send(port);
    expect(get.headers["content-length"]).toBe("5");
    expect(get.headers["transfer-encoding"]).toBeUndefined();
    const raw = await rawRequest(port, "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const text = raw.toString("latin1");
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toMatch(/\r\nContent-Length: 5\r\n/i);
    expect(text.endsWith("\r\n\r\n")).toBe(true);
  });

  it("sends no body bytes for HEAD whatever the application returns, and no Content-Length: 0 for an empty one", async () => {
    const bodies: Record<string, () => Body> = {
      streamed: () =>
        (async function* () {
          yield "abc";
          yield "def";
        })(),
      counted: () => ["abcdef"],
      empty: () => [],
    };
    const port = await serve((environ, startResponse) => {
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return bodies[environ.PATH_INFO.slice(1)]();
    });
    // Pipelined on one kept-alive connection: a body byte after a HEAD response would corrupt the next one.
    const request = (method: string, path: string, close = false) =>
      `${method} ${path} HTTP/1.1\r\nHost: x\r\n${close ? "Connection: close\r\n" : ""}\r\n`;
    const raw = (
      await rawRequest(
        port,
        request("HEAD", "/streamed") +
          request("HEAD", "/counted") +
          request("HEAD", "/empty") +
          request("GET", "/counted", true),
      )
    ).toString("latin1");
    const responses = raw.split(/(?=HTTP\/1\.1 )/);
    expect(responses).toHaveLength(4);
    for (const head of responses.slice(0, 3))
      expect(head.endsWith("\r\n\r\n"), JSON.stringify(head)).toBe(true);
    expect(responses[1]).toMatch(/\r\nContent-Length: 6\r\n/i);
    expect(responses[2]).not.toMatch(/Content-Length/i);
    expect(responses[3]).toMatch(/\r\n\r\nabcdef$/);
  });

  it("never sends bytes past the application's Content-Length: the next response on the connection stays intact", async () => {
    const port = await serve((environ, startResponse) => {
      startResponse("200 OK", [["Content-Length", "3"]]);
      return ["abc", environ.PATH_INFO === "/long" ? "EXTRA-BYTES" : ""];
    });
    const raw = (
      await rawRequest(
        port,
        "GET /long HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      )
    ).toString("latin1");
    const responses = raw.split(/(?=HTTP\/1\.1 )/);
    expect(responses).toHaveLength(2);
    expect(responses[0]).toMatch(/\r\n\r\nabc$/);
    expect(responses[1]).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nabc$/);
    expect(accessLog.lines).toHaveLength(2);
  });

  it("cuts the connection when the body ends short of the application's Content-Length, so the client does not wait", async () => {
    const port = await serve(async function* (_environ, startResponse) {
      startResponse("200 OK", [["Content-Length", "50"]]);
      yield "abc";
    } as Application);
    const raw = (await rawRequest(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 3000)).toString(
      "latin1",
    );
    expect(raw).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*Content-Length: 50\r\n[^]*\r\n\r\nabc$/);
    await within(
      new Promise<void>((resolve) => {
        const check = () => (accessLog.lines.length > 0 ? resolve() : setTimeout(check, 10));
        check();
      }),
      2000,
      "the access log line",
    );
    expect(accessLog.lines[0]).toMatch(/ \(cut\)$/);
  });

  it("sends a body of unknown length chunked, with the status reason and repeated headers the app gave", async () => {
    const port = await serve(async function* (_environ, startResponse) {
      startResponse("201 Made", [
        ["Set-Cookie", "a=1"],
        ["Set-Cookie", "b=2"],
      ]);
      yield "one ";
      yield "two";
    } as Application);
    const raw = (
      await rawRequest(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    ).toString("latin1");
    expect(raw).toMatch(/^HTTP\/1\.1 201 Made\r\n/);
    expect(raw).toMatch(/\r\nTransfer-Encoding: chunked\r\n/i);
    expect(raw.match(/\r\nSet-Cookie: /gi)).toHaveLength(2);
    expect(raw).toMatch(/\r\n\r\n4\r\none \r\n3\r\ntwo\r\n0\r\n\r\n$/);
  });

  it("stops pulling the body while the client does not read (backpressure)", async () => {
    const chunk = Buffer.alloc(1024 * 1024, "x");
    const total = 64;
    let produced = 0;
    const port = await serve(function* (_environ, startResponse) {
      startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
      for (let i = 0; i < total; i++) {
        produced++;
        yield chunk;
      }
    } as Application);
    const socket = connect(port, "127.0.0.1");
    socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    socket.pause();
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Socket buffers hold a few MiB; without backpressure all 64 MiB would be produced at once.
    expect(produced).toBeLessThan(total / 2);
    let received = 0;
    socket.on("data", (data: Buffer) => (received += data.length));
    const closed = new Promise((resolve) => socket.on("close", resolve));
    socket.resume();
    await within(closed, 10_000, "the whole response");
    expect(produced).toBe(total);
    expect(received).toBeGreaterThan(total * chunk.length);
  });

  it("stops the application when the client goes away, and logs the request as aborted", async () => {
    const stopped = deferred();
    const port = await serve(async function* (_environ, startResponse) {
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      try {
        for (let i = 0; i < 1000; i++) {
          yield `tick ${i}\n`;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      } finally {
        stopped.resolve();
      }
    } as Application);
    const socket = connect(port, "127.0.0.1");
    socket.write("GET /ticks HTTP/1.1\r\nHost: x\r\n\r\n");
    await new Promise((resolve) => socket.once("data", resolve));
    socket.destroy();
    await within(stopped.promise, 2000, "the body's finally block");
    await within(
      waitFor(() => accessLog.lines.length > 0),
      2000,
      "the access log line",
    );
    expect(accessLog.lines[0]).toMatch(/"GET \/ticks HTTP\/1\.1" 200 \d+ [\d.]+ms \(aborted\)$/);
  });

  it("sends the head at once when the application writes an empty chunk through write() [write.flush]", async () => {
    const release = deferred();
    const port = await serve(async (_environ, startResponse) => {
      const write = startResponse("200 OK", [["Content-Type", "text/event-stream"]]);
      await write("");
      await release.promise;
      return ["data: 1\n\n"];
    });
    const reply = await within(
      new Promise<IncomingMessage>((resolve, reject) =>
        httpRequest({ host: "127.0.0.1", port, path: "/", agent: false }, resolve)
          .on("error", reject)
          .end(),
      ),
      2000,
      "the response head",
    );
    expect(reply.headers["content-type"]).toBe("text/event-stream");
    release.resolve();
    let body = "";
    for await (const chunk of reply) body += String(chunk);
    expect(body).toBe("data: 1\n\n");
  });

  it("cuts the connection when the application fails after the headers went out", async () => {
    const port = await serve(async function* (_environ, startResponse) {
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      yield "partial";
      throw new Error("failed halfway");
    } as Application);
    const raw = (await rawRequest(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")).toString("latin1");
    expect(raw).toMatch(/\r\n\r\n7\r\npartial\r\n$/);
    // No terminating zero-length chunk: the client can tell the response is incomplete.
    expect(raw).not.toMatch(/0\r\n\r\n$/);
  });

  it("writes one access log line per request: common log format plus the duration", async () => {
    const port = await serve(hello);
    await send(port, { path: "/a?b=1" });
    await send(port, { method: "HEAD", path: "/h" });
    await within(
      waitFor(() => accessLog.lines.length === 2),
      2000,
      "two access log lines",
    );
    expect(accessLog.lines[0]).toMatch(
      /^127\.0\.0\.1 - - \[\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "GET \/a\?b=1 HTTP\/1\.1" 200 5 \d+\.\dms$/,
    );
    // HEAD sends no body bytes.
    expect(accessLog.lines[1]).toMatch(/"HEAD \/h HTTP\/1\.1" 200 - /);
  });

  it("rejects makeServer when the port is taken", async () => {
    const port = await serve(hello);
    await expect(makeServer(hello, { host: "127.0.0.1", port, accessLog: false })).rejects.toThrow(
      /EADDRINUSE/,
    );
  });
});

describe("tsgi serve (the command)", () => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it(`serves the module and stops cleanly on ${signal} with exit code 0`, async () => {
      const child = spawn(
        process.execPath,
        [TSGI_BIN, "serve", "examples/hello.js", "--port", "0"],
        {
          cwd: REPO,
          env: { PATH: CLEAN_PATH },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) =>
        child.on("close", (code) => resolve(code)),
      );
      try {
        await within(
          waitFor(() => /http:\/\/127\.0\.0\.1:\d+\//.test(stderr)),
          10_000,
          `the "serving" line; stderr: ${stderr}`,
        );
        const port = Number(/127\.0\.0\.1:(\d+)/.exec(stderr)![1]);
        const reply = await send(port, { path: "/" });
        expect(reply.body.toString()).toBe("Hello, world!\n");
        child.kill(signal);
        expect(await within(exited, 5000, "the server to exit")).toBe(0);
        expect(stderr).toMatch(/"GET \/ HTTP\/1\.1" 200 14 /);
      } finally {
        child.kill("SIGKILL");
      }
    });
  }

  it("fails with exit code 1 and a message when the module cannot be loaded", async () => {
    const child = spawn(
      process.execPath,
      [TSGI_BIN, "serve", "test/fixtures/no-such-app.js", "--port", "0"],
      {
        cwd: REPO,
        env: { PATH: CLEAN_PATH },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await within(
      new Promise((resolve) => child.on("close", resolve)),
      10_000,
      "the command to exit",
    );
    expect(code).toBe(1);
    expect(stderr).toMatch(/cannot load application module/);
  });
});

/** Resolves once `condition` holds, checking every 10 ms (at most 500 times). */
async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++)
    await new Promise((resolve) => setTimeout(resolve, 10));
  if (!condition()) throw new Error("condition never became true");
}
