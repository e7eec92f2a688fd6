// `tsgi build`: an application, its node_modules and the CGI gateway in one
// file, run as a CGI program from a folder with no node_modules anywhere
// above it, alone and under a real Apache httpd.

import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FIXTURES, ProcessGroup, REPO, tempDir, TSGI_BIN } from "./helpers/processes.js";
import { runCgi } from "./helpers/cgi.js";
import { startApache, type Apache } from "./helpers/apache.js";
import { writeFile } from "./helpers/frontends.js";
import { findBinary } from "./helpers/available.js";

const BUILD_FIXTURES = join(FIXTURES, "build");
const group = new ProcessGroup();
afterAll(() => group.cleanUp());

function tsgiBuild(spec: string, out: string, cwd = REPO) {
  return spawnSync(process.execPath, [TSGI_BIN, "build", spec, "--out", out], {
    cwd,
    encoding: "utf8",
    timeout: 60_000,
  });
}

/** Builds `spec` and copies only the output into a fresh folder; returns its path there. */
function buildAlone(spec: string): string {
  const out = join(tempDir(group, "tsgi-build-out-"), "app.cgi.cjs");
  const result = tsgiBuild(spec, out);
  expect(result.status, result.stderr).toBe(0);
  const alone = join(tempDir(group, "tsgi-build-run-"), "app.cgi.cjs");
  copyFileSync(out, alone);
  for (let dir = dirname(alone); dir !== dirname(dir); dir = dirname(dir))
    expect(existsSync(join(dir, "node_modules"))).toBe(false);
  return alone;
}

const run = (bundle: string, vars: Record<string, string | undefined>, stdin?: string) =>
  runCgi({ command: [process.execPath, bundle], vars: { SCRIPT_NAME: "", ...vars }, stdin });

describe("tsgi build: the bundle as a CGI program", () => {
  let express: string;
  let hono: string;
  beforeAll(() => {
    express = buildAlone(join(BUILD_FIXTURES, "express-app.ts"));
    hono = buildAlone(join(BUILD_FIXTURES, "hono-app.ts"));
  });

  it("runs an Express app written in TypeScript; its top-level console.log goes to stderr, not into the response", async () => {
    const result = await run(express, { PATH_INFO: "/hello" });
    expect(result.code, result.stderr).toBe(0);
    expect(result.response!.status).toMatch(/^200/);
    expect(result.response!.body.toString()).toBe("hello from express\n");
    expect(result.stderr).toContain("loading the application");
  });

  it("gives the Express app the request from the CGI environ", async () => {
    const vars = {
      PATH_INFO: "/request",
      QUERY_STRING: "a=1&b=two",
      HTTP_HOST: "example.test",
      HTTP_X_TEST: "yes",
    };
    const result = await run(express, vars);
    expect(JSON.parse(result.response!.body.toString())).toEqual({
      method: "GET",
      path: "/request",
      query: { a: "1", b: "two" },
      host: "example.test",
      header: "yes",
    });
  });

  it("gives the Express app a POST body", async () => {
    const body = JSON.stringify({ a: 1, text: "ünïcode" });
    const vars = {
      REQUEST_METHOD: "POST",
      PATH_INFO: "/json",
      CONTENT_TYPE: "application/json",
      CONTENT_LENGTH: String(Buffer.byteLength(body)),
    };
    const result = await run(express, vars, body);
    expect(JSON.parse(result.response!.body.toString())).toEqual({
      received: { a: 1, text: "ünïcode" },
    });
  });

  it("runs a Hono app through tsgi's fromFetchHandler: route, environ and POST body", async () => {
    const get = await run(hono, {
      PATH_INFO: "/greet/ada",
      QUERY_STRING: "lang=en",
      HTTP_HOST: "example.test",
    });
    expect(JSON.parse(get.response!.body.toString())).toEqual({
      name: "ada",
      lang: "en",
      url: "http://example.test/greet/ada?lang=en",
    });
    const post = await run(
      hono,
      {
        REQUEST_METHOD: "POST",
        PATH_INFO: "/echo",
        CONTENT_TYPE: "text/plain",
        CONTENT_LENGTH: "5",
      },
      "hello",
    );
    expect(post.response!.body.toString()).toBe("got 5 bytes: text/plain\n");
  });

  it("run from a shell, says it is not in a CGI environment and does not load the application", async () => {
    const result = await runCgi({ command: [process.execPath, express], bareEnvironment: true });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/not a CGI environment/);
    expect(result.stderr).not.toContain("loading the application");
  });
});

describe("tsgi build: kinds of modules", () => {
  it("bundles a .js app, picking an export by name", async () => {
    const bundle = buildAlone(`${join(FIXTURES, "named-exports.js")}:other`);
    const direct = await runCgi({ module: `${join(FIXTURES, "named-exports.js")}:other` });
    const result = await run(bundle, {});
    expect(result.code, result.stderr).toBe(0);
    expect(result.response!.body.toString()).toBe(direct.response!.body.toString());
  });

  it("points import.meta.url, import.meta.dirname, import.meta.filename and __dirname at the bundle file", async () => {
    const bundle = buildAlone(join(BUILD_FIXTURES, "beside.ts:application"));
    writeFileSync(join(dirname(bundle), "beside.txt"), "beside the bundle\n");
    const result = await run(bundle, {});
    expect(result.code, result.stderr).toBe(0);
    const seen = "beside the bundle";
    expect(JSON.parse(result.response!.body.toString())).toEqual({
      byUrl: seen,
      byDirname: seen,
      byMetaDirname: seen,
      filename: bundle,
    });
  });

  it("answers 500 with one line on stderr when the application throws while it loads", async () => {
    const bundle = buildAlone(join(BUILD_FIXTURES, "throws-at-load.mts"));
    const result = await run(bundle, {});
    expect(result.code).toBe(1);
    expect(result.response!.status).toMatch(/^500/);
    expect(result.stderr).toBe(
      "tsgi: cannot load application module throws-at-load.mts: configuration file missing\n",
    );
  });
});

describe("tsgi build: what cannot be bundled", () => {
  /** A project in a temp dir: app.ts importing `specifier`, and the fake native packages installed in its node_modules. */
  function project(specifier: string): string {
    const dir = tempDir(group, "tsgi-build-native-");
    cpSync(
      join(BUILD_FIXTURES, "native", "bindings-addon"),
      join(dir, "node_modules", "bindings-addon"),
      { recursive: true },
    );
    cpSync(
      join(BUILD_FIXTURES, "native", "gyp-addon"),
      join(dir, "node_modules", "@fake", "gyp-addon"),
      { recursive: true },
    );
    writeFileSync(
      join(dir, "app.ts"),
      `import addon from ${JSON.stringify(specifier)};\nexport default () => [String(addon)];\n`,
    );
    return dir;
  }

  for (const [name, loader] of [
    ["bindings-addon", "bindings"],
    ["@fake/gyp-addon", "node-gyp-build"],
  ] as const) {
    it(`refuses a package that loads a native addon through ${loader}, naming the package and what to do`, () => {
      const dir = project(name);
      const result = tsgiBuild("app.ts", "out.cjs", dir);
      expect(result.status).toBe(1);
      expect(result.stderr).toContain(`cannot bundle package "${name}"`);
      expect(result.stderr).toContain(`loads a native addon through "${loader}"`);
      expect(result.stderr).toMatch(
        /run it with `tsgi cgi`, or replace ".*" with a pure-JavaScript package/,
      );
      expect(existsSync(join(dir, "out.cjs"))).toBe(false);
    });
  }

  it("refuses a .node file the application requires, naming it", () => {
    const dir = project("./addon.node");
    writeFileSync(join(dir, "addon.node"), "");
    const result = tsgiBuild("app.ts", "out.cjs", dir);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(
      /app\.ts:1:\d+: cannot bundle \S*app\.ts: \.\/addon\.node is a native addon/,
    );
  });

  it("builds, but shows esbuild's warnings with file and line", () => {
    const dir = tempDir(group, "tsgi-build-warning-");
    writeFileSync(
      join(dir, "app.ts"),
      "const meta = import.meta;\nexport default () => [String(meta)];\n",
    );
    const result = tsgiBuild("app.ts", "out.cjs", dir);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/^tsgi: warning: app\.ts:1:14: "import\.meta" is not available/m);
  });

  it("names the file and line of a syntax error", () => {
    const dir = tempDir(group, "tsgi-build-syntax-");
    writeFileSync(join(dir, "app.ts"), "export default (\n");
    const result = tsgiBuild("app.ts", "out.cjs", dir);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^app\.ts:2:\d+: /m);
  });
});

describe("tsgi build --help", () => {
  it("describes the command, --out and the flags for a low memory limit", () => {
    const result = spawnSync(process.execPath, [TSGI_BIN, "build", "--help"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("Usage: tsgi build [options] <module>");
    expect(result.stdout).toContain("-o, --out <file>");
    expect(result.stdout).toContain("--jitless --no-expose-wasm");
  });
});

const apacheBinary = findBinary("apache2", "apache2");
const MODULES = process.env.TSGI_APACHE2_MODULES ?? "/usr/lib/apache2/modules";

describe.skipIf(!apacheBinary)("tsgi build: the bundle under Apache mpm_prefork + mod_cgi", () => {
  let apache: Apache;
  beforeAll(async () => {
    const bundle = buildAlone(join(BUILD_FIXTURES, "express-app.ts"));
    const dir = tempDir(group, "tsgi-build-apache-");
    const cgiDir = join(dir, "cgi");
    mkdirSync(cgiDir, { mode: 0o755 });
    writeFile(join(cgiDir, "app.cgi.cjs"), readFileSync(bundle, "utf8"));
    // The smallest wrapper: Apache runs a script, the script runs node on the bundle.
    writeFile(
      join(cgiDir, "app.cgi"),
      `#!/bin/sh\nexec '${process.execPath}' "$(dirname "$0")/app.cgi.cjs"\n`,
      0o755,
    );
    const config = [
      `ScriptAlias /app "${cgiDir}/app.cgi"`,
      `<Directory "${cgiDir}">`,
      "    Require all granted",
      "</Directory>",
    ];
    apache = await startApache(group, apacheBinary!, MODULES, {
      dir,
      mpm: "prefork",
      modules: ["cgi", "alias"],
      config: config.join("\n"),
    });
  });

  it("answers a GET with the request Apache passed, and a POST body", async () => {
    const get = await fetch(apache.url("/app/request?x=1"), {
      headers: { "X-Test": "through apache" },
      signal: AbortSignal.timeout(20_000),
    });
    expect(get.status).toBe(200);
    expect(await get.json()).toEqual({
      method: "GET",
      path: "/request",
      query: { x: "1" },
      host: "127.0.0.1",
      header: "through apache",
    });
    const body = JSON.stringify({ big: "x".repeat(100_000) });
    const post = await fetch(apache.url("/app/json"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body,
      signal: AbortSignal.timeout(20_000),
    });
    expect(await post.json()).toEqual({ received: JSON.parse(body) as unknown });
    expect(apache.errorLog()).toContain("loading the application");
  });
});
