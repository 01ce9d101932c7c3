// The batching chunk uploader (docs/architecture.md §3.1): chunk envelopes are sealed straight into the framed body
// of the batch being built, in a buffer taken from a small pool, and each batch goes out as one request with a bounded
// number in flight.
//
// Memory and garbage (issue 22, W1). Each chunk used to be sealed into a fresh array, then copied or streamed into
// the request: a GiB uploaded allocated a GiB of ciphertexts (plus the chunker's copies) that only the garbage
// collector gave back. Here the uploader owns at most `inFlight + 1` buffers of `batchBytes` (4 MiB; at least one largest
// frame), reused from batch to batch; a batch goes once it holds `batchBytes` or when its next frame would not fit,
// and its body is that buffer's first bytes, already framed (docs/api.md "Chunk batch frames"), sent without a copy.
//
// A buffer goes back to the pool only after its request succeeded: the server answers once it has read the whole body,
// so nothing still writes from it. A failed request's buffer is dropped (a socket may still be sending from it) and a
// fresh one is made when needed.
import { CHUNK_MAX, FRAME_HEADER_BYTES, sealedChunkLength, writeFrameHeader } from '@kluis/shared';
import type { ApiClient } from '../api/client.js';
import type { RateLimiter } from './transfer.js';

export interface UploaderOptions {
  batchBytes?: number;
  maxFrames?: number;
  inFlight?: number;
  limiter?: RateLimiter;
  /**
   * Plaintext bytes (as `add` was told) that need no more sending: a batch sent or found stored, or a chunk already
   * queued by an earlier `add`. Progress counts these as done; a batch that fails is never counted.
   */
  onDone?: (plainBytes: number) => void;
}

/** One frame of a batch: where it sits in the batch's buffer. */
interface Slot {
  id: string;
  /** offset of its header in the buffer */
  at: number;
  /** header + envelope */
  length: number;
}

interface Batch {
  buf: Uint8Array;
  /** bytes of the buffer used (the framed body so far) */
  fill: number;
  slots: Slot[];
  /** ids whose presence on the server must be asked first (chunks of known files: delta sync) */
  check: Set<string>;
  /** the plaintext bytes of its chunks (progress) */
  plain: number;
}

/** Writes one chunk's envelope into `dest` (exactly the length given to `add`). */
export type SealInto = (dest: Uint8Array) => void;

/** The largest frame a FastCDC chunk makes: its header and the envelope of CHUNK_MAX bytes. */
const LARGEST_FRAME = FRAME_HEADER_BYTES + sealedChunkLength(CHUNK_MAX);

/**
 * Collects chunk envelopes into framed batches and uploads them, `inFlight` at a time. `add` waits when that many
 * are in flight (backpressure). `flush` sends what is left and waits for everything; it rethrows the first failure.
 */
export class ChunkUploader {
  private pending: Batch | null = null;
  private readonly free: Uint8Array[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  /** Every batch taken from `pending` whose upload has not ended yet, in flight or still waiting for a place (barrier). */
  private readonly unsettled = new Set<Promise<void>>();
  private failure: unknown = null;
  private readonly seen = new Set<string>();
  readonly batchBytes: number;
  readonly maxFrames: number;
  readonly maxInFlight: number;
  /** the size of a pooled buffer: batchBytes, or the largest frame if that is more */
  private readonly bufferBytes: number;
  /** ciphertext bytes sent, chunks sent, chunks skipped as already stored */
  sentBytes = 0;
  sentChunks = 0;
  skippedChunks = 0;

  constructor(private readonly c: ApiClient, private readonly spaceId: string, private readonly options: UploaderOptions = {}) {
    // 4 MiB: the server packs a batch's chunks into one object (server/src/storage/chunk-model.ts PACK_THRESHOLD_BYTES),
    // and an object store spends about half the CPU per byte on 4 MiB objects that it does on 600 KiB ones.
    this.batchBytes = options.batchBytes ?? 4 * 1024 * 1024;
    this.maxFrames = options.maxFrames ?? 4000;
    this.maxInFlight = options.inFlight ?? 3;
    // A batch also goes when its next frame does not fit, so a buffer need not hold batchBytes and one more frame
    // (that size made a W1 upload hold 8 MB more for no speed).
    this.bufferBytes = Math.max(this.batchBytes, LARGEST_FRAME);
  }

  /**
   * Queues one chunk: `seal` writes its envelope (`sealedLength` bytes) into the batch. `known`: the server may
   * already hold it (a chunk of an existing file). `plainBytes`: its plaintext size, reported to `onDone` once the
   * chunk is sent or found stored. A chunk queued before is neither sealed nor sent again.
   */
  async add(id: string, sealedLength: number, seal: SealInto, known: boolean, plainBytes = 0): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.seen.has(id)) {
      this.options.onDone?.(plainBytes);
      return;
    }
    const length = FRAME_HEADER_BYTES + sealedLength;
    // A loop: files are read concurrently, so another add may have started a new batch while this one waited.
    while (this.pending && this.pending.fill + length > this.pending.buf.length) await this.send();
    // From here to the end nothing waits, so the batch is this call's alone until it is full.
    const batch = (this.pending ??= { buf: this.take(length), fill: 0, slots: [], check: new Set(), plain: 0 });
    writeFrameHeader(id, sealedLength, batch.buf, batch.fill);
    seal(batch.buf.subarray(batch.fill + FRAME_HEADER_BYTES, batch.fill + length));
    this.seen.add(id);
    batch.slots.push({ id, at: batch.fill, length });
    batch.fill += length;
    batch.plain += plainBytes;
    if (known) batch.check.add(id);
    if (batch.fill >= this.batchBytes || batch.slots.length >= this.maxFrames) await this.send();
  }

  /** A buffer for a batch whose first frame is `length` bytes: a pooled one, or one of its own for an outsize frame. */
  private take(length: number): Uint8Array {
    if (length > this.bufferBytes) return new Uint8Array(length);
    return this.free.pop() ?? new Uint8Array(this.bufferBytes);
  }

  private async send(): Promise<void> {
    const batch = this.pending;
    this.pending = null;
    if (!batch || batch.slots.length === 0) return;
    // Tracked from here, before waiting for a place: a chunk of a version about to be committed may be in it (barrier).
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    this.unsettled.add(settled);
    const ended = (): void => {
      this.unsettled.delete(settled);
      settle();
    };
    try {
      while (this.inFlight.size >= this.maxInFlight) await Promise.race(this.inFlight);
      if (this.failure) throw this.failure;
    } catch (err) {
      ended();
      throw err;
    }
    const p = this.upload(batch).then(
      () => {
        if (batch.buf.length === this.bufferBytes) this.free.push(batch.buf);
      },
      (err) => {
        this.failure ??= err;
        // forget what this batch carried: a retry must send it again
        for (const s of batch.slots) this.seen.delete(s.id);
      },
    );
    const tracked = p.finally(() => {
      this.inFlight.delete(tracked);
      ended();
    });
    this.inFlight.add(tracked);
  }

  private async upload(batch: Batch): Promise<void> {
    let body = batch.buf.subarray(0, batch.fill);
    let count = batch.slots.length;
    if (batch.check.size > 0) {
      const missing = new Set(await this.c.missingChunks(this.spaceId, [...batch.check]));
      const keep = batch.slots.filter((s) => !batch.check.has(s.id) || missing.has(s.id));
      this.skippedChunks += count - keep.length;
      count = keep.length;
      if (count < batch.slots.length) body = compact(batch.buf, keep);
    }
    if (count > 0) {
      const bytes = body.length - count * FRAME_HEADER_BYTES;
      // A bandwidth limit paces the body as it goes: taken whole before the request, a 4 MiB batch went at once and
      // its debt was never paid when nothing followed it.
      const limiter = this.options.limiter;
      await this.c.uploadFramed(this.spaceId, body, limiter ? (n) => limiter.take(n) : undefined);
      this.sentBytes += bytes;
      this.sentChunks += count;
    }
    this.options.onDone?.(batch.plain);
  }

  async flush(): Promise<void> {
    await this.send();
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
    this.rethrow();
  }

  /**
   * Sends the batch being filled and waits for every batch begun before this call, but not for those other readers
   * begin meanwhile: what a commit needs (every chunk of its versions was added before it). Waiting for the uploader to
   * be empty, as flush does, held commits back while readers kept it busy, and they went out five at a time while the
   * readers waited for them (issue 22, W2). Rethrows a failure of any batch, as flush does.
   */
  async barrier(): Promise<void> {
    const sending = this.send(); // takes `pending` and tracks it before its first wait
    const before = [...this.unsettled];
    await sending;
    await Promise.all(before);
    this.rethrow();
  }

  private rethrow(): void {
    if (this.failure) {
      const err = this.failure;
      this.failure = null;
      throw err;
    }
  }
}

/** Moves the frames to keep (in order) to the front of `buf`; returns the body they make. */
function compact(buf: Uint8Array, keep: readonly Slot[]): Uint8Array {
  let to = 0;
  for (const s of keep) {
    if (s.at !== to) buf.copyWithin(to, s.at, s.at + s.length);
    to += s.length;
  }
  return buf.subarray(0, to);
}
