// Reused byte arrays by size class (issue 22: external memory churn). V8 counts every ArrayBuffer's bytes as external
// memory: every 32 MB of young ones set off a scavenge, and in a process whose old generation is near its limit
// (a small live heap, or the sync client's growing factor of 1.6) most scavenges were followed by a full collection.
// A GiB relayed or read in fresh 0.1-4 MiB arrays was 30-130 full collections. Used by the server's frame parser
// (chunks that span socket reads) and the sync client's file reads.

/**
 * Arrays lent in power-of-two sizes from `minSize` to `maxSize` (larger asks get one-off arrays). A view of exactly the
 * asked length is lent; `give` takes back only views of buffers this pool made (any other array is ignored), once the
 * caller holds no reference to their bytes any more. Idle buffers are kept up to `maxIdleBytes`.
 */
export class SizeClassPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly mine = new WeakSet<ArrayBuffer>();
  private idleBytes = 0;

  constructor(
    readonly maxSize: number,
    private readonly maxIdleBytes: number,
    readonly minSize = 64 * 1024,
  ) {}

  /** An array of exactly `length` bytes whose contents are undefined (possibly used before). */
  allocate(length: number): Uint8Array {
    const size = this.sizeFor(length);
    if (size > this.maxSize) return new Uint8Array(length);
    const buf = this.free.get(size)?.pop();
    if (buf) {
      this.idleBytes -= size;
      return new Uint8Array(buf, 0, length);
    }
    const fresh = new ArrayBuffer(size);
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

  private sizeFor(length: number): number {
    let size = this.minSize;
    while (size < length) size *= 2;
    return size;
  }
}
