// Parsers for option values on the command line: each turns the text into the
// typed value the command receives, or tells commander why the text is wrong.

import { InvalidArgumentError } from "@commander-js/extra-typings";

export function port(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) > 65535)
    throw new InvalidArgumentError("expected a port number from 0 to 65535");
  return Number(value);
}

export function integer(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError("expected a whole number of at least 1");
  return Number(value);
}

export function workerCount(value: string): number | "auto" {
  return value === "auto" ? "auto" : integer(value);
}

export function number(value: string): number {
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isFinite(parsed) || parsed < 0)
    throw new InvalidArgumentError("expected a number of at least 0");
  return parsed;
}

export function octal(value: string): number {
  if (!/^0?[0-7]{3}$/.test(value))
    throw new InvalidArgumentError("expected an octal mode such as 660");
  return parseInt(value, 8);
}

export function list(value: string): string[] {
  return value
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
}
