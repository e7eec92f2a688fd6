// The application's view of tsgi.input and tsgi.errors under the validator:
// wrappers that check each side's use of the streams and pass everything on.

import type { Readable, Writable } from "node:stream";
import { parseContentLength } from "../environ.js";
import { streamModule } from "../lazy-stream.js";
import type { Chunk, Environ, InputStream } from "../types.js";
import { describe } from "../values.js";
import type { Fail } from "./violations.js";

/**
 * The environ the application sees: a shallow copy whose tsgi.input and
 * tsgi.errors are checking wrappers, so the gateway's own is not changed.
 */
export function checkedEnviron(environ: Environ, fail: Fail): Environ {
  const stream = streamModule();
  const checked: Environ = { ...environ };
  checked["tsgi.input"] = checkedInput(
    stream,
    environ["tsgi.input"],
    parseContentLength(environ.CONTENT_LENGTH),
    fail,
  );
  checked["tsgi.errors"] = checkedErrors(stream, environ["tsgi.errors"], fail);
  return checked;
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
