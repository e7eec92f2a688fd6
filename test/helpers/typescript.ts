// What the TypeScript application tests share: the fixtures in
// test/fixtures/ts/, what each one must answer, where its /throw throws, and
// how to tell from a process's stderr that it loaded esbuild.

import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { FIXTURES } from "./processes.js";

export const TS_FIXTURES = join(FIXTURES, "ts");

export function tsFixture(name: string): string {
  return join(TS_FIXTURES, name);
}

const BESIDE = readFileSync(tsFixture("beside.txt"), "utf8");
const GREETING = "hello from greeting.ts";

/** The JSON each fixture application answers for GET /: its imports, the file beside it, and its own names. */
export const EXPECTED_REPORTS: Record<string, Record<string, unknown>> = {
  "app.ts": {
    greeting: GREETING,
    shout: GREETING.toUpperCase(),
    besideViaUrl: BESIDE,
    besideViaMetaDirname: BESIDE,
    besideViaDirname: BESIDE,
    url: pathToFileURL(tsFixture("app.ts")).href,
    filename: tsFixture("app.ts"),
    __filename: tsFixture("app.ts"),
    router: "hono",
  },
  "esm-app.mts": {
    greeting: GREETING,
    shout: "LAZY",
    besideViaUrl: BESIDE,
    besideViaOwnDirname: BESIDE,
    filename: tsFixture("esm-app.mts"),
    strict: true,
  },
  "commonjs-app.cts": { besideViaDirname: BESIDE, __filename: tsFixture("commonjs-app.cts") },
  "top-level-await.ts": {
    greeting: GREETING,
    besideViaUrl: BESIDE,
    __dirname: TS_FIXTURES,
    url: pathToFileURL(tsFixture("top-level-await.ts")).href,
  },
  "imports-top-level-await.ts": { countedRuns: 1, inner: "function" },
};

export const APPS = Object.keys(EXPECTED_REPORTS);

/** `file:line:column` of the `new Error(...)` a fixture's /throw runs, as a stack trace must name it. */
export function throwSite(name: string): string {
  const lines = readFileSync(tsFixture(name), "utf8").split("\n");
  const line = lines.findIndex((text) => text.includes('throw new Error("thrown from'));
  if (line < 0) throw new Error(`${name} has no /throw`);
  return `${tsFixture(name)}:${line + 1}:${lines[line].indexOf("new Error") + 1}`;
}

/** The log line and first stack frame a gateway writes for a fixture's /throw. */
export function throwLogPattern(name: string): RegExp {
  const site = throwSite(name).replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  return new RegExp(
    `\\[tsgi\\] GET \\S*/throw: error in application: Error: thrown from ${name.replace(".", "\\.")}\\n\\s+at \\S+ \\(${site}\\)`,
  );
}

/**
 * What NODE_DEBUG=module prints when a process loads esbuild's JavaScript API,
 * which it does only to compile: a start served from the cache must not show it.
 */
export const LOADS_ESBUILD = /load "[^"]*[\\/]esbuild[\\/]lib[\\/]main\.js"/;

/** The files in a cache directory, sorted. */
export function cacheFiles(dir: string): string[] {
  return readdirSync(dir).sort();
}

/** Each cache file's inode and mtime: a file rewritten (a temp file renamed over it) changes both. */
export function cacheIdentities(dir: string): Record<string, string> {
  return Object.fromEntries(
    cacheFiles(dir).map((name) => [
      name,
      `${statSync(join(dir, name)).ino}:${statSync(join(dir, name)).mtimeMs}`,
    ]),
  );
}
