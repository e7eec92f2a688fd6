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
import { createRequire } from "node:module";
import type { Readable, Writable } from "node:stream";
import { ConnectionClosedError } from "../engine.js";
import type { InputStream } from "../types.js";

const READ_SIZE = 64 * 1024;
const HIGH_WATER_MARK = 64 * 1024;

function streamModule(): typeof import("node:stream") {
  return createRequire("/")("node:stream") as typeof import("node:stream");
}

/** Waits a little before retrying a descriptor that said "try again" (a non-blocking one). */
function retryDelay(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.min(1 << attempt, 50)));
}

/** A Readable over a descriptor that ends after `length` bytes and never reads past them. */
export function createLimitedReader(fd: number, length: number): InputStream {
  let remaining = length;
  let attempt = 0;
  const stream: Readable = new (streamModule().Readable)({
    read() {
      if (remaining === 0) {
        this.push(null);
        return;
      }
      const buffer = Buffer.allocUnsafe(Math.min(remaining, READ_SIZE));
      const readOnce = () =>
        read(fd, buffer, 0, buffer.length, null, (error, bytesRead) => {
          if (error) {
            if (error.code === "EAGAIN") retryDelay(attempt++).then(readOnce);
            else this.destroy(error);
            return;
          }
          attempt = 0;
          if (bytesRead === 0) {
            // The server sent less than CONTENT_LENGTH: end the body where the server did.
            remaining = 0;
            this.push(null);
            return;
          }
          remaining -= bytesRead;
          this.push(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
        });
      readOnce();
    },
  });
  return stream;
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
    writev(fd, buffers as NodeJS.ArrayBufferView[], (error, written) => (error ? reject(error) : resolve(written)));
  });
}

function dropWritten(batch: Uint8Array[], written: number): Uint8Array[] {
  let index = 0;
  while (index < batch.length && written >= batch[index]!.length) {
    written -= batch[index]!.length;
    index++;
  }
  const rest = batch.slice(index);
  if (written > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(written);
  return rest;
}
