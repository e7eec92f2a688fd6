// The compile cache behind TypeScript applications under `tsgi cgi`: a start
// on a warm cache runs the stored file without loading esbuild, a changed
// source is compiled again, 20 processes starting together on a cold cache
// all answer, an unwritable cache directory still works with one line on
// stderr, and where the cache goes by default. Needs `npm run build` first.

import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isRoot, ProcessGroup, tempDir, TSGI_BIN } from "./helpers/processes.js";
import { runCgi, type CgiRequest, type CgiResult } from "./helpers/cgi.js";
import { WEB_GROUP, WEB_USER } from "./helpers/frontends.js";
import {
  cacheFiles,
  cacheIdentities,
  EXPECTED_REPORTS,
  LOADS_ESBUILD,
  tsFixture,
} from "./helpers/typescript.js";

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

const APP = tsFixture("app.ts");

function get(
  module: string,
  vars: Record<string, string>,
  extra: Partial<CgiRequest> = {},
): Promise<CgiResult> {
  return runCgi({ module, vars, timeoutMs: 30_000, ...extra });
}

function expectAppReport(result: CgiResult): void {
  expect(result.response?.status, result.stderr).toBe("200 OK");
  expect(JSON.parse(result.response!.body.toString("utf8"))).toEqual(EXPECTED_REPORTS["app.ts"]);
}

/** A two-file application in a directory of its own, which a test may change. */
function smallApp(dir: string, word: string): string {
  writeFileSync(join(dir, "word.ts"), `export const word: string = "${word}";\n`);
  const app = join(dir, "app.ts");
  writeFileSync(
    app,
    'import { word } from "./word.js";\n' +
      "export default (environ: object, startResponse: (status: string, headers: [string, string][]) => void): string[] => {\n" +
      '  startResponse("200 OK", [["Content-Type", "text/plain"]]);\n' +
      "  return [word];\n" +
      "};\n",
  );
  return app;
}

describe("the compile cache", () => {
  it("a second start runs from the cache: the same files, untouched, and esbuild never loaded", async () => {
    const cacheDir = tempDir(group, "tsgi-ts-cache-");
    const cold = await get(APP, { TSGI_CACHE_DIR: cacheDir, NODE_DEBUG: "module" });
    expectAppReport(cold);
    expect(cold.stderr).toMatch(LOADS_ESBUILD);
    expect(cacheFiles(cacheDir).map((name) => name.split(".").slice(0, 2).join("."))).toEqual([
      "app.ts",
      "greeting.ts",
      "shout.ts",
    ]);
    const before = cacheIdentities(cacheDir);

    const warm = await get(APP, { TSGI_CACHE_DIR: cacheDir, NODE_DEBUG: "module" });
    expectAppReport(warm);
    expect(warm.stderr).not.toMatch(LOADS_ESBUILD);
    expect(cacheIdentities(cacheDir)).toEqual(before);
  });

  it("a changed source is compiled again (an edit of the same size too); an unchanged one is not", async () => {
    const cacheDir = tempDir(group, "tsgi-ts-cache-");
    const app = smallApp(tempDir(group, "tsgi-ts-app-"), "one");
    const first = await get(app, { TSGI_CACHE_DIR: cacheDir });
    expect(first.response?.body.toString()).toBe("one");
    const before = cacheIdentities(cacheDir);

    smallApp(join(app, ".."), "two");
    // app.ts was rewritten with the same bytes: its mtime changed, so it is compiled again as well.
    const second = await get(app, { TSGI_CACHE_DIR: cacheDir, NODE_DEBUG: "module" });
    expect(second.response?.body.toString()).toBe("two");
    expect(second.stderr).toMatch(LOADS_ESBUILD);
    const after = cacheIdentities(cacheDir);
    expect(Object.keys(after)).toEqual(Object.keys(before));
    for (const name of Object.keys(before)) expect(after[name], name).not.toBe(before[name]);

    const third = await get(app, { TSGI_CACHE_DIR: cacheDir, NODE_DEBUG: "module" });
    expect(third.response?.body.toString()).toBe("two");
    expect(third.stderr).not.toMatch(LOADS_ESBUILD);
  });

  it("20 processes starting at once on a cold cache all answer right and leave no temp files", async () => {
    const cacheDir = tempDir(group, "tsgi-ts-cache-");
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        get(APP, { TSGI_CACHE_DIR: cacheDir }, { timeoutMs: 90_000 }),
      ),
    );
    for (const result of results) {
      expectAppReport(result);
      expect(result.stderr).toBe("");
    }
    expect(cacheFiles(cacheDir).filter((name) => !name.endsWith(".cjs.js"))).toEqual([]);
    expect(cacheFiles(cacheDir)).toHaveLength(3);
  }, 120_000);

  it("a syntax error gives a load error naming the file, line and column, and a 500", async () => {
    const dir = tempDir(group, "tsgi-ts-app-");
    const broken = join(dir, "broken.ts");
    writeFileSync(
      broken,
      "// line 1\nexport default function app(environ: object) {\n  return [environ;\n}\n",
    );
    const result = await get(broken, { TSGI_CACHE_DIR: join(dir, "cache") });
    expect(result.response?.status).toBe("500 Internal Server Error");
    expect(result.stderr).toBe(
      `tsgi: cannot load application module ${broken}: Expected "]" but found ";" (${broken}:3:18)\n`,
    );
    expect(result.code).toBe(1);
  });
});

// ---------------------------------------------------------------------------
// A cache directory the process cannot write: a read-only deployment, or
// another user's files. As root (which may write anywhere) the process runs as
// the web server's user instead, as Apache would run it.

/** Runs `tsgi cgi` as a user who cannot write `readOnlyDir`. */
function getAsOtherUser(module: string, vars: Record<string, string>): Promise<CgiResult> {
  const command = isRoot
    ? [
        "setpriv",
        `--reuid=${WEB_USER}`,
        `--regid=${WEB_GROUP}`,
        "--clear-groups",
        process.execPath,
        TSGI_BIN,
        "cgi",
        module,
      ]
    : [process.execPath, TSGI_BIN, "cgi", module];
  return get(module, vars, { command });
}

/** A directory the user getAsOtherUser runs as can read but not write. */
function readOnlyDir(path: string): string {
  mkdirSync(path, { recursive: true });
  chmodSync(path, 0o555);
  // Writable again before its temp dir is removed (clean-ups run last first), or its files would stay.
  group.onCleanUp(() => chmodSync(path, 0o755));
  return path;
}

describe("a cache directory that cannot be written", () => {
  // With top-level await, the module hooks' thread compiles too, and must not say it again.
  it.each(["app.ts", "top-level-await.ts"])(
    "%s: compiles in memory and says so in exactly one line on stderr, naming the directory and the fix",
    async (app) => {
      const cacheDir = readOnlyDir(join(tempDir(group, "tsgi-ts-ro-"), "cache"));
      const result = await getAsOtherUser(tsFixture(app), { TSGI_CACHE_DIR: cacheDir });
      expect(result.response?.status, result.stderr).toBe("200 OK");
      expect(JSON.parse(result.response!.body.toString("utf8"))).toEqual(EXPECTED_REPORTS[app]);
      const lines = result.stderr.split("\n").filter(Boolean);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^\[tsgi\] typescript: cannot write the TypeScript compile cache \S+ \(EACCES\), so TypeScript is compiled in memory/,
      );
      expect(lines[0]).toContain(cacheDir);
      expect(lines[0]).toContain("TSGI_CACHE_DIR");
      expect(readdirSync(cacheDir)).toEqual([]);
    },
  );

  it("a read-only cache filled beforehand is used as it is: nothing on stderr, esbuild not loaded", async () => {
    const cacheDir = join(tempDir(group, "tsgi-ts-ro-"), "cache");
    expectAppReport(await get(APP, { TSGI_CACHE_DIR: cacheDir }));
    readOnlyDir(cacheDir);
    const result = await getAsOtherUser(APP, { TSGI_CACHE_DIR: cacheDir, NODE_DEBUG: "module" });
    expectAppReport(result);
    expect(result.stderr).not.toMatch(LOADS_ESBUILD);
    expect(result.stderr).not.toContain("[tsgi]");
  });
});

describe("where the cache is by default", () => {
  const uid = String(process.getuid?.());

  it("node_modules/.cache/tsgi of the application's project: the nearest directory up holding a package.json", async () => {
    const project = tempDir(group, "tsgi-ts-project-");
    writeFileSync(join(project, "package.json"), "{}\n");
    mkdirSync(join(project, "src"));
    const app = smallApp(join(project, "src"), "project");
    const result = await get(app, { TMPDIR: tempDir(group, "tsgi-ts-tmp-") });
    expect(result.response?.body.toString()).toBe("project");
    expect(cacheFiles(join(project, "node_modules", ".cache", "tsgi"))).toHaveLength(2);
  });

  it("without a project: tsgi-cache-<uid> in the temp dir, open to its owner only", async () => {
    const tmp = tempDir(group, "tsgi-ts-tmp-");
    const app = smallApp(tempDir(group, "tsgi-ts-app-"), "temp");
    const result = await get(app, { TMPDIR: tmp });
    expect(result.response?.body.toString()).toBe("temp");
    const cacheDir = join(tmp, `tsgi-cache-${uid}`);
    expect(statSync(cacheDir).mode & 0o777).toBe(0o700);
    expect(cacheFiles(cacheDir)).toHaveLength(2);
  });

  it("a temp cache others can write to is not used (it could hold their code): one line on stderr", async () => {
    const tmp = tempDir(group, "tsgi-ts-tmp-");
    const cacheDir = join(tmp, `tsgi-cache-${uid}`);
    mkdirSync(cacheDir);
    chmodSync(cacheDir, 0o777);
    const app = smallApp(tempDir(group, "tsgi-ts-app-"), "unsafe");
    const result = await get(app, { TMPDIR: tmp });
    expect(result.response?.body.toString()).toBe("unsafe");
    expect(result.stderr).toMatch(
      /^\[tsgi\] typescript: not using the TypeScript compile cache \S+: it is not a directory owned by \S+ and closed to other users.*\n$/,
    );
    expect(existsSync(cacheDir) && readdirSync(cacheDir)).toEqual([]);
  });
});
