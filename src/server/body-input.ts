// The request body of a one-request-per-connection gateway (SCGI, uwsgi):
// exactly CONTENT_LENGTH bytes taken from the socket as they arrive, with
// backpressure (the connection pauses the socket while the reader lags).

import { Readable } from "node:stream";
import { defineValue, type LazyKey } from "../environ.js";

/** Queued body bytes before the connection stops reading. */
const INPUT_HIGH_WATER_MARK = 64 * 1024;

function ignoreError(): void {}

/** What a connection asks of a request's input. */
export interface RequestInput {
  /** Body bytes still to come. */
  readonly remaining: number;
  /** Whether all of the body arrived (or no more is wanted). */
  readonly complete: boolean;
  /** The application has asked for data: it is waiting on this stream. */
  readonly requested: boolean;
  add(chunk: Buffer): { rest: Buffer | undefined; more: boolean };
  fail(error: Error): void;
  destroy(): void;
}

// [stream.input] `tsgi.input` streams exactly `CONTENT_LENGTH` bytes of the body (none when it is absent or
// empty) with backpressure on the connection; a body that ends short is answered `400`, or cut off once output
// started.
export class BodyInput extends Readable implements RequestInput {
  #remaining: number;
  #paused = false;
  #requested = false;

  /** `onDemand` is called when a reader wants more after add() returned false. */
  constructor(
    length: number,
    private readonly onDemand: () => void,
  ) {
    super({ highWaterMark: INPUT_HIGH_WATER_MARK });
    this.#remaining = length;
    // An abort or timeout destroys this stream with an error; an application that
    // never touched its body has no "error" listener, and an unhandled "error"
    // would kill the process. Readers still see the error.
    this.on("error", ignoreError);
    if (length === 0) this.push(null);
  }

  /** Body bytes still to come. */
  get remaining(): number {
    return this.#remaining;
  }

  /** Whether all of the body arrived (or no more is wanted). */
  get complete(): boolean {
    return this.#remaining === 0 || this.destroyed;
  }

  /** The application has asked for data: it is waiting on this stream. */
  get requested(): boolean {
    return this.#requested;
  }

  override _read(): void {
    this.#requested = true;
    if (this.#paused) {
      this.#paused = false;
      this.onDemand();
    }
  }

  /**
   * Takes the body's part of `chunk`; returns the bytes past the body (which
   * are not the request's) and whether reading may go on.
   */
  add(chunk: Buffer): { rest: Buffer | undefined; more: boolean } {
    const take = Math.min(chunk.length, this.#remaining);
    const rest = take < chunk.length ? chunk.subarray(take) : undefined;
    if (take === 0 || this.destroyed) return { rest, more: true };
    this.#remaining -= take;
    const more = this.push(take === chunk.length ? chunk : chunk.subarray(0, take));
    if (this.#remaining === 0) this.push(null);
    this.#paused = !more && this.#remaining > 0;
    return { rest, more: !this.#paused };
  }

  /** No more input will come: a reader sees `error`. */
  fail(error: Error): void {
    if (this.#remaining === 0 || this.destroyed) return;
    this.#remaining = 0;
    this.destroy(error);
  }
}

/**
 * The input of a request without a body: complete from the start. Its
 * tsgi.input is built only when the application reads it (EMPTY_INPUT_KEY):
 * most such requests never do, and a Readable with its state and the ticks
 * its end schedules were about a tenth of what a hello request allocated.
 */
export const NO_BODY: RequestInput = {
  remaining: 0,
  complete: true,
  requested: false,
  add: (chunk) => ({ rest: chunk, more: true }),
  fail: () => {},
  destroy: () => {},
};

function ignore(): void {}

/** tsgi.input of a request without a body, as a LazyKey: an ended BodyInput, built on first read. */
export const EMPTY_INPUT_KEY: LazyKey = {
  get(this: object): unknown {
    const input = new BodyInput(0, ignore);
    defineValue(this, "tsgi.input", input);
    return input;
  },
  set(this: object, value: unknown): void {
    defineValue(this, "tsgi.input", value);
  },
};
