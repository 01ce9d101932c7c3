// Pack buffers kept for the next upload batch (issue 22, W1). Every batch of the sync client fills one pack; a fresh
// 8 MiB buffer per batch was 8 MiB of external memory for V8 each time, and that churn (with the request's own
// buffers) is what set off its full collections: in a W1 upload the server's four GC helper threads spent about as much
// CPU as its main thread. A buffer goes back only after the object it held was written (the store has read all of
// it by then); a failed write's buffer is left to the garbage collector.
export class BufferPool {
  private readonly free: Buffer[] = [];

  /** `size`: the size of every pooled buffer; `keep`: how many idle ones are kept at most. */
  constructor(readonly size: number, private readonly keep: number) {}

  /** A buffer of `size` bytes (uninitialised, possibly used before), or a one-off one if `min` is larger. */
  take(min: number): Buffer {
    if (min > this.size) return Buffer.allocUnsafe(min);
    return this.free.pop() ?? Buffer.allocUnsafe(this.size);
  }

  /** Gives back a buffer from `take` whose contents are no longer needed by anyone. */
  give(buf: Buffer): void {
    if (buf.length === this.size && this.free.length < this.keep && !this.free.includes(buf)) this.free.push(buf);
  }

  /** Idle buffers held (tests). */
  get idle(): number {
    return this.free.length;
  }
}
