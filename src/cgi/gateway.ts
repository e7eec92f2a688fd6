// The CGI gateway (RFC 3875, PEP 3333's run_with_cgi): one request per
// process, environ from the process environment, body from stdin, response on stdout.

import { closeSync, openSync, readFileSync } from "node:fs";
import type { Writable } from "node:stream";
import { runApplication, type Outcome, type ResponseSink } from "../engine.js";
import { defineValue, makeEnviron, parseContentLength } from "../environ.js";
import { formatCgiHead } from "../headers.js";
import type { Application, Environ, HeaderList } from "../types.js";
import { FdBody, FdWriter, createSyncWriter, type BodyExtent } from "./fd-streams.js";

export interface CgiOptions {
  /** The CGI variables; by default the process environment, read byte-exact where the OS allows. */
  environ?: Record<string, string | undefined>;
  /** Where the response goes; by default file descriptor 1. */
  stdoutFd?: number;
  /** Where the request body comes from; by default file descriptor 0. */
  stdinFd?: number;
  /** `tsgi.errors`; by default file descriptor 2. */
  errors?: Writable;
  /**
   * End the process once the request is over (default true): a CGI request is
   * run_once, and the web server answers the client only when the process has
   * closed its output streams, which a timer or pool the application left
   * would otherwise hold open. `false` resolves with the exit code instead.
   */
  exit?: boolean;
  /** Milliseconds the body's close() may still run once the response went out. Default 1000. */
  closeGrace?: number;
}

/** How long the body's close() may run after the response, by default. */
const CLOSE_GRACE_MS = 1000;
/** How long unread request-body bytes are read and dropped before the process ends. */
const DRAIN_TIMEOUT_MS = 10_000;

let stdoutClaimed = false;

/**
 * Makes stdout belong to the response: from now on `process.stdout` (and so
 * console.log) writes to stderr, where a stray line cannot corrupt the headers.
 */
export function claimStdout(): void {
  if (stdoutClaimed) return;
  stdoutClaimed = true;
  // [cgi.stdout] stdout belongs to the response: from the moment `runWithCgi` starts (with `tsgi cgi`, before the
  // module is loaded), `process.stdout`, and so `console.log`, writes to stderr.
  Object.defineProperty(process, "stdout", {
    configurable: true,
    enumerable: true,
    get: () => process.stderr,
  });
}

/**
 * Serves the one request this process was started for, then ends the process
 * (unless `exit: false`) with status 0 when the application's response went
 * out whole and non-zero otherwise. It ends only after the response has
 * drained, the body's close() has settled (within `closeGrace`) and unread
 * request-body bytes were read, so no output is lost.
 */
export async function runWithCgi(app: Application, options: CgiOptions = {}): Promise<number> {
  const code = await serveCgiRequest(app, options);
  // What the application queued for right after its response still runs: Express logs a
  // route's error from a setImmediate once its 500 has gone out.
  await new Promise((resolve) => setImmediate(resolve));
  // [cgi.no-exit] `runWithCgi(app, { exit: false })` resolves with the exit code instead of
  // ending the process.
  if (options.exit !== false) process.exit(code);
  return code;
}

async function serveCgiRequest(app: Application, options: CgiOptions): Promise<number> {
  const vars = options.environ ?? readProcessEnvironment();
  let stderr: Writable | undefined;
  const errors = (): Writable => options.errors ?? (stderr ??= createSyncWriter(2));
  // [cgi.not-cgi] Without `REQUEST_METHOD` (not a CGI environment) the process writes one line on stderr saying
  // so, nothing on stdout, and exits with status `2`.
  if (!vars.REQUEST_METHOD) {
    errors().write(
      "tsgi: not a CGI environment (REQUEST_METHOD is not set): run this from a web server's CGI, " +
        "or use `tsgi serve` to try an application locally\n",
    );
    return (process.exitCode = 2);
  }
  // [cgi.httpoxy] When it reads the process environment, `runWithCgi` removes `HTTP_PROXY` from `process.env`
  // before the application runs; `environ.HTTP_PROXY` still holds the header.
  //
  // httpoxy: a request's `Proxy:` header arrives as HTTP_PROXY, which HTTP clients
  // in this process would take as their proxy. The app still sees it in environ.
  if (!options.environ) delete process.env.HTTP_PROXY;
  claimStdout();

  const stdout = new FdWriter(options.stdoutFd ?? 1);
  const sink = new CgiSink(stdout);
  const length = parseContentLength(vars.CONTENT_LENGTH);
  const body = new FdBody(options.stdinFd ?? 0, bodyExtent(vars, length));
  // [cgi.flags] `tsgi.run_once` is `true`, `tsgi.multiprocess` `true`, `tsgi.multithread` `false`.
  const environ = makeEnviron(vars, { multithread: false, multiprocess: true, runOnce: true });
  // Built on first use: most requests never touch them, and each costs start-up.
  defineLazily(environ, "tsgi.input", () => body.readable());
  defineLazily(environ, "tsgi.errors", errors);

  const { outcome, cleanUp } = await respond(app, environ, sink, vars.CONTENT_LENGTH, errors);
  // Set at once: should the event loop run dry while the rest is awaited, the process ends with it.
  // [cgi.exit-status] Exit status: `0` when the application's response went out complete; `1`
  // when it failed (500), was cut off, could not be delivered (stdout closed), or the request
  // was bad (400).
  process.exitCode = outcome === "complete" ? 0 : 1;
  if (options.stdoutFd === undefined) await releaseStdout(stdout);
  else await stdout.end().catch(() => {});
  // [cgi.run-once] run_once: once the response is written and drained and the body's `close()`
  // has settled (waiting at most a short grace, 1 s by default, option `closeGrace` in ms),
  // the process ends with its exit status, whatever timers or sockets the application left.
  if (cleanUp) await Promise.race([cleanUp, delay(options.closeGrace ?? CLOSE_GRACE_MS)]);
  // A response that went out whole (a 500 too) must not be lost to a broken pipe on the
  // server's side; a cut-off one keeps the unread bytes, whose failed write is then
  // the only sign of the cut Apache's mod_cgid can show.
  // [cgi.drain] Before it ends after a complete response, request-body bytes the application
  // did not read are read and dropped (bounded in time) so the web server's write of the body
  // does not fail.
  if (outcome === "complete" || outcome === "failed") await body.drain(DRAIN_TIMEOUT_MS);
  return process.exitCode;
}

/** The application's response, or a 400 for a length that is not a number; with the body's settling close(). */
async function respond(
  app: Application,
  environ: Environ,
  sink: CgiSink,
  contentLength: string | undefined,
  errors: () => Writable,
): Promise<{ outcome: Outcome; cleanUp: Promise<unknown> | undefined }> {
  // [cgi.bad-length] A `CONTENT_LENGTH` that is not a decimal number gets `400 Bad Request` and a line on stderr;
  // the application is not called.
  if (parseContentLength(contentLength) === "invalid") {
    errors().write(
      `tsgi: bad request: CONTENT_LENGTH is not a decimal number: ${JSON.stringify(contentLength)}\n`,
    );
    const badRequest = plainTextResponse(
      "400 Bad Request",
      "Bad Request: invalid CONTENT_LENGTH\n",
    );
    await runApplication(badRequest, environ, sink);
    return { outcome: "failed", cleanUp: undefined };
  }
  let cleanUp: Promise<unknown> | undefined;
  const outcome = await runApplication(app, environ, sink, {
    onCleanUp: (settled) => {
      cleanUp = settled;
    },
  });
  return { outcome, cleanUp };
}

/**
 * How much of stdin is the body: CONTENT_LENGTH bytes; to end-of-file when it
 * is absent or empty but a body is signalled (Apache passes a chunked upload
 * with HTTP_TRANSFER_ENCODING and no CONTENT_LENGTH, and closes stdin after
 * it); otherwise nothing, and stdin is never read.
 */
// [cgi.input] `tsgi.input` reads stdin: with a `CONTENT_LENGTH`, at most that many bytes,
// never waiting for end-of-file beyond them (web servers may keep stdin open); without one
// (absent or empty) but with `HTTP_TRANSFER_ENCODING` present (Apache passes a chunked
// upload to CGI so), up to end-of-file; otherwise the body is empty and stdin is never read.
function bodyExtent(
  vars: Record<string, string | undefined>,
  length: number | undefined | "invalid",
): BodyExtent {
  if (typeof length === "number") return { length };
  if (length === undefined && vars.HTTP_TRANSFER_ENCODING) return "to-eof";
  return { length: 0 };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * The web server sends the response when stdout reaches end-of-file, not when
 * the process exits: close it once drained, so a timer or socket the
 * application left open cannot hold the response back. /dev/null takes fd 1's
 * place, so no file opened later becomes "stdout" by accident.
 */
async function releaseStdout(stdout: FdWriter): Promise<void> {
  await stdout.end().catch(() => {});
  try {
    // [cgi.stdout-close] Once the response has drained, stdout is closed (and `/dev/null` takes its place), so the
    // web server answers the client even if a timer or socket keeps the process alive a while longer.
    closeSync(1);
    openSync("/dev/null", "w");
  } catch {
    // Already closed, or no /dev/null: nothing more to release.
  }
}

/** Makes `environ[key]` a value built by `make` on first read, then kept. */
function defineLazily(environ: object, key: string, make: () => unknown): void {
  Object.defineProperty(environ, key, {
    configurable: true,
    enumerable: true,
    get() {
      const value = make();
      defineValue(environ, key, value);
      return value;
    },
    set(value: unknown) {
      defineValue(environ, key, value);
    },
  });
}

/** Sends a CGI response (header block, then body) to a descriptor. */
class CgiSink implements ResponseSink {
  constructor(private readonly out: FdWriter) {}

  sendHeaders(status: string, headers: HeaderList): void {
    void this.out.write(formatCgiHead(status, headers));
  }

  write(data: Uint8Array): void | Promise<void> {
    return this.out.write(data);
  }

  end(): Promise<void> {
    return this.out.end();
  }

  abort(): void {
    // Whatever was queued still goes out; the non-zero exit code marks the response as incomplete.
  }
}

/** An application that answers with a fixed plain-text response. */
export function plainTextResponse(status: string, text: string): Application {
  return (_environ, startResponse) => {
    startResponse(status, [["Content-Type", "text/plain; charset=utf-8"]]);
    return [text];
  };
}

/**
 * The process environment with values as Latin-1 byte strings. Node decodes
 * process.env as UTF-8 and turns invalid bytes into U+FFFD, so on Linux the
 * original bytes of any value that is not plain ASCII are read back from
 * /proc/self/environ; a variable the process has since changed keeps its
 * process.env value.
 */
// eslint-disable-next-line no-control-regex -- U+0000 is the lower end of the ASCII range tested for
const NOT_ASCII = /[^\x00-\x7f]/;

export function readProcessEnvironment(): Record<string, string | undefined> {
  // [cgi.environ] environ: a copy of the process environment.
  const vars: Record<string, string | undefined> = { ...process.env };
  // [cgi.proc-environ] Node decodes environment values as UTF-8 and turns invalid bytes into U+FFFD; so on Linux,
  // tsgi re-reads every value that is not plain ASCII from `/proc/self/environ`, applying the Latin-1 rule.
  if (!Object.values(vars).some((value) => value !== undefined && NOT_ASCII.test(value)))
    return vars;
  let raw: Buffer;
  try {
    raw = readFileSync("/proc/self/environ");
  } catch {
    return vars;
  }
  let start = 0;
  while (start < raw.length) {
    let end = raw.indexOf(0, start);
    if (end === -1) end = raw.length;
    const equals = raw.indexOf(0x3d, start);
    if (equals > start && equals < end) {
      const name = raw.toString("latin1", start, equals);
      const current = vars[name];
      if (
        current !== undefined &&
        NOT_ASCII.test(current) &&
        raw.toString("utf8", equals + 1, end) === current
      ) {
        vars[name] = raw.toString("latin1", equals + 1, end);
      }
    }
    start = end + 1;
  }
  return vars;
}
