// The one line on stderr that tells why the command could not start. The CGI
// fast path (cli/cgi.ts, bundled alone) imports this too, so it stays free of
// the argument parser and of anything a gateway does not need.

import { AppLoadError } from "../load-app.js";

/** An error class whose message is written for the user; any other error is shown whole. */
type ExplainedError = abstract new (...args: never[]) => Error;

/** Why starting up failed, in words for the user. */
export function startupErrorMessage(
  error: unknown,
  explained: readonly ExplainedError[] = [],
): string {
  const known = [AppLoadError, ...explained].some((kind) => error instanceof kind);
  return known ? (error as Error).message : String(error);
}

/** Writes `tsgi: <why>` on stderr for an error raised while starting up. */
export function reportStartupError(
  error: unknown,
  explained: readonly ExplainedError[] = [],
): void {
  process.stderr.write(`tsgi: ${startupErrorMessage(error, explained)}\n`);
}

/** Reports the error and ends the process with status 1. */
export function exitOnStartupError(
  error: unknown,
  explained: readonly ExplainedError[] = [],
): never {
  reportStartupError(error, explained);
  process.exit(1);
}
