// TypeScript applications (.ts, .mts, .cts, top-level await) under each
// gateway run from the command line: `tsgi cgi`, `tsgi fcgi` and `tsgi serve`
// compile them with esbuild into a cache directory elsewhere, yet imports,
// node_modules, import.meta, __dirname and stack traces all name the source.
// Needs `npm run build` first.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CLEAN_PATH,
  ProcessGroup,
  REPO,
  sleep,
  tempDir,
  TSGI_BIN,
  type Proc,
} from "./helpers/processes.js";
import { runCgi } from "./helpers/cgi.js";
import { fetchHttp } from "./helpers/frontends.js";
import { startTsgiFcgi, type TsgiFcgi } from "./helpers/tsgi.js";
import { APPS, EXPECTED_REPORTS, throwLogPattern, tsFixture } from "./helpers/typescript.js";
import { FastCgiClient, paramsFor } from "./helpers/fastcgi-client.js";

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
      const result = await runCgi({
        module: tsFixture(app),
        vars: { PATH_INFO: path, TSGI_CACHE_DIR: cacheDir },
        timeoutMs: 20_000,
      });
      stderr.set(app, result.stderr);
      return { status: result.response!.status, body: result.response!.body.toString("utf8") };
    },
    log: async (app) => stderr.get(app) ?? "",
  };
}

function fcgiGateway(cacheDir: string): Gateway {
  const servers = new Map<string, Promise<TsgiFcgi>>();
  const server = (app: string) => {
    if (!servers.has(app))
      servers.set(
        app,
        startTsgiFcgi(group, {
          app: tsFixture(app),
          listen: "tcp",
          args: ["--cache-dir", cacheDir],
        }),
      );
    return servers.get(app)!;
  };
  return {
    async get(app, path) {
      const { address } = await server(app);
      const client = await FastCgiClient.connect(address);
      try {
        const response = (
          await client.request({ params: paramsFor(path), timeoutMs: 10_000 })
        ).response();
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
  const proc = group.spawn(
    "tsgi serve",
    process.execPath,
    [TSGI_BIN, "serve", module, "--port", "0", "--cache-dir", cacheDir],
    { env: { PATH: CLEAN_PATH } },
  );
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

    it.each(APPS)(
      "%s answers with what it imported and read beside itself, and its own names",
      async (app) => {
        const answer = await gateway.get(app, "/");
        expect(answer.status, answer.body).toMatch(/^200/);
        expect(JSON.parse(answer.body)).toEqual(EXPECTED_REPORTS[app]);
      },
    );

    it.each(APPS)(
      "%s: an exception's stack trace names the source file, line and column",
      async (app) => {
        const answer = await gateway.get(app, "/throw");
        expect(answer.status).toMatch(/^500/);
        // A server may write the line just after it answered.
        const deadline = Date.now() + 5000;
        while (!throwLogPattern(app).test(await gateway.log(app)) && Date.now() < deadline)
          await sleep(50);
        expect(await gateway.log(app)).toMatch(throwLogPattern(app));
      },
    );
  });
}

describe("examples/hello.ts", () => {
  it("answers under `tsgi cgi` and `tsgi serve`", async () => {
    const cacheDir = tempDir(group, "tsgi-ts-cache-");
    const hello = join(REPO, "examples", "hello.ts");
    const cgi = await runCgi({
      module: hello,
      vars: { TSGI_CACHE_DIR: cacheDir },
      timeoutMs: 20_000,
    });
    expect([cgi.response?.status, cgi.response?.body.toString()]).toEqual([
      "200 OK",
      "Hello, world!\n",
    ]);
    const { port } = await startServe(hello, cacheDir);
    const served = await fetchHttp(`http://127.0.0.1:${port}/`);
    expect([served.status, served.body.toString()]).toEqual([200, "Hello, world!\n"]);
  });
});

describe("TypeScript support stays out of the way of JavaScript", () => {
  it("`tsgi cgi` with a .js application: none of it is in cgi-bundle.cjs, and its own bundle is not loaded", async () => {
    // Every CGI request pays the start-up of what cgi-bundle.cjs holds.
    expect(readFileSync(join(REPO, "dist", "cli", "cgi-bundle.cjs"), "utf8")).not.toContain(
      "TypeScript compile cache",
    );
    const result = await runCgi({
      module: join(REPO, "examples", "hello.js"),
      vars: { NODE_DEBUG: "module" },
      timeoutMs: 20_000,
    });
    expect(result.response?.status, result.stderr).toBe("200 OK");
    expect(result.stderr).not.toContain("typescript-bundle.cjs");
  });

  it("importing and requiring tsgi as a library leaves Node's module loader and stack traces as they were", () => {
    const state =
      'JSON.stringify({ ts: typeof require.extensions[".ts"], sourceMaps: process.sourceMapsEnabled, stacks: String(Error.prepareStackTrace) })';
    const script = `const before = ${state}; import("tsgi").then(() => { require("tsgi"); require("tsgi/cgi"); console.log(JSON.stringify([before, ${state}])); })`;
    const result = spawnSync(process.execPath, ["-e", script], {
      cwd: REPO,
      env: { PATH: CLEAN_PATH },
      timeout: 20_000,
      encoding: "utf8",
    });
    expect(result.status, result.stderr).toBe(0);
    const [before, after] = JSON.parse(result.stdout) as [string, string];
    expect(JSON.parse(after)).toEqual(JSON.parse(before));
    expect(JSON.parse(after)).toMatchObject({ ts: "undefined", sourceMaps: false });
  });
});

describe("stack traces through several TypeScript files", () => {
  /** `file:line:column` of `needle` in a fixture, as a stack frame names it. */
  const placeOf = (name: string, needle: string) => {
    const lines = readFileSync(tsFixture(name), "utf8").split("\n");
    const line = lines.findIndex((text) => text.includes(needle));
    return `${tsFixture(name)}:${line + 1}:${lines[line].indexOf(needle) + 1}`;
  };

  it("each frame in a .ts file names its source line, frames elsewhere stay as they were", async () => {
    const result = await runCgi({
      module: tsFixture("deep-throw.ts"),
      vars: { PATH_INFO: "/x", TSGI_CACHE_DIR: tempDir(group, "tsgi-ts-cache-") },
      timeoutMs: 20_000,
    });
    expect(result.response?.status).toMatch(/^500/);
    const frames = result.stderr.split("\n").filter((line) => line.startsWith("    at "));
    expect(result.stderr).toContain("error in application: Error: failed: /x\n");
    expect(frames[0]).toBe(`    at fail (${placeOf("thrower.ts", "new Error")})`);
    expect(frames[1]).toBe(`    at handle (${placeOf("deep-throw.ts", "fail({")})`);
    expect(frames[2]).toBe(`    at app (${placeOf("deep-throw.ts", "handle(environ")})`);
    expect(frames[3]).toMatch(/ \(\S+[\\/]dist[\\/]cli[\\/]cgi-bundle\.cjs:\d+:\d+\)$/);
  });
});
