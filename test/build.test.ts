// `tsgi build`: an application, its node_modules and the CGI gateway in one
// file, run as a CGI program from a folder with no node_modules anywhere above it.

import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FIXTURES, REPO, TSGI_BIN, runCgi } from "./helpers/cgi.js";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function temp(): string {
  const dir = mkdtempSync(join(tmpdir(), "tsgi-build-"));
  dirs.push(dir);
  return dir;
}

/** Builds `spec` and copies only the output to a fresh folder; returns its path there. */
function buildAlone(spec: string): string {
  const out = join(temp(), "app.cgi.cjs");
  const result = spawnSync(process.execPath, [TSGI_BIN, "build", spec, "--out", out], { cwd: REPO, encoding: "utf8" });
  expect(result.status, result.stderr).toBe(0);
  const alone = join(temp(), "app.cgi.cjs");
  copyFileSync(out, alone);
  expect(existsSync(join(alone, "..", "node_modules"))).toBe(false);
  return alone;
}

describe("tsgi build", () => {
  it("bundles an Express app written in TypeScript: it runs alone, reads a POST body, and its console.log stays out of the response", async () => {
    const bundle = buildAlone(join(FIXTURES, "build", "express-app.ts"));
    const get = await runCgi({ command: [process.execPath, bundle], vars: { PATH_INFO: "/hello", SCRIPT_NAME: "" } });
    expect(get.code).toBe(0);
    expect(get.response!.body.toString()).toBe("hello from express\n");
    expect(get.stderr).toContain("loading the application");
    const body = JSON.stringify({ a: 1 });
    const post = await runCgi({
      command: [process.execPath, bundle],
      vars: { REQUEST_METHOD: "POST", PATH_INFO: "/json", SCRIPT_NAME: "", CONTENT_TYPE: "application/json", CONTENT_LENGTH: String(body.length) },
      stdin: body,
    });
    expect(JSON.parse(post.response!.body.toString())).toEqual({ received: { a: 1 } });
  });

  it("bundles a Hono app through tsgi's fetch adapter", async () => {
    const bundle = buildAlone(join(FIXTURES, "build", "hono-app.ts"));
    const result = await runCgi({ command: [process.execPath, bundle], vars: { PATH_INFO: "/hello", SCRIPT_NAME: "" } });
    expect(result.response!.body.toString()).toBe("hello from hono\n");
  });

  it("bundles a .js app, and run from a shell the bundle says it is not in a CGI environment", async () => {
    const bundle = buildAlone(join(FIXTURES, "echo-body.js"));
    const result = await runCgi({ command: [process.execPath, bundle], vars: { REQUEST_METHOD: "POST", CONTENT_LENGTH: "3" }, stdin: "abc" });
    expect(result.response!.body.subarray(0, 3).toString()).toBe("abc");
    const shell = await runCgi({ command: [process.execPath, bundle], bareEnvironment: true });
    expect(shell.code).toBe(2);
    expect(shell.stderr).toMatch(/not a CGI environment/);
  });

  it("refuses a native addon, naming it", () => {
    const dir = temp();
    writeFileSync(join(dir, "addon.node"), "");
    writeFileSync(join(dir, "app.js"), 'const addon = require("./addon.node");\nmodule.exports = () => [];\n');
    const result = spawnSync(process.execPath, [TSGI_BIN, "build", join(dir, "app.js"), "--out", join(dir, "out.cjs")], { encoding: "utf8" });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/addon\.node is a native addon \(imported by .*app\.js\): it cannot be bundled/);
    expect(existsSync(join(dir, "out.cjs"))).toBe(false);
  });

  it("names the file and line of a syntax error", () => {
    const dir = temp();
    writeFileSync(join(dir, "app.ts"), "export default (\n");
    const result = spawnSync(process.execPath, [TSGI_BIN, "build", join(dir, "app.ts"), "--out", join(dir, "out.cjs")], { encoding: "utf8" });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/app\.ts:2:\d+: /);
  });
});
