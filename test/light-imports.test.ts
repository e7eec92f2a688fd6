// Importing an adapter loads the adapter and what it needs, not the FastCGI
// server, the HTTP server, the validator or commander: `tsgi/node`,
// `tsgi/fetch` and `tsgi/cgi` imported by package name (the package resolves
// itself from inside the repo) in a fresh node, as ES module and as CommonJS.
// Needs `npm run build`.

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FIXTURES, REPO } from "./helpers/processes.js";

const REGISTER = join(FIXTURES, "light-imports", "register.mjs");
/** What an adapter must not bring in: dist/ paths (or, in a CommonJS bundle, src/ paths) and packages. */
const HEAVY = [
  /^(?:dist|src)\/fastcgi\//,
  /^(?:dist|src)\/server\//,
  /^(?:dist|src)\/http\/server/,
  /^(?:dist|src)\/validator/,
  /commander/,
];
const ENTRIES: [string, string[]][] = [
  ["tsgi/node", ["fromNodeHandler", "toNodeHandler"]],
  ["tsgi/fetch", ["fromFetchHandler"]],
  ["tsgi/cgi", ["runWithCgi"]],
];

let scratch: string;
beforeAll(() => {
  for (const entry of ["node", "fetch", "cgi/gateway"]) {
    for (const ext of ["js", "cjs"]) {
      if (!existsSync(join(REPO, "dist", `${entry}.${ext}`)))
        throw new Error(`dist/${entry}.${ext} is missing: run \`npm run build\` first`);
    }
  }
  scratch = mkdtempSync(join(tmpdir(), "tsgi-light-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs `code` in a fresh node in the repo; returns its stdout. */
function node(args: string[], code: string, env: Record<string, string> = {}): string {
  return execFileSync(process.execPath, [...args, "-e", code], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "", ...env },
    encoding: "utf8",
  });
}

/** Repo-relative paths of the files (and packages) an ES module import resolves, and the names it exports. */
function esmLoad(specifier: string): { loaded: string[]; exported: string[] } {
  const record = join(scratch, `${specifier.replaceAll("/", "-")}.txt`);
  const out = node(
    ["--import", REGISTER, "--input-type=module"],
    `const m = await import(${JSON.stringify(specifier)}); console.log(JSON.stringify(Object.keys(m)));`,
    { TSGI_RECORD_RESOLVED: record },
  );
  const urls = readFileSync(record, "utf8").split("\n").filter(Boolean);
  const loaded = urls
    .filter((url) => url.startsWith("file:"))
    .map((url) => relative(REPO, fileURLToPath(url)));
  return { loaded, exported: JSON.parse(out) as string[] };
}

/**
 * What a CommonJS require() loads: the files in require.cache, and for each
 * of tsgi's own bundles the src/ files esbuild put in it (its `// src/…` markers).
 */
function cjsLoad(specifier: string): { loaded: string[]; exported: string[] } {
  const out = node(
    [],
    `const m = require(${JSON.stringify(specifier)});` +
      "console.log(JSON.stringify({ files: Object.keys(require.cache), exported: Object.keys(m) }));",
  );
  const { files, exported } = JSON.parse(out) as { files: string[]; exported: string[] };
  const loaded: string[] = [];
  for (const file of files) {
    const path = relative(REPO, file);
    loaded.push(path);
    if (path.startsWith("dist/")) {
      for (const marker of readFileSync(file, "utf8").matchAll(/^\/\/ (src\/\S+)$/gm))
        loaded.push(marker[1]);
    }
  }
  return { loaded, exported };
}

function heavy(loaded: string[]): string[] {
  return loaded.filter((path) => HEAVY.some((pattern) => pattern.test(path)));
}

describe.each([
  ["ES module", esmLoad],
  ["CommonJS", cjsLoad],
])("%s", (_kind, load) => {
  for (const [specifier, names] of ENTRIES) {
    it(`${specifier} loads no server, validator or command line`, () => {
      const { loaded, exported } = load(specifier);
      expect(exported).toEqual(expect.arrayContaining(names));
      expect(loaded.some((path) => path.startsWith("dist/"))).toBe(true);
      expect(heavy(loaded)).toEqual([]);
    });
  }

  it("sees the servers the main entry loads (the recording works)", () => {
    const { loaded } = load("tsgi");
    expect(heavy(loaded)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^(?:dist|src)\/fastcgi\//)]),
    );
  });
});
