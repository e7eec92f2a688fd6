// The body of a streamed Node-style response: `res.write()` puts chunks in,
// the engine takes them out, and a full queue tells the writer to wait for
// 'drain', as a socket's buffer would.

type Callback = (error?: Error | null) => void;

export class ChunkQueue implements AsyncIterable<Uint8Array>, AsyncIterator<Uint8Array> {
  /** The engine has taken every chunk and seen the end. */
  exhausted = false;
  private readonly chunks: { bytes: Uint8Array; written: Callback | undefined }[] = [];
  private queuedBytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private needDrain = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly highWaterMark: number,
    private readonly onDrain: () => void,
  ) {}

  /** Adds a chunk; false means "full: wait for onDrain before writing more". */
  push(bytes: Uint8Array, written?: Callback): boolean {
    this.chunks.push({ bytes, written });
    this.queuedBytes += bytes.length;
    this.notify();
    if (this.queuedBytes < this.highWaterMark) return true;
    this.needDrain = true;
    return false;
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  /** The response cannot be completed: the engine's next read throws `error`. */
  fail(error: Error): void {
    this.failure ??= error;
    this.notify();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    const item = this.chunks.shift();
    if (item) {
      this.queuedBytes -= item.bytes.length;
      if (item.written) process.nextTick(item.written);
      if (this.needDrain && this.queuedBytes < this.highWaterMark) {
        this.needDrain = false;
        process.nextTick(this.onDrain);
      }
      return { done: false, value: item.bytes };
    }
    if (this.failure) throw this.failure;
    if (this.ended) {
      this.exhausted = true;
      return { done: true, value: undefined };
    }
    await new Promise<void>((resolve) => (this.wake = resolve));
    return this.next();
  }

  return(): Promise<IteratorResult<Uint8Array>> {
    this.chunks.length = 0;
    this.queuedBytes = 0;
    return Promise.resolve({ done: true, value: undefined });
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
