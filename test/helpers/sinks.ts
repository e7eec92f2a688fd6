// What the engine writes, recorded: the one ResponseSink of the unit tests
// (engine, validator, adapters), and a stream that collects tsgi.errors text.

import { Writable } from "node:stream";
import type { ResponseSink } from "../../src/engine.js";
import { formatCgiHead } from "../../src/headers.js";
import type { HeaderList } from "../../src/types.js";

export type SinkEvent =
  | { kind: "headers"; status: string; headers: HeaderList }
  | { kind: "write"; data: Buffer }
  | { kind: "end" }
  | { kind: "abort"; reason: unknown }
  | { kind: "whole"; status: string; headers: HeaderList; data: Buffer };

/**
 * Records what the engine sends, in order (`events`) and by kind (`status`,
 * `headers`, `writes`, `ended`, `aborted`). `signal`: true gives the sink a
 * signal of its own, aborted through `controller` (a client that left); an
 * AbortSignal is used as it is; false (the default) offers none.
 */
export class RecordingSink implements ResponseSink {
  readonly events: SinkEvent[] = [];
  readonly writes: Buffer[] = [];
  readonly controller = new AbortController();
  readonly signal: AbortSignal | undefined;
  status: string | undefined;
  headers: HeaderList = [];
  ended = false;
  aborted = false;
  /** Called for every write; a returned promise holds the engine back (backpressure). */
  onWrite: ((data: Buffer, index: number) => void | Promise<void>) | undefined;

  constructor(signal: AbortSignal | boolean = false) {
    this.signal = signal === true ? this.controller.signal : signal || undefined;
  }

  sendHeaders(status: string, headers: HeaderList): void {
    this.status = status;
    this.headers = headers.map(([name, value]) => [name, value]);
    this.events.push({ kind: "headers", status, headers: this.headers });
  }

  write(data: Uint8Array): void | Promise<void> {
    // A copy: the engine may hand over a buffer the application reuses.
    const copy = Buffer.from(data);
    this.writes.push(copy);
    this.events.push({ kind: "write", data: copy });
    return this.onWrite?.(copy, this.writes.length - 1);
  }

  end(): void {
    this.ended = true;
    this.events.push({ kind: "end" });
  }

  abort(reason: unknown): void {
    this.aborted = true;
    this.events.push({ kind: "abort", reason });
  }

  count(kind: SinkEvent["kind"]): number {
    return this.events.filter((event) => event.kind === kind).length;
  }

  /** The body written piece by piece, as UTF-8 text. */
  body(): string {
    return Buffer.concat(this.writes).toString("utf8");
  }

  header(name: string): string | undefined {
    return this.headers.find(([key]) => key.toLowerCase() === name.toLowerCase())?.[1];
  }

  /** The response as a CGI gateway would write it. */
  output(): Buffer {
    const parts: Buffer[] = [];
    for (const event of this.events) {
      if (event.kind === "headers") parts.push(formatCgiHead(event.status, event.headers));
      else if (event.kind === "write") parts.push(event.data);
      else if (event.kind === "whole")
        parts.push(formatCgiHead(event.status, event.headers), event.data);
    }
    return Buffer.concat(parts);
  }

  /** The output as a string of Latin-1 code points, one per byte. */
  text(): string {
    return this.output().toString("latin1");
  }
}

/** A writable stream that keeps what was written as text (a tsgi.errors to read back). */
export class TextCollector extends Writable {
  text = "";
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString("utf8");
    callback();
  }
}
