// TypeScript applications (.ts, .mts, .cts, top-level await) under each
// gateway run from the command line: `tsgi cgi`, `tsgi fcgi` and `tsgi serve`
// compile them with esbuild into a cache directory elsewhere, yet imports,
// node_modules, import.meta, __dirname and stack traces all name the source.
// Needs `npm run build` first.

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLEAN_PATH, REPO, runCgi, TSGI_BIN } from "./helpers/cgi.js";
import { FastCgiClient, paramsFor } from "./helpers/fastcgi-client.js";
import { fetchHttp } from "./helpers/frontends.js";
import { ProcessGroup, sleep, startTsgiFcgi, tempDir, type Proc, type TsgiFcgi } from "./helpers/servers.js";
import { APPS, EXPECTED_REPORTS, throwLogPattern, tsFixture } from "./helpers/typescript.js";

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

interface Answer {
  status: string;
  body: string;
}

/** One gateway serving the fixtures: `get(app, path)` answers; `log(app)` is where its errors went. */
interface Gateway {
  get(app: string, path: string): Promise<Answer>;
  log(app: string): Promise<string>;
}

function cgiGateway(cacheDir: string): Gateway {
  const stderr = new Map<string, string>();
  return {
    async get(app, path) {
      const result = await runCgi({ module: tsFixture(app), vars: { PATH_INFO: path, TSGI_CACHE_DIR: cacheDir }, timeoutMs: 20_000 });
      stderr.set(app, result.stderr);
      return { status: result.response!.status, body: result.response!.body.toString("utf8") };
    },
    log: async (app) => stderr.get(app) ?? "",
  };
}

function fcgiGateway(cacheDir: string): Gateway {
  const servers = new Map<string, Promise<TsgiFcgi>>();
  const server = (app: string) => {
    if (!servers.has(app)) servers.set(app, startTsgiFcgi(group, { app: tsFixture(app), listen: "tcp", args: ["--cache-dir", cacheDir] }));
    return servers.get(app)!;
  };
  return {
    async get(app, path) {
      const { address } = await server(app);
      const client = await FastCgiClient.connect(address);
      try {
        const response = (await client.request({ params: paramsFor(path), timeoutMs: 10_000 })).response();
        return { status: response.status, body: response.body.toString("utf8") };
      } finally {
        client.destroy();
      }
    },
    log: async (app) => (await server(app)).proc.stderr,
  };
}

/** `tsgi serve <module> --port 0 --cache-dir <cacheDir>`, once it listens. */
async function startServe(module: string, cacheDir: string): Promise<{ proc: Proc; port: number }> {
  const proc = group.spawn("tsgi serve", process.execPath, [TSGI_BIN, "serve", module, "--port", "0", "--cache-dir", cacheDir], { env: { PATH: CLEAN_PATH } });
  const match = await proc.waitForStderr(/serving \S+ on http:\/\/127\.0\.0\.1:(\d+)\//, 20_000);
  return { proc, port: Number(match[1]) };
}

function serveGateway(cacheDir: string): Gateway {
  const servers = new Map<string, Promise<{ proc: Proc; port: number }>>();
  const server = (app: string) => {
    if (!servers.has(app)) servers.set(app, startServe(tsFixture(app), cacheDir));
    return servers.get(app)!;
  };
  return {
    async get(app, path) {
      const { port } = await server(app);
      const result = await fetchHttp(`http://127.0.0.1:${port}${path}`);
      return { status: String(result.status), body: result.body.toString("utf8") };
    },
    log: async (app) => (await server(app)).proc.stderr,
  };
}

const GATEWAYS: Record<string, (cacheDir: string) => Gateway> = {
  "tsgi cgi": cgiGateway,
  "tsgi fcgi": fcgiGateway,
  "tsgi serve": serveGateway,
};

for (const [name, makeGateway] of Object.entries(GATEWAYS)) {
  describe(`TypeScript applications under \`${name}\``, () => {
    let gateway: Gateway;
    beforeAll(() => {
      gateway = makeGateway(tempDir(group, "tsgi-ts-cache-"));
    });

    it.each(APPS)("%s answers with what it imported and read beside itself, and its own names", async (app) => {
      const answer = await gateway.get(app, "/");
      expect(answer.status, answer.body).toMatch(/^200/);
      expect(JSON.parse(answer.body)).toEqual(EXPECTED_REPORTS[app]);
    });

    it.each(APPS)("%s: an exception's stack trace names the source file, line and column", async (app) => {
      const answer = await gateway.get(app, "/throw");
      expect(answer.status).toMatch(/^500/);
      // A server may write the line just after it answered.
      const deadline = Date.now() + 5000;
      while (!throwLogPattern(app).test(await gateway.log(app)) && Date.now() < deadline) await sleep(50);
      expect(await gateway.log(app)).toMatch(throwLogPattern(app));
    });
  });
}

describe("examples/hello.ts", () => {
  it("answers under `tsgi cgi` and `tsgi serve`", async () => {
    const cacheDir = tempDir(group, "tsgi-ts-cache-");
    const hello = join(REPO, "examples", "hello.ts");
    const cgi = await runCgi({ module: hello, vars: { TSGI_CACHE_DIR: cacheDir }, timeoutMs: 20_000 });
    expect([cgi.response?.status, cgi.response?.body.toString()]).toEqual(["200 OK", "Hello, world!\n"]);
    const { port } = await startServe(hello, cacheDir);
    const served = await fetchHttp(`http://127.0.0.1:${port}/`);
    expect([served.status, served.body.toString()]).toEqual([200, "Hello, world!\n"]);
  });
});
