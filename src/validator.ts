// Checks both sides of the TSGI interface on every request, as Python's
// wsgiref.validate and Rack::Lint do: wrap an application while developing or
// testing, and a broken rule throws a ValidationError that names the side that
// broke it and the rule's id.
//
// The rules are those of docs/SPEC.md, where each has an id in brackets. Each
// check below carries, in a comment, the id and the sentence of the rule it
// enforces, word for word as in the spec (test/spec-rules.test.ts holds the two
// together), so the spec is the list of what is checked here.
//
// The application sees a shallow copy of the environ whose tsgi.input and
// tsgi.errors are checking wrappers; the gateway's own environ is not changed.

import type { Readable, Writable } from "node:stream";
import { parseContentLength, requestLine } from "./environ.js";
import {
  ApplicationError,
  declaredContentLength,
  findHeader,
  isHopByHop,
  statusAllowsBody,
  statusCode,
  validateHeaders,
  validateStatus,
} from "./headers.js";
import type {
  Application,
  Body,
  Chunk,
  Environ,
  HeaderList,
  InputStream,
  StartResponse,
  Write,
} from "./types.js";
import { streamModule } from "./lazy-stream.js";
import { describe, isThenable } from "./values.js";

/** Which side of the interface broke a rule. */
export type Side = "app" | "gateway";

/**
 * A TSGI rule was broken. The message starts with the side at fault and ends
 * with the id of the rule, as docs/SPEC.md tags it: `[app] … [status.format]`.
 */
export class ValidationError extends Error {
  override name = "ValidationError";
  constructor(
    readonly side: Side,
    /** The rule's id in docs/SPEC.md, such as `status.format`. */
    readonly rule: string,
    detail: string,
  ) {
    super(`[${side}] ${detail} [${rule}]`);
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

const REQUIRED_STRINGS: Record<string, string> = {
  REQUEST_METHOD: "env.method",
  SCRIPT_NAME: "env.script-name",
  PATH_INFO: "env.path-info",
  QUERY_STRING: "env.query-string",
  SERVER_NAME: "env.server",
  SERVER_PORT: "env.server",
  SERVER_PROTOCOL: "env.server",
};
const BOOLEAN_KEYS = ["tsgi.multithread", "tsgi.multiprocess", "tsgi.run_once"] as const;
// eslint-disable-next-line no-control-regex -- U+0000 is the lower end of the Latin-1 range checked for
const NOT_LATIN1 = /[^\x00-\xff]/;
// Enough to see what went wrong in a server nobody asks; bounded so such a server does not grow.
const MAX_KEPT_VIOLATIONS = 100;
const DONE = Object.freeze({ done: true, value: undefined }) as IteratorResult<Chunk>;

type Fail = (side: Side, rule: string, detail: string) => never;

/** What the validator knows about one body between the gateway receiving it and closing it. */
interface BodyState {
  readonly request: string;
  closed: boolean;
}

/**
 * Wraps `app` so that every request checks the gateway and the application
 * against the rules of docs/SPEC.md. A broken rule throws a ValidationError
 * where it happens; a gateway usually catches that and answers 500, so tests
 * call `assertNoViolations()` after each request.
 */
export function validator(app: Application): ValidatedApplication {
  if (typeof app !== "function")
    throw new TypeError("validator() takes a TSGI application (a function)");
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
    fail: (side, rule, detail) => {
      throw record(new ValidationError(side, rule, detail));
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

  const validated = ((environ, startResponse) =>
    new CheckedRequest(recorder).run(app, environ, startResponse)) as ValidatedApplication;
  validated.assertNoViolations = () => {
    for (const state of openBodies) record(neverClosed(state));
    openBodies.clear();
    const first = violations[0];
    violations.length = 0;
    if (first) throw first;
  };
  return validated;
}

// [close.once] If the body has a `close` method, the gateway calls it exactly once when it is done with the body,
// whatever the reason: the last chunk was sent, the body or the application failed, or the client went away.
function neverClosed(state: BodyState): ValidationError {
  return new ValidationError(
    "gateway",
    "close.once",
    `close() was never called on the body of ${state.request}`,
  );
}

interface Recorder {
  fail: Fail;
  opened(body: object, state: BodyState): void;
  closed(state: BodyState): void;
}

/** One request passing through the validator. */
class CheckedRequest {
  private started = false;
  private body: BodyState | undefined;
  private status = "";
  /** The Content-Length of the current startResponse() call, if any. */
  private declared: number | undefined;
  /** Body bytes from the iterable and from write(). */
  private sent = 0;
  private isHead = false;

  constructor(private readonly recorder: Recorder) {}

  run(app: Application, environ: unknown, startResponse: unknown): Body | Promise<Body> {
    const fail = this.recorder.fail;
    checkEnviron(environ, fail);
    // [app.call] The gateway calls the application once per request, with the environ and a `startResponse`
    // function.
    if (typeof startResponse !== "function")
      fail(
        "gateway",
        "app.call",
        `startResponse must be a function, not ${describe(startResponse)}`,
      );
    const stream = streamModule();
    const checked: Environ = { ...environ };
    checked["tsgi.input"] = checkedInput(
      stream,
      environ["tsgi.input"],
      parseContentLength(environ.CONTENT_LENGTH),
      fail,
    );
    checked["tsgi.errors"] = checkedErrors(stream, environ["tsgi.errors"], fail);
    // Read from the gateway's environ: the application may change its copy.
    this.isHead = environ.REQUEST_METHOD === "HEAD";

    const request = requestLine(environ);
    const result = app(checked, this.checkedStartResponse(startResponse as StartResponse));
    return isThenable(result)
      ? Promise.resolve(result).then((body) => this.wrapBody(body, request))
      : this.wrapBody(result, request);
  }

  private checkedStartResponse(startResponse: StartResponse): StartResponse {
    const fail = this.recorder.fail;
    return (status, headers, excInfo) => {
      // [start.once] `startResponse` may be called once; a second call without `excInfo` is an application error
      // (the gateway throws an `ApplicationError`).
      if (this.started && excInfo === undefined) {
        fail("app", "start.once", "startResponse() was called a second time without excInfo");
      }
      checkStatusAndHeaders(status, headers, fail);
      this.status = status;
      this.declared = checkContentLength(status, headers, fail);
      const write: unknown = startResponse(status, headers, excInfo);
      this.started = true;
      // [write.returned] `startResponse` returns `write`, the imperative path kept for applications that cannot
      // return their output as a body.
      if (typeof write !== "function")
        fail(
          "gateway",
          "write.returned",
          `startResponse() must return a write function, not ${describe(write)}`,
        );
      return this.checkedWrite(write as Write);
    };
  }

  private checkedWrite(write: Write): Write {
    return (chunk) => {
      // [write.after-end] Calling `write` after the response ended throws.
      if (this.body?.closed)
        this.recorder.fail(
          "app",
          "write.after-end",
          "write() was called after the body was closed",
        );
      this.countChunk(chunk, "write() was given");
      return write(chunk);
    };
  }

  /** Checks a chunk from the body or from write() and counts its bytes against the Content-Length. */
  countChunk(chunk: unknown, what: string): number {
    const fail = this.recorder.fail;
    // [body.chunk] A chunk is a `Uint8Array` (sent as it is) or a string (sent as its UTF-8 encoding); any other
    // value is an application error.
    if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) {
      fail(
        "app",
        "body.chunk",
        `${what} ${describe(chunk)}; a chunk must be a Uint8Array or a string`,
      );
    }
    const length =
      typeof chunk === "string" ? Buffer.byteLength(chunk) : (chunk as Uint8Array).length;
    this.sent += length;
    const declared = this.countedLength();
    // [length.over] A body longer than its `Content-Length` is an application error: the bytes past the declared
    // length are not sent, and the error is logged.
    if (declared !== undefined && this.sent > declared) {
      fail(
        "app",
        "length.over",
        `the body is longer than its Content-Length: ${this.sent} bytes so far, ${declared} declared`,
      );
    }
    return length;
  }

  /** A non-empty chunk is on its way out. */
  beforeOutput(): void {
    // [body.lazy-start] The application does not need to call `startResponse` before it returns: it may call it
    // while the body is being iterated, as long as that is before the first non-empty chunk (or before the end,
    // for an empty body).
    if (!this.started)
      this.recorder.fail(
        "app",
        "body.lazy-start",
        "the body yielded a non-empty chunk before startResponse() was called",
      );
  }

  /** The body is exhausted. */
  bodyEnded(): void {
    const fail = this.recorder.fail;
    if (!this.started)
      fail("app", "body.lazy-start", "the body ended before startResponse() was called");
    const declared = this.countedLength();
    // [length.short] A body that ends before the declared length is an application error too: the response is cut
    // off (logged; each gateway's cut-off path).
    if (declared !== undefined && this.sent < declared) {
      fail(
        "app",
        "length.short",
        `the body ended after ${this.sent} bytes, short of its Content-Length (${declared})`,
      );
    }
  }

  // [length.counted] When the application sets `Content-Length`, the gateway counts the body bytes, from the
  // iterable and from `write` together, against it, except for a response to `HEAD` and for a status without a
  // body (`1xx`, `204`, `304`).
  private countedLength(): number | undefined {
    if (this.declared === undefined || this.isHead || !statusAllowsBody(statusCode(this.status)))
      return undefined;
    return this.declared;
  }

  private wrapBody(body: unknown, request: string): Body {
    const fail = this.recorder.fail;
    // [body.iterable] A body that is not iterable, a bare string or `Uint8Array` included, is an application
    // error.
    if (typeof body === "string" || body instanceof Uint8Array) {
      const detail = `the application returned ${describe(body)}; the body must be an iterable of chunks, not a single chunk (wrap it: [body])`;
      fail("app", "body.iterable", detail);
    }
    const isAsync =
      typeof (body as Partial<AsyncIterable<unknown>> | null)?.[Symbol.asyncIterator] ===
      "function";
    const isSync =
      typeof (body as Partial<Iterable<unknown>> | null)?.[Symbol.iterator] === "function";
    if (!isAsync && !isSync) {
      fail(
        "app",
        "body.iterable",
        `the application returned ${describe(body)}; the body must be an iterable or async iterable of chunks`,
      );
    }
    const checked = new CheckedBody(
      body as Body,
      isAsync,
      { request, closed: false },
      this,
      this.recorder,
    );
    this.body = checked.state;
    return checked.wrapper();
  }
}

/** The body as the gateway sees it: one iteration, then close(), each checked. */
class CheckedBody {
  private iterated = false;
  /** The iteration ran to its end, threw, or was stopped with return(). */
  finished = false;

  constructor(
    private readonly original: Body,
    readonly isAsync: boolean,
    readonly state: BodyState,
    readonly request: CheckedRequest,
    private readonly recorder: Recorder,
  ) {}

  /** A body of the original's kind; an array stays an array, since a gateway adds Content-Length to a one-chunk array. */
  wrapper(): Body {
    const iterate = () => this.iterate();
    const close = () => this.close();
    let wrapper: Body;
    if (this.isAsync)
      wrapper = { [Symbol.asyncIterator]: iterate as unknown as () => AsyncIterator<Chunk>, close };
    else if (Array.isArray(this.original)) {
      wrapper = Object.defineProperties([...(this.original as Chunk[])], {
        [Symbol.iterator]: { value: iterate },
        close: { value: close },
      });
    } else wrapper = { [Symbol.iterator]: iterate as unknown as () => Iterator<Chunk>, close };
    this.recorder.opened(wrapper, this.state);
    return wrapper;
  }

  private iterate(): CheckedIterator {
    const fail = this.recorder.fail;
    // [close.last] After `close()`, the gateway neither iterates the body again nor asks its iterator for another
    // chunk.
    if (this.state.closed) fail("gateway", "close.last", "the body was iterated after close()");
    // [body.once] The gateway iterates the body once, in order.
    if (this.iterated)
      fail(
        "gateway",
        "body.once",
        "the body was iterated a second time (a body may be iterated once)",
      );
    this.iterated = true;
    const original = this.original as Partial<Iterable<Chunk> & AsyncIterable<Chunk>>;
    const inner = this.isAsync ? original[Symbol.asyncIterator]!() : original[Symbol.iterator]!();
    return new CheckedIterator(this, inner, this.recorder.fail);
  }

  private close(): unknown {
    const fail = this.recorder.fail;
    // [close.once] If the body has a `close` method, the gateway calls it exactly once when it is done with the
    // body, whatever the reason: the last chunk was sent, the body or the application failed, or the client went
    // away.
    if (this.state.closed)
      fail("gateway", "close.once", "close() was called on the body a second time");
    this.state.closed = true;
    this.recorder.closed(this.state);
    const abandoned = this.iterated && !this.finished;
    try {
      return typeof this.original.close === "function" ? this.original.close() : undefined;
    } finally {
      // [close.return] If the gateway stops iterating before the iterator is exhausted (an error, a client that
      // went away, an aborted request), it calls the iterator's `return()`, so a generator's `finally` blocks run;
      // it does not call `return()` on an iterator that finished or threw.
      if (abandoned) {
        fail(
          "gateway",
          "close.return",
          "the gateway stopped iterating the body without running it to the end or calling return() on its iterator",
        );
      }
    }
  }
}

type Step = IteratorResult<Chunk> | Promise<IteratorResult<Chunk>>;

/**
 * The checking iterator over the application's own, for both kinds of body:
 * an async body's steps are promises, checked once they settle.
 */
class CheckedIterator {
  constructor(
    private readonly body: CheckedBody,
    private readonly inner: Iterator<Chunk> | AsyncIterator<Chunk>,
    private readonly fail: Fail,
  ) {}

  next(): Step {
    if (!this.body.isAsync) return this.advance();
    try {
      return this.advance();
    } catch (error) {
      // An async iterator's next() reports a failure as a rejection, whatever was thrown.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      return Promise.reject(error);
    }
  }

  return(value?: unknown): Step {
    this.body.finished = true;
    if (this.inner.return) return this.inner.return(value);
    const done = { done: true, value } as IteratorResult<Chunk>;
    return this.body.isAsync ? Promise.resolve(done) : done;
  }

  private advance(): Step {
    if (this.body.state.closed)
      this.fail("gateway", "close.last", "next() was called on the body's iterator after close()");
    if (this.body.finished) return this.body.isAsync ? Promise.resolve(DONE) : DONE;
    let step: Step;
    try {
      step = this.inner.next();
    } catch (error) {
      this.body.finished = true; // an iterator that threw is over
      throw error;
    }
    if (!this.body.isAsync) return this.check(step as IteratorResult<Chunk>);
    return Promise.resolve(step).then(
      (settled) => this.check(settled),
      (error: unknown) => {
        this.body.finished = true;
        throw error;
      },
    );
  }

  private check(step: IteratorResult<Chunk>): IteratorResult<Chunk> {
    try {
      if (step === null || typeof step !== "object") {
        this.fail(
          "app",
          "body.iterable",
          `the body's iterator returned ${describe(step)} from next(); expected { done, value }`,
        );
      }
      if (step.done) {
        this.body.finished = true;
        this.body.request.bodyEnded();
      } else if (this.body.request.countChunk(step.value, "the body yielded") > 0) {
        this.body.request.beforeOutput();
      }
      return step;
    } catch (error) {
      this.stopInner();
      throw error;
    }
  }

  /** Stops the app's iterator when the validator ends the iteration itself, so a generator's `finally` still runs. */
  private stopInner(): void {
    if (this.body.finished) return;
    this.body.finished = true;
    try {
      const result = this.inner.return?.();
      if (isThenable(result)) result.then(undefined, () => {});
    } catch {
      // The app's own cleanup failed; the violation being reported matters more.
    }
  }
}

function checkEnviron(environ: unknown, fail: Fail): asserts environ is Environ {
  // [env.object] The environ is a plain object holding the request's CGI meta-variables (RFC 3875) and the
  // `tsgi.*` keys.
  if (environ === null || typeof environ !== "object" || Array.isArray(environ)) {
    fail("gateway", "env.object", `environ must be an object, not ${describe(environ)}`);
  }
  const env = environ as Record<string, unknown>;
  // The presence of these; their form is checked in checkRequestVariables.
  //
  // [env.query-string] `QUERY_STRING`: the text after `?`, still percent-encoded; always present, possibly `""`.
  // [env.server] `SERVER_NAME`, `SERVER_PORT`, `SERVER_PROTOCOL`: always present, as the web server sent them (RFC
  // 3875 §4.1.14 to §4.1.16).
  for (const [key, rule] of Object.entries(REQUIRED_STRINGS)) {
    if (typeof env[key] !== "string")
      fail("gateway", rule, `environ.${key} must be a string, not ${describe(env[key])}`);
  }
  for (const [key, value] of Object.entries(env)) checkVariable(key, value, fail);
  checkRequestVariables(env as unknown as Environ, fail);
  checkTsgiKeys(env, fail);
}

function checkVariable(key: string, value: unknown, fail: Fail): void {
  // [env.latin1] Every byte of a variable's name and value becomes the one character with the same number: byte
  // `0xNN` becomes U+00NN.
  const badInName = NOT_LATIN1.exec(key);
  if (badInName)
    fail(
      "gateway",
      "env.latin1",
      `the environ key ${JSON.stringify(key)} must be Latin-1, but holds ${codePoint(badInName[0])}`,
    );
  if (typeof value === "string") {
    const bad = NOT_LATIN1.exec(value);
    if (bad)
      fail(
        "gateway",
        "env.latin1",
        `environ.${key} must be Latin-1 (one code point per byte), but holds ${codePoint(bad[0])}`,
      );
    return;
  }
  // [env.strings] The CGI variables (the keys without a dot) hold strings; a key holding `undefined` counts as
  // absent.
  if (!key.includes(".") && value !== undefined) {
    fail(
      "gateway",
      "env.strings",
      `environ.${key} must be a string (CGI and HTTP_ variables are strings), not ${describe(value)}`,
    );
  }
}

/** The variables whose content has a form (their presence is checked with REQUIRED_STRINGS). */
function checkRequestVariables(env: Environ, fail: Fail): void {
  // [env.method] `REQUEST_METHOD`: always present, never empty.
  if (env.REQUEST_METHOD === "")
    fail("gateway", "env.method", "environ.REQUEST_METHOD must not be empty");
  // [env.content-length] `CONTENT_TYPE`, `CONTENT_LENGTH`: as the web server sent them; they may be absent or
  // empty, and a `CONTENT_LENGTH` that is not empty is a decimal number.
  if (parseContentLength(env.CONTENT_LENGTH) === "invalid") {
    fail(
      "gateway",
      "env.content-length",
      `environ.CONTENT_LENGTH must be a decimal number when present, not ${JSON.stringify(env.CONTENT_LENGTH)}`,
    );
  }
  // [env.http-content] `HTTP_CONTENT_TYPE` and `HTTP_CONTENT_LENGTH` may be present when a web server passes them
  // (nginx does); an application reads `CONTENT_TYPE` and `CONTENT_LENGTH`.
  //
  // So HTTP_CONTENT_TYPE and HTTP_CONTENT_LENGTH are checked as any other variable, and nothing more.
  // [env.script-name] `SCRIPT_NAME`: the part of the URL path that leads to the application; always present, `""`
  // at the root, otherwise starting with `/` and never `/` alone (that slash belongs to `PATH_INFO`).
  if (env.SCRIPT_NAME === "/") {
    fail(
      "gateway",
      "env.script-name",
      'environ.SCRIPT_NAME must not be "/": the root is "" and the slash belongs to PATH_INFO',
    );
  }
  if (env.SCRIPT_NAME !== "" && !env.SCRIPT_NAME.startsWith("/")) {
    fail(
      "gateway",
      "env.script-name",
      `environ.SCRIPT_NAME must be empty or start with "/", not ${JSON.stringify(env.SCRIPT_NAME)}`,
    );
  }
  // [env.path-info] `PATH_INFO`: the rest of the path, decoded by the web server; always present, `""` or starting
  // with `/`.
  if (env.PATH_INFO !== "" && !env.PATH_INFO.startsWith("/")) {
    fail(
      "gateway",
      "env.path-info",
      `environ.PATH_INFO must be empty or start with "/", not ${JSON.stringify(env.PATH_INFO)}`,
    );
  }
}

function checkTsgiKeys(env: Record<string, unknown>, fail: Fail): void {
  const version = env["tsgi.version"];
  // [env.version] `tsgi.version`: `[1, 0]` (frozen).
  if (!Array.isArray(version) || version.length !== 2 || version[0] !== 1 || version[1] !== 0) {
    fail(
      "gateway",
      "env.version",
      `environ["tsgi.version"] must be [1, 0], not ${describeValue(version)}`,
    );
  }
  const scheme = env["tsgi.url_scheme"];
  // [env.url-scheme] `tsgi.url_scheme`: `"https"` when `HTTPS` is `on`, `1` or `yes` (any case); when `HTTPS` is
  // unset or empty, `"https"` if `REQUEST_SCHEME` is `https` (any case); otherwise `"http"`.
  if (scheme !== "http" && scheme !== "https") {
    fail(
      "gateway",
      "env.url-scheme",
      `environ["tsgi.url_scheme"] must be "http" or "https", not ${describeValue(scheme)}`,
    );
  }
  const stream = streamModule();
  const input = env["tsgi.input"];
  // [env.input] `tsgi.input`: the request body, a Node `Readable` that is also `AsyncIterable<Uint8Array>`; it
  // yields bytes, never strings, and ends at the end of the body, never reading past it.
  if (
    !(input instanceof stream.Readable) ||
    typeof (input as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] !== "function"
  ) {
    fail(
      "gateway",
      "env.input",
      `environ["tsgi.input"] must be an async-iterable Readable, not ${describe(input)}`,
    );
  }
  // [env.errors] `tsgi.errors`: a Node `Writable` for log text; the gateway decides where it goes.
  if (!(env["tsgi.errors"] instanceof stream.Writable)) {
    fail(
      "gateway",
      "env.errors",
      `environ["tsgi.errors"] must be a Writable, not ${describe(env["tsgi.errors"])}`,
    );
  }
  // [env.flags] `tsgi.multithread`, `tsgi.multiprocess` and `tsgi.run_once` are booleans.
  for (const key of BOOLEAN_KEYS) {
    if (typeof env[key] !== "boolean")
      fail(
        "gateway",
        "env.flags",
        `environ["${key}"] must be a boolean, not ${describe(env[key])}`,
      );
  }
}

// [header.checked] A status, header name or header value that breaks these rules is an application error, detected
// when `startResponse` is called; nothing of it is ever sent.
function checkStatusAndHeaders(
  status: unknown,
  headers: unknown,
  fail: Fail,
): asserts status is string {
  try {
    validateStatus(status);
  } catch (error) {
    if (!(error instanceof ApplicationError)) throw error;
    // [status.format] A status matches `^[1-9][0-9][0-9] ` followed by a non-empty reason phrase made of the
    // characters a header value may hold.
    const detail = `status ${JSON.stringify(status)} must be "NNN Reason" (three digits, a space, a reason phrase, no control characters)`;
    fail("app", "status.format", detail);
  }
  try {
    validateHeaders(headers);
  } catch (error) {
    if (!(error instanceof ApplicationError)) throw error;
    fail("app", headerRule(headers), error.message);
  }
}

/**
 * Which rule a header list that validateHeaders refused breaks. Each pair is
 * put to validateHeaders again, name and value apart, so that the engine's own
 * checks decide, in the order that validateHeaders reports them.
 */
function headerRule(headers: unknown): string {
  if (!Array.isArray(headers)) return "header.list";
  for (const pair of headers as unknown[]) {
    if (accepts([pair])) continue;
    // [header.list] `headers` is an ordered list of `[name, value]` pairs of strings.
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      typeof pair[0] !== "string" ||
      typeof pair[1] !== "string"
    )
      return "header.list";
    const [name, value] = pair as [string, string];
    // [header.name] A header name is an RFC 9110 token: letters, digits and ``!#$%&'*+-.^_`|~``.
    if (!isHopByHop(name) && !accepts([[name, ""]])) return "header.name";
    // [header.value] A header value holds only tab and the characters U+0020–U+007E and U+0080–U+00FF (RFC 9110
    // field text, Latin-1).
    if (!accepts([["X", value]])) return "header.value";
    // [header.hop-by-hop] Hop-by-hop headers describe one connection and belong to the gateway: `Connection`,
    // `Keep-Alive`, `Proxy-Authenticate`, `Proxy-Authorization`, `Proxy-Connection`, `TE`, `Trailer`, `Trailers`,
    // `Transfer-Encoding` and `Upgrade` (any case) are rejected.
    return "header.hop-by-hop";
  }
  return "header.list";
}

function accepts(headers: unknown): boolean {
  try {
    validateHeaders(headers);
    return true;
  } catch {
    return false;
  }
}

/** Checks the Content-Length the application set, and returns it. */
function checkContentLength(status: string, headers: HeaderList, fail: Fail): number | undefined {
  let declared: number | undefined;
  try {
    declared = declaredContentLength(headers);
  } catch (error) {
    if (!(error instanceof ApplicationError)) throw error;
    // [length.decimal] A `Content-Length` set by the application is one decimal number (repeated headers carry the
    // same one); anything else is an application error, which gives a 500.
    fail("app", "length.decimal", error.message);
  }
  const code = statusCode(status);
  // [length.no-body] A `1xx` or `204` response must not carry `Content-Length`; `Content-Type` is allowed, and a
  // `304` may carry `Content-Length`, the length of the selected representation (RFC 9110 §8.6, §15.4.5).
  if ((code < 200 || code === 204) && findHeader(headers, "content-length") !== undefined) {
    fail(
      "app",
      "length.no-body",
      `a ${code} response must not have a Content-Length header (RFC 9110 section 8.6)`,
    );
  }
  return declared;
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
  fail: Fail,
): InputStream {
  const limit = typeof contentLength === "number" ? contentLength : undefined;
  let iterator: AsyncIterator<unknown> | undefined;
  let received = 0;
  const violation = (detail: string): Error => {
    try {
      fail("gateway", "env.input", detail);
    } catch (error) {
      return error as Error;
    }
  };
  const input: Readable = new stream.Readable({
    read() {
      iterator ??= source[Symbol.asyncIterator]();
      iterator.next().then(
        (step) => {
          if (step.done) return void input.push(null);
          const chunk: unknown = step.value;
          // [env.input] `tsgi.input`: the request body, a Node `Readable` that is also
          // `AsyncIterable<Uint8Array>`; it yields bytes, never strings, and ends at the end of the body, never
          // reading past it.
          if (!(chunk instanceof Uint8Array)) {
            return void input.destroy(
              violation(`tsgi.input yielded ${describe(chunk)}; its chunks must be Uint8Arrays`),
            );
          }
          received += chunk.length;
          if (limit !== undefined && received > limit) {
            return void input.destroy(
              violation(
                `tsgi.input yielded ${received} bytes, more than CONTENT_LENGTH (${limit}): it must end there`,
              ),
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
function checkedErrors(
  stream: typeof import("node:stream"),
  target: Writable,
  fail: Fail,
): Writable {
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
  const write = errors.write.bind(errors) as (...args: unknown[]) => boolean;
  // [env.errors-use] The application writes only strings and `Uint8Array`s to `tsgi.errors` and never ends it: the
  // stream belongs to the gateway (pipe into it with `{ end: false }`).
  errors.write = function (this: Writable, chunk: unknown, ...rest: unknown[]): boolean {
    // Before Writable's own type check, which would throw a TypeError that names no rule.
    if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) {
      fail(
        "app",
        "env.errors-use",
        `tsgi.errors.write() was given ${describe(chunk)}; it takes strings and Uint8Arrays`,
      );
    }
    return write(chunk, ...rest);
  } as Writable["write"];
  errors.end = function (): never {
    fail(
      "app",
      "env.errors-use",
      "tsgi.errors must not be ended: the stream belongs to the gateway (pipe into it with { end: false })",
    );
  } as Writable["end"];
  return errors;
}

/** `U+20AC` for "€". */
function codePoint(character: string): string {
  return "U+" + character.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
}

function describeValue(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return describe(value);
  }
}
