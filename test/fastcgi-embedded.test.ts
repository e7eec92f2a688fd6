// serveFastCgi used as a library: in this process (its options, what reaches
// the environ, how a response ends), and in a fresh process that imports tsgi
// to see what the library does to its host (from dist/: `npm run build` first).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ConnectionClosedError } from "../src/engine.js";
import { RecordType } from "../src/fastcgi/protocol.js";
import { serveFastCgi, type FastCgiOptions, type FastCgiServer } from "../src/fastcgi/server.js";
import type { Application } from "../src/types.js";
import { TextCollector } from "./helpers/sinks.js";
import { ProcessGroup, tempDir } from "./helpers/processes.js";
import { fcgiFixture } from "./helpers/tsgi.js";
import { paramsFor, trackClients } from "./helpers/fastcgi-client.js";

const open = trackClients();
const dir = mkdtempSync(join(tmpdir(), "tsgi-embedded-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const servers: FastCgiServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close(0)));
});

let sockets = 0;
async function serve(
  app: Application,
  options: FastCgiOptions = {},
): Promise<{ path: string; errors: TextCollector }> {
  const path = join(dir, `s${++sockets}.sock`);
  const errors = new TextCollector();
  servers.push(await serveFastCgi(app, { listen: path, errors, ...options }));
  return { path, errors };
}

const reportMultiprocess: Application = (environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [String(environ["tsgi.multiprocess"])];
};

describe("tsgi.multiprocess", () => {
  it("is false for a single process on its own listen socket", async () => {
    const { path } = await serve(reportMultiprocess);
    const result = await (await open({ path })).request({ params: paramsFor("/") });
    expect(result.response().body.toString()).toBe("false");
  });

  it("is true when the caller says so (multiprocess: true)", async () => {
    const { path } = await serve(reportMultiprocess, { multiprocess: true });
    const result = await (await open({ path })).request({ params: paramsFor("/") });
    expect(result.response().body.toString()).toBe("true");
  });
});

describe("a response the application aborts itself", () => {
  it("a ConnectionClosedError raised after the first chunk cuts the response off: the connection closes without END_REQUEST", async () => {
    const app: Application = (_environ, startResponse) => {
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return (function* () {
        yield "first part\n";
        throw new ConnectionClosedError("an upstream the application reads from went away");
      })();
    };
    const { path } = await serve(app);
    const client = await open({ path });
    await client.beginRequest(1, { keepConn: true });
    await client.sendParams(1, paramsFor("/"));
    await client.sendStream(RecordType.STDIN, 1, Buffer.alloc(0)).catch(() => {});
    await client.waitForClose(2000);
    expect(
      client.records.some(
        (record) => record.type === RecordType.STDOUT && record.content.includes("first part"),
      ),
    ).toBe(true);
    expect(client.records.some((record) => record.type === RecordType.END_REQUEST)).toBe(false);
  });
});

describe("a server that stops with kept connections ([fcgi.stop-keepalive])", () => {
  const hello: Application = (_environ, startResponse) => {
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return ["hello\n"];
  };

  /** A server of its own (closed by the test) and a connection kept after one request. */
  async function keptConnection() {
    const { path } = await serve(hello);
    const server = servers.pop()!;
    const client = await open({ path });
    await client.request({ keepConn: true, params: paramsFor("/") });
    return { server, client };
  }

  it("a request sent on an idle kept connection just after close() begins is served, then that connection closes and close() resolves", async () => {
    const { server, client } = await keptConnection();
    const started = Date.now();
    const closing = server.close(10);
    // The web server sends on the connection it kept as the stop begins.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(client.closed).toBe(false);
    const result = await client.request({ requestId: 2, keepConn: true, params: paramsFor("/") });
    expect(result.response().body.toString()).toBe("hello\n");
    await client.waitForClose(500);
    await closing;
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("an idle kept connection the web server sends nothing more on is closed after about 1 s, and close() resolves", async () => {
    const { server, client } = await keptConnection();
    const started = Date.now();
    await server.close(10);
    await client.waitForClose(500);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(2000);
  });
});

describe("V8 flags of the host process", () => {
  const group = new ProcessGroup();
  afterEach(() => group.cleanUp());

  /** Runs the embedded server in a fresh process and sends it a request with an 8 MiB body. */
  async function gcAfterUpload(args: string[]): Promise<{ length: number; gc: string }> {
    const path = join(tempDir(group), "embedded.sock");
    const proc = group.spawn("embedded server", process.execPath, [
      fcgiFixture("embedded-server.js"),
      path,
      ...args,
    ]);
    await proc.waitForStderr(/embedded: serving on /);
    const client = await open({ path }, { keepRaw: false });
    const size = 8 * 1024 * 1024;
    await client.beginRequest(1);
    await client.sendParams(
      1,
      paramsFor("/", { REQUEST_METHOD: "POST", CONTENT_LENGTH: String(size) }),
    );
    await client.streamStdin(1, size);
    const result = await client.response(1, { timeoutMs: 20_000 });
    return JSON.parse(result.response().body.toString()) as { length: number; gc: string };
  }

  it("serving an upload through serveFastCgi leaves --expose-gc off", async () => {
    expect(await gcAfterUpload([])).toEqual({ length: 8 * 1024 * 1024, gc: "undefined" });
  });

  it("with reclaimBodyMemory: true, the body's memory is reclaimed through gc(), which is then exposed", async () => {
    expect(await gcAfterUpload(["reclaim"])).toEqual({ length: 8 * 1024 * 1024, gc: "function" });
  });
});
