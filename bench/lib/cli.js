// Command lines of the benchmark scripts: node:util's parseArgs, plus the
// usage text on --help or on a mistake, and checked numbers.

import { parseArgs } from "node:util";

/**
 * Prints `usage` (after `message`, if any) and exits: 0 for --help, 2 for a mistake.
 * @param {string} script
 * @param {string} usage
 * @param {string} [message]
 * @returns {never}
 */
export function usageExit(script, usage, message) {
  if (message) process.stderr.write(`${script}: ${message}\n`);
  process.stderr.write(usage.endsWith("\n") ? usage : `${usage}\n`);
  process.exit(message ? 2 : 0);
}

/**
 * Parses the command line against `options` (with -h/--help added); a
 * mistake or --help prints the usage and exits.
 * @template {Record<string, { type: "string" | "boolean"; short?: string }>} T
 * @param {string} script
 * @param {string} usage
 * @param {T} options
 * @param {number} [maxPositionals] how many positional arguments are allowed
 * @returns {{ values: { [K in keyof T]?: T[K]["type"] extends "boolean" ? boolean : string }; positionals: string[] }}
 */
export function commandLine(script, usage, options, maxPositionals = 0) {
  /** @type {{ values: Record<string, string | boolean | undefined>; positionals: string[] }} */
  let parsed;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: maxPositionals > 0,
      strict: true,
    });
  } catch (error) {
    usageExit(script, usage, error instanceof Error ? error.message : String(error));
  }
  if (parsed.values.help) usageExit(script, usage);
  if (parsed.positionals.length > maxPositionals)
    usageExit(script, usage, `unexpected argument ${parsed.positionals[maxPositionals]}`);
  return /** @type {{ values: { [K in keyof T]?: T[K]["type"] extends "boolean" ? boolean : string }; positionals: string[] }} */ (
    /** @type {unknown} */ (parsed)
  );
}

/**
 * `value` as a number above zero (a whole one if `whole`), or `fallback` when
 * it is undefined; anything else prints the usage and exits.
 * @param {string | undefined} value
 * @param {number} fallback
 * @param {{ script: string; usage: string; name: string; whole?: boolean }} how
 */
export function positive(value, fallback, how) {
  if (value === undefined) return fallback;
  const pattern = how.whole ? /^[0-9]+$/ : /^[0-9]+(\.[0-9]+)?$/;
  if (!pattern.test(value) || Number(value) <= 0)
    usageExit(
      how.script,
      how.usage,
      `${how.name} needs a positive ${how.whole ? "whole " : ""}number`,
    );
  return Number(value);
}
