// The README is what users read first: it stays under 250 lines, names every
// flag of every `tsgi` command (taken from the CLI's own --help, so a new flag
// without a line in the README fails here), and every example or deploy path
// it mentions exists.

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO, TSGI_BIN } from "./helpers/processes.js";

const README = readFileSync(join(REPO, "README.md"), "utf8");
const COMMANDS = ["cgi", "fcgi", "scgi", "uwsgi", "serve", "build"];

/** The long flags a command's --help lists, without the generic --help/--version. */
function flagsOf(command: string): string[] {
  const help = execFileSync(process.execPath, [TSGI_BIN, command, "--help"], { encoding: "utf8" });
  const flags = new Set(help.match(/--[a-z][a-z0-9-]*/g) ?? []);
  for (const generic of ["--help", "--version"]) flags.delete(generic);
  return [...flags].sort();
}

describe("README.md", () => {
  it("is under 250 lines", () => {
    expect(README.trimEnd().split("\n").length).toBeLessThan(250);
  });

  it.each(COMMANDS)("names every flag of tsgi %s", (command) => {
    const flags = flagsOf(command);
    if (command === "fcgi") expect(flags.length).toBeGreaterThan(15);
    const missing = flags.filter((flag) => !README.includes(flag));
    expect(missing).toEqual([]);
  });

  it("points only at files that exist", () => {
    const paths = README.match(/(?:examples|bench|docs|src|test)\/[\w./-]*[\w/]/g) ?? [];
    expect(paths.length).toBeGreaterThan(5);
    const absent = paths.filter((path) => !existsSync(join(REPO, path)));
    expect(absent).toEqual([]);
  });
});
