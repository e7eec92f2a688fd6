// One request passing through the validator: the environ checked, the
// application called with checked streams and a checked startResponse, and
// its body wrapped for the gateway (docs/SPEC.md, "The application").

import { requestLine } from "../environ.js";
import type { Application, Body, Environ, StartResponse, Write } from "../types.js";
import { describe, isThenable } from "../values.js";
import { CheckedBody } from "./body.js";
import { checkEnviron } from "./environ.js";
import { checkContentLength, checkStatusAndHeaders } from "./headers.js";
import { ResponseProgress } from "./progress.js";
import { checkedEnviron } from "./streams.js";
import type { BodyState, Recorder } from "./violations.js";

/** Runs `app` for one request with every rule of both sides checked on the way. */
export function runChecked(
  app: Application,
  environ: unknown,
  startResponse: unknown,
  recorder: Recorder,
): Body | Promise<Body> {
  const fail = recorder.fail;
  checkEnviron(environ, fail);
  // [app.call] The gateway calls the application once per request, with the environ and a `startResponse`
  // function.
  if (typeof startResponse !== "function")
    fail("gateway", "app.call", `startResponse must be a function, not ${describe(startResponse)}`);
  const request = new CheckedRequest(recorder, environ);
  const result = app(
    checkedEnviron(environ, fail),
    request.checkedStartResponse(startResponse as StartResponse),
  );
  return isThenable(result)
    ? Promise.resolve(result).then((body) => request.wrapBody(body))
    : request.wrapBody(result);
}

/** The application's side of one request: its startResponse and write calls, and its body. */
class CheckedRequest {
  private body: BodyState | undefined;
  private readonly progress: ResponseProgress;
  /** The request line, to name the request in a violation found after it is over. */
  private readonly request: string;

  constructor(
    private readonly recorder: Recorder,
    environ: Environ,
  ) {
    // Read from the gateway's environ: the application may change its copy.
    this.progress = new ResponseProgress(environ.REQUEST_METHOD === "HEAD", recorder.fail);
    this.request = requestLine(environ);
  }

  checkedStartResponse(startResponse: StartResponse): StartResponse {
    const fail = this.recorder.fail;
    return (status, headers, excInfo) => {
      // [start.once] `startResponse` may be called once; a second call without `excInfo` is an application error
      // (the gateway throws an `ApplicationError`).
      if (this.progress.hasStarted && excInfo === undefined) {
        fail("app", "start.once", "startResponse() was called a second time without excInfo");
      }
      checkStatusAndHeaders(status, headers, fail);
      this.progress.headersChecked(status, checkContentLength(status, headers, fail));
      const write: unknown = startResponse(status, headers, excInfo);
      this.progress.markStarted();
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
      this.progress.countChunk(chunk, "write() was given");
      return write(chunk);
    };
  }

  wrapBody(body: unknown): Body {
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
      { request: this.request, closed: false },
      this.progress,
      this.recorder,
    );
    this.body = checked.state;
    return checked.wrapper();
  }
}
