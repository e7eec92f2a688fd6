// The CGI gateway's own streams over file descriptors 0, 1 and 2.
//
// Not process.stdin/stdout/stderr: process.stdin reads ahead and waits for
// end-of-file, but RFC 3875 says to read exactly CONTENT_LENGTH bytes and the
// web server may never close stdin; process.stdout belongs to console.log,
// and its asynchronous pipe writes are lost if the process exits early. They
// also load node:net or node:tty, and node:stream itself is only loaded when
// the application touches the body or the error stream: every CGI request
// pays for whatever start-up loads.

import { read, writeSync, writev } from "node:fs";
import type { Writable } from "node:stream";
import { ConnectionClosedError } from "../engine.js";
import { streamModule } from "../lazy-stream.js";
import type { InputStream } from "../types.js";

const READ_SIZE = 64 * 1024;
const HIGH_WATER_MARK = 64 * 1024;

/** Waits a little before retrying a descriptor that said "try again" (a non-blocking one). */
function retryDelay(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.min(1 << attempt, 50)));
}

/**
 * How much of stdin is the request body (RFC 3875 section 4.2): `length` bytes
 * (never more: the server may keep stdin open), or everything up to end-of-file
 * for a body that came without a length (a chunked upload, which Apache passes
 * without CONTENT_LENGTH and closes stdin after).
 */
export type BodyExtent = { length: number } | "to-eof";

/**
 * The request body on a descriptor. Reads are made one at a time, so the
 * stream the application reads and a final drain never race for the same
 * bytes, and never read past the body.
 */
export class FdBody {
  private remaining: number;
  private reading: Promise<Buffer | null> | undefined;
  private stream: InputStream | undefined;

  constructor(
    private readonly fd: number,
    extent: BodyExtent,
  ) {
    this.remaining = extent === "to-eof" ? Infinity : extent.length;
  }

  /** The body as a Readable, built on first use. */
  readable(): InputStream {
    return (this.stream ??= this.makeStream());
  }

  /**
   * Reads and drops what is left of the body, for at most `timeoutMs`: a web
   * server that is still writing it gets no broken pipe (under mod_cgid that
   * loses the whole response). Resolves to whether the body was read to its end.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.remaining > 0) {
      const timeLeft = deadline - Date.now();
      if (timeLeft <= 0) return false;
      const piece = await Promise.race([this.next(), sleep(timeLeft).then(() => undefined)]);
      if (piece === undefined) return false;
      if (piece === null) return true;
    }
    return true;
  }

  /** The next piece of the body, or null at its end. */
  next(): Promise<Buffer | null> {
    const previous = this.reading ?? Promise.resolve(null);
    const reading = previous.then(() => this.readOnce());
    this.reading = reading;
    return reading;
  }

  private async readOnce(): Promise<Buffer | null> {
    if (this.remaining === 0) return null;
    const buffer = Buffer.allocUnsafe(Math.min(this.remaining, READ_SIZE));
    for (let attempt = 0; ; attempt++) {
      try {
        const bytesRead = await readAsync(this.fd, buffer);
        // [cgi.input-eof] If stdin ends early, the body ends there.
        if (bytesRead === 0) {
          // End-of-file: the server sent less than CONTENT_LENGTH, or a chunked body ended.
          this.remaining = 0;
          return null;
        }
        this.remaining -= bytesRead;
        return bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
        await retryDelay(attempt);
      }
    }
  }

  private makeStream(): InputStream {
    const stream = new (streamModule().Readable)({
      read: () => {
        this.next().then(
          (piece) => stream.push(piece),
          (error: Error) => stream.destroy(error),
        );
      },
    }) as InputStream;
    return stream;
  }
}

function readAsync(fd: number, buffer: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, 0, buffer.length, null, (error, bytesRead) =>
      error ? reject(error) : resolve(bytesRead),
    );
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * `tsgi.errors` for CGI: synchronous writes, so a log line is never lost when
 * the process ends and never waits behind the response.
 */
export function createSyncWriter(fd: number): Writable {
  return new (streamModule().Writable)({
    decodeStrings: false,
    write(chunk: Buffer | string, _encoding, callback) {
      try {
        // [cgi.errors] `tsgi.errors` writes to stderr, synchronously, so no line is lost when the process ends.
        if (typeof chunk === "string") writeSync(fd, chunk);
        else writeSync(fd, chunk);
      } catch {
        // A full non-blocking or closed stderr: drop the line rather than fail the request.
      }
      callback();
    },
  });
}

/**
 * Writes to a descriptor in order, batching small writes, and tells the caller
 * to wait (a returned promise) once 64 KiB are queued, so memory stays bounded.
 */
export class FdWriter {
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private flushing: Promise<void> | undefined;
  private error: Error | undefined;

  constructor(private readonly fd: number) {}

  write(data: Uint8Array): void | Promise<void> {
    if (this.error) throw this.error;
    this.queue.push(data);
    this.queuedBytes += data.length;
    this.flushing ??= this.flush();
    // [cgi.stdout-wait] Writes to stdout wait for the pipe (bounded memory for any body size).
    if (this.queuedBytes >= HIGH_WATER_MARK) return this.flushing;
  }

  /** Resolves once everything written so far has reached the descriptor. */
  async end(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.error) throw this.error;
  }

  private async flush(): Promise<void> {
    // Lets the writes of the current tick join one writev().
    await Promise.resolve();
    try {
      while (this.queue.length > 0) {
        let batch = this.queue;
        this.queue = [];
        this.queuedBytes = 0;
        let attempt = 0;
        while (batch.length > 0) {
          try {
            const written = await writevAsync(this.fd, batch);
            attempt = 0;
            batch = dropWritten(batch, written);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
            await retryDelay(attempt++);
          }
        }
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      this.error =
        code === "EPIPE" || code === "ECONNRESET"
          ? new ConnectionClosedError(`the web server closed the output (${code})`)
          : (error as Error);
      this.queue = [];
    } finally {
      this.flushing = undefined;
    }
  }
}

function writevAsync(fd: number, buffers: Uint8Array[]): Promise<number> {
  return new Promise((resolve, reject) => {
    writev(fd, buffers as NodeJS.ArrayBufferView[], (error, written) =>
      error ? reject(error) : resolve(written),
    );
  });
}

function dropWritten(batch: Uint8Array[], written: number): Uint8Array[] {
  let index = 0;
  while (index < batch.length && written >= batch[index].length) {
    written -= batch[index].length;
    index++;
  }
  const rest = batch.slice(index);
  if (written > 0 && rest.length > 0) rest[0] = rest[0].subarray(written);
  return rest;
}
