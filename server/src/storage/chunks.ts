// The packed chunk store (docs/architecture.md §3.1): encrypted chunks of a space, small ones packed into large objects.
//
// Objects (in the organisation's bucket, see ../blobstore/index.ts):
//   spaces/<spaceId>/packs/<packId>    many chunk ciphertexts back to back (target PACK_TARGET_BYTES)
//   spaces/<spaceId>/chunks/<chunkId>  one chunk ciphertext (chunks of at least PACK_THRESHOLD_BYTES)
// Index (tables `packs` and `chunks`, migration 001): chunk (space_id, id) -> length and either
// (pack_id, offset) or nothing (an object of its own); `live` is false once no retained version references the
// chunk. A pack row has its size, the bytes no live chunk uses (`dead_bytes`) and a state (`live`, or `retired`
// between its compaction and the deletion of its object).
//
// Invariants (test/integration/chunkstore*.test.ts hold the code to them, also across SIGKILL):
//  I1 Every chunk row points at an object that exists and holds its bytes: an object is always fully written
//     before the row that points at it is committed, and deleted only after no row points at it any more.
//  I2 A live pack's dead_bytes = size - sum(length of its live chunk rows).
//  I3 Whatever a crash leaves behind is garbage that no row references (a pack or chunk object written but not
//     committed, the object of a retired pack); `sweepOrphans()` removes it and is run at start.
//
// Uploads (`putBatch`) are all-or-nothing: the rows of every pack and standalone chunk of the batch are
// committed in ONE transaction after all of its objects are written; a batch that fails (a bad frame, a limit,
// a store error, a client that goes away) deletes the objects it wrote and leaves the index untouched.
//
// Concurrency. Within one process, a standalone key (`chunks/<id>`) has at most one writer or deleter at a
// time (`claim`), and a pack object in flight is never swept. Several processes sharing one database (the
// PostgreSQL scale-out) are safe for uploads, reads and compaction (every decision is re-checked inside the
// switching transaction), with two limits: sweeps of other nodes' in-flight objects are prevented only by
// `graceMs` (object age), and two nodes racing to store the same large chunk standalone write the same key.
//
// All SQL goes through Knex's query builder (sqlite3 today, PostgreSQL later). The database has ONE
// connection: no blob I/O ever happens inside a transaction, and methods that take a `trx` use only it.
import { Readable } from 'node:stream';
import type { Knex } from 'knex';
import { SizeClassPool, parseFrames, type FrameLimits } from '@kluis/shared';
import { BlobNotFoundError, type BlobStore } from '../blobstore/index.js';
import { nowMs, type Db } from '../db/db.js';
import { BatchWriter } from './batch-writer.js';
import { ChunkCorruptError, ChunkLimitError, ChunkNotFoundError, InvalidChunkError, SpaceNotFoundError } from './chunk-errors.js';
import {
  chunkKey, checkId, FRAME_HEADER_BYTES, KiB, limitsOf, MiB, PACK_TARGET_BYTES, PACK_THRESHOLD_BYTES, packKey, slices, SPACE_ID, toIndexRow,
  type ChunkBatchLimits, type ChunkBatchRead, type ChunkData, type ChunkRead, type ChunkStoreEvent, type ChunkStoreOptions, type CompactResult,
  type IndexRow, type LivenessResult, type PutBatchResult, type PutOneResult, type Q, type RawChunkRow, type SweepOptions, type SweepResult,
} from './chunk-model.js';
import { BufferPool } from './buffer-pool.js';
import { compact } from './compaction.js';
import { planReads, readUnits } from './read-plan.js';
import { sweepOrphans } from './sweep.js';

export * from './chunk-errors.js';
export {
  CHUNK_CIPHERTEXT_MAX, CHUNK_CIPHERTEXT_MIN, DEFAULT_CHUNK_BATCH_LIMITS, PACK_TARGET_BYTES, PACK_THRESHOLD_BYTES, chunkKey, isChunkId, packKey,
  type ChunkBatchLimits, type ChunkBatchRead, type ChunkData, type ChunkRead, type ChunkStoreEvent, type ChunkStoreOptions, type CompactResult,
  type LivenessResult, type PutBatchResult, type PutOneResult, type SweepOptions, type SweepResult,
} from './chunk-model.js';

export class ChunkStore {
  readonly db: Db;
  readonly blobs: BlobStore;
  readonly packThresholdBytes: number;
  readonly packTargetBytes: number;
  readonly packWritesInFlight: number;
  readonly standaloneWritesInFlight: number;
  readonly readGapBytes: number;
  readonly readsInFlight: number;
  readonly readAheadBytes: number;
  /** Pack buffers reused from batch to batch (buffer-pool.ts). */
  readonly packBuffers: BufferPool;
  /** Buffers in which the frame parser assembles chunks that span socket reads (shared/src/buffer-pool.ts). */
  readonly frameBuffers: SizeClassPool;
  private readonly onEvent: ChunkStoreOptions['onEvent'];
  /** Object keys (`<orgId>/<key>`) with a writer or deleter in this process; see the header. */
  private readonly busy = new Map<string, { released: Promise<void>; release: () => void }>();
  private readonly spaceOrgs = new Map<string, string>();
  private readonly spaceLocks = new Map<string, Promise<unknown>>();

  constructor(db: Db, blobs: BlobStore, options: ChunkStoreOptions = {}) {
    this.db = db;
    this.blobs = blobs;
    this.packThresholdBytes = options.packThresholdBytes ?? PACK_THRESHOLD_BYTES;
    this.packTargetBytes = options.packTargetBytes ?? PACK_TARGET_BYTES;
    this.packWritesInFlight = Math.max(1, options.packWritesInFlight ?? 2);
    this.standaloneWritesInFlight = Math.max(1, options.standaloneWritesInFlight ?? 16);
    this.readGapBytes = options.readGapBytes ?? 256 * KiB;
    this.readsInFlight = Math.max(1, options.readsInFlight ?? 16);
    this.readAheadBytes = options.readAheadBytes ?? 64 * MiB;
    this.onEvent = options.onEvent;
    if (!(this.packTargetBytes >= 1)) throw new TypeError('packTargetBytes must be positive');
    // As many idle as one batch's pack writes in flight and the pack it fills, for two batches at once.
    this.packBuffers = new BufferPool(this.packTargetBytes, 2 * (this.packWritesInFlight + 1));
    // Up to 4 MiB buffers (a chunk's ciphertext is at most 2 MiB + 40 bytes); idle ones up to two lookup groups.
    this.frameBuffers = new SizeClassPool(4 * MiB, 16 * MiB);
  }

  // ------------------------------------------------------------------------------------------ queries

  /**
   * The ids of `ids` that this space does not store (duplicates removed, first occurrence order). A chunk that
   * is stored but dead counts as stored: the commit that references it again calls `markLive`.
   */
  async missing(orgId: string, spaceId: string, ids: readonly string[], trx?: Knex.Transaction): Promise<string[]> {
    const q = trx ?? this.db;
    for (const id of ids) checkId(id);
    await this.checkSpace(q, orgId, spaceId);
    const unique = [...new Set(ids)];
    const have = await this.lookup(q, spaceId, unique);
    return unique.filter((id) => !have.has(id));
  }

  // ------------------------------------------------------------------------------------------ uploads

  /**
   * The frames of an upload body as they arrive (parseFrames), chunks that span reads assembled in this store's
   * pooled buffers; `putBatch` gives each back once it copied or wrote it.
   */
  framesOf(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, limits?: Partial<FrameLimits>): AsyncGenerator<ChunkData, void, undefined> {
    return parseFrames(body, limits, { allocate: (length) => this.frameBuffers.allocate(length) });
  }

  /**
   * Stores a batch of chunks, all or nothing (see the header). Small ciphertexts are packed; large ones become
   * objects of their own. Already stored chunks and repeats within the batch are skipped. Memory: one pack being
   * filled, `packWritesInFlight` packs uploading, `standaloneWritesInFlight` large chunks, and up to 4 MiB of
   * chunks waiting for their existence check: with the defaults at most 3 x 8 MiB + 16 x 2 MiB + 4 MiB = 60 MiB
   * per batch in flight (a route should bound concurrent uploads accordingly). Errors: InvalidChunkError,
   * ChunkLimitError, SpaceNotFoundError, whatever `frames` throws (e.g. a FrameError), blob store errors; after
   * any of them nothing was stored.
   */
  async putBatch(orgId: string, spaceId: string, frames: AsyncIterable<ChunkData> | Iterable<ChunkData>, limits?: Partial<ChunkBatchLimits>): Promise<PutBatchResult> {
    const lim = limitsOf(limits);
    await this.checkSpace(this.db, orgId, spaceId);
    const batch = new BatchWriter(this, this.blobs.forOrg(orgId), orgId, spaceId, lim);
    try {
      for await (const frame of frames) await batch.add(frame);
      return await batch.finish();
    } catch (err) {
      await batch.abort();
      throw err;
    }
  }

  /**
   * Stores one chunk from a stream of exactly `size` bytes as an object of its own (the single-chunk PUT).
   * When the chunk is already stored, answers `{stored: false}` WITHOUT reading the stream (the caller
   * discards it). A stream that is shorter or longer than `size` stores nothing (BlobSizeMismatchError).
   */
  async putOne(orgId: string, spaceId: string, id: string, stream: Readable | AsyncIterable<Uint8Array>, size: number, limits?: Partial<ChunkBatchLimits>): Promise<PutOneResult> {
    const lim = limitsOf(limits);
    checkId(id);
    if (!Number.isSafeInteger(size) || size < lim.minFrameBytes) throw new InvalidChunkError(id, 'bad_size', `${size} bytes, below the minimum of ${lim.minFrameBytes}`);
    if (size > lim.maxFrameBytes) throw new ChunkLimitError('maxFrameBytes', size, lim.maxFrameBytes);
    await this.checkSpace(this.db, orgId, spaceId);
    if ((await this.lookup(this.db, spaceId, [id])).has(id)) return { stored: false };
    const blobs = this.blobs.forOrg(orgId);
    const key = chunkKey(spaceId, id);
    await this.claim(orgId, key);
    try {
      // Re-check under the claim: another upload may have committed it meanwhile.
      if ((await this.lookup(this.db, spaceId, [id])).has(id)) return { stored: false };
      await blobs.put(key, stream, size);
      await this.emit('one:written', { chunkId: id });
      let winner: IndexRow | undefined;
      try {
        await this.db.transaction(async (trx) => {
          winner = (await this.lookup(trx, spaceId, [id])).get(id); // stored meanwhile by a batch that packed it, or by another node
          if (!winner) await trx('chunks').insert({ space_id: spaceId, id, length: size, pack_id: null, offset: null, live: true, created_at: nowMs() });
        });
      } catch (err) {
        await blobs.delete(key).catch(() => {});
        throw err;
      }
      // A packed winner leaves our object unreferenced (a standalone winner IS this key).
      if (winner && winner.packId !== null) await blobs.delete(key).catch(() => {});
      await this.emit('one:committed', { chunkId: id });
      return { stored: !winner };
    } finally {
      this.release(orgId, key);
    }
  }

  // ------------------------------------------------------------------------------------------ reads

  /**
   * Reads many chunks. Fails before anything is read when an id is malformed (InvalidChunkError) or not stored
   * (ChunkNotFoundError listing all of them). Repeated ids are served once.
   *
   * Order: GROUPED by blob read, not the request order. Packed chunks are read with ranged GETs grouped per
   * pack: one GET per run of wanted chunks whose gaps are below `readGapBytes`, or one GET from the first to
   * the last wanted chunk when at least half of the pack is wanted; a standalone chunk is one GET. Reads are
   * issued (up to `readsInFlight` at once) in the order of the first requested chunk each contains, and
   * within a read chunks come by offset. So a request listing one upload batch in its order is answered in
   * that order; in general a client must place frames by id. A read failure mid-stream (store down, a chunk
   * deleted meanwhile by compaction) throws from the iterator: a route then aborts the response, which the
   * client sees as a truncated body.
   */
  async getBatch(orgId: string, spaceId: string, ids: readonly string[]): Promise<ChunkBatchRead> {
    for (const id of ids) checkId(id);
    await this.checkSpace(this.db, orgId, spaceId);
    const unique = [...new Set(ids)];
    const rows = await this.lookup(this.db, spaceId, unique);
    const missing = unique.filter((id) => !rows.has(id));
    if (missing.length > 0) throw new ChunkNotFoundError(missing);
    const units = await planReads(this, this.db, spaceId, unique, rows);
    const blobs = this.blobs.forOrg(orgId);
    let bytes = 0;
    for (const r of rows.values()) bytes += r.length;
    let used = false;
    const iterate = (): AsyncGenerator<ChunkData, void, undefined> => {
      if (used) throw new Error('a ChunkBatchRead can be iterated only once');
      used = true;
      return readUnits(this, blobs, spaceId, units);
    };
    return { count: unique.length, bytes, framedBytes: bytes + FRAME_HEADER_BYTES * unique.length, reads: units.length, [Symbol.asyncIterator]: iterate };
  }

  /** One chunk as a stream (the single GET). ChunkNotFoundError when not stored. */
  async getOne(orgId: string, spaceId: string, id: string): Promise<ChunkRead> {
    checkId(id);
    await this.checkSpace(this.db, orgId, spaceId);
    const blobs = this.blobs.forOrg(orgId);
    for (let attempt = 0; ; attempt++) {
      const row = (await this.lookup(this.db, spaceId, [id])).get(id);
      if (!row) throw new ChunkNotFoundError([id]);
      try {
        if (row.packId === null) {
          const read = await blobs.get(chunkKey(spaceId, id));
          if (read.size !== row.length) {
            read.stream.destroy();
            throw new ChunkCorruptError(`chunk ${id}: object has ${read.size} bytes, its index says ${row.length}`);
          }
          return { size: row.length, stream: read.stream };
        }
        const bytes = await blobs.getRange(packKey(spaceId, row.packId), row.offset, row.length);
        return { size: row.length, stream: Readable.from([Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]) };
      } catch (err) {
        // Compaction may have moved the chunk (and deleted the old pack) since the lookup: look again.
        if (err instanceof BlobNotFoundError && attempt < 2) continue;
        throw err;
      }
    }
  }

  // ------------------------------------------------------------------------------------------ liveness

  /**
   * Marks chunks dead (no retained version references them any more) and adds their lengths to their packs'
   * dead bytes. Already dead chunks are left alone. Pass the caller's transaction to make it part of the
   * retention change (recommended); without one, runs its own.
   */
  async markDead(orgId: string, spaceId: string, ids: readonly string[], trx?: Knex.Transaction): Promise<LivenessResult> {
    return this.setLive(orgId, spaceId, ids, false, trx);
  }

  /** Marks dead chunks live again (a new version references them); `missing` lists ids with no row. */
  async markLive(orgId: string, spaceId: string, ids: readonly string[], trx?: Knex.Transaction): Promise<LivenessResult> {
    return this.setLive(orgId, spaceId, ids, true, trx);
  }

  private async setLive(orgId: string, spaceId: string, ids: readonly string[], live: boolean, trx?: Knex.Transaction): Promise<LivenessResult> {
    for (const id of ids) checkId(id);
    const unique = [...new Set(ids)];
    const run = async (t: Knex.Transaction): Promise<LivenessResult> => {
      await this.checkSpace(t, orgId, spaceId);
      const missing: string[] = [];
      let changed = 0;
      const perPack = new Map<string, number>();
      for (const part of slices(unique)) {
        const rows = await this.lookup(t, spaceId, part);
        for (const id of part) if (!rows.has(id)) missing.push(id);
        const flip = [...rows.values()].filter((r) => r.live !== live);
        if (flip.length === 0) continue;
        await t('chunks').where({ space_id: spaceId }).whereIn('id', flip.map((r) => r.id)).update({ live });
        changed += flip.length;
        for (const r of flip) if (r.packId !== null) perPack.set(r.packId, (perPack.get(r.packId) ?? 0) + r.length);
      }
      for (const [packId, n] of perPack) {
        const q = t('packs').where({ id: packId });
        await (live ? q.decrement('dead_bytes', n) : q.increment('dead_bytes', n));
      }
      return { changed, missing };
    };
    const result = trx ? await run(trx) : await this.db.transaction(run);
    if (!live) await this.emit('dead:marked', { spaceId, changed: result.changed });
    return result;
  }


  // ------------------------------------------------------------------------------------------ compaction

  /**
   * Rewrites every pack of the space (or of every space of the organisation) with more than half of its bytes
   * dead: live chunks of such packs are copied into new packs (several sparse packs share one new pack), then
   * ONE transaction switches their rows to the new pack, drops the dead rows and retires the old packs, and
   * only after it the old objects are deleted. Dead standalone chunks lose their row, then their object.
   * A crash anywhere leaves every live chunk readable (invariants in the header); `sweepOrphans` removes what
   * it leaves behind. Runs of one space are serialised within this process.
   */
  async compact(orgId: string, spaceId?: string): Promise<CompactResult> {
    return compact(this, orgId, spaceId);
  }

  // ------------------------------------------------------------------------------------------ sweeping

  /**
   * Removes what interrupted uploads and compactions leave behind: pack objects without a pack row, standalone
   * chunk objects no row points at, and retired packs (object, then row). Never touches an object that a row
   * references or that is in flight in this process; objects younger than `graceMs` are left too.
   */
  async sweepOrphans(options: SweepOptions = {}): Promise<SweepResult> {
    return sweepOrphans(this, options);
  }


  /** @internal Index rows of `ids` that exist, by id (IN lists of SQL_BATCH). */
  async lookup(q: Q, spaceId: string, ids: readonly string[]): Promise<Map<string, IndexRow>> {
    const out = new Map<string, IndexRow>();
    for (const part of slices(ids)) {
      const rows = (await q('chunks').where({ space_id: spaceId }).whereIn('id', part).select('id', 'length', 'pack_id', 'offset', 'live')) as RawChunkRow[];
      for (const r of rows) out.set(r.id, toIndexRow(r));
    }
    return out;
  }

  /** @internal Throws SpaceNotFoundError unless the space exists and belongs to the organisation. */
  async checkSpace(q: Q, orgId: string, spaceId: string): Promise<void> {
    if (typeof spaceId !== 'string' || !SPACE_ID.test(spaceId)) throw new SpaceNotFoundError(spaceId);
    let owner = this.spaceOrgs.get(spaceId);
    if (owner === undefined) {
      const row = (await q('spaces').where({ id: spaceId }).first('org_id')) as { org_id: string } | undefined;
      if (!row) throw new SpaceNotFoundError(spaceId);
      owner = row.org_id;
      if (this.spaceOrgs.size >= 10_000) this.spaceOrgs.clear();
      this.spaceOrgs.set(spaceId, owner);
    }
    if (owner !== orgId) throw new SpaceNotFoundError(spaceId);
  }

  /** @internal */
  async emit(event: ChunkStoreEvent, detail: Record<string, unknown>): Promise<void> {
    if (this.onEvent) await this.onEvent(event, detail);
  }

  /** @internal Takes the key if nobody in this process holds it. */
  tryClaim(orgId: string, key: string): boolean {
    const k = `${orgId}/${key}`;
    if (this.busy.has(k)) return false;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    this.busy.set(k, { released, release });
    return true;
  }

  /** @internal Waits until the key is free, then takes it. */
  async claim(orgId: string, key: string): Promise<void> {
    for (;;) {
      const holder = this.busy.get(`${orgId}/${key}`);
      if (!holder) break;
      await holder.released;
    }
    this.tryClaim(orgId, key);
  }

  /** @internal */
  release(orgId: string, key: string): void {
    const k = `${orgId}/${key}`;
    const holder = this.busy.get(k);
    if (!holder) return;
    this.busy.delete(k);
    holder.release();
  }

  /** @internal */
  isBusy(orgId: string, key: string): boolean {
    return this.busy.has(`${orgId}/${key}`);
  }

  /** @internal Runs `fn` after every earlier run for the space in this process (compaction, sweep). */
  async withSpaceLock<T>(spaceId: string, fn: () => Promise<T>): Promise<T> {
    const before = this.spaceLocks.get(spaceId) ?? Promise.resolve();
    const run = before.catch(() => {}).then(fn);
    const tail = run.catch(() => {});
    this.spaceLocks.set(spaceId, tail);
    try {
      return await run;
    } finally {
      if (this.spaceLocks.get(spaceId) === tail) this.spaceLocks.delete(spaceId);
    }
  }
}
