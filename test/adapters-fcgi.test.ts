// Real Express and Hono applications (through fromNodeHandler and
// fromFetchHandler) served by one long-lived `tsgi fcgi` process per framework,
// with the same scenarios the CGI run uses (run `npm run build` first).

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RecordType } from "../src/fastcgi/protocol.js";
import {
  FRAMEWORK_APPS,
  SCENARIOS,
  gatewayVariables,
  type Framework,
} from "./fixtures/http/scenarios.js";
import { FastCgiClient, paramsFor } from "./helpers/fastcgi-client.js";
import { ProcessGroup } from "./helpers/processes.js";
import { fcgiFixture, startTsgiFcgi, type TsgiFcgi } from "./helpers/tsgi.js";

const group = new ProcessGroup();
afterAll(() => group.cleanUp());
const clients: FastCgiClient[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.destroy();
});

for (const framework of Object.keys(FRAMEWORK_APPS) as Framework[]) {
  describe(`${framework} application under \`tsgi fcgi\``, () => {
    let server: TsgiFcgi;
    beforeAll(async () => {
      server = await startTsgiFcgi(group, { app: FRAMEWORK_APPS[framework], listen: "tcp" });
    });

    for (const scenario of SCENARIOS) {
      it(scenario.name, async () => {
        const client = await FastCgiClient.connect(server.address);
        clients.push(client);
        const result = await client.request({
          params: gatewayVariables(scenario.request),
          ...(scenario.request.body ? { stdin: scenario.request.body } : {}),
          timeoutMs: 10_000,
        });
        expect(result.endRequest.protocolStatus).toBe(0);
        const response = result.response();
        scenario.check(
          { status: response.status, headers: response.headers, body: response.body },
          framework,
        );
      });
    }

    it("serves every scenario again on one kept connection, in the same process", async () => {
      const client = await FastCgiClient.connect(server.address);
      clients.push(client);
      for (const scenario of SCENARIOS) {
        const result = await client.request({
          params: gatewayVariables(scenario.request),
          ...(scenario.request.body ? { stdin: scenario.request.body } : {}),
          keepConn: true,
          timeoutMs: 10_000,
        });
        const response = result.response();
        scenario.check(
          { status: response.status, headers: response.headers, body: response.body },
          framework,
        );
      }
      expect(client.closed).toBe(false);
      expect(server.proc.running).toBe(true);
    });
  });
}

describe("a Node-style handler whose response ends in an error, under `tsgi fcgi`", () => {
  let server: TsgiFcgi;
  beforeAll(async () => {
    server = await startTsgiFcgi(group, { app: fcgiFixture("node-handler-app.js"), listen: "tcp" });
  });

  async function connect(): Promise<FastCgiClient> {
    const client = await FastCgiClient.connect(server.address);
    clients.push(client);
    return client;
  }

  /** Starts a 400 ms request on a connection of its own; its response is awaited later. */
  async function slowRequestInFlight(): Promise<FastCgiClient> {
    const other = await connect();
    await other.beginRequest(1);
    await other.sendParams(1, paramsFor("/slow?ms=400"));
    await other.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    return other;
  }

  async function expectServing(from: number): Promise<void> {
    const client = await connect();
    expect((await client.request({ params: paramsFor("/hello") })).response().body.toString()).toBe(
      "hello\n",
    );
    expect(server.proc.running).toBe(true);
    expect(server.proc.stderr.slice(from)).not.toMatch(/Unhandled 'error' event|uncaught/i);
  }

  it("stream.pipeline() from a source failing after the first chunk cuts that response off; a request in flight on another connection completes", async () => {
    const from = server.proc.stderr.length;
    const other = await slowRequestInFlight();
    const client = await connect();
    await client.beginRequest(1, { keepConn: true });
    await client.sendParams(1, paramsFor("/pipeline?chunks=1"));
    // The response may be cut off (and the connection closed) before this goes out.
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0)).catch(() => {});
    await client.waitForClose(3000);
    expect(client.records.some((record) => record.type === RecordType.END_REQUEST)).toBe(false);
    expect(
      client.records.some(
        (record) => record.type === RecordType.STDOUT && record.content.includes("chunk 1\n"),
      ),
    ).toBe(true);

    expect((await other.response(1)).response().body.toString()).toBe("slept 400\n");
    await server.proc.waitForStderr(
      /GET \/pipeline\?chunks=1: error in application: Error: source failed after 1 chunk/,
      2000,
      from,
    );
    await expectServing(from);
  });

  it("stream.pipeline() from a source failing before the first byte gives a 500; a request in flight on another connection completes", async () => {
    const from = server.proc.stderr.length;
    const other = await slowRequestInFlight();
    const client = await connect();
    const failed = await client.request({ params: paramsFor("/pipeline?chunks=0") });
    expect(failed.response().status).toBe("500 Internal Server Error");
    expect((await other.response(1)).response().body.toString()).toBe("slept 400\n");
    await server.proc.waitForStderr(
      /GET \/pipeline\?chunks=0: error in application: Error: source failed after 0 chunk/,
      2000,
      from,
    );
    await expectServing(from);
  });

  it("res.flushHeaders() sends the head in a STDOUT record of its own, before the body exists", async () => {
    const client = await connect();
    await client.beginRequest(1);
    await client.sendParams(1, paramsFor("/flush"));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0));
    const started = Date.now();
    const records = await client.waitForRecords(
      (all) => all.some((record) => record.type === RecordType.STDOUT && record.content.length > 0),
      2000,
    );
    expect(Date.now() - started).toBeLessThan(250);
    const head = records.find((record) => record.type === RecordType.STDOUT)!.content.toString();
    expect(head).toMatch(/^Status: 200 OK\r\nContent-Type: text\/event-stream\r\n\r\n$/);
    const response = (await client.response(1)).response();
    expect(response.body.toString()).toBe("data: late\n\n");
  });

  it("res.destroy(error) and req.destroy(error) end their own request only", async () => {
    const from = server.proc.stderr.length;
    const other = await slowRequestInFlight();
    const destroyed = await connect();
    await destroyed.beginRequest(1);
    await destroyed.sendParams(1, paramsFor("/res-destroy"));
    await destroyed.sendStream(RecordType.STDIN, 1, Buffer.alloc(0)).catch(() => {});
    await destroyed.waitForClose(3000);
    expect(destroyed.records.some((record) => record.type === RecordType.END_REQUEST)).toBe(false);

    const client = await connect();
    const failed = await client.request({
      params: paramsFor("/req-destroy", { REQUEST_METHOD: "POST", CONTENT_LENGTH: "4" }),
      stdin: "body",
    });
    expect(failed.response().status).toBe("500 Internal Server Error");
    expect((await other.response(1)).response().body.toString()).toBe("slept 400\n");
    await server.proc.waitForStderr(
      /GET \/res-destroy: error in application: Error: destroyed on purpose/,
      2000,
      from,
    );
    await server.proc.waitForStderr(
      /POST \/req-destroy: error in application: Error: request destroyed on purpose/,
      2000,
      from,
    );
    await expectServing(from);
  });
});
