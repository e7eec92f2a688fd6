// Turns a fetch Response's body stream into a TSGI body, without holding back
// a streamed response and without losing the Content-Length of a small one.

import type { Body, Chunk } from "../types.js";

type Read = Awaited<ReturnType<ReadableStreamDefaultReader<Chunk>["read"]>>;

const PENDING = Symbol("pending");
/** Reads taken before deciding; two tell "one chunk, then the end" from a stream. */
const LOOKAHEAD = 2;

/**
 * A body that reads `stream` as the gateway iterates. A body that is complete
 * at once (`new Response("text")`, JSON) becomes an array of its one chunk,
 * so the engine can give it a Content-Length; anything still being produced
 * streams as it comes.
 */
export async function bodyFromWebStream(stream: ReadableStream<Chunk>): Promise<Body> {
  const reader = stream.getReader();
  const buffered: Chunk[] = [];
  let next = reader.read();
  for (let i = 0; i < LOOKAHEAD; i++) {
    const result = await unlessSlow(next);
    if (result === PENDING) break;
    if (result.done) return buffered;
    buffered.push(result.value);
    next = reader.read();
  }
  // Its rejection is handled when the gateway iterates; until then it must not count as unhandled.
  next.catch(() => {});
  return new StreamBody(reader, buffered, next);
}

/**
 * Streams the rest of a response body. When the gateway stops early, return()
 * cancels the reader, which also ends a read that is still waiting, so the
 * application's stream learns that nobody is listening any more.
 */
class StreamBody implements AsyncIterable<Chunk>, AsyncIterator<Chunk> {
  constructor(
    private readonly reader: ReadableStreamDefaultReader<Chunk>,
    private readonly buffered: Chunk[],
    private pending: Promise<Read> | undefined,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<Chunk> {
    return this;
  }

  async next(): Promise<IteratorResult<Chunk>> {
    if (this.buffered.length > 0) return { done: false, value: this.buffered.shift()! };
    const read = this.pending ?? this.reader.read();
    this.pending = undefined;
    const result = await read;
    return result.done ? { done: true, value: undefined } : { done: false, value: result.value };
  }

  async return(): Promise<IteratorResult<Chunk>> {
    this.buffered.length = 0;
    await this.reader.cancel().catch(() => {});
    return { done: true, value: undefined };
  }
}

/** Resolves to the read, or to PENDING if it does not settle within this turn of the event loop. */
function unlessSlow(read: Promise<Read>): Promise<Read | typeof PENDING> {
  let timer: NodeJS.Immediate | undefined;
  const slow = new Promise<typeof PENDING>((resolve) => (timer = setImmediate(resolve, PENDING)));
  // A failed read rejects with the stream's own reason, whatever it is.
  return Promise.race([read, slow]).finally(() => clearImmediate(timer));
}
