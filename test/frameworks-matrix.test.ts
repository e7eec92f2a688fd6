// Real Express 4, Express 5, Koa, Fastify and Hono applications
// (test/fixtures/frameworks/) under every gateway: `tsgi cgi` spawned with a
// CGI environment, `tsgi fcgi` behind a real nginx at / and under a prefix
// (fastcgi_split_path_info), and `tsgi serve`, alone and with --workers 2
// behind nginx proxy_pass at a prefix (examples/deploy/nginx-proxy). One server
// per framework per gateway, reused by every case. Needs `npm run build` first.

import { randomBytes, randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256 } from "./helpers/bytes.js";
import { readText, type HttpResult } from "./helpers/frontends.js";
import {
  FRAMEWORKS,
  GATEWAYS,
  type Deployment,
  type Framework,
  type Gateway,
} from "./helpers/frameworks.js";
import { ProcessGroup, sleep, tempDir } from "./helpers/processes.js";
import { SSE_FIRST, SSE_SECOND } from "./fixtures/frameworks/shared.js";

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

const dir = tempDir(group, "tsgi-frameworks-");
const eventsFile = join(dir, "events.log");
writeFileSync(eventsFile, "");
const context = {
  group,
  env: { FRAMEWORKS_EVENTS: eventsFile, TSGI_CACHE_DIR: join(dir, "cache") },
};

/** A multipart/form-data body with one text field and one file. */
function multipart(file: Buffer): { body: Buffer; type: string } {
  const boundary = `----tsgi${randomUUID()}`;
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="data.bin"\r\n` +
        `Content-Type: application/octet-stream\r\n\r\n`,
    ),
    file,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}

function json(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    throw new Error(`not JSON: ${body.toString("utf8").slice(0, 300)}`);
  }
}

/** Waits (bounded) for the apps' side channel to hold a line starting with `id`. */
async function eventFor(id: string, timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = readText(eventsFile)
      .split("\n")
      .find((entry) => entry.startsWith(`${id} `));
    if (line || Date.now() > deadline) return line;
    await sleep(50);
  }
}

type Case = "leave" | "form" | "upload";

/**
 * Cases that fail today for a known cause, each run with
 * `it.fails`: still a real assertion, which turns red once the cause is fixed
 * (then its entry goes).
 */
const KNOWN_GAPS: { cases: Case[]; gateways: RegExp; frameworks: RegExp; cause: string }[] = [
  {
    cases: ["leave"],
    gateways: /^tsgi cgi$/,
    frameworks: /./,
    cause:
      "a CGI program has no channel to its web server but stdin and stdout: it learns that stdout was closed only when it writes (EPIPE)",
  },
];

function knownGap(gateway: Gateway, framework: Framework, name: Case): string | undefined {
  return KNOWN_GAPS.find(
    (gap) =>
      gap.cases.includes(name) &&
      gap.gateways.test(gateway.name) &&
      gap.frameworks.test(framework.name),
  )?.cause;
}

/** One framework under one gateway, with the shorthands its cases use. */
interface Cell {
  framework: Framework;
  app: () => Deployment;
  /** `it`, or `it.fails` for a known gap (see KNOWN_GAPS). */
  test: (name: Case) => (title: string, body: () => Promise<void>) => void;
  get: (path: string) => Promise<HttpResult>;
  post: (path: string, type: string, body: Buffer) => Promise<HttpResult>;
}

function cellFor(gateway: Gateway, framework: Framework, app: () => Deployment): Cell {
  return {
    framework,
    app,
    test: (name) => (title, body) =>
      knownGap(gateway, framework, name) ? it.fails(title, body) : it(title, body),
    get: (path) => app().request(app().mount + path),
    post: (path, type, body) =>
      app().request(app().mount + path, {
        method: "POST",
        body,
        headers: { "Content-Type": type },
      }),
  };
}

/** Routing below the mount point, and what the app is told about it. */
function routingCases({ framework, app, get }: Cell): void {
  it("routes on the path below the mount point, with the query string", async () => {
    const result = await get("/hello/world?x=1&y=%C3%A9");
    expect(result.status, result.body.toString("utf8").slice(0, 300)).toBe(200);
    expect(json(result.body)).toMatchObject({
      name: "world",
      query: { x: "1", y: "é" },
      path: "/hello/world",
    });
    expect((await get("/nowhere")).status).toBe(404);
  });

  it(
    framework.node
      ? "req.baseUrl is the mount point and req.originalUrl the whole path and query"
      : "the environ (c.env) gives the mount point as SCRIPT_NAME",
    async () => {
      const mount = app().mount;
      const result = await get("/hello/world?x=1");
      expect(result.status).toBe(200);
      if (framework.node)
        expect(json(result.body)).toMatchObject({
          baseUrl: mount,
          originalUrl: `${mount}/hello/world?x=1`,
        });
      else expect(json(result.body)).toMatchObject({ scriptName: mount });
    },
  );
}

/** JSON, urlencoded and multipart request bodies. */
function requestBodyCases({ test, post }: Cell): void {
  it("a JSON POST is parsed by the framework", async () => {
    const sent = { list: [1, 2], text: "café" };
    const result = await post("/json", "application/json", Buffer.from(JSON.stringify(sent)));
    expect(result.status, result.body.toString("utf8").slice(0, 300)).toBe(200);
    expect(json(result.body)).toEqual({ received: sent });
  });

  test("form")("an urlencoded POST is parsed", async () => {
    const form = Buffer.from("a=1&b=caf%C3%A9&c=x+y");
    const result = await post("/form", "application/x-www-form-urlencoded", form);
    expect(result.status, result.body.toString("utf8").slice(0, 300)).toBe(200);
    expect(json(result.body)).toEqual({ received: { a: "1", b: "café", c: "x y" } });
  });

  test("upload")(
    "a multipart upload of a few MiB is parsed with busboy and hashed by the app",
    async () => {
      const file = randomBytes(3 * 1024 * 1024 + 7);
      const { body, type } = multipart(file);
      const result = await post("/upload", type, body);
      expect(result.status, result.body.toString("utf8").slice(0, 300)).toBe(200);
      expect(json(result.body)).toEqual({
        fields: { note: "hello" },
        files: [{ field: "file", filename: "data.bin", size: file.length, sha256: sha256(file) }],
      });
    },
  );
}

/** Cookies, redirects, HEAD and a streamed response. */
function responseCases({ app, get }: Cell): void {
  it("several Set-Cookie headers stay apart", async () => {
    const result = await get("/cookies");
    expect(result.status).toBe(200);
    const cookies = result.headers["set-cookie"] ?? [];
    expect(cookies).toHaveLength(2);
    expect(cookies[0]).toMatch(/^first=1;/);
    expect(cookies[1]).toMatch(/^second=2;/);
  });

  it("a redirect points right under the mount point, and that URL is served", async () => {
    const result = await get("/redirect");
    expect(result.status).toBe(302);
    const location = result.headers.location ?? "";
    expect(location).toBe(`${app().mount}/hello/redirected`);
    const followed = await app().request(location);
    expect(followed.status).toBe(200);
    expect(json(followed.body)).toMatchObject({ name: "redirected" });
  });

  it("HEAD answers the GET's status and headers with no body", async () => {
    const result = await app().request(app().mount + "/hello/world", { method: "HEAD" });
    expect(result.status).toBe(200);
    expect(result.headers["content-type"]).toMatch(/^application\/json/);
    expect(result.body.length).toBe(0);
  });

  it("a streamed response arrives whole", async () => {
    const result = await get("/stream");
    expect(result.status).toBe(200);
    expect(result.headers["content-type"]).toMatch(/^text\/plain/);
    // Sent as written: no length is known up front.
    expect(result.headers["content-length"]).toBeUndefined();
    expect(result.body.toString("utf8")).toBe("part 1\npart 2\npart 3\n");
  });
}

/** Server-Sent Events, an exception, and the client going away. */
function streamingCases({ framework, app, test, get }: Cell): void {
  it("Server-Sent Events: the first event arrives while the stream is still open", async () => {
    const stream = await app().open(app().mount + "/sse?wait=1000");
    expect(stream.status).toBe(200);
    expect(stream.headers["content-type"]).toMatch(/^text\/event-stream/);
    await stream.waitFor("data: first", 800);
    expect(stream.ended).toBe(false);
    expect(stream.received().toString("utf8")).not.toContain("data: second");
    await Promise.race([stream.finished, sleep(5000)]);
    expect(stream.ended).toBe(true);
    expect(stream.received().toString("utf8")).toBe(SSE_FIRST + SSE_SECOND);
  });

  it("an exception in a route gives the framework's 500 and a log line; the next request is served", async () => {
    const marker = `boom in ${framework.name}`;
    const logged = () => app().log().split(marker).length - 1;
    const before = logged();
    const result = await get("/throw");
    expect(result.status).toBe(500);
    expect(result.body.toString("utf8")).toMatch(framework.errorBody);
    const deadline = Date.now() + 5000;
    while (logged() === before && Date.now() < deadline) await sleep(50);
    expect(logged(), `the log holds:\n${app().log().slice(-2000)}`).toBeGreaterThan(before);
    expect((await get("/hello/again")).status).toBe(200);
  });

  test("leave")(
    framework.node
      ? "the client going away mid-stream fires res 'close' before the app writes again"
      : "the client going away mid-stream fires the Request's AbortSignal before the app writes again",
    async () => {
      const id = `${framework.name}-${randomUUID()}`;
      const stream = await app().open(`${app().mount}/abandon?id=${id}`);
      await stream.waitFor("started\n", 3000);
      stream.abandon();
      // The app waits 8 s before it writes again: the event must come from the gateway seeing the client leave.
      const event = await eventFor(id, 2000);
      expect(event, "the app never learned that the client left").toBeDefined();
      expect(event).toBe(framework.node ? `${id} close ended=false` : `${id} abort`);
    },
  );
}

for (const gateway of GATEWAYS) {
  describe.skipIf(!gateway.available)(gateway.name, () => {
    for (const framework of FRAMEWORKS) {
      describe(framework.name, { timeout: 20_000 }, () => {
        let deployment: Deployment;
        beforeAll(async () => {
          deployment = await gateway.start(context, framework);
        }, 30_000);
        const cell = cellFor(gateway, framework, () => deployment);
        routingCases(cell);
        requestBodyCases(cell);
        responseCases(cell);
        streamingCases(cell);
      });
    }
  });
}
