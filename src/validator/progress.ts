// How far one response has gone under the validator: whether startResponse
// went through, the Content-Length it declared, and the body bytes sent so
// far, from the body and from write() together (docs/SPEC.md, "Content-Length").

import { statusAllowsBody, statusCode } from "../headers.js";
import { describe } from "../values.js";
import type { Fail } from "./violations.js";

export class ResponseProgress {
  private started = false;
  private status = "";
  /** The Content-Length of the current startResponse() call, if any. */
  private declared: number | undefined;
  /** Body bytes from the iterable and from write(). */
  private sent = 0;

  constructor(
    private readonly isHead: boolean,
    private readonly fail: Fail,
  ) {}

  /** startResponse() was called before, and went through. */
  get hasStarted(): boolean {
    return this.started;
  }

  /** The application's startResponse() call passed its checks, with this status and Content-Length. */
  headersChecked(status: string, declared: number | undefined): void {
    this.status = status;
    this.declared = declared;
  }

  /** The gateway's startResponse() accepted them. */
  markStarted(): void {
    this.started = true;
  }

  /** Checks a chunk from the body or from write() and counts its bytes against the Content-Length. */
  countChunk(chunk: unknown, what: string): number {
    // [body.chunk] A chunk is a `Uint8Array` (sent as it is) or a string (sent as its UTF-8 encoding); any other
    // value is an application error.
    if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) {
      this.fail(
        "app",
        "body.chunk",
        `${what} ${describe(chunk)}; a chunk must be a Uint8Array or a string`,
      );
    }
    const length = typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
    this.sent += length;
    const declared = this.countedLength();
    // [length.over] A body longer than its `Content-Length` is an application error: the bytes past the declared
    // length are not sent, and the error is logged.
    if (declared !== undefined && this.sent > declared) {
      this.fail(
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
      this.fail(
        "app",
        "body.lazy-start",
        "the body yielded a non-empty chunk before startResponse() was called",
      );
  }

  /** The body is exhausted. */
  bodyEnded(): void {
    if (!this.started)
      this.fail("app", "body.lazy-start", "the body ended before startResponse() was called");
    const declared = this.countedLength();
    // [length.short] A body that ends before the declared length is an application error too: the response is cut
    // off (logged; each gateway's cut-off path).
    if (declared !== undefined && this.sent < declared) {
      this.fail(
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
}
