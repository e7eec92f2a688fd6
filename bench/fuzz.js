#!/usr/bin/env node
// The long fuzz run (`npm run fuzz`): the properties of test/fuzz.test.ts for
// minutes instead of seconds, against live `tsgi fcgi` processes (from dist/:
// run `npm run build` first). Prints the count of cases per property.
//
// usage: node bench/fuzz.js [--minutes 5]
//
// The properties are TypeScript (test/fuzz/*.ts, shared with the tests), so they
// are bundled with esbuild into a temp dir first. A failure prints fast-check's
// seed and path; FUZZ_SEED=<seed> FUZZ_PATH=<path> replays it (here or in vitest).

import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";
import { commandLine, positive, usageExit } from "./lib/cli.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

const SCRIPT = "bench/fuzz.js";
const USAGE = "usage: node bench/fuzz.js [--minutes 5]";
const { values } = commandLine(SCRIPT, USAGE, { minutes: { type: "string" } });
const minutes = positive(values.minutes, 5, { script: SCRIPT, usage: USAGE, name: "--minutes" });

if (!existsSync(join(root, "dist", "cli", "main.js")))
  usageExit(SCRIPT, USAGE, "dist/ is missing: run `npm run build` first");

const tmp = mkdtempSync(join(tmpdir(), "tsgi-fuzz-"));
const bundle = join(tmp, "long-run.mjs");
await build({
  entryPoints: [join(root, "test", "fuzz", "long-run.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outfile: bundle,
  logLevel: "warning",
  // The test helpers find the repository from their own import.meta.url; in the bundle it would be the temp file.
  define: {
    "import.meta.url": JSON.stringify(pathToFileURL(join(root, "test", "helpers", "cgi.ts")).href),
  },
});

// Ctrl-C: exit through process.exit, whose "exit" handlers (test/helpers/processes.js) kill the servers started.
for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"]))
  process.on(signal, () => process.exit(130));

const started = Date.now();
console.log(`fuzzing for ${minutes} minute(s), node ${process.version}`);
let ok;
try {
  /** @type {unknown} */
  const loaded = await import(pathToFileURL(bundle).href);
  const { longRun } = /** @type {typeof import("../test/fuzz/long-run.js")} */ (loaded);
  ok = await longRun({ minutes, log: (line) => console.log(line) });
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`done in ${((Date.now() - started) / 60_000).toFixed(1)} minute(s)`);
process.exit(ok ? 0 : 1);
