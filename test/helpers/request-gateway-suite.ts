// The end-to-end tests `tsgi scgi` and `tsgi uwsgi` share (one request per
// connection, the same server core): the real process, raw sockets, the FastCGI
// fixture app. Each protocol file runs them with its own encoder and parser.

import { createHash } from "node:crypto";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ParsedResponse } from "./cgi.js";
import { sha256, streamPattern } from "./bytes.js";
import { alive, ProcessGroup, sampleRss, sleep, waitForListening } from "./processes.js";
import {
  exchange,
  type ExchangeOptions,
  type RawReply,
  type RequestShape,
  type ServerAddress,
  streamBody,
} from "./scgi-client.js";
import { startTsgiServer, type TsgiFcgi } from "./tsgi.js";

export interface GatewayUnderTest {
  command: "scgi" | "uwsgi";
  /** The request bytes nginx would send for `shape`. */
  encode(shape: RequestShape): Buffer;
  parse(bytes: Buffer): ParsedResponse;
  /** A header block the protocol cannot parse, with the bytes that follow it. */
  malformed: Buffer;
  /** The first bytes of a header block that declare it far larger than --max-header-bytes. */
  hugePrefix: Buffer;
}

export const MAX_HEADER_BYTES = 4096;

/** Sends `request`, then checks that the server still serves /hello on a new connection. */
export async function stillServes(gateway: GatewayUnderTest, address: ServerAddress) {
  const reply = await exchange(address, gateway.encode({ uri: "/hello" }));
  expect(gateway.parse(reply.bytes).body.toString()).toBe("hello\n");
}

export function send(
  gateway: GatewayUnderTest,
  address: ServerAddress,
  shape: RequestShape,
  options?: ExchangeOptions,
): Promise<RawReply> {
  return exchange(address, gateway.encode(shape), options);
}

export function describeGatewayProcess(gateway: GatewayUnderTest): void {
  const group = new ProcessGroup();
  afterAll(() => group.cleanUp());
  let server: TsgiFcgi;
  beforeAll(async () => {
    server = await startTsgiServer(group, gateway.command, {
      listen: "tcp",
      args: ["--receive-timeout", "0.5", "--max-header-bytes", String(MAX_HEADER_BYTES)],
    });
  });

  describe(`tsgi ${gateway.command}: requests`, () => {
    it("a GET is answered and the connection closed cleanly", async () => {
      const reply = await send(gateway, server.address, { uri: "/hello" });
      expect(reply.ending).toBe("close");
      const response = gateway.parse(reply.bytes);
      expect(response.status).toBe("200 OK");
      expect(response.body.toString()).toBe("hello\n");
    });

    it("status and custom header go out as given", async () => {
      const response = gateway.parse(
        (await send(gateway, server.address, { uri: "/status" })).bytes,
      );
      expect(response.status).toBe("418 I'm a teapot");
      expect(response.headers).toContainEqual(["X-Custom", "tea; kind=green"]);
    });

    it("a POST body reaches the application whole (SHA-256)", async () => {
      const body = Buffer.from("a=1&b=" + "x".repeat(5000));
      const reply = await send(gateway, server.address, { method: "POST", uri: "/sha256", body });
      expect(JSON.parse(gateway.parse(reply.bytes).body.toString())).toEqual({
        length: body.length,
        sha256: sha256(body),
      });
    });

    it("an 8 MiB upload streams to the application, and an 8 MiB response back", async () => {
      const body = streamPattern(8 * 1024 * 1024);
      const up = await send(gateway, server.address, { method: "PUT", uri: "/sha256", body });
      expect(JSON.parse(gateway.parse(up.bytes).body.toString())).toEqual({
        length: body.length,
        sha256: sha256(body),
      });
      const down = await send(gateway, server.address, { uri: `/stream?bytes=${body.length}` });
      const response = gateway.parse(down.bytes);
      expect(response.body.length).toBe(body.length);
      expect(sha256(response.body)).toBe(sha256(body));
    });

    it("an exception before the headers is a 500, and state is kept between requests", async () => {
      const failed = gateway.parse((await send(gateway, server.address, { uri: "/throw" })).bytes);
      expect(failed.status).toBe("500 Internal Server Error");
      const first = gateway.parse((await send(gateway, server.address, { uri: "/counter" })).bytes);
      const second = gateway.parse(
        (await send(gateway, server.address, { uri: "/counter" })).bytes,
      );
      expect(Number(second.body.toString())).toBe(Number(first.body.toString()) + 1);
    });

    it("a response that fails after its headers is cut off with a reset", async () => {
      // A reset that reaches the peer together with the last bytes can be read as
      // a clean end on a busy machine (see stream-response.ts), so one of a few tries must show it.
      const endings: string[] = [];
      for (let i = 0; i < 3 && !endings.includes("reset"); i++) {
        const reply = await send(gateway, server.address, { uri: "/fail-midway" });
        expect(gateway.parse(reply.bytes).body.toString()).toBe("first part\n");
        endings.push(reply.ending);
      }
      expect(endings).toContain("reset");
      await stillServes(gateway, server.address);
    });

    it("a body shorter than its declared Content-Length is cut off: the peer sees it short", async () => {
      const reply = await send(gateway, server.address, { uri: "/short-body" });
      const response = gateway.parse(reply.bytes);
      expect(response.headers).toContainEqual(["Content-Length", "100"]);
      expect(response.body.toString()).toBe("first part\n");
      await stillServes(gateway, server.address);
    });

    it("a connection that closes without sending anything is dropped quietly", async () => {
      const before = server.proc.stderr.length;
      const reply = await exchange(server.address, Buffer.alloc(0), { endAfterSend: true });
      expect(reply.bytes.length).toBe(0);
      await stillServes(gateway, server.address);
      expect(server.proc.stderr.slice(before)).not.toMatch(/\[tsgi\]/);
    });
  });

  describe(`tsgi ${gateway.command}: bad input (each: an answer or a close, a log line, the next request served)`, () => {
    it("a malformed header block: 400", async () => {
      const reply = await exchange(server.address, gateway.malformed);
      expect(gateway.parse(reply.bytes).status).toBe("400 Bad Request");
      await server.proc.waitForStderr(/bad request, answered 400: malformed/);
      await stillServes(gateway, server.address);
    });

    it("a header block over --max-header-bytes: 431", async () => {
      const extra: [string, string][] = [["HTTP_X_BIG", "x".repeat(MAX_HEADER_BYTES)]];
      const reply = await send(gateway, server.address, { uri: "/hello", extra });
      expect(gateway.parse(reply.bytes).status).toBe("431 Request Header Fields Too Large");
      await server.proc.waitForStderr(/answered 431: header block of \d+ bytes is over the limit/);
      await stillServes(gateway, server.address);
    });

    it("a header block declared far over the limit is answered 431 from its first bytes", async () => {
      const reply = await exchange(server.address, Buffer.alloc(0), {
        drive: (socket) => void socket.write(gateway.hugePrefix),
      });
      expect(gateway.parse(reply.bytes).status).toBe("431 Request Header Fields Too Large");
      await stillServes(gateway, server.address);
    });

    it("a CONTENT_LENGTH that is no number: 400", async () => {
      const extra: [string, string][] = [["CONTENT_LENGTH", "12abc"]];
      const reply = await send(gateway, server.address, { uri: "/hello", extra });
      expect(gateway.parse(reply.bytes).status).toBe("400 Bad Request");
      await server.proc.waitForStderr(/CONTENT_LENGTH "12abc" is no length/);
      await stillServes(gateway, server.address);
    });

    it("a body shorter than CONTENT_LENGTH (the peer half-closes): 400", async () => {
      const full = gateway.encode({ method: "POST", uri: "/sha256", body: Buffer.alloc(1000, 1) });
      const reply = await exchange(server.address, full.subarray(0, full.length - 900), {
        endAfterSend: true,
      });
      expect(gateway.parse(reply.bytes).status).toBe("400 Bad Request");
      await server.proc.waitForStderr(/request body ended 900 bytes short of CONTENT_LENGTH/);
      await stillServes(gateway, server.address);
    });

    it("a header block that stalls: 408 after --receive-timeout", async () => {
      const request = gateway.encode({ uri: "/hello" });
      const reply = await exchange(server.address, Buffer.alloc(0), {
        drive: (socket) => void socket.write(request.subarray(0, 10)),
      });
      expect(gateway.parse(reply.bytes).status).toBe("408 Request Timeout");
      await server.proc.waitForStderr(/no input for 0\.5 s in its header block/);
      await stillServes(gateway, server.address);
    });

    it("a body that stalls while the application reads it: 408", async () => {
      const full = gateway.encode({ method: "POST", uri: "/sha256", body: Buffer.alloc(1000, 1) });
      const reply = await exchange(server.address, Buffer.alloc(0), {
        drive: (socket) => void socket.write(full.subarray(0, full.length - 500)),
      });
      expect(gateway.parse(reply.bytes).status).toBe("408 Request Timeout");
      await server.proc.waitForStderr(/no input for 0\.5 s in its body, giving up/);
      await stillServes(gateway, server.address);
    });

    it("a connection cut in the middle of its header block is closed with a log line", async () => {
      const request = gateway.encode({ uri: "/hello" });
      const reply = await exchange(server.address, request.subarray(0, 12), { endAfterSend: true });
      expect(reply.bytes.length).toBe(0);
      await server.proc.waitForStderr(/connection closed in the middle of a header block/);
      await stillServes(gateway, server.address);
    });
  });

  describe(`tsgi ${gateway.command}: bounded memory`, () => {
    it("a 100 MiB upload streams through with backpressure (RSS at most 16 MiB above where it started)", async () => {
      const size = 100 * 1024 * 1024;
      // The length goes in again after the usual variables: the last one counts.
      const withLength = gateway.encode({
        method: "POST",
        uri: "/sha256",
        body: Buffer.alloc(0),
        extra: [["CONTENT_LENGTH", String(size)]],
      });
      const before = server.proc.rssKb() ?? 0;
      const rss = sampleRss(server.proc);
      const hash = createHash("sha256");
      const reply = await exchange(server.address, Buffer.alloc(0), {
        timeoutMs: 60_000,
        drive: streamBody(withLength, size, (chunk, offset) =>
          hash.update(chunk.fill((offset >>> 20) & 0xff)),
        ),
      });
      const growthMb = (rss.stop() - before) / 1024;
      expect(JSON.parse(gateway.parse(reply.bytes).body.toString())).toEqual({
        length: size,
        sha256: hash.digest("hex"),
      });
      expect(growthMb).toBeLessThanOrEqual(16);
    }, 60_000);

    it("a peer that stops reading a 2 GiB response: the server does not buffer it (RSS growth < 100 MB)", async () => {
      const from = server.proc.stderr.length;
      const before = server.proc.rssKb() ?? 0;
      const rss = sampleRss(server.proc);
      const socket = connect(server.address);
      let received = 0;
      socket.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received > 1024 * 1024) socket.pause();
      });
      socket.on("error", () => {});
      socket.write(gateway.encode({ uri: `/stream?bytes=${2 * 1024 * 1024 * 1024}&tag=stalled` }));
      await sleep(1500);
      expect(received).toBeLessThan(64 * 1024 * 1024);
      expect((rss.stop() - before) / 1024).toBeLessThan(100);
      socket.destroy();
      await server.proc.waitForStderr(/stream finally tag=stalled/, 3000, from);
      await stillServes(gateway, server.address);
    });
  });

  describe(`tsgi ${gateway.command}: operations options`, () => {
    let own: TsgiFcgi;
    beforeAll(async () => {
      own = await startTsgiServer(group, gateway.command, {
        listen: "tcp",
        args: [
          ...["--status-path", "/tsgi-status", "--ping-path", "/ping"],
          ...["--request-timeout", "0.4", "--slow-request", "0.2"],
        ],
      });
    });

    it("--ping-path and --status-path are answered by tsgi itself", async () => {
      const ping = gateway.parse((await send(gateway, own.address, { uri: "/ping" })).bytes);
      expect(ping.body.toString()).toBe("pong\n");
      const status = gateway.parse(
        (await send(gateway, own.address, { uri: "/tsgi-status?json" })).bytes,
      );
      expect(JSON.parse(status.body.toString())).toMatchObject({
        "process manager": "single process",
      });
    });

    it("--slow-request logs, --request-timeout answers 504", async () => {
      const reply = await send(gateway, own.address, { uri: "/slow?ms=3000" });
      expect(gateway.parse(reply.bytes).status).toBe("504 Gateway Timeout");
      await own.proc.waitForStderr(/slow request: still running after 0\.2 s: GET \/slow/);
      await own.proc.waitForStderr(
        /request timed out after 0\.\d s \(--request-timeout\), answered 504/,
      );
      await stillServes(gateway, own.address);
    });

    it("beyond --concurrency, a request is answered 503 and logged; later ones are served", async () => {
      const busy = await startTsgiServer(group, gateway.command, {
        listen: "tcp",
        args: ["--concurrency", "1"],
      });
      const slow = send(gateway, busy.address, { uri: "/slow?ms=600" });
      await sleep(200);
      const refused = await send(gateway, busy.address, { uri: "/hello" });
      expect(gateway.parse(refused.bytes).status).toBe("503 Service Unavailable");
      await busy.proc.waitForStderr(/overloaded: answered 503/);
      expect(gateway.parse((await slow).bytes).body.toString()).toBe("slept 600\n");
      await stillServes(gateway, busy.address);
    });

    it("--max-requests 3: a single process exits 0 after its third request", async () => {
      const retiring = await startTsgiServer(group, gateway.command, {
        listen: "tcp",
        args: ["--max-requests", "3"],
      });
      for (let i = 0; i < 3; i++) await stillServes(gateway, retiring.address);
      expect((await retiring.proc.waitForExit()).code).toBe(0);
      await retiring.proc.waitForStderr(/served 3 requests \(--max-requests\)/);
    });
  });

  describe(`tsgi ${gateway.command}: process management`, () => {
    it("SIGTERM: the request in flight finishes, then the process exits 0", async () => {
      const own = await startTsgiServer(group, gateway.command, { listen: "tcp" });
      const pending = send(gateway, own.address, { uri: "/slow?ms=800" });
      await sleep(300);
      own.proc.signal("SIGTERM");
      const response = gateway.parse((await pending).bytes);
      expect(response.body.toString()).toBe("slept 800\n");
      expect((await own.proc.waitForExit()).code).toBe(0);
      await expect(connectRefused(own.address)).resolves.toBe(true);
    });

    it("--workers 2: two worker processes serve on the shared socket; SIGHUP replaces them", async () => {
      const own = await startTsgiServer(group, gateway.command, {
        args: ["--workers", "2"],
        waitReady: false,
      });
      await waitForListening(own.address, 10_000, () => own.proc.running);
      const pids = new Set<number>();
      for (let i = 0; i < 40 && pids.size < 2; i++) {
        const requests = Array.from({ length: 4 }, () =>
          send(gateway, own.address, { uri: "/inspect" }),
        );
        for (const reply of await Promise.all(requests))
          pids.add((JSON.parse(gateway.parse(reply.bytes).body.toString()) as { pid: number }).pid);
      }
      expect(pids.size).toBe(2);
      expect(pids.has(own.proc.pid ?? 0)).toBe(false);
      // SIGHUP: new workers take over and the old ones exit.
      own.proc.signal("SIGHUP");
      await own.proc.waitForStderr(/SIGHUP: starting new workers/);
      const deadline = Date.now() + 10_000;
      while ([...pids].some((pid) => alive(pid)) && Date.now() < deadline) await sleep(100);
      expect([...pids].filter((pid) => alive(pid))).toEqual([]);
      const after = await send(gateway, own.address, { uri: "/inspect" });
      const pid = (JSON.parse(gateway.parse(after.bytes).body.toString()) as { pid: number }).pid;
      expect(pids.has(pid)).toBe(false);
    });
  });
}

function connectRefused(address: ServerAddress): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(address);
    socket.on("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.on("error", () => resolve(true));
  });
}

/** What the application saw of its request (the fixture's /inspect route). */
export async function inspect(
  gateway: GatewayUnderTest,
  address: ServerAddress,
  shape: RequestShape,
  options?: ExchangeOptions,
): Promise<Record<string, string>> {
  const reply = await send(gateway, address, shape, options);
  return (
    JSON.parse(gateway.parse(reply.bytes).body.toString()) as { environ: Record<string, string> }
  ).environ;
}
