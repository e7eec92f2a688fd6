// Tests for the adapters: a real Express app and a real Hono app end to end
// under `tsgi cgi`, then fromFetchHandler, fromNodeHandler and toNodeHandler in
// process, against a recording sink or a real HTTP server.

import express from "express";
import { existsSync } from "node:fs";
import {
  IncomingMessage,
  ServerResponse,
  createServer,
  request as httpRequest,
  type RequestListener,
  type Server,
} from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough, Readable, pipeline } from "node:stream";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  fromFetchHandler,
  fromNodeHandler,
  toNodeHandler,
  type FetchHandler,
} from "../src/adapters/index.js";
import { ConnectionClosedError, type Outcome } from "../src/engine.js";
import type { Application, Environ } from "../src/types.js";
import { REPO } from "./helpers/processes.js";
import { parseCgiResponse, runCgi, spawnCgi } from "./helpers/cgi.js";
import { RecordingSink } from "./helpers/sinks.js";
import { deferred, start, testEnviron, within, type Run } from "./helpers/engine-harness.js";
import {
  FRAMEWORK_APPS,
  SCENARIOS,
  gatewayVariables,
  type Framework,
} from "./fixtures/http/scenarios.js";

const FRAMEWORKS = Object.keys(FRAMEWORK_APPS) as Framework[];

/** Lets pending callbacks and promise jobs run. */
const settleTicks = () => new Promise<void>((resolve) => setTimeout(resolve, 20));

describe("Express and Hono applications under `tsgi cgi`", () => {
  beforeAll(() => {
    // The fixtures import the compiled adapters, and `tsgi cgi` runs the compiled bundle.
    for (const file of ["dist/adapters/index.js", "dist/cli/cgi-bundle.cjs"]) {
      if (!existsSync(`${REPO}/${file}`))
        throw new Error(`${file} is missing: run \`npm run build\` first`);
    }
  });

  for (const framework of FRAMEWORKS) {
    for (const scenario of SCENARIOS) {
      it(`${framework}: ${scenario.name}`, async () => {
        const result = await runCgi({
          module: FRAMEWORK_APPS[framework],
          bareEnvironment: true,
          vars: gatewayVariables(scenario.request),
          stdin: scenario.request.body,
        });
        expect(result.stderr).toBe("");
        expect(result.code).toBe(0);
        expect(result.response).toBeDefined();
        scenario.check(result.response!, framework);
      });
    }

    it(`${framework}: the streamed response leaves the process piece by piece, not at the end`, async () => {
      const pauseMs = 300;
      const child = spawnCgi({
        module: FRAMEWORK_APPS[framework],
        bareEnvironment: true,
        vars: gatewayVariables({ method: "GET", path: "/stream", query: `pause=${pauseMs}` }),
      });
      child.stdin!.end();
      const arrivals: { at: number; text: string }[] = [];
      let output = Buffer.alloc(0);
      child.stdout!.on("data", (chunk: Buffer) => {
        output = Buffer.concat([output, chunk]);
        arrivals.push({ at: performance.now(), text: output.toString("latin1") });
      });
      const code = await within(
        new Promise((resolve) => child.on("close", resolve)),
        10_000,
        "the CGI process to exit",
      );
      expect(code).toBe(0);
      const firstPart = arrivals.find((arrival) => arrival.text.includes("one\n"))!;
      const lastPart = arrivals.find((arrival) => arrival.text.includes("three\n"))!;
      expect(firstPart.text).not.toContain("two\n");
      // Two pauses lie between "one" and "three"; buffering would deliver them together.
      expect(lastPart.at - firstPart.at).toBeGreaterThan(pauseMs);
      expect(parseCgiResponse(output).body.toString()).toBe("one\ntwo\nthree\n");
    });
  }
});

describe("fromFetchHandler", () => {
  const seeRequest = (onRequest: (request: Request) => void | Promise<void>): Application =>
    fromFetchHandler(async (request) => {
      await onRequest(request);
      return new Response("ok");
    });

  it("builds the URL from the scheme, Host, PATH_INFO re-encoded, and QUERY_STRING", async () => {
    let url = "";
    const run = start(
      seeRequest((request) => void (url = request.url)),
      {
        HTTPS: "on",
        HTTP_HOST: "example.test:8443",
        SCRIPT_NAME: "/app",
        // "café" as UTF-8 bytes, then a literal "%" and a space (decoded PATH_INFO holds them as they are).
        PATH_INFO: "/caf\xc3\xa9/100% off",
        QUERY_STRING: "q=%C3%A9&raw=\xff",
      },
    );
    expect(await run.outcome).toBe("complete");
    expect(url).toBe("https://example.test:8443/caf%C3%A9/100%25%20off?q=%C3%A9&raw=%FF");
  });

  it("uses SERVER_NAME and a non-default SERVER_PORT without a usable Host", async () => {
    const urls: string[] = [];
    const app = seeRequest((request) => void urls.push(request.url));
    await start(app, { SERVER_NAME: "srv.test", SERVER_PORT: "8080", PATH_INFO: "/a" }).outcome;
    await start(app, { SERVER_NAME: "srv.test", SERVER_PORT: "80", PATH_INFO: "/a" }).outcome;
    // A Host that would move the path ("evil/x") is not used.
    await start(app, {
      HTTP_HOST: "evil/x",
      SERVER_NAME: "srv.test",
      SERVER_PORT: "80",
      PATH_INFO: "/a",
    }).outcome;
    expect(urls).toEqual(["http://srv.test:8080/a", "http://srv.test/a", "http://srv.test/a"]);
  });

  it("passes HTTP_* variables as headers, with CONTENT_TYPE and CONTENT_LENGTH", async () => {
    let headers: [string, string][] = [];
    const input = new PassThrough();
    input.end("abc");
    const run = start(
      seeRequest((request) => void (headers = [...request.headers])),
      {
        REQUEST_METHOD: "POST",
        HTTP_X_CUSTOM_THING: "1",
        HTTP_ACCEPT: "text/html",
        CONTENT_TYPE: "text/plain",
        CONTENT_LENGTH: "3",
      },
      input,
    );
    expect(await run.outcome).toBe("complete");
    expect(headers).toEqual(
      expect.arrayContaining([
        ["x-custom-thing", "1"],
        ["accept", "text/html"],
        ["content-type", "text/plain"],
        ["content-length", "3"],
      ]),
    );
  });

  it("streams the request body: the handler reads the first piece before the rest exists", async () => {
    const input = new PassThrough();
    const firstPieceRead = deferred<string>();
    const app = fromFetchHandler(async (request) => {
      const reader = request.body!.getReader();
      const first = await reader.read();
      firstPieceRead.resolve(Buffer.from(first.value).toString());
      let rest = "";
      for (let step = await reader.read(); !step.done; step = await reader.read())
        rest += Buffer.from(step.value).toString();
      return new Response(`first=${Buffer.from(first.value).toString()} rest=${rest}`);
    });
    const run = start(app, { REQUEST_METHOD: "POST", CONTENT_LENGTH: "10" }, input);
    input.write("hello");
    expect(await within(firstPieceRead.promise, 2000, "the handler to read the first piece")).toBe(
      "hello",
    );
    input.end("world");
    expect(await run.outcome).toBe("complete");
    expect(run.sink.body()).toBe("first=hello rest=world");
  });

  it("gives a body that is complete at once a Content-Length, and streams one still being produced", async () => {
    const whole = start(fromFetchHandler(() => new Response("hello")));
    expect(await whole.outcome).toBe("complete");
    expect(whole.sink.header("content-length")).toBe("5");

    const next = deferred();
    const stream = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(new TextEncoder().encode("first "));
        await next.promise;
        controller.enqueue(new TextEncoder().encode("second"));
        controller.close();
      },
    });
    const streamed = start(fromFetchHandler(() => new Response(stream)));
    streamed.sink.onWrite = (_data, index) => {
      // The first piece went out while the second did not exist yet.
      if (index === 0) next.resolve();
    };
    expect(await within(streamed.outcome, 2000, "the streamed response")).toBe("complete");
    expect(streamed.sink.header("content-length")).toBeUndefined();
    expect(streamed.sink.writes.map(String)).toEqual(["first ", "second"]);
  });

  it("leaves out hop-by-hop headers and sends each Set-Cookie on its own", async () => {
    const headers = new Headers([
      ["Content-Type", "text/plain"],
      ["Connection", "keep-alive"],
      ["Keep-Alive", "timeout=5"],
      ["Transfer-Encoding", "chunked"],
      ["Set-Cookie", "a=1; Path=/"],
      ["Set-Cookie", "b=2; Path=/"],
    ]);
    const run = start(fromFetchHandler(() => new Response("x", { headers })));
    expect(await run.outcome).toBe("complete");
    const names = run.sink.headers.map(([name]) => name.toLowerCase());
    expect(names).not.toContain("connection");
    expect(names).not.toContain("keep-alive");
    expect(names).not.toContain("transfer-encoding");
    expect(run.sink.headers.filter(([name]) => name === "set-cookie")).toEqual([
      ["set-cookie", "a=1; Path=/"],
      ["set-cookie", "b=2; Path=/"],
    ]);
  });

  it("takes the reason phrase from http.STATUS_CODES, or Unknown", async () => {
    const created = start(
      fromFetchHandler(() => new Response("x", { status: 201, statusText: "Made It" })),
    );
    await created.outcome;
    expect(created.sink.status).toBe("201 Created");
    const odd = start(fromFetchHandler(() => new Response("x", { status: 599 })));
    await odd.outcome;
    expect(odd.sink.status).toBe("599 Unknown");
  });

  it("sends a header value beyond Latin-1 as its UTF-8 bytes", async () => {
    // Headers objects refuse such values, but a Response-like object from elsewhere may carry one.
    const entries: [string, string][] = [["x-title", "€uro"]];
    const headers = {
      [Symbol.iterator]: () => entries[Symbol.iterator](),
      getSetCookie: () => [] as string[],
    };
    const run = start(
      fromFetchHandler(() => ({ status: 200, headers, body: null }) as unknown as Response),
    );
    expect(await run.outcome).toBe("complete");
    expect(run.sink.header("x-title")).toBe(Buffer.from("€uro", "utf8").toString("latin1"));
  });

  it("cancels the response stream when the client goes away", async () => {
    const cancelled = deferred<unknown>();
    let pulls = 0;
    const endless = new ReadableStream<Uint8Array>({
      async pull(controller) {
        pulls++;
        await new Promise((resolve) => setTimeout(resolve, 5));
        controller.enqueue(new TextEncoder().encode("tick\n"));
      },
      cancel: (reason) => cancelled.resolve(reason),
    });
    const sink = new RecordingSink(true);
    sink.onWrite = (_data, index) => {
      if (index === 2) {
        sink.controller.abort();
        throw new ConnectionClosedError("client gone");
      }
    };
    const run = start(
      fromFetchHandler(() => new Response(endless)),
      {},
      undefined,
      sink,
    );
    expect(await within(run.outcome, 2000, "the aborted response")).toBe("aborted");
    await within(cancelled.promise, 2000, "the stream's cancel()");
    expect(pulls).toBeLessThan(10);
  });

  it("returns the body at once for a Response returned at once, and a promise for one awaited", async () => {
    const { environ } = testEnviron();
    const statuses: string[] = [];
    const startResponse = (status: string) => {
      statuses.push(status);
      return () => {};
    };
    const now = fromFetchHandler(() => new Response("now"))(environ, startResponse);
    expect(now).toEqual(["now"]);
    const later = fromFetchHandler(async () => new Response("later"))(environ, startResponse);
    expect(later).toBeInstanceOf(Promise);
    expect(await later).toEqual(["later"]);
    expect(statuses).toEqual(["200 OK", "200 OK"]);
  });

  it("gives a 500 for a handler that throws or returns no Response, at once or awaited", async () => {
    const handlers: FetchHandler[] = [
      () => {
        throw new Error("boom");
      },
      () => Promise.reject(new Error("boom")),
      () => "text" as unknown as Response,
      () => Promise.resolve(null as unknown as Response),
    ];
    for (const handler of handlers) {
      const run = start(fromFetchHandler(handler));
      expect(await run.outcome).toBe("failed");
      expect(run.sink.status).toBe("500 Internal Server Error");
      expect(run.errors.text).toMatch(/boom|must return a Response/);
    }
  });

  it("answers 400 to a request that cannot become a fetch Request (TRACE)", async () => {
    const run = start(
      seeRequest(() => {}),
      { REQUEST_METHOD: "TRACE" },
    );
    expect(await run.outcome).toBe("complete");
    expect(run.sink.status).toBe("400 Bad Request");
    expect(run.errors.text).toMatch(/TRACE/);
  });
});

describe("fromNodeHandler", () => {
  it("hands the handler real IncomingMessage and ServerResponse objects with the request's details", async () => {
    let seen: Record<string, unknown> = {};
    const app = fromNodeHandler((req, res) => {
      const socket = req.socket as typeof req.socket & { encrypted?: boolean };
      seen = {
        isIncomingMessage: req instanceof IncomingMessage,
        isServerResponse: res instanceof ServerResponse,
        method: req.method,
        url: req.url,
        httpVersion: req.httpVersion,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        encrypted: socket.encrypted,
      };
      res.end("ok");
    });
    const run = start(app, {
      REQUEST_METHOD: "PUT",
      SCRIPT_NAME: "/mount",
      PATH_INFO: "/caf\xc3\xa9 x",
      QUERY_STRING: "a=%20b&c",
      SERVER_PROTOCOL: "HTTP/1.0",
      HTTP_HOST: "example.test",
      HTTP_X_THING: "1",
      CONTENT_TYPE: "text/plain",
      REMOTE_ADDR: "203.0.113.9",
      REMOTE_PORT: "51234",
      HTTPS: "on",
    });
    expect(await run.outcome).toBe("complete");
    expect(seen).toEqual({
      isIncomingMessage: true,
      isServerResponse: true,
      method: "PUT",
      url: "/caf%C3%A9%20x?a=%20b&c",
      httpVersion: "1.0",
      headers: { host: "example.test", "x-thing": "1", "content-type": "text/plain" },
      rawHeaders: ["host", "example.test", "x-thing", "1", "content-type", "text/plain"],
      remoteAddress: "203.0.113.9",
      remotePort: 51234,
      encrypted: true,
    });
  });

  it("streams the request body: the handler gets the first piece before the rest exists", async () => {
    const input = new PassThrough();
    const firstPiece = deferred<string>();
    const app = fromNodeHandler((req, res) => {
      const pieces: string[] = [];
      req.on("data", (chunk: Buffer) => {
        pieces.push(chunk.toString());
        if (pieces.length === 1) firstPiece.resolve(chunk.toString());
      });
      req.on("end", () => res.end(pieces.join("|")));
    });
    const run = start(app, { REQUEST_METHOD: "POST", CONTENT_LENGTH: "10" }, input);
    input.write("hello");
    expect(await within(firstPiece.promise, 2000, "the first piece of the body")).toBe("hello");
    input.end("world");
    expect(await within(run.outcome, 2000, "the response")).toBe("complete");
    expect(run.sink.body()).toBe("hello|world");
  });

  it("sends writeHead's status, reason and headers, even with no header set before", async () => {
    const run = start(
      fromNodeHandler((_req, res) => {
        res.writeHead(299, "Custom Reason", { "X-One": "1", "Set-Cookie": ["a=1", "b=2"] });
        res.end();
      }),
    );
    expect(await run.outcome).toBe("complete");
    expect(run.sink.status).toBe("299 Custom Reason");
    expect(run.sink.headers).toEqual([
      ["X-One", "1"],
      ["Set-Cookie", "a=1"],
      ["Set-Cookie", "b=2"],
      ["Content-Length", "0"],
    ]);
  });

  it("gives res.end(data) a Content-Length, through the engine", async () => {
    const run = start(fromNodeHandler((_req, res) => res.end("twelve bytes")));
    expect(await run.outcome).toBe("complete");
    expect(run.sink.headers).toEqual([["Content-Length", "12"]]);
    expect(run.sink.body()).toBe("twelve bytes");
  });

  it("streams res.write() chunks as they are written, not when the response ends", async () => {
    const firstSent = deferred();
    const app = fromNodeHandler(async (_req, res) => {
      res.setHeader("Content-Type", "text/plain");
      res.write("first ");
      await firstSent.promise;
      res.end("second");
    });
    const sink = new RecordingSink(true);
    sink.onWrite = (_data, index) => {
      if (index === 0) firstSent.resolve();
    };
    const run = start(app, {}, undefined, sink);
    expect(await within(run.outcome, 2000, "the streamed response")).toBe("complete");
    expect(sink.writes.map(String)).toEqual(["first ", "second"]);
    expect(sink.header("content-length")).toBeUndefined();
  });

  it("applies backpressure: while the client is stuck, write() returns false and 'drain' waits, so the handler stops", async () => {
    const release = deferred();
    const chunk = Buffer.alloc(4096, "x");
    const total = 64;
    let written = 0;
    let refusals = 0;
    const app = fromNodeHandler(async (_req, res) => {
      for (let i = 0; i < total; i++) {
        written++;
        if (!res.write(chunk)) {
          refusals++;
          await new Promise((resolve) => res.once("drain", resolve));
        }
      }
      res.end();
    });
    const sink = new RecordingSink(true);
    // The client is slow: the engine cannot hand on the first chunk until released.
    sink.onWrite = (_data, index) => (index === 0 ? release.promise : undefined);
    const run = start(app, {}, undefined, sink);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // 16 KiB fill the queue, one more chunk sits with the stuck engine: the handler waits there.
    expect(written).toBeLessThanOrEqual(6);
    expect(refusals).toBeGreaterThan(0);
    release.resolve();
    expect(await within(run.outcome, 2000, "the response")).toBe("complete");
    expect(written).toBe(total);
    expect(Buffer.concat(sink.writes).length).toBe(total * chunk.length);
  });

  it("leaves hop-by-hop headers the application set out of the response, and streams when it set Transfer-Encoding", async () => {
    const run = start(
      fromNodeHandler((_req, res) => {
        res.setHeader("Connection", "close");
        res.setHeader("Transfer-Encoding", "chunked");
        res.setHeader("Content-Type", "text/plain");
        res.end("x");
      }),
    );
    expect(await run.outcome).toBe("complete");
    // Transfer-Encoding asks for no Content-Length: the gateway frames the body.
    expect(run.sink.headers).toEqual([["Content-Type", "text/plain"]]);
    expect(run.sink.body()).toBe("x");
  });

  it("gives an empty body no Content-Length when the application set Transfer-Encoding [length.empty]", async () => {
    for (const end of [(res: ServerResponse) => res.end(""), (res: ServerResponse) => res.end()]) {
      const run = start(
        fromNodeHandler((_req, res) => {
          res.setHeader("Transfer-Encoding", "gzip");
          end(res);
        }),
      );
      expect(await run.outcome).toBe("complete");
      expect(run.sink.headers).toEqual([]);
      expect(run.sink.body()).toBe("");
    }
  });

  it("tells a handler that has not written yet that the client left: 'aborted' and 'close' [env.signal]", async () => {
    const events: string[] = [];
    const closed = deferred();
    const run = start(
      fromNodeHandler((req, res) => {
        req.on("aborted", () => events.push("req aborted"));
        req.on("close", () => events.push("req close"));
        res.on("close", () => {
          events.push(`res close ${res.writableFinished}`);
          closed.resolve();
        });
        // A long poll: nothing is written until something happens.
      }),
    );
    await settleTicks();
    expect(events).toEqual([]);
    run.sink.controller.abort(new ConnectionClosedError("gone"));
    await within(closed.promise, 2000, "the response's 'close'");
    expect(await run.outcome).toBe("aborted");
    expect(events).toContain("req aborted");
    expect(events).toContain("req close");
    expect(events).toContain("res close false");
  });

  it("sends the head at res.flushHeaders(), before any body byte, and cuts the response off on a later error [write.flush]", async () => {
    let flushes = 0;
    const sink = new RecordingSink(true);
    Object.assign(sink, { flush: () => flushes++ });
    const wrote = deferred();
    const fail = deferred();
    const run = start(
      fromNodeHandler((_req, res) => {
        res.writeHead(200, { "Content-Type": "text/event-stream" });
        res.flushHeaders();
        wrote.resolve();
        void fail.promise.then(() => res.destroy(new Error("the source failed")));
      }),
      {},
      undefined,
      sink,
    );
    await within(wrote.promise, 2000, "flushHeaders()");
    await settleTicks();
    expect(sink.events.map((event) => event.kind)).toEqual(["headers"]);
    expect(sink.status).toBe("200 OK");
    expect(flushes).toBe(1);
    fail.resolve();
    expect(await run.outcome).toBe("cut");
  });

  it("makes res.flushHeaders() after the end, or after the client left, a no-op as under node:http", async () => {
    const calls: string[] = [];
    const ended = start(
      fromNodeHandler((_req, res) => {
        res.end("done");
        res.flushHeaders();
        calls.push("after end");
      }),
    );
    expect(await ended.outcome).toBe("complete");
    expect(ended.sink.body()).toBe("done");
    expect(ended.sink.header("content-length")).toBe("4");
    const closed = deferred();
    const left = start(
      fromNodeHandler((_req, res) => {
        res.on("close", () => {
          res.flushHeaders();
          calls.push("after the client left");
          closed.resolve();
        });
      }),
    );
    await settleTicks();
    left.sink.controller.abort(new ConnectionClosedError("gone"));
    await within(closed.promise, 2000, "the response's 'close'");
    expect(await left.outcome).toBe("aborted");
    expect(calls).toEqual(["after end", "after the client left"]);
  });

  it("emits 'finish' and then 'close' on the response once it went out", async () => {
    const events: string[] = [];
    const closed = deferred();
    const app = fromNodeHandler((_req, res) => {
      res.on("finish", () => events.push(`finish ${res.writableFinished}`));
      res.on("close", () => {
        events.push("close");
        closed.resolve();
      });
      res.write("a");
      res.end("b");
    });
    const run = start(app);
    expect(await run.outcome).toBe("complete");
    await within(closed.promise, 2000, "'close' on the response");
    expect(events).toEqual(["finish true", "close"]);
  });

  it("tells the handler when the client goes away: 'close' on the response, 'aborted' on the request", async () => {
    const events: string[] = [];
    const gone = deferred();
    const input = new PassThrough();
    const app = fromNodeHandler((req, res) => {
      req.on("aborted", () => events.push("req aborted"));
      res.on("close", () => {
        events.push(`res close, ended=${res.writableEnded}`);
        gone.resolve();
      });
      res.write("first");
    });
    const sink = new RecordingSink(true);
    const run = start(app, { REQUEST_METHOD: "POST", CONTENT_LENGTH: "100" }, input, sink);
    await new Promise((resolve) => setTimeout(resolve, 20));
    sink.controller.abort();
    expect(await within(run.outcome, 2000, "the aborted response")).toBe("aborted");
    await within(gone.promise, 2000, "'close' on the response");
    expect(events).toEqual(expect.arrayContaining(["req aborted", "res close, ended=false"]));
  });

  it("turns a throw, or a rejected async handler, before the response into a 500", async () => {
    for (const handler of [
      () => {
        throw new Error("sync failure");
      },
      async () => {
        throw new Error("async failure");
      },
    ]) {
      const run = start(fromNodeHandler(handler));
      expect(await run.outcome).toBe("failed");
      expect(run.sink.status).toBe("500 Internal Server Error");
      expect(run.errors.text).toMatch(/(sync|async) failure/);
    }
  });

  it("cuts the response off and logs the error when an async handler rejects while streaming", async () => {
    const run = start(
      fromNodeHandler(async (_req, res) => {
        res.write("partial");
        await new Promise((resolve) => setTimeout(resolve, 10));
        throw new Error("failed while streaming");
      }),
    );
    expect(await within(run.outcome, 2000, "the cut response")).toBe("cut");
    expect(run.sink.body()).toBe("partial");
    expect(run.errors.text).toMatch(/failed while streaming/);
  });

  it("cuts the response off when the handler destroys it halfway", async () => {
    const run = start(
      fromNodeHandler((_req, res) => {
        res.write("partial");
        setTimeout(() => res.destroy(), 10);
      }),
    );
    expect(await within(run.outcome, 2000, "the cut response")).toBe("cut");
    expect(run.sink.aborted).toBe(true);
    expect(run.sink.body()).toBe("partial");
  });

  it("keeps its output methods under middleware that wraps them, as compression does", async () => {
    const app = express();
    app.use((_req, res, next) => {
      const write = res.write.bind(res) as (...args: unknown[]) => boolean;
      const end = res.end.bind(res) as (...args: unknown[]) => typeof res;
      const upper = (chunk: unknown) =>
        (Buffer.isBuffer(chunk) ? chunk.toString("utf8") : (chunk as string)).toUpperCase();
      res.write = function (chunk: unknown, ...rest: unknown[]) {
        return write(upper(chunk), ...rest);
      } as typeof res.write;
      res.end = function (chunk?: unknown, ...rest: unknown[]) {
        return end(chunk === undefined ? chunk : upper(chunk), ...rest);
      } as typeof res.end;
      next();
    });
    app.get("/", (_req, res) => {
      res.write("streamed ");
      res.end("and ended");
    });
    const run = start(fromNodeHandler(app));
    expect(await run.outcome).toBe("complete");
    expect(run.sink.body()).toBe("STREAMED AND ENDED");
  });

  it("lets Express see the client address and TLS: req.ip, req.protocol, req.secure", async () => {
    const app = express();
    app.get(
      "/",
      (req, res) => void res.json({ ip: req.ip, protocol: req.protocol, secure: req.secure }),
    );
    const run = start(fromNodeHandler(app), { REMOTE_ADDR: "198.51.100.7", HTTPS: "on" });
    expect(await run.outcome).toBe("complete");
    expect(JSON.parse(run.sink.body())).toEqual({
      ip: "198.51.100.7",
      protocol: "https",
      secure: true,
    });
  });
});

describe("fromNodeHandler: an error on the response or its socket ends that request only", () => {
  /** Runs a request; any error that escapes as an uncaught exception (which would end a server process) fails the test. */
  async function settle(run: Run): Promise<Outcome> {
    const escaped: unknown[] = [];
    const onUncaught = (error: unknown) => escaped.push(error);
    process.on("uncaughtException", onUncaught);
    try {
      const outcome = await within(run.outcome, 2000, "the response");
      // An unhandled 'error' event is thrown from a later tick.
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(escaped).toEqual([]);
      return outcome;
    } finally {
      process.off("uncaughtException", onUncaught);
    }
  }

  /** A source that gives `chunks` chunks, then fails. */
  const failingSource = (chunks: number) => {
    let given = 0;
    return new Readable({
      read() {
        if (given++ < chunks) this.push(`chunk ${given}\n`);
        else setTimeout(() => this.destroy(new Error("source failed")), 5);
      },
    });
  };

  it("stream.pipeline() from a source that fails before the first byte: a 500 and a log line", async () => {
    const run = start(fromNodeHandler((_req, res) => pipeline(failingSource(0), res, () => {})));
    expect(await settle(run)).toBe("failed");
    expect(run.sink.status).toBe("500 Internal Server Error");
    expect(run.errors.text).toMatch(/error in application: Error: source failed/);
  });

  it("stream.pipeline() from a source that fails after the first chunk: the response is cut off and the error logged", async () => {
    const run = start(fromNodeHandler((_req, res) => pipeline(failingSource(1), res, () => {})));
    expect(await settle(run)).toBe("cut");
    expect(run.sink.aborted).toBe(true);
    expect(run.sink.body()).toBe("chunk 1\n");
    expect(run.errors.text).toMatch(/error in application: Error: source failed/);
  });

  it("res.destroy(error) halfway: the response is cut off and that error logged", async () => {
    const run = start(
      fromNodeHandler((_req, res) => {
        res.write("partial");
        setTimeout(() => res.destroy(new Error("destroyed on purpose")), 5);
      }),
    );
    expect(await settle(run)).toBe("cut");
    expect(run.sink.body()).toBe("partial");
    expect(run.errors.text).toMatch(/Error: destroyed on purpose/);
  });

  it("req.destroy(error) while the body is still arriving, before any response: a 500 and that error logged", async () => {
    const input = new PassThrough();
    const run = start(
      fromNodeHandler(
        (req) =>
          void req.once("data", () => req.destroy(new Error("request destroyed on purpose"))),
      ),
      { REQUEST_METHOD: "POST", CONTENT_LENGTH: "100" },
      input,
    );
    input.write("first part");
    expect(await settle(run)).toBe("failed");
    expect(run.sink.status).toBe("500 Internal Server Error");
    expect(run.errors.text).toMatch(/Error: request destroyed on purpose/);
  });

  it("req.socket.destroy(error) before any response: a 500 and that error logged", async () => {
    const run = start(
      fromNodeHandler(
        (req) =>
          void setTimeout(() => req.socket.destroy(new Error("socket destroyed on purpose")), 5),
      ),
    );
    expect(await settle(run)).toBe("failed");
    expect(run.sink.status).toBe("500 Internal Server Error");
    expect(run.errors.text).toMatch(/Error: socket destroyed on purpose/);
  });

  it("an 'error' event on the response the handler does not listen for cuts it off; one it listens for is its own to handle", async () => {
    const unheard = start(
      fromNodeHandler((_req, res) => {
        res.write("partial");
        setTimeout(() => res.emit("error", new Error("emitted on purpose")), 5);
      }),
    );
    expect(await settle(unheard)).toBe("cut");
    expect(unheard.errors.text).toMatch(/Error: emitted on purpose/);

    const heard = start(
      fromNodeHandler((_req, res) => {
        res.on("error", (error) => res.end(` handled ${error.message}`));
        res.write("partial");
        setTimeout(() => res.emit("error", new Error("emitted on purpose")), 5);
      }),
    );
    expect(await settle(heard)).toBe("complete");
    expect(heard.sink.body()).toBe("partial handled emitted on purpose");
  });
});

describe("toNodeHandler", () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
    server = undefined;
  });

  const listen = async (handler: RequestListener): Promise<number> => {
    server = createServer(handler);
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    return (server.address() as AddressInfo).port;
  };

  const get = (port: number, path: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      httpRequest({ host: "127.0.0.1", port, path, agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      })
        .on("error", reject)
        .end();
    });

  const environEcho: Application = (environ: Environ, startResponse) => {
    startResponse("200 OK", [["Content-Type", "application/json"]]);
    const { SCRIPT_NAME, PATH_INFO, QUERY_STRING, REQUEST_URI } = environ;
    return [JSON.stringify({ SCRIPT_NAME, PATH_INFO, QUERY_STRING, REQUEST_URI })];
  };

  it("mounted in Express under a path, gives the application the mount point as SCRIPT_NAME", async () => {
    const app = express();
    app.use("/tsgi", toNodeHandler(environEcho));
    const port = await listen(app);
    const response = await get(port, "/tsgi/caf%C3%A9/x?z=1");
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toEqual({
      SCRIPT_NAME: "/tsgi",
      PATH_INFO: "/caf\xc3\xa9/x",
      QUERY_STRING: "z=1",
      REQUEST_URI: "/tsgi/caf%C3%A9/x?z=1",
    });
  });

  it("inside Express, sends every repeated header the application gives, and keeps headers set before it", async () => {
    const cookies: Application = (_environ, startResponse) => {
      startResponse("200 OK", [
        ["Set-Cookie", "a=1"],
        ["Set-Cookie", "b=2"],
        ["Content-Type", "text/plain"],
      ]);
      return ["ok"];
    };
    const app = express();
    app.use((_req, res, next) => {
      res.setHeader("X-Frame-Options", "DENY");
      next();
    });
    app.use(toNodeHandler(cookies));
    const port = await listen(app);
    const reply = await new Promise<IncomingMessage>((resolve, reject) => {
      httpRequest({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
        res.resume();
        res.on("end", () => resolve(res));
      })
        .on("error", reject)
        .end();
    });
    expect(reply.headers["set-cookie"]).toEqual(["a=1", "b=2"]);
    expect(reply.headers["x-frame-options"]).toBe("DENY");
    expect(reply.headers["x-powered-by"]).toBe("Express");
  });

  it("serves as a plain node:http request listener", async () => {
    const port = await listen(toNodeHandler(environEcho));
    const response = await get(port, "/a/b?c=d");
    expect(JSON.parse(response.body)).toEqual({
      SCRIPT_NAME: "",
      PATH_INFO: "/a/b",
      QUERY_STRING: "c=d",
      REQUEST_URI: "/a/b?c=d",
    });
  });
});
