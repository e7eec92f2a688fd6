// The body as the gateway sees it under the validator (docs/SPEC.md, "The
// body" and "close"): one iteration, then close(), each checked, with every
// chunk counted against the response's Content-Length.

import type { Body, Chunk } from "../types.js";
import { describe, isThenable } from "../values.js";
import type { ResponseProgress } from "./progress.js";
import type { BodyState, Fail, Recorder } from "./violations.js";

const DONE = Object.freeze({ done: true, value: undefined }) as IteratorResult<Chunk>;

/** The body as the gateway sees it: one iteration, then close(), each checked. */
export class CheckedBody {
  private iterated = false;
  /** The iteration ran to its end, threw, or was stopped with return(). */
  finished = false;

  constructor(
    private readonly original: Body,
    readonly isAsync: boolean,
    readonly state: BodyState,
    readonly progress: ResponseProgress,
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
        this.body.progress.bodyEnded();
      } else if (this.body.progress.countChunk(step.value, "the body yielded") > 0) {
        this.body.progress.beforeOutput();
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
