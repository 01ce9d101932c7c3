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

/**
 * Buffers in which the frame parser assembles a chunk that arrived in several socket reads (FrameParserOptions in
 * shared/src/api/frames.ts). A W1 upload is a GiB of such chunks: assembled in fresh arrays, that was a second GiB of
 * external memory beside the socket's own reads, and V8 starts a full collection for about every 64 MB of it (the
 * server's collections were almost all "external memory" ones). Sizes are powers of two from 64 KiB to `maxSize`; a
 * view of exactly the asked length is lent, and `give` takes back only views of buffers this pool made (any other
 * array is ignored), once the caller holds no reference to their bytes any more.
 */
export class FrameBufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly mine = new WeakSet<ArrayBuffer>();
  private idleBytes = 0;

  /** `maxSize`: largest pooled buffer (larger asks get one-off arrays); `maxIdleBytes`: idle bytes kept at most. */
  constructor(readonly maxSize: number, private readonly maxIdleBytes: number) {}

  /** An array of exactly `length` bytes, uninitialised (possibly used before). */
  allocate(length: number): Uint8Array {
    const size = FrameBufferPool.sizeFor(length);
    if (size > this.maxSize) return new Uint8Array(length);
    const buf = this.free.get(size)?.pop();
    if (buf) {
      this.idleBytes -= size;
      return new Uint8Array(buf, 0, length);
    }
    const fresh = Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer; // its own ArrayBuffer, not Node's shared pool
    this.mine.add(fresh);
    return new Uint8Array(fresh, 0, length);
  }

  /** Takes back `view`'s buffer if this pool lent it and it is not held idle already. */
  give(view: Uint8Array): void {
    const buf = view.buffer as ArrayBuffer;
    if (!this.mine.has(buf) || view.byteOffset !== 0) return;
    const size = buf.byteLength;
    if (this.idleBytes + size > this.maxIdleBytes) return;
    const list = this.free.get(size) ?? [];
    if (list.includes(buf)) return;
    list.push(buf);
    this.free.set(size, list);
    this.idleBytes += size;
  }

  /** Idle bytes held (tests). */
  get idle(): number {
    return this.idleBytes;
  }

  private static sizeFor(length: number): number {
    let size = 64 * 1024;
    while (size < length) size *= 2;
    return size;
  }
}
