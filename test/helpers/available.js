// What a test does when something it needs is not here: one policy for the
// whole suite. Outside CI it skips with a warning that names what to install.
// Under CI (CI=true) the web servers and tools are installed on purpose, so a
// missing one fails the run instead of skipping silently; what CI cannot
// provide by design (an optional tool, running as root) still skips there,
// but says so, so that the skip shows in the CI log.
// Plain JavaScript with JSDoc types, as processes.js, so the benchmarks can
// use it under plain `node`.

import { accessSync, constants, existsSync } from "node:fs";
import { join } from "node:path";

export const inCi = process.env.CI === "true";

const SEARCH_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/**
 * Reports that tests needing `what` cannot run here because of `reason`:
 * throws under CI unless `optional`, otherwise warns (under CI too) and
 * returns false, for `describe.skipIf` / `it.skipIf`.
 * @param {string} what
 * @param {string} reason
 * @param {{ optional?: boolean }} [options]
 * @returns {false}
 */
export function cannotRun(what, reason, options = {}) {
  if (inCi && !options.optional)
    throw new Error(`${what}: ${reason}; CI=true, so this fails instead of skipping`);
  const note = inCi ? " (allowed to skip under CI=true)" : "";
  console.warn(`skipping tests that need ${what}: ${reason}${note}`);
  return false;
}

/**
 * The path of `binary` on PATH or in the usual system directories, or
 * undefined under the policy above (`optional`: a tool that may be absent
 * also under CI).
 * @param {string} binary
 * @param {string} debianPackage
 * @param {{ optional?: boolean }} [options]
 * @returns {string | undefined}
 */
export function findBinary(binary, debianPackage, options = {}) {
  for (const dir of [...(process.env.PATH ?? "").split(":").filter(Boolean), ...SEARCH_PATH]) {
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  cannotRun(binary, `not found: install the Debian package "${debianPackage}"`, options);
  return undefined;
}

/**
 * `path` if it exists, or undefined under the policy above.
 * @param {string} path
 * @param {string} debianPackage
 * @returns {string | undefined}
 */
export function findFile(path, debianPackage) {
  if (existsSync(path)) return path;
  cannotRun(path, `not found: install the Debian package "${debianPackage}"`);
  return undefined;
}

/**
 * Whether the tests run as root; if not, a test that needs it skips and
 * says why (also under CI, which does not run as root by design).
 * @param {string} what
 */
export function runningAsRoot(what) {
  if (typeof process.getuid === "function" && process.getuid() === 0) return true;
  return cannotRun(what, "only root can start a server as another user", { optional: true });
}
