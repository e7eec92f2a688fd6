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

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function usage(message) {
  if (message) process.stderr.write(`bench/fuzz.js: ${message}\n`);
  process.stderr.write("usage: node bench/fuzz.js [--minutes 5]\n");
  process.exit(message ? 2 : 0);
}

let minutes = 5;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--minutes") {
    const value = Number(argv[++i]);
    if (!Number.isFinite(value) || value <= 0) usage("--minutes needs a positive number");
    minutes = value;
  } else if (argv[i] === "-h" || argv[i] === "--help") usage();
  else usage(`unknown argument ${argv[i]}`);
}

if (!existsSync(join(root, "dist", "cli", "main.js")))
  usage("dist/ is missing: run `npm run build` first");

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

// Ctrl-C: exit through process.exit, whose "exit" handlers (test/helpers/servers.ts) kill the servers started.
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));

const started = Date.now();
console.log(`fuzzing for ${minutes} minute(s), node ${process.version}`);
let ok = false;
try {
  const { longRun } = await import(pathToFileURL(bundle).href);
  ok = await longRun({ minutes, log: (line) => console.log(line) });
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`done in ${((Date.now() - started) / 60_000).toFixed(1)} minute(s)`);
process.exit(ok ? 0 : 1);
