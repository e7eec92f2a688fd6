// End-to-end tests of `tsgi fcgi` at the protocol level: a real server process
// (node bin/tsgi.js fcgi, from dist/ — run `npm run build` first) driven by the
// FastCGI test client with exact bytes, several connections and odd peers.

import { createHash } from "node:crypto";
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  GetValuesName,
  ProtocolStatus,
  RecordType,
  Role,
  decodeNameValuePairs,
  encodeNameValuePairs,
} from "../src/fastcgi/protocol.js";
import {
  FastCgiClient,
  trackClients,
  paramsFor,
  splitFrames,
  type FastCgiResponse,
} from "./helpers/fastcgi-client.js";
import {
  freePort,
  ProcessGroup,
  sampleRss,
  sleep,
  tempDir,
  TSGI_BIN,
  waitForListening,
} from "./helpers/processes.js";
import { fcgiFixture, startTsgiFcgi, type TsgiFcgi } from "./helpers/tsgi.js";
import { sha256, streamPattern } from "./helpers/bytes.js";
import type { AppReport } from "./helpers/reports.js";

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

const open = trackClients();

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ""), "hex");
}

function bodyJson<T = AppReport>(result: FastCgiResponse): T {
  return JSON.parse(result.response().body.toString("utf8")) as T;
}

/** A request to the fixture app on a fresh connection. */
async function get(
  server: TsgiFcgi,
  target: string,
  extra: Record<string, string> = {},
): Promise<FastCgiResponse> {
  const client = await open(server.address);
  return client.request({ params: paramsFor(target, extra) });
}

// One server with the defaults serves every test that does not need other options.
let main: TsgiFcgi;
beforeAll(async () => {
  main = await startTsgiFcgi(group);
});

describe("management records (request id 0)", () => {
  it("FCGI_GET_VALUES for FCGI_MPXS_CONNS gives exactly one GET_VALUES_RESULT record, byte for byte", async () => {
    const client = await open(main.address);
    await client.sendRecord(
      RecordType.GET_VALUES,
      0,
      encodeNameValuePairs([["FCGI_MPXS_CONNS", ""]]),
    );
    await client.waitForRecords((records) => records.length >= 1);
    await sleep(50); // a stray second record (as Go sends) would arrive now
    expect(client.rawBytes()).toEqual(
      Buffer.concat([
        hex("01 0A 00 00 00 12 06 00 0F 01"),
        Buffer.from("FCGI_MPXS_CONNS"),
        hex("31 00 00 00 00 00 00"),
      ]),
    );
  });

  it("FCGI_GET_VALUES answers the three known names with the defaults, omits unknown ones, and the connection still serves a request", async () => {
    const client = await open(main.address);
    const asked = encodeNameValuePairs([
      ["FCGI_MAX_CONNS", ""],
      ["FCGI_NOT_A_VARIABLE", ""],
      ["FCGI_MAX_REQS", ""],
      ["FCGI_MPXS_CONNS", ""],
    ]);
    await client.sendRecord(RecordType.GET_VALUES, 0, asked);
    const [record] = await client.waitForRecords((records) => records.length >= 1);
    expect(record.type).toBe(RecordType.GET_VALUES_RESULT);
    expect(record.requestId).toBe(0);
    expect([...decodeNameValuePairs(record.content)]).toEqual([
      [GetValuesName.MAX_CONNS, "1024"],
      [GetValuesName.MAX_REQS, "1024"],
      [GetValuesName.MPXS_CONNS, "1"],
    ]);
    const result = await client.request({ params: paramsFor("/hello") });
    expect(result.response().body.toString()).toBe("hello\n");
  });

  it("any other management type gets FCGI_UNKNOWN_TYPE, byte for byte, and the connection stays open", async () => {
    const client = await open(main.address);
    await client.sendRaw(hex("01 0C 00 00 00 08 00 00  00 00 00 00 00 00 00 00"));
    await client.waitForRecords((records) => records.length >= 1);
    expect(client.rawBytes()).toEqual(hex("01 0B 00 00 00 08 00 00 0C 00 00 00 00 00 00 00"));
    const result = await client.request({ params: paramsFor("/hello") });
    expect(result.endRequest).toEqual({
      appStatus: 0,
      protocolStatus: ProtocolStatus.REQUEST_COMPLETE,
    });
  });
  it("a stream-type record on request id 0 (STDIN, PARAMS, STDOUT, with or without content, cut in two) is a management record: one FCGI_UNKNOWN_TYPE each", async () => {
    const client = await open(main.address);
    const records = Buffer.concat([
      hex("01 05 00 00 00 05 03 00  68 65 6c 6c 6f 00 00 00"), // STDIN, id 0, "hello", 3 bytes of padding
      hex("01 04 00 00 00 00 00 00"), // empty PARAMS, id 0
      hex("01 06 00 00 00 01 00 00  21"), // STDOUT, id 0, "!"
    ]);
    await client.sendRaw(records.subarray(0, 11));
    await sleep(20);
    await client.sendRaw(records.subarray(11));
    await client.waitForRecords((received) => received.length >= 3);
    await sleep(50);
    expect(client.rawBytes()).toEqual(
      Buffer.concat([
        hex("01 0B 00 00 00 08 00 00 05 00 00 00 00 00 00 00"),
        hex("01 0B 00 00 00 08 00 00 04 00 00 00 00 00 00 00"),
        hex("01 0B 00 00 00 08 00 00 06 00 00 00 00 00 00 00"),
      ]),
    );
    const result = await client.request({ params: paramsFor("/hello") });
    expect(result.endRequest).toEqual({
      appStatus: 0,
      protocolStatus: ProtocolStatus.REQUEST_COMPLETE,
    });
  });
});

describe("roles", () => {
  it("Responder: the response goes out as STDOUT, an empty STDOUT, then END_REQUEST REQUEST_COMPLETE", async () => {
    const client = await open(main.address);
    const result = await client.request({ params: paramsFor("/hello") });
    expect(result.response().status).toBe("200 OK");
    expect(result.response().body.toString()).toBe("hello\n");
    expect(result.stdoutEnded).toBe(true);
    expect(result.records.map((record) => record.type).slice(-2)).toEqual([
      RecordType.STDOUT,
      RecordType.END_REQUEST,
    ]);
    expect(result.records.at(-2)!.content.length).toBe(0);
  });

  it("Authorizer: no stdin needed, environ says so, the app's 200 (with Variable-*) and 403 pass through", async () => {
    const client = await open(main.address);
    const allowed = await client.request({
      role: Role.AUTHORIZER,
      keepConn: true,
      params: paramsFor("/authorize", { HTTP_AUTHORIZATION: "Bearer good" }),
    });
    expect(allowed.response().status).toBe("200 OK");
    expect(allowed.response().headers).toContainEqual(["Variable-USER", "alice"]);
    expect(allowed.response().headers).toContainEqual(["X-Role", "authorizer"]);
    const denied = await client.request({
      role: Role.AUTHORIZER,
      params: paramsFor("/authorize", { HTTP_AUTHORIZATION: "Bearer bad" }),
    });
    expect(denied.response().status).toBe("403 Forbidden");
    expect(denied.response().body.toString()).toBe("denied\n");

    const inspected = await (
      await open(main.address)
    ).request({ role: Role.AUTHORIZER, params: paramsFor("/inspect") });
    expect(bodyJson(inspected).tsgi.role).toBe("authorizer");
    expect(bodyJson(inspected).body.length).toBe(0);
  });

  it("Filter: FCGI_DATA reaches the app as environ['tsgi.fcgi.data'], a Readable", async () => {
    const client = await open(main.address);
    const result = await client.request({
      role: Role.FILTER,
      params: paramsFor("/filter", { FCGI_DATA_LENGTH: "19", FCGI_DATA_LAST_MOD: "0" }),
      stdin: "abc",
      data: Buffer.from("file contents\xe9 here", "latin1"),
    });
    expect(bodyJson(result)).toEqual({
      role: "filter",
      dataIsReadable: true,
      data: "FILE CONTENTS\xc9 HERE",
      dataLength: "19",
      stdinLength: 3,
    });
  });

  it("an unknown role gets END_REQUEST FCGI_UNKNOWN_ROLE, byte for byte, and a kept connection serves the next request", async () => {
    const client = await open(main.address);
    await client.sendRecord(RecordType.BEGIN_REQUEST, 1, hex("00 09 01 00 00 00 00 00")); // role 9, KEEP_CONN
    await client.waitForRecords((records) => records.length >= 1);
    expect(client.rawBytes()).toEqual(hex("01 03 00 01 00 08 00 00 00 00 00 00 03 00 00 00"));
    // What the web server sends next for the refused id is ignored.
    await client.sendParams(1, paramsFor("/hello"));
    const result = await client.request({ requestId: 1, params: paramsFor("/hello") });
    expect(result.response().body.toString()).toBe("hello\n");
  });
});

describe("requests on one connection", () => {
  it("two requests interleaved on one connection, id 2 finishing first: both answered, and the connection stays open while id 1 is active (node-fastcgi loses id 1)", async () => {
    const client = await open(main.address);
    // Neither asks for KEEP_CONN: the connection may close only after the last one.
    await client.beginRequest(1);
    const slowParams = encodeNameValuePairs(Object.entries(paramsFor("/slow?ms=400")));
    await client.sendParams(1, slowParams.subarray(0, 20), { end: false });
    await client.beginRequest(2);
    await client.sendParams(2, paramsFor("/hello"));
    await client.sendParams(1, slowParams.subarray(20));
    await client.sendStream(RecordType.STDIN, 2, Buffer.alloc(0));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));

    const second = await client.response(2);
    expect(second.response().body.toString()).toBe("hello\n");
    await sleep(100);
    expect(client.closed).toBe(false);
    const first = await client.response(1);
    expect(first.response().body.toString()).toBe("slept 400\n");
    const ends = client.records
      .filter((record) => record.type === RecordType.END_REQUEST)
      .map((record) => record.requestId);
    expect(ends).toEqual([2, 1]);
    await client.waitForClose(2000);
  });

  it("many requests at once on one connection are all answered (multiplexing is on by default)", async () => {
    const client = await open(main.address);
    const ids = [1, 2, 3, 4, 5, 6, 7, 8];
    for (const id of ids) await client.beginRequest(id, { keepConn: true });
    for (const id of ids) await client.sendParams(id, paramsFor(`/slow?ms=${300 - id * 20}`));
    for (const id of ids) await client.sendStream(RecordType.STDIN, id, Buffer.alloc(0));
    const started = Date.now();
    const results = await Promise.all(ids.map((id) => client.response(id)));
    // Run concurrently: far less than the 1.9 s they would take one after another.
    expect(Date.now() - started).toBeLessThan(1200);
    results.forEach((result, index) =>
      expect(result.response().body.toString()).toBe(`slept ${300 - ids[index] * 20}\n`),
    );
  });

  it("KEEP_CONN set: the connection is kept after END_REQUEST and serves the next requests", async () => {
    const client = await open(main.address);
    for (let round = 0; round < 3; round++) {
      const result = await client.request({ keepConn: true, params: paramsFor("/hello") });
      expect(result.response().body.toString()).toBe("hello\n");
    }
    await sleep(100);
    expect(client.closed).toBe(false);
  });

  it("KEEP_CONN not set: the server closes the connection after END_REQUEST", async () => {
    const client = await open(main.address);
    await client.request({ keepConn: false, params: paramsFor("/hello") });
    await client.waitForClose(2000);
  });

  it("input the app did not read (a 10 MB POST body) is drained before a kept connection serves its next request", async () => {
    const client = await open(main.address);
    const size = 10 * 1024 * 1024;
    await client.beginRequest(1, { keepConn: true });
    await client.sendParams(
      1,
      paramsFor("/ignore-body", { REQUEST_METHOD: "POST", CONTENT_LENGTH: String(size) }),
    );
    const sent = await client.streamStdin(1, size);
    expect(sent).toBe(size);
    const ignored = await client.response(1);
    expect(ignored.response().status).toBe("200 OK");
    expect(ignored.response().body.toString()).toBe("ignored\n");
    const next = await client.request({
      requestId: 1,
      keepConn: true,
      params: paramsFor("/sha256", { REQUEST_METHOD: "POST" }),
      stdin: "next",
    });
    expect(bodyJson(next)).toEqual({ length: 4, sha256: sha256(Buffer.from("next")) });
  });

  it("an app that answers without reading its body gets END_REQUEST before the body's end (nginx stops sending it and waits: no deadlock)", async () => {
    const client = await open(main.address, { allowHalfOpen: true });
    await client.beginRequest(1); // no KEEP_CONN
    await client.sendParams(
      1,
      paramsFor("/ignore-body", {
        REQUEST_METHOD: "POST",
        CONTENT_LENGTH: String(8 * 1024 * 1024),
      }),
    );
    await client.streamStdin(1, 100_000, { end: false });
    const result = await client.response(1, { timeoutMs: 3000 });
    expect(result.response().body.toString()).toBe("ignored\n");
    // The server only half-closes: the rest of the body is still read, without a reset.
    expect(await client.streamStdin(1, 8 * 1024 * 1024 - 100_000)).toBe(8 * 1024 * 1024 - 100_000);
    client.end();
    await client.waitForClose(2000);
    expect(client.socket.errored).toBeNull();
  });

  it("a web server that closes a kept connection (nginx, when its client leaves) aborts the request's signal at once, before the app writes again", async () => {
    const client = await open(main.address);
    const from = main.proc.stderr.length;
    await client.beginRequest(1, { keepConn: true });
    await client.sendParams(1, paramsFor("/long-poll?tag=kept"));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0), true);
    await client.waitForRecords(
      (records) =>
        Buffer.concat(records.filter((r) => r.type === RecordType.STDOUT).map((r) => r.content))
          .toString("latin1")
          .includes("waiting\n"),
      3000,
    );
    client.end();
    await main.proc.waitForStderr(/long-poll aborted tag=kept/, 2000, from);
  });

  it("an app that reads its body only after answering gets an error at once (the unread input was dropped), never a hang; the kept connection serves on", async () => {
    const client = await open(main.address);
    const from = main.proc.stderr.length;
    const get = await client.request({
      requestId: 1,
      keepConn: true,
      params: paramsFor("/read-after-answer?tag=get"),
    });
    expect(get.response().body.toString()).toBe("answered\n");
    await client.beginRequest(2, { keepConn: true });
    await client.sendParams(
      2,
      paramsFor("/read-after-answer?tag=post", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "1000" }),
    );
    await client.sendStream(RecordType.STDIN, 2, Buffer.alloc(100), false);
    expect((await client.response(2)).response().body.toString()).toBe("answered\n");
    await main.proc.waitForStderr(
      /read-after-answer tag=get error ERR_STREAM_PREMATURE_CLOSE/,
      2000,
      from,
    );
    await main.proc.waitForStderr(
      /read-after-answer tag=post error ERR_STREAM_PREMATURE_CLOSE/,
      2000,
      from,
    );
    await client.sendStream(RecordType.STDIN, 2, Buffer.alloc(900), true);
    const next = await client.request({
      requestId: 1,
      keepConn: true,
      params: paramsFor("/sha256", { REQUEST_METHOD: "POST" }),
      stdin: "next",
    });
    expect(bodyJson(next)).toEqual({ length: 4, sha256: sha256(Buffer.from("next")) });
  });

  it("BEGIN_REQUEST for an id already in use closes that connection only", async () => {
    const other = await open(main.address);
    await other.beginRequest(1);
    await other.sendParams(1, paramsFor("/slow?ms=400"));
    await other.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));

    const from = main.proc.stderr.length;
    const client = await open(main.address);
    await client.beginRequest(1, { keepConn: true });
    await client.sendParams(1, paramsFor("/hello"), { end: false });
    await client.beginRequest(1, { keepConn: true });
    await client.waitForClose(2000);
    expect(client.records.filter((record) => record.type === RecordType.END_REQUEST)).toEqual([]);
    await main.proc.waitForStderr(
      /protocol error, closing the connection: .*request id 1, which is already in use/,
      2000,
      from,
    );

    const result = await other.response(1);
    expect(result.response().body.toString()).toBe("slept 400\n");
  });
});

describe("aborts and closed connections", () => {
  it("FCGI_ABORT_REQUEST mid-body: the body's finally and close() run, exactly one END_REQUEST, nothing more for that id", async () => {
    const client = await open(main.address);
    const from = main.proc.stderr.length;
    await client.beginRequest(1, { keepConn: true });
    await client.sendParams(
      1,
      paramsFor("/watch?tag=abort-1", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "100000" }),
    );
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(10_000), false);
    await client.waitForRecords((records) =>
      records.some((r) => r.type === RecordType.STDOUT && r.content.includes("tick 2")),
    );
    await client.abortRequest(1);
    const end = await client.waitForEndRequest(1);
    expect(end).toEqual({ appStatus: 0, protocolStatus: ProtocolStatus.REQUEST_COMPLETE });
    await main.proc.waitForStderr(/watch finally tag=abort-1/, 2000, from);
    await main.proc.waitForStderr(/watch close tag=abort-1/, 2000, from);

    // The rest of the body is ignored; the kept connection goes on serving.
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(10_000), true);
    await sleep(150);
    const endIndex = client.records.findIndex((r) => r.type === RecordType.END_REQUEST);
    expect(client.records.slice(endIndex + 1)).toEqual([]);
    const next = await client.request({ requestId: 2, params: paramsFor("/hello") });
    expect(next.response().body.toString()).toBe("hello\n");
    expect(
      client.records.filter((r) => r.requestId === 1 && r.type === RecordType.END_REQUEST),
    ).toHaveLength(1);
  });

  it("FCGI_ABORT_REQUEST while the app iterates tsgi.input: the iteration stops and its finally runs", async () => {
    const client = await open(main.address);
    const from = main.proc.stderr.length;
    await client.beginRequest(1, { keepConn: true });
    await client.sendParams(
      1,
      paramsFor("/watch-read?tag=abort-2", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "100000" }),
    );
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(3000), false);
    await client.waitForRecords((records) =>
      records.some((r) => r.type === RecordType.STDOUT && r.content.includes("3000\n")),
    );
    await client.abortRequest(1);
    expect(await client.waitForEndRequest(1)).toEqual({
      appStatus: 0,
      protocolStatus: ProtocolStatus.REQUEST_COMPLETE,
    });
    await main.proc.waitForStderr(/watch-read finally tag=abort-2 length=3000/, 2000, from);
    await main.proc.waitForStderr(/watch-read close tag=abort-2/, 2000, from);
    await sleep(100);
    expect(
      client.records.filter((r) => r.requestId === 1 && r.type === RecordType.END_REQUEST),
    ).toHaveLength(1);
    expect(client.records.at(-1)!.type).toBe(RecordType.END_REQUEST);
  });

  it("the web server closing the connection mid-response stops the body (finally and close() run) and the process keeps serving", async () => {
    const client = await open(main.address);
    const from = main.proc.stderr.length;
    await client.beginRequest(1);
    await client.sendParams(1, paramsFor("/watch?tag=closed-1"));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    await client.waitForRecords((records) =>
      records.some((r) => r.type === RecordType.STDOUT && r.content.includes("tick 1")),
    );
    client.destroy();
    await main.proc.waitForStderr(/watch finally tag=closed-1/, 2000, from);
    await main.proc.waitForStderr(/watch close tag=closed-1/, 2000, from);
    expect((await get(main, "/hello")).response().body.toString()).toBe("hello\n");
  });

  it("closing the connection mid-params, or while an app that never reads its body runs, does not crash the process (unhandled 'error' on tsgi.input)", async () => {
    const midParams = await open(main.address);
    await midParams.beginRequest(1);
    await midParams.sendParams(1, { REQUEST_METHOD: "GET" }, { end: false });
    await sleep(50);
    midParams.destroy();

    const from = main.proc.stderr.length;
    const unread = await open(main.address);
    await unread.beginRequest(1);
    await unread.sendParams(
      1,
      paramsFor("/watch?tag=unread", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "100000" }),
    );
    await unread.sendStream(RecordType.STDIN, 1, Buffer.alloc(1000), false);
    await unread.waitForRecords((records) => records.some((r) => r.type === RecordType.STDOUT));
    unread.destroy();
    await main.proc.waitForStderr(/watch finally tag=unread/, 2000, from);

    await sleep(100);
    expect(main.proc.running).toBe(true);
    expect((await get(main, "/hello")).response().body.toString()).toBe("hello\n");
  });

  it("a connection closed or reset while a large response is being written (EPIPE/ECONNRESET) crashes nothing", async () => {
    const tcp = await startTsgiFcgi(group, { listen: "tcp" });
    for (const server of [main, tcp]) {
      const from = server.proc.stderr.length;
      for (let round = 0; round < 3; round++) {
        const client = await open(server.address, { keepRaw: false });
        await client.beginRequest(1);
        await client.sendParams(
          1,
          paramsFor(`/stream?bytes=${64 * 1024 * 1024}&tag=reset-${round}`),
        );
        await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
        await client.waitForRecords(() => client.receivedBytes > 100_000);
        // A unix socket can only be closed (the server gets EPIPE); TCP can be reset (ECONNRESET).
        if (server === tcp) client.socket.resetAndDestroy();
        else client.destroy();
        await server.proc.waitForStderr(
          new RegExp(`stream finally tag=reset-${round}`),
          3000,
          from,
        );
      }
      expect(server.proc.running).toBe(true);
      expect((await get(server, "/hello")).response().body.toString()).toBe("hello\n");
      expect(server.proc.stderr.slice(from)).not.toMatch(/EPIPE|ECONNRESET|Unhandled|uncaught/i);
    }
    await tcp.proc.stop();
  });
});

describe("hostile or broken peers", () => {
  it("a record of an unknown type never kills the process (node-fastcgi: TypeError: fcgiRecords[type] is not a constructor)", async () => {
    const client = await open(main.address);
    await client.sendRecord(12, 0, Buffer.alloc(8));
    await client.sendRecord(0, 0, Buffer.alloc(0));
    await client.sendRecord(255, 0, Buffer.from("whatever"));
    await client.sendRecord(RecordType.GET_VALUES_RESULT, 0, Buffer.alloc(0));
    await client.waitForRecords((records) => records.length >= 4);
    expect(client.records.map((r) => [r.type, r.requestId, r.content[0]])).toEqual([
      [RecordType.UNKNOWN_TYPE, 0, 12],
      [RecordType.UNKNOWN_TYPE, 0, 0],
      [RecordType.UNKNOWN_TYPE, 0, 255],
      [RecordType.UNKNOWN_TYPE, 0, RecordType.GET_VALUES_RESULT],
    ]);
    // On a request id, live or not, unknown types are ignored.
    await client.beginRequest(1, { keepConn: true });
    await client.sendRecord(200, 1, Buffer.from("junk"));
    await client.sendRecord(99, 7, Buffer.from("junk"));
    await client.sendRecord(RecordType.END_REQUEST, 1, Buffer.alloc(8));
    await client.sendParams(1, paramsFor("/hello"));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    const result = await client.response(1);
    expect(result.response().body.toString()).toBe("hello\n");
    expect(main.proc.running).toBe(true);
  });

  it("a 70,000-byte HTTP_COOKIE split across two FCGI_PARAMS records reaches the app intact (node-fastcgi delivered 59,984 bytes)", async () => {
    const cookie = Array.from({ length: 70_000 }, (_, index) =>
      String.fromCharCode(97 + (index % 26)),
    ).join("");
    const client = await open(main.address);
    await client.beginRequest(1);
    const params = encodeNameValuePairs(
      Object.entries(paramsFor("/inspect", { HTTP_COOKIE: cookie })),
    );
    expect(params.length).toBeGreaterThan(65535);
    await client.sendParams(1, params); // records of 65535 bytes: the cookie straddles the boundary
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    const received = bodyJson(await client.response(1)).environ.HTTP_COOKIE;
    expect(received.length).toBe(70_000);
    expect(received).toBe(cookie);
  });

  it("a name-value pair split byte by byte across FCGI_PARAMS records decodes as one", async () => {
    const client = await open(main.address);
    await client.beginRequest(1);
    const params = encodeNameValuePairs(
      Object.entries(paramsFor("/inspect", { HTTP_X_SPLIT: "x".repeat(200) })),
    );
    for (const byte of params) await client.sendRecord(RecordType.PARAMS, 1, Buffer.from([byte]));
    await client.sendParams(1, Buffer.alloc(0));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    const report = bodyJson(await client.response(1));
    expect(report.environ.HTTP_X_SPLIT).toBe("x".repeat(200));
    expect(report.environ.PATH_INFO).toBe("/inspect");
  });

  it("a version byte of 2 closes that connection only", async () => {
    const other = await open(main.address);
    await other.beginRequest(1);
    await other.sendParams(1, paramsFor("/slow?ms=300"));
    await other.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));

    const from = main.proc.stderr.length;
    const client = await open(main.address);
    await client.sendRaw(hex("02 01 00 01 00 08 00 00 00 01 00 00 00 00 00 00"));
    await client.waitForClose(2000);
    expect(client.records).toEqual([]);
    await main.proc.waitForStderr(/Unsupported FastCGI record version 2/, 2000, from);
    expect((await other.response(1)).response().body.toString()).toBe("slept 300\n");
  });

  it("garbage bytes (an HTTP request on the FastCGI socket) close that connection only", async () => {
    const other = await open(main.address);
    await other.beginRequest(1);
    await other.sendParams(1, paramsFor("/slow?ms=300"));
    await other.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));

    const client = await open(main.address);
    await client.sendRaw(Buffer.from("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    await client.waitForClose(2000);
    expect(client.records).toEqual([]);
    expect((await other.response(1)).response().body.toString()).toBe("slept 300\n");
    expect(main.proc.running).toBe(true);
  });

  it("an 8-byte-short BEGIN_REQUEST body is a protocol error that closes the connection", async () => {
    const client = await open(main.address);
    await client.sendRecord(RecordType.BEGIN_REQUEST, 1, hex("00 01 00"));
    await client.waitForClose(2000);
    expect(main.proc.running).toBe(true);
  });
});

describe("writing the response", () => {
  it("a 1 MiB response arrives byte-exact in STDOUT records of at most 65535 bytes padded to 8, then an empty STDOUT, then END_REQUEST", async () => {
    const size = 1024 * 1024;
    const client = await open(main.address);
    const result = await client.request({ params: paramsFor(`/stream?bytes=${size}`) });
    const response = result.response();
    expect(response.headers).toContainEqual(["Content-Length", String(size)]);
    expect(response.body.equals(streamPattern(size))).toBe(true);

    const frames = splitFrames(client.rawBytes());
    expect(frames.every((frame) => frame.version === 1 && frame.requestId === 1)).toBe(true);
    expect(frames.map((frame) => frame.type)).toEqual([
      ...Array<number>(frames.length - 2).fill(RecordType.STDOUT),
      RecordType.STDOUT,
      RecordType.END_REQUEST,
    ]);
    const stdout = frames.slice(0, -2);
    expect(stdout.length).toBeGreaterThanOrEqual(Math.ceil(size / 65535));
    for (const frame of stdout) {
      expect(frame.contentLength).toBeGreaterThan(0);
      expect(frame.contentLength).toBeLessThanOrEqual(65535);
      expect(frame.paddingLength).toBe((8 - (frame.contentLength % 8)) % 8);
    }
    expect(frames.at(-2)).toMatchObject({ contentLength: 0, paddingLength: 0 });
    expect(frames.at(-1)).toMatchObject({ contentLength: 8, paddingLength: 0 });
    expect(result.endRequest).toEqual({ appStatus: 0, protocolStatus: 0 });
  });

  it("an array body whose element is a getter answering differently each time is sent consistently, and the request ends (END_REQUEST, slot freed)", async () => {
    const client = await open(main.address);
    for (let i = 0; i < 3; i++) {
      const result = await client.request({
        requestId: 1,
        keepConn: true,
        params: paramsFor("/getter-body"),
      });
      const response = result.response();
      expect(response.status).toBe("200 OK");
      const length = response.headers.find(
        ([name]) => name.toLowerCase() === "content-length",
      )?.[1];
      expect(response.body.toString()).toBe("x".repeat(Number(length)));
      expect(response.body.length).toBeGreaterThan(0);
      expect(result.endRequest.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    }
  });

  it("an app failing after its headers went out is cut off: alone on its connection, the connection closes without END_REQUEST", async () => {
    const client = await open(main.address);
    await client.beginRequest(1, { keepConn: true });
    await client.sendParams(1, paramsFor("/fail-midway"));
    // The app runs once the params end, so the connection may be gone before this goes out.
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0)).catch(() => {});
    await client.waitForClose(2000);
    expect(client.records.some((record) => record.type === RecordType.END_REQUEST)).toBe(false);
    expect((await get(main, "/hello")).response().body.toString()).toBe("hello\n");
  });

  /** Frames of one request id in what the connection received, as raw bytes. */
  function framesOf(client: FastCgiClient, requestId: number): Buffer {
    const raw = client.rawBytes();
    const frames = splitFrames(raw).filter((frame) => frame.requestId === requestId);
    return Buffer.concat(
      frames.map((frame) =>
        raw.subarray(frame.offset, frame.offset + 8 + frame.contentLength + frame.paddingLength),
      ),
    );
  }

  /** Request 1 (/slow?ms=300) and request 2 (`target`, cut off after its first chunk) multiplexed on one kept connection. */
  async function cutBesideAnother(target: string): Promise<FastCgiClient> {
    const client = await open(main.address);
    await client.beginRequest(1, { keepConn: true });
    await client.sendParams(1, paramsFor("/slow?ms=300"));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    await client.beginRequest(2, { keepConn: true });
    await client.sendParams(2, paramsFor(target));
    await client.sendStream(RecordType.STDIN, 2, Buffer.alloc(0));
    // The cut comes in the same turn as the first chunk.
    await client.waitForRecords((records) =>
      records.some(
        (r) =>
          r.requestId === 2 && r.type === RecordType.STDOUT && r.content.includes("first part"),
      ),
    );
    return client;
  }

  it("an app failing after its headers went out on a shared connection: no END_REQUEST for it, ever; the other request completes byte-exact, then the connection closes", async () => {
    const from = main.proc.stderr.length;
    const client = await cutBesideAnother("/fail-midway");
    // Records still arriving for the cut id are ignored.
    await client.sendStream(RecordType.STDIN, 2, Buffer.from("late body"));
    await client.abortRequest(2);
    const other = await client.response(1);
    expect(framesOf(client, 1)).toEqual(
      Buffer.concat([
        hex("01 06 00 01 00 59 07 00"), // STDOUT, id 1, 89 bytes, 7 of padding
        Buffer.from(
          "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n\r\nslept 300\n",
        ),
        hex("00 00 00 00 00 00 00"),
        hex("01 06 00 01 00 00 00 00"),
        hex("01 03 00 01 00 08 00 00 00 00 00 00 00 00 00 00"),
      ]),
    );
    expect(other.response().body.toString()).toBe("slept 300\n");
    await client.waitForClose(2000);
    expect(client.records.filter((r) => r.requestId === 2).map((r) => r.type)).toEqual([
      RecordType.STDOUT,
    ]);
    expect(framesOf(client, 2).subarray(8).toString()).toMatch(
      /^Status: 200 OK\r\nContent-Type: text\/plain\r\n\r\nfirst part\n/,
    );
    await main.proc.waitForStderr(/GET \/fail-midway: response cut off/, 2000, from);
  });

  it("after a cut-off on a shared connection, a new FCGI_BEGIN_REQUEST on it gets FCGI_OVERLOADED, byte for byte, and a log line; the connection closes once the other request is done", async () => {
    const from = main.proc.stderr.length;
    const client = await cutBesideAnother("/fail-midway");
    const before = client.rawBytes().length;
    await client.beginRequest(3, { keepConn: true });
    await client.waitForRecords((records) => records.some((r) => r.requestId === 3));
    expect(client.rawBytes().subarray(before, before + 16)).toEqual(
      hex("01 03 00 03 00 08 00 00 00 00 00 00 02 00 00 00"),
    );
    await main.proc.waitForStderr(
      /request 3: refused \(FCGI_OVERLOADED\): a response on this connection was cut off/,
      2000,
      from,
    );
    // Its params are ignored like any for an id not in use.
    await client.sendParams(3, paramsFor("/hello"));
    expect((await client.response(1)).response().body.toString()).toBe("slept 300\n");
    await client.waitForClose(2000);
    expect(
      client.records.filter((r) => r.type === RecordType.END_REQUEST).map((r) => r.requestId),
    ).toEqual([3, 1]);
  });

  it("a body shorter than its Content-Length on a shared connection is cut off the same way: no END_REQUEST for it, the other completes, the connection closes", async () => {
    const client = await cutBesideAnother("/short-body");
    expect((await client.response(1)).response().body.toString()).toBe("slept 300\n");
    await client.waitForClose(2000);
    expect(client.records.some((r) => r.requestId === 2 && r.type === RecordType.END_REQUEST)).toBe(
      false,
    );
    expect((await get(main, "/hello")).response().body.toString()).toBe("hello\n");
  });

  it("a body shorter than its Content-Length alone on its connection: the connection closes without END_REQUEST", async () => {
    const client = await open(main.address);
    await client.beginRequest(1, { keepConn: true });
    await client.sendParams(1, paramsFor("/short-body"));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0)).catch(() => {});
    await client.waitForClose(2000);
    expect(client.records.some((record) => record.type === RecordType.END_REQUEST)).toBe(false);
    expect(
      client.records.some((r) => r.type === RecordType.STDOUT && r.content.includes("first part")),
    ).toBe(true);
  });

  it("by default app errors (tsgi.errors, the 500's stack) go to the process's stderr, not to FCGI_STDERR", async () => {
    const from = main.proc.stderr.length;
    const client = await open(main.address);
    const logged = await client.request({ keepConn: true, params: paramsFor("/stderr") });
    expect(logged.response().body.toString()).toBe("logged\n");
    const failed = await client.request({ params: paramsFor("/throw") });
    expect(failed.response().status).toBe("500 Internal Server Error");
    expect(client.records.some((record) => record.type === RecordType.STDERR)).toBe(false);
    await main.proc.waitForStderr(/a message for the error log/, 2000, from);
    await main.proc.waitForStderr(
      /GET \/throw: error in application: Error: boom on purpose\n\s+at /,
      2000,
      from,
    );
  });

  it("an exception in one request gives that request a 500 and a log line; the process goes on serving", async () => {
    const from = main.proc.stderr.length;
    const failed = await get(main, "/throw");
    expect(failed.response().status).toBe("500 Internal Server Error");
    expect(failed.response().body.toString()).toBe("Internal Server Error\n");
    expect(failed.endRequest).toEqual({ appStatus: 0, protocolStatus: 0 });
    await main.proc.waitForStderr(/boom on purpose/, 2000, from);
    expect((await get(main, "/hello")).response().body.toString()).toBe("hello\n");
  });
});

describe("--stderr-to-web-server", () => {
  let server: TsgiFcgi;
  beforeAll(async () => {
    server = await startTsgiFcgi(group, { args: ["--stderr-to-web-server"] });
  });

  it("sends tsgi.errors as FCGI_STDERR, ended by an empty STDERR record before END_REQUEST", async () => {
    const from = server.proc.stderr.length;
    const client = await open(server.address);
    const result = await client.request({ params: paramsFor("/stderr") });
    expect(result.stderr.toString()).toBe("a message for the error log\n");
    expect(result.stdoutEnded).toBe(true);
    expect(result.stderrEnded).toBe(true);
    const types = result.records.map((record) => [record.type, record.content.length === 0]);
    const emptyStderr = types.findIndex(([type, empty]) => type === RecordType.STDERR && empty);
    expect(emptyStderr).toBeLessThan(types.length - 1);
    expect(types.at(-1)![0]).toBe(RecordType.END_REQUEST);
    expect(server.proc.stderr.slice(from)).not.toContain("a message for the error log");
  });

  it("an aborted request that used FCGI_STDERR still ends that stream before END_REQUEST (node-fastcgi never ends it)", async () => {
    const client = await open(server.address);
    await client.beginRequest(1, { keepConn: true });
    await client.sendParams(1, paramsFor("/watch?tag=stderr-abort&log=1"));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    await client.waitForRecords((records) =>
      records.some((r) => r.type === RecordType.STDOUT && r.content.includes("tick 1")),
    );
    await client.abortRequest(1);
    const result = await client.response(1);
    expect(result.stderr.toString()).toBe("watching stderr-abort\n");
    expect(result.stderrEnded).toBe(true);
    expect(result.records.at(-1)!.type).toBe(RecordType.END_REQUEST);
    expect(result.records.at(-2)).toMatchObject({
      type: RecordType.STDERR,
      content: Buffer.alloc(0),
    });
  });

  it("sends an app exception's stack as FCGI_STDERR with the 500", async () => {
    const client = await open(server.address);
    const result = await client.request({ params: paramsFor("/throw") });
    expect(result.response().status).toBe("500 Internal Server Error");
    expect(result.stderr.toString()).toMatch(
      /error in application: Error: boom on purpose\n\s+at /,
    );
    expect(result.stderrEnded).toBe(true);
  });
});

describe("backpressure", () => {
  it("a slow app does not make the server buffer FCGI_STDIN: 200 MB to an app that starts reading late, RSS at most 16 MiB above where it started", async () => {
    const size = 200 * 1024 * 1024;
    const client = await open(main.address, { keepRaw: false });
    await client.beginRequest(1);
    await client.sendParams(
      1,
      paramsFor("/late-read?delay=1500", { REQUEST_METHOD: "POST", CONTENT_LENGTH: String(size) }),
    );
    const before = main.proc.rssKb()!;
    const rss = sampleRss(main.proc);
    const hash = createHash("sha256");
    const sending = client.streamStdin(1, size, {
      fill: (chunk, offset) => hash.update(chunk.fill((offset >>> 16) & 0xff)),
    });
    await sleep(1000);
    // The app has not read a byte yet: the server stopped reading, so the client is stuck on a full socket.
    expect(client.socket.bytesWritten).toBeLessThan(32 * 1024 * 1024);
    await sending;
    const result = await client.response(1, { timeoutMs: 30_000 });
    const growthMb = (rss.stop() - before) / 1024;
    expect(bodyJson(result)).toEqual({ length: size, sha256: hash.digest("hex") });
    // Bounded memory for a body of any size [body.backpressure]: 16 MiB leaves room for V8's heap growth; without the collection every 2 MiB of body (server/reclaim.ts) this is ~35 MiB.
    expect(growthMb).toBeLessThanOrEqual(16);
  });

  it("a body that arrives in many reads while the app is not reading yet is kept byte-exact (the connection's read buffer is reused for every read)", async () => {
    const client = await open(main.address, { keepRaw: false });
    await client.beginRequest(1);
    await client.sendParams(1, paramsFor("/late-read?delay=400", { REQUEST_METHOD: "POST" }));
    // 40 records of 1000 distinct bytes, each written on its own so that each is its own read.
    const body = Buffer.alloc(40_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 8)) & 0xff;
    for (let offset = 0; offset < body.length; offset += 1000) {
      await client.sendStream(RecordType.STDIN, 1, body.subarray(offset, offset + 1000), false);
      await sleep(3);
    }
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    const result = await client.response(1, { timeoutMs: 5000 });
    expect(bodyJson(result)).toEqual({ length: body.length, sha256: sha256(body) });
  });

  it("a slow web server does not make the server buffer the response: a client that stops reading a 2 GiB response, RSS growth < 100 MB", async () => {
    const from = main.proc.stderr.length;
    const client = await open(main.address, { keepRaw: false });
    const before = main.proc.rssKb()!;
    const rss = sampleRss(main.proc);
    await client.beginRequest(1);
    await client.sendParams(1, paramsFor(`/stream?bytes=${2 * 1024 * 1024 * 1024}&tag=stalled`));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    await client.waitForRecords(() => client.receivedBytes > 0);
    client.socket.pause();
    await sleep(1500);
    const growthMb = (rss.stop() - before) / 1024;
    expect(client.receivedBytes).toBeLessThan(64 * 1024 * 1024);
    expect(growthMb).toBeLessThan(100);
    client.destroy();
    await main.proc.waitForStderr(/stream finally tag=stalled/, 3000, from);
    expect((await get(main, "/hello")).response().body.toString()).toBe("hello\n");
  });

  it("a 1 GiB upload streams through in constant memory (RSS at most 16 MiB above where it started) and arrives whole", async () => {
    const size = 1024 * 1024 * 1024;
    const client = await open(main.address, { keepRaw: false });
    await client.beginRequest(1);
    await client.sendParams(
      1,
      paramsFor("/sha256", { REQUEST_METHOD: "POST", CONTENT_LENGTH: String(size) }),
    );
    const before = main.proc.rssKb()!;
    const rss = sampleRss(main.proc);
    const hash = createHash("sha256");
    await client.streamStdin(1, size, {
      fill: (chunk, offset) => hash.update(chunk.fill((offset >>> 20) & 0xff)),
    });
    const result = await client.response(1, { timeoutMs: 60_000 });
    const growthMb = (rss.stop() - before) / 1024;
    expect(bodyJson(result)).toEqual({ length: size, sha256: hash.digest("hex") });
    // Bounded memory for a body of any size [body.backpressure]: 16 MiB leaves room for V8's heap growth; without the collection every 2 MiB of body (server/reclaim.ts) this is ~35 MiB.
    expect(growthMb).toBeLessThanOrEqual(16);
  }, 60_000);
});

describe("limits", () => {
  // One server for the limits that do not get in each other's way.
  let server: TsgiFcgi;
  beforeAll(async () => {
    server = await startTsgiFcgi(group, {
      args: [
        "--max-params-bytes",
        "4096",
        "--max-requests-per-connection",
        "2",
        "--concurrency",
        "3",
        "--receive-timeout",
        "0.5",
      ],
    });
  });

  it("GET_VALUES reports --concurrency as FCGI_MAX_REQS", async () => {
    const client = await open(server.address);
    await client.sendRecord(
      RecordType.GET_VALUES,
      0,
      encodeNameValuePairs([["FCGI_MAX_REQS", ""]]),
    );
    const [record] = await client.waitForRecords((records) => records.length >= 1);
    expect([...decodeNameValuePairs(record.content)]).toEqual([["FCGI_MAX_REQS", "3"]]);
  });

  it("params over --max-params-bytes get a clean 431 and END_REQUEST, a log line, and the kept connection serves on", async () => {
    const from = server.proc.stderr.length;
    const client = await open(server.address);
    const tooBig = await client.request({
      keepConn: true,
      params: paramsFor("/inspect", { HTTP_COOKIE: "c".repeat(5000) }),
      stdin: "body",
    });
    expect(tooBig.response().status).toBe("431 Request Header Fields Too Large");
    expect(tooBig.endRequest).toEqual({ appStatus: 0, protocolStatus: 0 });
    await server.proc.waitForStderr(/request 1: bad FCGI_PARAMS: .*4096-byte/, 2000, from);
    const next = await client.request({ keepConn: true, params: paramsFor("/hello") });
    expect(next.response().body.toString()).toBe("hello\n");
  });

  it("a forged 2 GB param length is refused with 431 before anything is allocated", async () => {
    const client = await open(server.address);
    await client.beginRequest(1);
    await client.sendRecord(RecordType.PARAMS, 1, hex("01 FF FF FF FF 41")); // name 1 byte, value 2^31-1 bytes
    const result = await client.response(1);
    expect(result.response().status).toBe("431 Request Header Fields Too Large");
  });

  it("requests per connection: beyond --max-requests-per-connection the next id gets CANT_MPX_CONN, byte for byte", async () => {
    const client = await open(server.address);
    for (const id of [1, 2]) {
      await client.beginRequest(id, { keepConn: true });
      await client.sendParams(id, paramsFor("/slow?ms=400"));
      await client.sendStream(RecordType.STDIN, id, Buffer.alloc(0));
    }
    const from = client.rawBytes().length;
    await client.beginRequest(3, { keepConn: true });
    await client.waitForRecords((records) => records.some((r) => r.requestId === 3));
    expect(client.rawBytes().subarray(from, from + 16)).toEqual(
      hex("01 03 00 03 00 08 00 00 00 00 00 00 01 00 00 00"),
    );
    const results = await Promise.all([client.response(1), client.response(2)]);
    for (const result of results) expect(result.response().body.toString()).toBe("slept 400\n");
  });

  it("beyond --concurrency requests in the process get FCGI_OVERLOADED; later ones are served", async () => {
    const busy = await Promise.all([
      open(server.address),
      open(server.address),
      open(server.address),
    ]);
    for (const client of busy) {
      await client.beginRequest(1);
      await client.sendParams(1, paramsFor("/slow?ms=600"));
      await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    }
    await sleep(100);
    const refused = await open(server.address);
    await refused.beginRequest(1);
    await refused.waitForRecords((records) => records.length >= 1);
    expect(refused.rawBytes()).toEqual(hex("01 03 00 01 00 08 00 00 00 00 00 00 02 00 00 00"));
    await refused.waitForClose(2000); // no KEEP_CONN
    for (const client of busy)
      expect((await client.response(1)).response().body.toString()).toBe("slept 600\n");
    expect((await get(server, "/hello")).response().body.toString()).toBe("hello\n");
  });

  it("--receive-timeout 0.5: params sent, body never: the request is ended within ~1.5 s with a log line, and others are served meanwhile", async () => {
    const from = server.proc.stderr.length;
    const client = await open(server.address);
    const started = Date.now();
    await client.beginRequest(1);
    await client.sendParams(
      1,
      paramsFor("/sha256", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "100" }),
    );
    expect((await get(server, "/hello")).response().body.toString()).toBe("hello\n");
    const result = await client.response(1, { timeoutMs: 5000 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result.endRequest.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    expect(result.response().status).toBe("408 Request Timeout");
    await server.proc.waitForStderr(/request 1: no input for 0.5 s, giving up/, 1000, from);
    expect((await get(server, "/hello")).response().body.toString()).toBe("hello\n");
  });

  it("--receive-timeout 0.5 with an app that never reads its body: no crash, the request ends when the app does", async () => {
    const client = await open(server.address);
    await client.beginRequest(1);
    await client.sendParams(
      1,
      paramsFor("/slow?ms=1800", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "100" }),
    );
    const result = await client.response(1, { timeoutMs: 5000 });
    expect(result.response().body.toString()).toBe("slept 1800\n");
    expect(server.proc.running).toBe(true);
    expect((await get(server, "/hello")).response().body.toString()).toBe("hello\n");
  });

  it("--receive-timeout 0.5: params that never end get a 408 within ~1.5 s", async () => {
    const client = await open(server.address);
    const started = Date.now();
    await client.beginRequest(1);
    await client.sendParams(1, { REQUEST_METHOD: "GET" }, { end: false });
    const result = await client.response(1, { timeoutMs: 5000 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result.response().status).toBe("408 Request Timeout");
  });
});

describe("under node --disallow-code-generation-from-strings", () => {
  let server: TsgiFcgi;
  beforeAll(async () => {
    server = await startTsgiFcgi(group, {
      nodeArgs: ["--disallow-code-generation-from-strings"],
      args: ["--max-params-bytes", "4096"],
    });
  });

  it("builds the environ without compiled code, request after request", async () => {
    const given = {
      ...paramsFor("/inspect?x=1"),
      SCRIPT_NAME: "/app",
      HTTP_X_ODD: " spaced ",
      EMPTY: "",
    };
    for (let round = 0; round < 3; round++) {
      const client = await open(server.address);
      const report = bodyJson(await client.request({ params: given, stdin: "body" }));
      expect(report.environ).toMatchObject(given);
      expect(report.body.length).toBe(4);
    }
    expect(server.proc.stderr).not.toMatch(/bad FCGI_PARAMS|EvalError/);
  });

  it("still answers params over --max-params-bytes with 431 and malformed params with 400", async () => {
    const tooBig = await (
      await open(server.address)
    ).request({ params: paramsFor("/inspect", { HTTP_COOKIE: "c".repeat(5000) }) });
    expect(tooBig.response().status).toBe("431 Request Header Fields Too Large");

    const client = await open(server.address);
    await client.beginRequest(1);
    await client.sendParams(1, hex("05 05 61 62")); // a pair announced as 10 bytes, ended after 2
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    expect((await client.response(1)).response().status).toBe("400 Bad Request");
  });
});

describe("--no-multiplex", () => {
  let server: TsgiFcgi;
  beforeAll(async () => {
    server = await startTsgiFcgi(group, { args: ["--no-multiplex"] });
  });

  it("reports FCGI_MPXS_CONNS 0", async () => {
    const client = await open(server.address);
    await client.sendRecord(
      RecordType.GET_VALUES,
      0,
      encodeNameValuePairs([["FCGI_MPXS_CONNS", ""]]),
    );
    await client.waitForRecords((records) => records.length >= 1);
    expect(client.rawBytes()).toEqual(
      Buffer.concat([
        hex("01 0A 00 00 00 12 06 00 0F 01"),
        Buffer.from("FCGI_MPXS_CONNS"),
        hex("30 00 00 00 00 00 00"),
      ]),
    );
  });

  it("a second BEGIN_REQUEST while one is active gets CANT_MPX_CONN, byte for byte; the first is unaffected", async () => {
    const client = await open(server.address);
    await client.beginRequest(1);
    await client.sendParams(1, paramsFor("/slow?ms=300"));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    await client.beginRequest(2);
    await client.waitForRecords((records) => records.length >= 1);
    expect(client.rawBytes().subarray(0, 16)).toEqual(
      hex("01 03 00 02 00 08 00 00 00 00 00 00 01 00 00 00"),
    );
    expect((await client.response(1)).response().body.toString()).toBe("slept 300\n");
  });
});

describe("young generation sizing", () => {
  /** The sizes (MiB) V8's young generation goes through while an app allocates hard, and how much each step multiplied it. */
  async function growth(server: TsgiFcgi): Promise<{ sizes: number[]; steps: number[] }> {
    const client = await open(server.address);
    const result = await client.request({
      params: paramsFor("/young-generation"),
      timeoutMs: 30_000,
    });
    const { sizes } = bodyJson<{ sizes: number[] }>(result);
    return { sizes, steps: sizes.slice(1).map((size, i) => size / sizes[i]) };
  }

  it("tsgi fcgi grows V8's young generation to its full size in one step, instead of doubling it again and again under load", async () => {
    // A fresh process: what it went through before is known (start-up only).
    const server = await startTsgiFcgi(group);
    const { sizes, steps } = await growth(server);
    const seen = `sizes (MiB): ${sizes.join(" -> ")}`;
    // Node 20's default maximum is 32 MiB (two 16 MiB semi-spaces); V8 alone gets there from 1 MiB by doubling, step by step.
    expect(sizes.at(-1), seen).toBeGreaterThanOrEqual(16);
    expect(sizes[0] >= 16 || steps.some((step) => step >= 4), seen).toBe(true);
    server.proc.signal("SIGTERM");
  }, 40_000);

  /** The young generation of `tsgi fcgi --workers 1`'s worker, started with `nodeArgs`. */
  async function workerGrowth(nodeArgs: string[] = []) {
    const path = join(tempDir(group), "young.sock");
    const server = await startTsgiFcgi(group, {
      listen: path,
      args: ["--workers", "1"],
      nodeArgs,
      waitReady: false,
    });
    await waitForListening({ path }, 15_000, () => server.proc.running);
    const result = await growth({ ...server, address: { path } });
    server.proc.signal("SIGTERM");
    return { ...result, seen: `sizes (MiB): ${result.sizes.join(" -> ")}` };
  }

  it("--workers: each worker's young generation reaches 64 MiB (two 32 MiB semi-spaces), twice V8's default, in one step", async () => {
    const { sizes, steps, seen } = await workerGrowth();
    expect(sizes.at(-1), seen).toBe(64);
    expect(sizes[0] >= 32 || steps.some((step) => step >= 4), seen).toBe(true);
  }, 40_000);

  it("--workers with the user's own semi-space flag: the workers keep it", async () => {
    const { sizes, seen } = await workerGrowth(["--max-semi-space-size=8"]);
    expect(sizes.at(-1), seen).toBe(16);
  }, 40_000);

  it("a process given its own semi-space flag (NODE_OPTIONS=--max-semi-space-size) keeps V8's own growth", async () => {
    const server = await startTsgiFcgi(group, {
      env: { NODE_OPTIONS: "--max-semi-space-size=16" },
    });
    const { steps } = await growth(server);
    expect(steps.length).toBeGreaterThan(1);
    for (const step of steps) expect(step).toBe(2);
    server.proc.signal("SIGTERM");
  }, 40_000);
});

describe("environ", () => {
  type Report = {
    environ: Record<string, string>;
    tsgi: Record<string, unknown>;
    body: { length: number; sha256: string };
  };
  const inspect = async (extra: Record<string, string>, stdin?: string): Promise<Report> => {
    const client = await open(main.address);
    return bodyJson<Report>(
      await client.request({ params: { ...paramsFor("/inspect"), ...extra }, stdin }),
    );
  };

  it("is built from the params exactly as given (SCRIPT_NAME, PATH_INFO, REQUEST_URI untouched), run_once and multiprocess false", async () => {
    const given = {
      SCRIPT_NAME: "/app",
      PATH_INFO: "/inspect/a%2Fb//c/",
      QUERY_STRING: "x=1&y",
      REQUEST_URI: "/app/inspect/a%2Fb//c/?x=1&y",
      HTTP_X_ODD: "  spaced  value ",
      HTTP_HOST: "example.org",
      EMPTY: "",
    };
    const report = await inspect(given);
    for (const [name, value] of Object.entries(given)) expect(report.environ[name]).toBe(value);
    expect(report.tsgi).toMatchObject({
      run_once: false,
      multiprocess: false,
      multithread: false,
      role: "responder",
      hasData: false,
    });
  });

  it("--multiprocess sets tsgi.multiprocess for a process on its own --listen socket", async () => {
    const server = await startTsgiFcgi(group, { args: ["--multiprocess"] });
    const client = await open(server.address);
    expect(
      bodyJson(await client.request({ params: paramsFor("/inspect") })).tsgi.multiprocess,
    ).toBe(true);
    await server.proc.stop();
  });

  it("tsgi.url_scheme comes from HTTPS (on/1, any case), then REQUEST_SCHEME", async () => {
    const cases: [Record<string, string>, string][] = [
      [{ HTTPS: "on" }, "https"],
      [{ HTTPS: "ON" }, "https"],
      [{ HTTPS: "1" }, "https"],
      [{ HTTPS: "off", REQUEST_SCHEME: "https" }, "http"],
      [{ REQUEST_SCHEME: "https" }, "https"],
      [{ REQUEST_SCHEME: "HTTPS" }, "https"],
      [{}, "http"],
    ];
    for (const [extra, scheme] of cases)
      expect([extra, (await inspect(extra)).tsgi.url_scheme]).toEqual([extra, scheme]);
  });

  it("tsgi.input is the streamed FCGI_STDIN and works without CONTENT_LENGTH", async () => {
    const report = await inspect({ REQUEST_METHOD: "POST" }, "a body without a length");
    expect(report.environ.CONTENT_LENGTH).toBeUndefined();
    expect(report.body).toEqual({
      length: 23,
      sha256: sha256(Buffer.from("a body without a length")),
    });
  });

  it("a Latin-1 byte 0xE9 in a param arrives as \\u00e9", async () => {
    const client = await open(main.address);
    await client.beginRequest(1);
    const raw = Buffer.concat([
      encodeNameValuePairs(Object.entries(paramsFor("/inspect"))),
      hex("0B 04"),
      Buffer.from("HTTP_X_BYTE"),
      hex("63 61 66 E9"),
    ]);
    await client.sendParams(1, raw);
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    expect(bodyJson(await client.response(1)).environ.HTTP_X_BYTE).toBe("caf\u00e9");
  });
});

describe("access control: FCGI_WEB_SERVER_ADDRS and --allow", () => {
  let server: TsgiFcgi;
  beforeAll(async () => {
    server = await startTsgiFcgi(group, {
      listen: "tcp",
      args: ["--allow", "127.0.0.3"],
      env: { FCGI_WEB_SERVER_ADDRS: "127.0.0.2", FIXTURE_LOG_CALLS: "1" },
    });
  });

  it("a peer not listed (127.0.0.1 when only 127.0.0.2 is) is closed before any record is read; the app is never called", async () => {
    const from = server.proc.stderr.length;
    const client = await open(server.address);
    // Closed without our sending anything: nothing was read.
    await client.waitForClose(2000);
    await server.proc.waitForStderr(/connection from 127\.0\.0\.1 refused/, 2000, from);
    const second = await open(server.address);
    await second
      .sendRecord(RecordType.BEGIN_REQUEST, 1, hex("00 01 00 00 00 00 00 00"))
      .catch(() => {});
    await second.waitForClose(2000);
    expect(second.records).toEqual([]);
    expect(server.proc.stderr.slice(from)).not.toContain("[fixture] call");
  });

  it("a listed peer (127.0.0.2 from FCGI_WEB_SERVER_ADDRS, 127.0.0.3 from --allow) is served", async () => {
    for (const localAddress of ["127.0.0.2", "127.0.0.3"]) {
      const client = await open(server.address, { localAddress });
      const result = await client.request({ params: paramsFor("/inspect") });
      expect(result.response().status).toBe("200 OK");
    }
  });

  it("FCGI_WEB_SERVER_ADDRS listing 127.0.0.1 (with spaces and a second address) lets it in", async () => {
    const other = await startTsgiFcgi(group, {
      listen: "tcp",
      env: { FCGI_WEB_SERVER_ADDRS: "10.1.2.3, 127.0.0.1" },
    });
    const client = await open(other.address);
    expect((await client.request({ params: paramsFor("/hello") })).response().body.toString()).toBe(
      "hello\n",
    );
    await other.proc.stop();
  });
});

describe("listening", () => {
  const local = new ProcessGroup();
  afterEach(() => local.cleanUp());

  it("without --listen, serves on the listening socket passed as fd 0", async () => {
    // TCP: closing our copy of a unix listener would unlink its path under the child.
    const listener = createServer();
    await new Promise<void>((resolve) => listener.listen({ host: "127.0.0.1", port: 0 }, resolve));
    const port = (listener.address() as AddressInfo).port;
    const fd = (listener as Server & { _handle: { fd: number } })._handle.fd;
    let server: TsgiFcgi;
    try {
      server = await startTsgiFcgi(local, { listen: null, stdio: [fd, "pipe", "pipe"] });
    } finally {
      listener.close(); // only the child accepts from now on
    }
    expect(server.proc.stderr).toMatch(/serving \S+ on fd 0 /);
    const client = await open({ host: "127.0.0.1", port });
    expect((await client.request({ params: paramsFor("/hello") })).response().body.toString()).toBe(
      "hello\n",
    );
    // mod_fcgid and lighttpd bin-path start several processes on one such socket.
    const inspected = await (
      await open({ host: "127.0.0.1", port })
    ).request({ params: paramsFor("/inspect") });
    expect(bodyJson(inspected).tsgi.multiprocess).toBe(true);
  });

  it("without --listen and fd 0 a pipe: a clear message on stderr, non-zero exit", async () => {
    // A real pipe from the shell (Node's own stdio "pipe" is a socketpair).
    const proc = local.spawn("tsgi fcgi", "/bin/sh", [
      "-c",
      `: | exec "$0" "$@"`,
      process.execPath,
      TSGI_BIN,
      "fcgi",
      fcgiFixture("app.js"),
    ]);
    const exit = await proc.waitForExit(5000);
    expect(exit.code).not.toBe(0);
    expect(proc.stderr).toMatch(
      /fd 0 is not a socket \(started from a terminal or a pipe\?\).*--listen/,
    );
  });

  it("without --listen and fd 0 a connected socket: a clear message on stderr, non-zero exit", async () => {
    const dir = tempDir(local);
    const peer = createServer(() => {});
    await new Promise<void>((resolve) => peer.listen(join(dir, "peer.sock"), resolve));
    const socket: Socket = connect(join(dir, "peer.sock"));
    await new Promise((resolve) => socket.once("connect", resolve));
    try {
      const proc = local.spawn(
        "tsgi fcgi",
        process.execPath,
        [TSGI_BIN, "fcgi", fcgiFixture("app.js")],
        { stdio: [socket, "pipe", "pipe"] },
      );
      const exit = await proc.waitForExit(5000);
      expect(exit.code).not.toBe(0);
      expect(proc.stderr).toMatch(/fd 0 is a socket but not a listening one/);
      expect(proc.stderr).not.toMatch(/server error/);
    } finally {
      socket.destroy();
      peer.close();
    }
  });

  it("--listen PATH replaces a stale socket file left by a killed server", async () => {
    const path = join(tempDir(local), "stale.sock");
    const first = await startTsgiFcgi(local, { listen: path });
    first.proc.signal("SIGKILL");
    await first.proc.waitForExit();
    expect(statSync(path).isSocket()).toBe(true);
    const second = await startTsgiFcgi(local, { listen: path });
    expect(
      (await (await open(second.address)).request({ params: paramsFor("/hello") }))
        .response()
        .body.toString(),
    ).toBe("hello\n");
  });

  it("--listen PATH where a live server listens: the second exits non-zero with a clear message, the first keeps serving", async () => {
    const path = join(tempDir(local), "live.sock");
    const first = await startTsgiFcgi(local, { listen: path });
    const second = await startTsgiFcgi(local, { listen: path, waitReady: false });
    const exit = await second.proc.waitForExit(5000);
    expect(exit.code).not.toBe(0);
    expect(second.proc.stderr).toContain(
      `cannot listen on ${path}: another process is listening there`,
    );
    expect(
      (await (await open(first.address)).request({ params: paramsFor("/hello") }))
        .response()
        .body.toString(),
    ).toBe("hello\n");
  });

  it("--listen PATH where a regular file is: non-zero exit, the file is left alone", async () => {
    const path = join(tempDir(local), "not-a-socket");
    writeFileSync(path, "precious");
    const proc = (await startTsgiFcgi(local, { listen: path, waitReady: false })).proc;
    expect((await proc.waitForExit(5000)).code).not.toBe(0);
    expect(proc.stderr).toContain("the file exists and is not a socket");
    expect(statSync(path).isFile()).toBe(true);
  });

  it("the socket gets --socket-mode (default 0660) whatever the umask, and is removed on a clean exit", async () => {
    const dir = tempDir(local);
    const byDefault = await startTsgiFcgi(local, {
      listen: join(dir, "default.sock"),
      umask: "077",
    });
    expect(statSync(join(dir, "default.sock")).mode & 0o777).toBe(0o660);
    const open666 = await startTsgiFcgi(local, {
      listen: join(dir, "open.sock"),
      umask: "077",
      args: ["--socket-mode", "666"],
    });
    expect(statSync(join(dir, "open.sock")).mode & 0o777).toBe(0o666);

    for (const server of [byDefault, open666]) {
      server.proc.signal("SIGTERM");
      expect((await server.proc.waitForExit(3000)).code).toBe(0);
    }
    expect(existsSync(join(dir, "default.sock"))).toBe(false);
    expect(existsSync(join(dir, "open.sock"))).toBe(false);
  });

  it("--listen host:port and a bare port (host 127.0.0.1) listen on TCP", async () => {
    const withHost = await startTsgiFcgi(local, { listen: "127.0.0.1:0" });
    expect(withHost.address).toMatchObject({ host: "127.0.0.1" });
    expect(
      (await (await open(withHost.address)).request({ params: paramsFor("/hello") })).response()
        .status,
    ).toBe("200 OK");

    const port = await freePort();
    const bare = await startTsgiFcgi(local, { listen: String(port) });
    expect(bare.address).toEqual({ host: "127.0.0.1", port });
    expect(
      (await (await open(bare.address)).request({ params: paramsFor("/hello") })).response().status,
    ).toBe("200 OK");
  });
});

describe("signals and shutdown", () => {
  const local = new ProcessGroup();
  afterEach(() => local.cleanUp());

  it("SIGTERM: stops accepting, lets the request in flight (~1 s) finish, then exits 0", async () => {
    const server = await startTsgiFcgi(local);
    const client = await open(server.address);
    await client.beginRequest(1);
    await client.sendParams(1, paramsFor("/slow?ms=1000"));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    await sleep(200);
    server.proc.signal("SIGTERM");
    await server.proc.waitForStderr(/SIGTERM: no new connections; 1 request\(s\) in flight/);
    await sleep(100); // the log line is written just before the listener closes
    await expect(FastCgiClient.connect(server.address, { timeoutMs: 1000 })).rejects.toThrow();
    const result = await client.response(1, { timeoutMs: 3000 });
    expect(result.response().body.toString()).toBe("slept 1000\n");
    expect(await server.proc.waitForExit(3000)).toEqual({ code: 0, signal: null });
  });

  it("--grace: a request longer than the grace period is cut and the process exits", async () => {
    const server = await startTsgiFcgi(local, { args: ["--grace", "0.5"] });
    const client = await open(server.address);
    await client.beginRequest(1);
    await client.sendParams(1, paramsFor("/slow?ms=10000"));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    await sleep(200);
    const signalled = Date.now();
    server.proc.signal("SIGTERM");
    const exit = await server.proc.waitForExit(3000);
    expect(Date.now() - signalled).toBeLessThan(2000);
    expect(exit.signal).toBeNull();
    await client.waitForClose(1000);
    expect(client.records.some((record) => record.type === RecordType.END_REQUEST)).toBe(false);
    expect(server.proc.stderr).toMatch(/grace period over: cutting off 1 request/);
  });

  it("a second signal exits at once", async () => {
    const server = await startTsgiFcgi(local);
    const client = await open(server.address);
    await client.beginRequest(1);
    await client.sendParams(1, paramsFor("/slow?ms=10000"));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    await sleep(200);
    server.proc.signal("SIGTERM");
    await server.proc.waitForStderr(/SIGTERM: no new connections/);
    const second = Date.now();
    server.proc.signal("SIGINT");
    const exit = await server.proc.waitForExit(2000);
    expect(Date.now() - second).toBeLessThan(1000);
    expect(exit.code).not.toBe(0);
  });

  it("idle (even with a kept connection open, as nginx's pool holds), SIGTERM or SIGINT exits 0 within about a second (the kept connection's second for a last request)", async () => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const server = await startTsgiFcgi(local);
      const client = await open(server.address);
      await client.request({ keepConn: true, params: paramsFor("/hello") });
      const signalled = Date.now();
      server.proc.signal(signal);
      expect(await server.proc.waitForExit(2000)).toEqual({ code: 0, signal: null });
      expect(Date.now() - signalled).toBeLessThan(1600);
      await client.waitForClose(1000);
    }
  });
});
