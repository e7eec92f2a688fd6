// What every long-lived gateway does around one application call: the
// --slow-request log line, the --request-timeout deadline, and the plain
// answers it gives without the application (400, 408, 431, 503, 504).

import type { Application, Environ } from "../types.js";

/** "GET /path?query" for log lines: the REQUEST_URI when the web server sent one. */
export function requestTarget(environ: Environ): string {
  const target =
    typeof environ.REQUEST_URI === "string"
      ? environ.REQUEST_URI
      : environ.SCRIPT_NAME +
        environ.PATH_INFO +
        (environ.QUERY_STRING ? "?" + environ.QUERY_STRING : "");
  return `${environ.REQUEST_METHOD} ${target}`;
}

export interface WatchSettings {
  /** Milliseconds an application call may run before it is given up (0: no limit). */
  requestTimeout: number;
  /** Milliseconds after which a request still running is logged (0: never). */
  slowRequest: number;
}

/**
 * Logs a request still running at --slow-request and calls `onTimeout` (with
 * the request line and the milliseconds it ran) at --request-timeout. Returns
 * what stops both, or undefined when neither is set.
 */
export function watchRequest(
  environ: Environ,
  settings: WatchSettings,
  log: (message: string) => void,
  onTimeout: (line: string, elapsed: number) => void,
): (() => void) | undefined {
  const { requestTimeout: timeout, slowRequest: slow } = settings;
  if (timeout <= 0 && slow <= 0) return undefined;
  const started = Date.now();
  const line = () => requestTarget(environ);
  const timers: NodeJS.Timeout[] = [];
  if (slow > 0)
    timers.push(
      setTimeout(() => log(`slow request: still running after ${slow / 1000} s: ${line()}`), slow),
    );
  if (timeout > 0) timers.push(setTimeout(() => onTimeout(line(), Date.now() - started), timeout));
  return () => {
    for (const timer of timers) clearTimeout(timer);
  };
}

/** The line logged when --request-timeout gives a request up. */
export function timeoutMessage(line: string, elapsed: number, outputStarted: boolean): string {
  const what = outputStarted ? "response cut off" : "answered 504";
  return `request timed out after ${(elapsed / 1000).toFixed(1)} s (--request-timeout), ${what}: ${line}`;
}

/** An application that answers `status` (e.g. "400 Bad Request") with its reason as plain text. */
export function statusApplication(status: string): Application {
  return (_environ, startResponse) => {
    startResponse(status, [["Content-Type", "text/plain; charset=utf-8"]]);
    return [status.slice(4) + "\n"];
  };
}
