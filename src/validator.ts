// Checks both sides of the TSGI interface on every request, as Python's
// wsgiref.validate and Rack::Lint do: wrap an application while developing or
// testing, and a broken rule throws a ValidationError that names the rule and
// the side that broke it.

/**
 * `validator(app)` sits between a gateway and an application and checks:
 *
 * The gateway, when it calls the application:
 * - environ is an object.
 * - REQUEST_METHOD (not empty), SCRIPT_NAME, PATH_INFO, QUERY_STRING,
 *   SERVER_NAME, SERVER_PORT and SERVER_PROTOCOL are present and strings.
 * - Every key without a dot (the CGI and HTTP_ variables) holds a string;
 *   undefined counts as absent.
 * - Every string value is Latin-1 (U+0000..U+00FF): environ strings stand for
 *   bytes, one code point per byte.
 * - CONTENT_LENGTH, when present and not empty, is a decimal number.
 * - HTTP_CONTENT_TYPE and HTTP_CONTENT_LENGTH are absent: those two headers
 *   arrive as CONTENT_TYPE and CONTENT_LENGTH.
 * - SCRIPT_NAME is empty or starts with "/", and is never "/" itself (the
 *   application root is "", the slash belongs to PATH_INFO).
 * - PATH_INFO is empty or starts with "/".
 * - tsgi.version is [1, 0]; tsgi.url_scheme is "http" or "https";
 *   tsgi.input is a Readable that is async-iterable; tsgi.errors is a
 *   Writable; tsgi.multithread, tsgi.multiprocess and tsgi.run_once are booleans.
 * - startResponse is a function, and it returns a write function.
 * - tsgi.input yields Uint8Array chunks, and no more bytes in total than
 *   CONTENT_LENGTH says.
 *
 * The gateway, when it consumes the body:
 * - It iterates the body at most once, and not after close().
 * - It finishes any iteration it starts: runs the iterator to the end or calls
 *   its return(), so a generator's `finally` runs.
 * - It calls the body's close() (the validator's wrapper always has one)
 *   exactly once. "Never" cannot be seen while the request runs, so it is
 *   reported by `assertNoViolations()` once the request is over, and as a
 *   process warning if the body is garbage-collected unclosed.
 *
 * The application:
 * - It calls startResponse(status, headers[, excInfo]) once; a second call
 *   is only allowed with excInfo.
 * - status is "NNN Reason": three digits, a space, a reason phrase, no
 *   control characters.
 * - headers is an array of [name, value] string pairs: names are tokens,
 *   values have no control characters and are Latin-1, and no hop-by-hop
 *   header (Connection, Keep-Alive, Transfer-Encoding, TE, Trailer, Upgrade,
 *   Proxy-Authenticate, Proxy-Authorization) is set.
 * - Content-Length, when set, is a decimal number.
 * - A 1xx, 204 or 304 response has no Content-Type and no Content-Length.
 * - It returns (or resolves to) an iterable or async iterable, never a bare
 *   string or Uint8Array.
 * - startResponse has been called before the body yields its first chunk or
 *   ends (so a generator may call it lazily, inside its first step).
 * - Every chunk, from the body or given to write(), is a Uint8Array or a string.
 * - write() is not used after the body was closed.
 * - It writes only strings and Uint8Arrays to tsgi.errors, and never ends it
 *   (the stream belongs to the gateway; pipe into it with `{ end: false }`).
 *
 * The application sees a shallow copy of the environ whose tsgi.input and
 * tsgi.errors are checking wrappers; the gateway's own environ is not changed.
 */

import { createRequire } from "node:module";
import type { Readable, Writable } from "node:stream";
import { parseContentLength } from "./environ.js";
import { ApplicationError, findHeader, statusAllowsBody, statusCode, validateHeaders, validateStatus } from "./headers.js";
import type { Application, Body, Chunk, Environ, HeaderList, InputStream, StartResponse, Write } from "./types.js";

/** Which side of the interface broke a rule. */
export type Side = "app" | "gateway";

/** A TSGI rule was broken; the message starts with the side at fault, then names the rule. */
export class ValidationError extends Error {
  override name = "ValidationError";
  constructor(
    readonly side: Side,
    rule: string,
  ) {
    super(`[${side}] ${rule}`);
  }
}

/** An application wrapped by `validator()`. */
export interface ValidatedApplication extends Application {
  /**
   * Throws the first violation seen since the previous call — including one the
   * gateway caught and turned into a 500 — or a `[gateway]` error for a body
   * whose close() was never called. Call it when no request is in flight.
   */
  assertNoViolations(): void;
}

const REQUIRED_STRINGS = [
  "REQUEST_METHOD",
  "SCRIPT_NAME",
  "PATH_INFO",
  "QUERY_STRING",
  "SERVER_NAME",
  "SERVER_PORT",
  "SERVER_PROTOCOL",
] as const;
const BOOLEAN_KEYS = ["tsgi.multithread", "tsgi.multiprocess", "tsgi.run_once"] as const;
const NOT_LATIN1 = /[^\x00-\xff]/;
const DIGITS = /^[0-9]+$/;
// Enough to see what went wrong in a server nobody asks; bounded so such a server does not grow.
const MAX_KEPT_VIOLATIONS = 100;

/** What the validator knows about one body between the gateway receiving it and closing it. */
interface BodyState {
  readonly request: string;
  closed: boolean;
}

/**
 * Wraps `app` so that every request checks the gateway and the application
 * against the TSGI rules (listed at the top of this module). A broken rule
 * throws a ValidationError where it happens; a gateway usually catches that
 * and answers 500, so tests call `assertNoViolations()` after each request.
 */
export function validator(app: Application): ValidatedApplication {
  if (typeof app !== "function") throw new TypeError("validator() takes a TSGI application (a function)");
  const violations: ValidationError[] = [];
  const openBodies = new Set<BodyState>();
  const record = (error: ValidationError): ValidationError => {
    if (violations.length < MAX_KEPT_VIOLATIONS) violations.push(error);
    return error;
  };
  // A body the gateway dropped without close() can only be noticed once it is collected.
  const unclosed = new FinalizationRegistry<BodyState>((state) => {
    if (state.closed || !openBodies.delete(state)) return;
    process.emitWarning(record(neverClosed(state)));
  });
  const recorder: Recorder = {
    fail: (side, rule) => {
      throw record(new ValidationError(side, rule));
    },
    opened(body, state) {
      openBodies.add(state);
      unclosed.register(body, state, state);
    },
    closed(state) {
      openBodies.delete(state);
      unclosed.unregister(state);
    },
  };

  const validated = ((environ, startResponse) => new CheckedRequest(recorder).run(app, environ, startResponse)) as ValidatedApplication;
  validated.assertNoViolations = () => {
    for (const state of openBodies) record(neverClosed(state));
    openBodies.clear();
    const first = violations[0];
    violations.length = 0;
    if (first) throw first;
  };
  return validated;
}

function neverClosed(state: BodyState): ValidationError {
  return new ValidationError("gateway", `close() was never called on the body of ${state.request}`);
}

interface Recorder {
  fail(side: Side, rule: string): never;
  opened(body: object, state: BodyState): void;
  closed(state: BodyState): void;
}

/** One request passing through the validator. */
class CheckedRequest {
  private started = false;
  private body: BodyState | undefined;

  constructor(private readonly recorder: Recorder) {}

  run(app: Application, environ: unknown, startResponse: unknown): Body | Promise<Body> {
    const fail = this.recorder.fail;
    checkEnviron(environ, fail);
    if (typeof startResponse !== "function") fail("gateway", `startResponse must be a function, not ${describe(startResponse)}`);
    const stream = streamModule();
    const checked: Environ = { ...environ };
    checked["tsgi.input"] = checkedInput(stream, environ["tsgi.input"], parseContentLength(environ.CONTENT_LENGTH), fail);
    checked["tsgi.errors"] = checkedErrors(stream, environ["tsgi.errors"], fail);

    const request = `${environ.REQUEST_METHOD} ${environ.SCRIPT_NAME}${environ.PATH_INFO}`;
    const result = app(checked, this.checkedStartResponse(startResponse as StartResponse));
    return isThenable(result) ? Promise.resolve(result).then((body) => this.wrapBody(body, request)) : this.wrapBody(result, request);
  }

  private checkedStartResponse(startResponse: StartResponse): StartResponse {
    const fail = this.recorder.fail;
    return (status, headers, excInfo) => {
      if (this.started && excInfo === undefined) {
        fail("app", "startResponse() was called a second time without excInfo");
      }
      try {
        validateStatus(status);
      } catch (error) {
        if (!(error instanceof ApplicationError)) throw error;
        fail("app", `status ${JSON.stringify(status)} must be "NNN Reason" (three digits, a space, a reason phrase, no control characters)`);
      }
      try {
        validateHeaders(headers);
      } catch (error) {
        if (!(error instanceof ApplicationError)) throw error;
        fail("app", error.message);
      }
      checkEntityHeaders(status, headers, fail);
      const write: unknown = startResponse(status, headers, excInfo);
      this.started = true;
      if (typeof write !== "function") fail("gateway", `startResponse() must return a write function, not ${describe(write)}`);
      return this.checkedWrite(write as Write);
    };
  }

  private checkedWrite(write: Write): Write {
    return (chunk) => {
      if (this.body?.closed) this.recorder.fail("app", "write() was called after the body was closed");
      checkChunk(chunk, "write() was given", this.recorder.fail);
      return write(chunk);
    };
  }

  private wrapBody(body: unknown, request: string): Body {
    const fail = this.recorder.fail;
    if (typeof body === "string" || body instanceof Uint8Array) {
      fail("app", `the application returned ${describe(body)}; the body must be an iterable of chunks, not a single chunk (wrap it: [body])`);
    }
    const isAsync = typeof (body as Partial<AsyncIterable<unknown>> | null)?.[Symbol.asyncIterator] === "function";
    const isSync = typeof (body as Partial<Iterable<unknown>> | null)?.[Symbol.iterator] === "function";
    if (!isAsync && !isSync) {
      fail("app", `the application returned ${describe(body)}; the body must be an iterable or async iterable of chunks`);
    }
    const original = body as Body;
    const state: BodyState = { request, closed: false };
    this.body = state;
    let iterated = false;
    let finished = false;

    const beginIteration = (): void => {
      if (state.closed) fail("gateway", "the body was iterated after close()");
      if (iterated) fail("gateway", "the body was iterated a second time (a body may be iterated once)");
      iterated = true;
    };
    // Stops the app's iterator when the validator ends the iteration itself (a bad
    // chunk), so a generator's `finally` still runs.
    const stopInner = (inner: Iterator<Chunk> | AsyncIterator<Chunk>): void => {
      try {
        const result = inner.return?.();
        if (isThenable(result)) result.then(undefined, () => {});
      } catch {
        // The app's own cleanup failed; the violation being reported matters more.
      }
    };
    const checkStep = (step: IteratorResult<Chunk>, inner: Iterator<Chunk> | AsyncIterator<Chunk>): IteratorResult<Chunk> => {
      try {
        if (step === null || typeof step !== "object") {
          fail("app", `the body's iterator returned ${describe(step)} from next(); expected { done, value }`);
        }
        if (step.done) {
          finished = true;
          if (!this.started) fail("app", "the body ended before startResponse() was called");
          return step;
        }
        if (!this.started) fail("app", "the body yielded a chunk before startResponse() was called");
        checkChunk(step.value, "the body yielded", fail);
        return step;
      } catch (error) {
        if (!finished) {
          finished = true;
          stopInner(inner);
        }
        throw error;
      }
    };
    const beforeNext = (): boolean => {
      if (state.closed) fail("gateway", "next() was called on the body's iterator after close()");
      return finished;
    };
    const DONE = { done: true, value: undefined } as IteratorResult<Chunk>;
    const close = (): unknown => {
      if (state.closed) fail("gateway", "close() was called on the body a second time");
      state.closed = true;
      this.recorder.closed(state);
      const abandoned = iterated && !finished;
      try {
        return typeof original.close === "function" ? original.close() : undefined;
      } finally {
        if (abandoned) {
          fail("gateway", "the gateway stopped iterating the body without running it to the end or calling return() on its iterator");
        }
      }
    };

    let wrapper: Body;
    if (isAsync) {
      wrapper = {
        [Symbol.asyncIterator]: (): AsyncIterator<Chunk> => {
          beginIteration();
          const inner = (original as AsyncIterable<Chunk>)[Symbol.asyncIterator]();
          return {
            next: async () => {
              if (beforeNext()) return DONE;
              let step: IteratorResult<Chunk>;
              try {
                step = await inner.next();
              } catch (error) {
                finished = true; // an iterator that threw is over
                throw error;
              }
              return checkStep(step, inner);
            },
            return: (value?: unknown) => {
              finished = true;
              return inner.return ? inner.return(value) : Promise.resolve({ done: true, value } as IteratorResult<Chunk>);
            },
          };
        },
        close,
      };
    } else {
      const iterate = (): Iterator<Chunk> => {
        beginIteration();
        const inner = (original as Iterable<Chunk>)[Symbol.iterator]();
        return {
          next: () => {
            if (beforeNext()) return DONE;
            let step: IteratorResult<Chunk>;
            try {
              step = inner.next();
            } catch (error) {
              finished = true;
              throw error;
            }
            return checkStep(step, inner);
          },
          return: (value?: unknown) => {
            finished = true;
            return inner.return ? inner.return(value) : ({ done: true, value } as IteratorResult<Chunk>);
          },
        };
      };
      // An array stays an array: the gateway adds Content-Length to a one-chunk array body.
      wrapper = Array.isArray(original)
        ? Object.defineProperties([...(original as Chunk[])], { [Symbol.iterator]: { value: iterate }, close: { value: close } })
        : { [Symbol.iterator]: iterate, close };
    }
    this.recorder.opened(wrapper, state);
    return wrapper;
  }
}

function checkEnviron(environ: unknown, fail: Recorder["fail"]): asserts environ is Environ {
  if (environ === null || typeof environ !== "object" || Array.isArray(environ)) {
    fail("gateway", `environ must be an object, not ${describe(environ)}`);
  }
  const env = environ as Record<string, unknown>;
  for (const key of REQUIRED_STRINGS) {
    if (typeof env[key] !== "string") fail("gateway", `environ.${key} must be a string, not ${describe(env[key])}`);
  }
  for (const [key, value] of Object.entries(env)) {
    if (typeof value === "string") {
      const bad = NOT_LATIN1.exec(value);
      if (bad) {
        const codePoint = bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
        fail("gateway", `environ.${key} must be Latin-1 (one code point per byte), but holds U+${codePoint}`);
      }
    } else if (!key.includes(".") && value !== undefined) {
      fail("gateway", `environ.${key} must be a string (CGI and HTTP_ variables are strings), not ${describe(value)}`);
    }
  }
  if (env.REQUEST_METHOD === "") fail("gateway", "environ.REQUEST_METHOD must not be empty");
  if (parseContentLength(env.CONTENT_LENGTH as string | undefined) === "invalid") {
    fail("gateway", `environ.CONTENT_LENGTH must be a decimal number when present, not ${JSON.stringify(env.CONTENT_LENGTH)}`);
  }
  for (const key of ["HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"]) {
    if (env[key] !== undefined) fail("gateway", `environ.${key} must be absent: that header is environ.${key.slice(5)}`);
  }
  const scriptName = env.SCRIPT_NAME as string;
  if (scriptName === "/") {
    fail("gateway", 'environ.SCRIPT_NAME must not be "/": the root is "" and the slash belongs to PATH_INFO');
  }
  if (scriptName !== "" && !scriptName.startsWith("/")) {
    fail("gateway", `environ.SCRIPT_NAME must be empty or start with "/", not ${JSON.stringify(scriptName)}`);
  }
  const pathInfo = env.PATH_INFO as string;
  if (pathInfo !== "" && !pathInfo.startsWith("/")) {
    fail("gateway", `environ.PATH_INFO must be empty or start with "/", not ${JSON.stringify(pathInfo)}`);
  }

  const version = env["tsgi.version"];
  if (!Array.isArray(version) || version.length !== 2 || version[0] !== 1 || version[1] !== 0) {
    fail("gateway", `environ["tsgi.version"] must be [1, 0], not ${describeValue(version)}`);
  }
  const scheme = env["tsgi.url_scheme"];
  if (scheme !== "http" && scheme !== "https") {
    fail("gateway", `environ["tsgi.url_scheme"] must be "http" or "https", not ${describeValue(scheme)}`);
  }
  const stream = streamModule();
  const input = env["tsgi.input"];
  if (!(input instanceof stream.Readable) || typeof (input as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] !== "function") {
    fail("gateway", `environ["tsgi.input"] must be an async-iterable Readable, not ${describe(input)}`);
  }
  if (!(env["tsgi.errors"] instanceof stream.Writable)) {
    fail("gateway", `environ["tsgi.errors"] must be a Writable, not ${describe(env["tsgi.errors"])}`);
  }
  for (const key of BOOLEAN_KEYS) {
    if (typeof env[key] !== "boolean") fail("gateway", `environ["${key}"] must be a boolean, not ${describe(env[key])}`);
  }
}

function checkEntityHeaders(status: string, headers: HeaderList, fail: Recorder["fail"]): void {
  const contentLength = findHeader(headers, "content-length");
  if (contentLength !== undefined && !DIGITS.test(contentLength)) {
    fail("app", `header Content-Length must be a decimal number, not ${JSON.stringify(contentLength)}`);
  }
  if (statusAllowsBody(statusCode(status))) return;
  for (const [name] of headers) {
    const lower = name.toLowerCase();
    if (lower === "content-type" || lower === "content-length") {
      fail("app", `a ${status.slice(0, 3)} response has no body, so it must not have a ${name} header`);
    }
  }
}

function checkChunk(chunk: unknown, what: string, fail: Recorder["fail"]): void {
  if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) {
    fail("app", `${what} ${describe(chunk)}; a chunk must be a Uint8Array or a string`);
  }
}

/**
 * A Readable over the gateway's input that counts bytes. It pulls from the
 * source only when the application reads, so an application that never reads
 * the body leaves the source untouched, as it would without the validator.
 */
function checkedInput(
  stream: typeof import("node:stream"),
  source: InputStream,
  contentLength: number | undefined | "invalid",
  fail: Recorder["fail"],
): InputStream {
  const limit = typeof contentLength === "number" ? contentLength : undefined;
  let iterator: AsyncIterator<unknown> | undefined;
  let received = 0;
  const violation = (rule: string): unknown => {
    try {
      fail("gateway", rule);
    } catch (error) {
      return error;
    }
  };
  const input: Readable = new stream.Readable({
    read() {
      iterator ??= source[Symbol.asyncIterator]();
      iterator.next().then(
        (step) => {
          if (step.done) return void input.push(null);
          const chunk: unknown = step.value;
          if (!(chunk instanceof Uint8Array)) {
            return void input.destroy(violation(`tsgi.input yielded ${describe(chunk)}; its chunks must be Uint8Arrays`) as Error);
          }
          received += chunk.length;
          if (limit !== undefined && received > limit) {
            return void input.destroy(
              violation(`tsgi.input yielded ${received} bytes, more than CONTENT_LENGTH (${limit}): it must end there`) as Error,
            );
          }
          input.push(chunk);
        },
        (error: Error) => input.destroy(error),
      );
    },
    destroy(error, callback) {
      // The application is done with the body, so the gateway's stream is too (as
      // when an app stops reading the gateway's stream itself); the error, if any,
      // is the application's to see, not the gateway's.
      if (!source.destroyed) source.destroy();
      callback(error);
    },
  });
  return input as InputStream;
}

/** A Writable that checks what the application writes, then passes it to the gateway's stream at once. */
function checkedErrors(stream: typeof import("node:stream"), target: Writable, fail: Recorder["fail"]): Writable {
  const errors = new stream.Writable({
    decodeStrings: false,
    write(chunk: Chunk, encoding: BufferEncoding, callback: (error?: Error | null) => void) {
      try {
        if (typeof chunk === "string") target.write(chunk, encoding);
        else target.write(chunk);
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
  });
  const write = errors.write;
  errors.write = function (this: Writable, chunk: unknown, ...rest: unknown[]): boolean {
    // Before Writable's own type check, which would throw a TypeError that names no rule.
    checkChunk(chunk, "tsgi.errors.write() was given", fail);
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as Writable["write"];
  errors.end = function (): never {
    fail("app", "tsgi.errors must not be ended: the stream belongs to the gateway (pipe into it with { end: false })");
  } as Writable["end"];
  return errors;
}

// node:stream is loaded when a request is validated, not when tsgi is imported:
// a CGI process pays for every module it loads.
let nodeStream: typeof import("node:stream") | undefined;
function streamModule(): typeof import("node:stream") {
  return (nodeStream ??= createRequire(import.meta.url)("node:stream") as typeof import("node:stream"));
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === "object" && typeof (value as PromiseLike<unknown>).then === "function";
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (typeof value === "object") return `an object (${(value as object).constructor?.name ?? "Object"})`;
  return `a ${typeof value}`;
}

function describeValue(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return describe(value);
  }
}
