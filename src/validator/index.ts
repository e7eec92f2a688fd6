// Checks both sides of the TSGI interface on every request, as Python's
// wsgiref.validate and Rack::Lint do: wrap an application while developing or
// testing, and a broken rule throws a ValidationError that names the side that
// broke it and the rule's id.
//
// The rules are those of docs/SPEC.md, where each has an id in brackets. Each
// check in these files carries, in a comment, the id and the sentence of the rule it
// enforces, word for word as in the spec (test/spec-rules.test.ts holds the two
// together), so the spec is the list of what is checked here.
//
// The application sees a shallow copy of the environ whose tsgi.input and
// tsgi.errors are checking wrappers; the gateway's own environ is not changed.
//
// The checks sit in one file per part of the spec: environ.ts (the environ),
// streams.ts (tsgi.input, tsgi.errors), headers.ts (startResponse's status and
// headers), progress.ts (Content-Length and the order of output), body.ts (the
// body and close()); request.ts ties them together for one request.

import type { Application } from "../types.js";
import { runChecked } from "./request.js";
import { ValidationError, type BodyState, type Recorder } from "./violations.js";

export { ValidationError, type Side } from "./violations.js";

/** An application wrapped by `validator()`. */
export interface ValidatedApplication extends Application {
  /**
   * Throws the first violation seen since the previous call — including one the
   * gateway caught and turned into a 500 — or a `[gateway]` error for a body
   * whose close() was never called. Call it when no request is in flight.
   */
  assertNoViolations(): void;
}

// Enough to see what went wrong in a server nobody asks; bounded so such a server does not grow.
const MAX_KEPT_VIOLATIONS = 100;

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
    runChecked(app, environ, startResponse, recorder)) as ValidatedApplication;
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
