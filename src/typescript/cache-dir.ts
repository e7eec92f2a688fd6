// Where compiled TypeScript is kept: `--cache-dir`, else $TSGI_CACHE_DIR,
// else node_modules/.cache/tsgi of the application's project (the nearest
// directory up from the module holding a package.json, where build tools keep
// their caches), else a directory of this user's own under the OS temp dir.

import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { lazyOs } from "./lazy-os.js";

export type CacheOrigin = "--cache-dir" | "TSGI_CACHE_DIR" | "project" | "temp";

export interface CacheLocation {
  dir: string;
  /** Where the choice came from: a temp dir is checked before use, since others can create it first. */
  origin: CacheOrigin;
}

export function chooseCacheDir(modulePath: string, option?: string): CacheLocation {
  if (option) return { dir: resolve(option), origin: "--cache-dir" };
  const fromEnvironment = process.env.TSGI_CACHE_DIR;
  if (fromEnvironment) return { dir: resolve(fromEnvironment), origin: "TSGI_CACHE_DIR" };
  const project = projectDir(dirname(modulePath));
  if (project !== undefined)
    return { dir: join(project, "node_modules", ".cache", "tsgi"), origin: "project" };
  return { dir: join(lazyOs().tmpdir(), `tsgi-cache-${currentUserId()}`), origin: "temp" };
}

function projectDir(start: string): string | undefined {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

/** The uid where there is one (it cannot be spoofed by renaming a user), else the user name. */
function currentUserId(): string {
  return typeof process.getuid === "function"
    ? String(process.getuid())
    : lazyOs().userInfo().username;
}
