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
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Knex } from 'knex';
import { CHUNK_MAX, ENVELOPE_OVERHEAD, ErrorCode, KluisError } from '@kluis/shared';
import { BlobNotFoundError, type BlobStore, type OrgBlobStore } from '../blobstore/index.js';
import { nowMs, type Db } from '../db/db.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Smallest chunk ciphertext (the envelope of an empty plaintext). */
export const CHUNK_CIPHERTEXT_MIN = ENVELOPE_OVERHEAD;
/** Largest chunk ciphertext (the envelope of a 2 MiB plaintext). */
export const CHUNK_CIPHERTEXT_MAX = CHUNK_MAX + ENVELOPE_OVERHEAD;
/** Bytes of a frame header on the wire (32-byte id + u32 length); counted by `maxTotalBytes`. */
const FRAME_HEADER_BYTES = 36;

/**
 * Chunk ciphertexts shorter than this are packed; longer ones are objects of their own. Chosen by
 * scripts/bench/storage.ts part (c) (bench-results/storage.json; medians of 3, local Ceph RGW, 2 cores), MB/s
 * write / read, packed vs standalone: 4 KiB 70/185 vs 3.6/7; 64 KiB 78/201 vs 43/74; 256 KiB 88/228 vs 66/192;
 * 512 KiB 75/347 vs 116/222; 1 MiB 82/262 vs 103/318; 2 MiB 96/292 vs 120/383. Below 512 KiB packing wins
 * clearly; from 512 KiB on, writing plus reading a byte standalone costs no more time than packed, and a
 * standalone chunk that dies is deleted outright instead of being copied by compaction.
 */
export const PACK_THRESHOLD_BYTES = 512 * KiB;
/**
 * A pack is sealed and written once it holds this many bytes (docs/architecture.md §3.1: 8–16 MiB). 8 MiB with two pack uploads in
 * flight wrote as fast as 16 MiB packs did in the benchmark, with a smaller memory bound (3 x 8 MiB per batch) and
 * finer-grained compaction.
 */
export const PACK_TARGET_BYTES = 8 * MiB;
/** Rows per IN list / multi-row insert (sqlite allows 32766 variables; 500 rows x 7 columns is far below). */
const SQL_BATCH = 500;
const CHUNK_ID = /^[0-9a-f]{64}$/;
const ZERO_ID = '0'.repeat(64);
const SPACE_ID = /^[A-Za-z0-9_-]{1,64}$/;

// ------------------------------------------------------------------------------------------------ types

/** One chunk: id (64 lower-case hex) and ciphertext. Structurally the same as `ChunkFrame` of @kluis/shared. */
export interface ChunkData {
  id: string;
  ciphertext: Uint8Array;
}

/** Limits of one upload batch; the same names and meaning as `FrameLimits` of @kluis/shared (pass one object to both). */
export interface ChunkBatchLimits {
  /** Smallest ciphertext (default 41). */
  minFrameBytes: number;
  /** Largest ciphertext (default 2 MiB + 41). */
  maxFrameBytes: number;
  /** Largest batch: sum of 36 + length over its chunks (default 256 MiB). */
  maxTotalBytes: number;
  /** Most chunks in one batch (default 10,000). */
  maxCount: number;
}

export const DEFAULT_CHUNK_BATCH_LIMITS: Readonly<ChunkBatchLimits> = Object.freeze({
  minFrameBytes: CHUNK_CIPHERTEXT_MIN,
  maxFrameBytes: CHUNK_CIPHERTEXT_MAX,
  maxTotalBytes: 256 * MiB,
  maxCount: 10_000,
});

export interface PutBatchResult {
  /** Chunks newly stored. */
  stored: number;
  /** Chunks skipped: already stored, or repeated in the batch. */
  duplicate: number;
  /** Ciphertext bytes newly stored. */
  bytes: number;
  /** Pack objects committed, and chunks stored as objects of their own. */
  packs: number;
  standalone: number;
}

export interface PutOneResult {
  /** false when the chunk was already stored (the stream was then not read). */
  stored: boolean;
}

/** A chunk as a stream (single GET). */
export interface ChunkRead {
  size: number;
  stream: Readable;
}

/**
 * The chunks of a `getBatch`, iterable ONCE. Known before the first byte: how many chunks, their ciphertext
 * bytes, the size of the framed body (`framedBytes`, for Content-Length) and the number of blob reads planned.
 */
export interface ChunkBatchRead extends AsyncIterable<ChunkData> {
  readonly count: number;
  readonly bytes: number;
  readonly framedBytes: number;
  readonly reads: number;
}

export interface LivenessResult {
  /** Rows whose liveness changed. */
  changed: number;
  /** Ids with no row at all (never stored, or already removed by compaction). */
  missing: string[];
}

export interface CompactResult {
  /** Packs rewritten (their live chunks copied, their object deleted). */
  packsRewritten: number;
  /** New packs written. */
  packsWritten: number;
  /** Live chunks copied into new packs. */
  chunksMoved: number;
  /** Dead chunk rows removed (packed and standalone). */
  deadChunksRemoved: number;
  /** Standalone dead chunk objects deleted. */
  standaloneDeleted: number;
  /** Object bytes freed (old packs + dead standalone chunks - new packs). */
  bytesFreed: number;
  /** Groups skipped because a chunk became live again while it was copied (retried on the next run). */
  conflicts: number;
}

export interface SweepOptions {
  /** Only this organisation (default: every organisation with spaces). */
  orgId?: string;
  /** Only this space. */
  spaceId?: string;
  /**
   * Objects younger than this are left alone (they may be another node's upload in flight). Default one hour;
   * a single-node server (sqlite) may pass 0 at start, when nothing can be in flight.
   */
  graceMs?: number;
}

export interface SweepResult {
  /** Pack objects with no pack row, deleted. */
  orphanPacks: number;
  /** Standalone chunk objects with no row pointing at them, deleted. */
  orphanChunks: number;
  /** Retired packs whose object and row were removed (a compaction interrupted after its switch). */
  retiredPacks: number;
  bytesFreed: number;
}

/** Points where the store tells a listener what it just did (crash tests stop the process there). */
export type ChunkStoreEvent =
  | 'batch:packWritten'
  | 'batch:standaloneWritten'
  | 'batch:beforeCommit'
  | 'batch:committed'
  | 'one:written'
  | 'one:committed'
  | 'dead:marked'
  | 'compact:packWritten'
  | 'compact:switched'
  | 'compact:oldDeleted'
  | 'compact:standaloneRowsDeleted'
  | 'compact:standaloneDeleted';

export interface ChunkStoreOptions {
  /** Ciphertexts shorter than this are packed (default PACK_THRESHOLD_BYTES). */
  packThresholdBytes?: number;
  /** Pack size to aim for (default PACK_TARGET_BYTES). */
  packTargetBytes?: number;
  /** Pack objects uploading at once per batch, besides the one being filled (default 2). */
  packWritesInFlight?: number;
  /** Standalone chunk objects uploading at once per batch (default 16, like the raw-client baseline). */
  standaloneWritesInFlight?: number;
  /** Wanted chunks of a pack closer than this are read with one ranged GET, gap included (default 256 KiB). */
  readGapBytes?: number;
  /** Blob reads in flight per getBatch (default 16) and the bytes read ahead of the consumer (default 64 MiB). */
  readsInFlight?: number;
  readAheadBytes?: number;
  /** Observer of progress points; awaited (tests only). */
  onEvent?: (event: ChunkStoreEvent, detail: Record<string, unknown>) => void | Promise<void>;
}

// ------------------------------------------------------------------------------------------------ errors

export type ChunkStoreErrorReason = 'not_found' | 'bad_id' | 'bad_size' | 'limit' | 'space_not_found' | 'corrupt';

/** Errors of the chunk store: a shared ErrorCode, the HTTP status a route answers, and a reason. */
export class ChunkStoreError extends KluisError {
  override name = 'ChunkStoreError';
  readonly reason: ChunkStoreErrorReason;
  readonly httpStatus: number;
  constructor(code: ErrorCode, httpStatus: number, reason: ChunkStoreErrorReason, message: string) {
    super(code, message);
    this.reason = reason;
    this.httpStatus = httpStatus;
  }
}

/** Some requested chunks are not stored (404); `ids` lists every one of them. */
export class ChunkNotFoundError extends ChunkStoreError {
  override name = 'ChunkNotFoundError';
  readonly ids: string[];
  constructor(ids: string[]) {
    super(ErrorCode.NotFound, 404, 'not_found', `${ids.length} chunk(s) not found: ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''}`);
    this.ids = ids;
  }
}

/** A chunk id that is not 64 lower-case hex (or is all zero), or a ciphertext below the minimum size (400). */
export class InvalidChunkError extends ChunkStoreError {
  override name = 'InvalidChunkError';
  readonly id: string;
  constructor(id: unknown, reason: 'bad_id' | 'bad_size', detail: string) {
    super(ErrorCode.ValidationFailed, 400, reason, `chunk ${typeof id === 'string' ? id.slice(0, 80) : String(id)}: ${detail}`);
    this.id = typeof id === 'string' ? id : String(id);
  }
}

/** A chunk over maxFrameBytes, or a batch over maxTotalBytes / maxCount (413). */
export class ChunkLimitError extends ChunkStoreError {
  override name = 'ChunkLimitError';
  readonly limit: keyof ChunkBatchLimits;
  readonly value: number;
  constructor(limit: keyof ChunkBatchLimits, value: number, max: number) {
    super(ErrorCode.PayloadTooLarge, 413, 'limit', `chunk batch: ${limit} ${max} exceeded (${value})`);
    this.limit = limit;
    this.value = value;
  }
}

/** No such space in this organisation (404). */
export class SpaceNotFoundError extends ChunkStoreError {
  override name = 'SpaceNotFoundError';
  constructor(spaceId: string) {
    super(ErrorCode.NotFound, 404, 'space_not_found', `space ${String(spaceId).slice(0, 80)} not found`);
  }
}

/** An object does not match its index row (500: a bug or tampering with the bucket). */
export class ChunkCorruptError extends ChunkStoreError {
  override name = 'ChunkCorruptError';
  constructor(message: string) {
    super(ErrorCode.Internal, 500, 'corrupt', message);
  }
}

// ------------------------------------------------------------------------------------------------ helpers

type Q = Knex | Knex.Transaction;

interface IndexRow {
  id: string;
  length: number;
  packId: string | null;
  offset: number;
  live: boolean;
}

interface RawChunkRow {
  id: string;
  length: number | string;
  pack_id: string | null;
  offset: number | string | null;
  live: boolean | number;
  created_at?: number | string;
}

function toIndexRow(r: RawChunkRow): IndexRow {
  return { id: r.id, length: Number(r.length), packId: r.pack_id, offset: r.offset === null ? 0 : Number(r.offset), live: Boolean(r.live) };
}

export function isChunkId(id: unknown): id is string {
  return typeof id === 'string' && CHUNK_ID.test(id) && id !== ZERO_ID;
}

function checkId(id: unknown): asserts id is string {
  if (!isChunkId(id)) throw new InvalidChunkError(id, 'bad_id', 'a chunk id is 64 lower-case hex digits (not all zero)');
}

export function packKey(spaceId: string, packId: string): string {
  return `spaces/${spaceId}/packs/${packId}`;
}

export function chunkKey(spaceId: string, chunkId: string): string {
  return `spaces/${spaceId}/chunks/${chunkId}`;
}

function newPackId(): string {
  return randomBytes(16).toString('base64url');
}

function slices<T>(items: readonly T[], size = SQL_BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function limitsOf(limits?: Partial<ChunkBatchLimits>): ChunkBatchLimits {
  const out = { ...DEFAULT_CHUNK_BATCH_LIMITS };
  for (const [k, v] of Object.entries(limits ?? {})) if (v !== undefined) (out as Record<string, number>)[k] = v as number;
  return out;
}

/** Runs `fn` over `items` with at most `n` at once; rejects with the first error after all started ones settle. */
async function forEachLimit<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failure) throw failure.err;
}

async function readStream(stream: Readable, expected: number, what: string): Promise<Buffer> {
  const out = Buffer.allocUnsafe(expected);
  let fill = 0;
  try {
    for await (const piece of stream as AsyncIterable<Buffer>) {
      if (fill + piece.length > expected) throw new ChunkCorruptError(`${what}: object is longer than its index says (${expected})`);
      out.set(piece, fill);
      fill += piece.length;
    }
  } finally {
    stream.destroy();
  }
  if (fill !== expected) throw new ChunkCorruptError(`${what}: object has ${fill} bytes, its index says ${expected}`);
  return out;
}

/** A planned blob read: a range of a pack, or a whole standalone object, and the chunks it yields. */
interface ReadUnit {
  key: string;
  packed: boolean;
  offset: number;
  length: number;
  /** Chunks in yield order; `at` is relative to `offset`. */
  chunks: { id: string; at: number; length: number }[];
  /** Smallest request position of its chunks (units are read in this order). */
  first: number;
}

// ------------------------------------------------------------------------------------------------ store

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
    const units = await this.plan(this.db, spaceId, unique, rows);
    const blobs = this.blobs.forOrg(orgId);
    let bytes = 0;
    for (const r of rows.values()) bytes += r.length;
    let used = false;
    const iterate = (): AsyncGenerator<ChunkData, void, undefined> => {
      if (used) throw new Error('a ChunkBatchRead can be iterated only once');
      used = true;
      return this.readUnits(blobs, spaceId, units);
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
    const result: CompactResult = { packsRewritten: 0, packsWritten: 0, chunksMoved: 0, deadChunksRemoved: 0, standaloneDeleted: 0, bytesFreed: 0, conflicts: 0 };
    const spaces = spaceId !== undefined ? [spaceId] : (await this.db('spaces').where({ org_id: orgId }).orderBy('id').select('id')).map((r: { id: string }) => r.id);
    for (const sid of spaces) {
      await this.checkSpace(this.db, orgId, sid);
      await this.withSpaceLock(sid, () => this.compactSpace(orgId, sid, result));
    }
    return result;
  }

  private async compactSpace(orgId: string, spaceId: string, result: CompactResult): Promise<void> {
    const blobs = this.blobs.forOrg(orgId);
    const candidates = (await this.db('packs')
      .where({ space_id: spaceId, state: 'live' })
      .andWhere(this.db.raw('?? * 2 > ??', ['dead_bytes', 'size']))
      .orderBy('created_at')
      .select('id', 'size')) as { id: string; size: number | string }[];
    let group: { id: string; size: number; live: IndexRow[] }[] = [];
    let groupBytes = 0;
    for (const c of candidates) {
      const live = ((await this.db('chunks').where({ pack_id: c.id, live: true }).orderBy('offset').select('id', 'length', 'pack_id', 'offset', 'live')) as RawChunkRow[]).map(toIndexRow);
      const liveBytes = live.reduce((s, r) => s + r.length, 0);
      if (group.length > 0 && groupBytes + liveBytes > this.packTargetBytes) {
        await this.rewritePacks(blobs, spaceId, group, result);
        group = [];
        groupBytes = 0;
      }
      group.push({ id: c.id, size: Number(c.size), live });
      groupBytes += liveBytes;
    }
    if (group.length > 0) await this.rewritePacks(blobs, spaceId, group, result);
    await this.deleteDeadStandalone(blobs, spaceId, result);
  }

  private async rewritePacks(blobs: OrgBlobStore, spaceId: string, sources: { id: string; size: number; live: IndexRow[] }[], result: CompactResult): Promise<void> {
    const total = sources.reduce((s, p) => s + p.live.reduce((t, r) => t + r.length, 0), 0);
    const placement = new Map<string, number>(); // chunk id -> offset in the new pack
    let newPack: { id: string; key: string } | null = null;
    if (total > 0) {
      const body = Buffer.allocUnsafe(total);
      let at = 0;
      for (const src of sources) {
        for await (const c of this.readUnits(blobs, spaceId, this.planPack(spaceId, src.id, src.size, src.live, new Map()))) {
          body.set(c.ciphertext, at);
          placement.set(c.id, at);
          at += c.ciphertext.length;
        }
      }
      newPack = { id: newPackId(), key: '' };
      newPack.key = packKey(spaceId, newPack.id);
      this.tryClaim(blobs.orgId, newPack.key);
      try {
        await blobs.put(newPack.key, body);
      } catch (err) {
        this.release(blobs.orgId, newPack.key);
        await blobs.delete(newPack.key).catch(() => {});
        throw err;
      }
      await this.emit('compact:packWritten', { spaceId, packId: newPack.id, sources: sources.map((s) => s.id) });
    }
    const sourceIds = sources.map((s) => s.id);
    let switched: { moved: number; dropped: number } | null = null;
    try {
      switched = await this.db.transaction(async (trx) => {
        const states = (await trx('packs').whereIn('id', sourceIds).select('id', 'state')) as { id: string; state: string }[];
        if (states.length !== sourceIds.length || states.some((s) => s.state !== 'live')) return null; // another compactor
        const rows = (await trx('chunks').whereIn('pack_id', sourceIds).select('id', 'length', 'pack_id', 'offset', 'live', 'created_at')) as RawChunkRow[];
        // A chunk that became live again after it was left out of the copy: give up on this group for now.
        if (rows.some((r) => Boolean(r.live) && !placement.has(r.id))) return null;
        const moved = rows.filter((r) => placement.has(r.id));
        if (newPack) {
          const deadMoved = moved.filter((r) => !r.live).reduce((s, r) => s + Number(r.length), 0);
          await trx('packs').insert({ id: newPack.id, space_id: spaceId, size: total, dead_bytes: deadMoved + (total - moved.reduce((s, r) => s + Number(r.length), 0)), state: 'live', created_at: nowMs() });
        }
        for (const part of slices(moved)) {
          await trx('chunks').where({ space_id: spaceId }).whereIn('id', part.map((r) => r.id)).del();
          await trx('chunks').insert(
            part.map((r) => ({ space_id: spaceId, id: r.id, length: Number(r.length), pack_id: newPack!.id, offset: placement.get(r.id)!, live: Boolean(r.live), created_at: Number(r.created_at) })),
          );
        }
        const dropped = await trx('chunks').whereIn('pack_id', sourceIds).del();
        await trx('packs').whereIn('id', sourceIds).update({ state: 'retired' });
        return { moved: moved.length, dropped: Number(dropped) };
      });
    } catch (err) {
      if (newPack) await blobs.delete(newPack.key).catch(() => {}); // rolled back: the new object is garbage
      throw err;
    } finally {
      if (newPack) this.release(blobs.orgId, newPack.key);
    }
    if (!switched) {
      if (newPack) await blobs.delete(newPack.key).catch(() => {});
      result.conflicts++;
      return;
    }
    await this.emit('compact:switched', { spaceId, sources: sourceIds, packId: newPack?.id ?? null });
    for (const src of sources) {
      await blobs.delete(packKey(spaceId, src.id));
      await this.emit('compact:oldDeleted', { spaceId, packId: src.id });
    }
    await this.db('packs').whereIn('id', sourceIds).andWhere({ state: 'retired' }).del();
    result.packsRewritten += sources.length;
    if (newPack) result.packsWritten++;
    result.chunksMoved += switched.moved;
    result.deadChunksRemoved += switched.dropped;
    result.bytesFreed += sources.reduce((s, p) => s + p.size, 0) - total;
  }

  private async deleteDeadStandalone(blobs: OrgBlobStore, spaceId: string, result: CompactResult): Promise<void> {
    for (;;) {
      const rows = ((await this.db('chunks').where({ space_id: spaceId, live: false }).whereNull('pack_id').orderBy('id').limit(SQL_BATCH).select('id', 'length', 'pack_id', 'offset', 'live')) as RawChunkRow[]).map(toIndexRow);
      if (rows.length === 0) return;
      const claimed = rows.filter((r) => this.tryClaim(blobs.orgId, chunkKey(spaceId, r.id)));
      let gone: IndexRow[] = [];
      try {
        if (claimed.length > 0) {
          gone = await this.db.transaction(async (trx) => {
            const still = ((await trx('chunks').where({ space_id: spaceId, live: false }).whereNull('pack_id').whereIn('id', claimed.map((r) => r.id)).select('id', 'length', 'pack_id', 'offset', 'live')) as RawChunkRow[]).map(toIndexRow);
            if (still.length > 0) await trx('chunks').where({ space_id: spaceId, live: false }).whereNull('pack_id').whereIn('id', still.map((r) => r.id)).del();
            return still;
          });
          await this.emit('compact:standaloneRowsDeleted', { spaceId, count: gone.length });
          await forEachLimit(gone, 8, (r) => blobs.delete(chunkKey(spaceId, r.id)));
          await this.emit('compact:standaloneDeleted', { spaceId, count: gone.length });
        }
      } finally {
        for (const r of claimed) this.release(blobs.orgId, chunkKey(spaceId, r.id));
      }
      result.deadChunksRemoved += gone.length;
      result.standaloneDeleted += gone.length;
      result.bytesFreed += gone.reduce((s, r) => s + r.length, 0);
      if (gone.length === 0 || rows.length < SQL_BATCH) return;
    }
  }

  // ------------------------------------------------------------------------------------------ sweeping

  /**
   * Removes what interrupted uploads and compactions leave behind: pack objects without a pack row, standalone
   * chunk objects no row points at, and retired packs (object, then row). Never touches an object that a row
   * references or that is in flight in this process; objects younger than `graceMs` are left too.
   */
  async sweepOrphans(options: SweepOptions = {}): Promise<SweepResult> {
    const result: SweepResult = { orphanPacks: 0, orphanChunks: 0, retiredPacks: 0, bytesFreed: 0 };
    const graceMs = options.graceMs ?? 60 * 60 * 1000;
    let query = this.db('spaces').select('id', 'org_id').orderBy('id');
    if (options.orgId !== undefined) query = query.where({ org_id: options.orgId });
    if (options.spaceId !== undefined) query = query.where({ id: options.spaceId });
    const spaces = (await query) as { id: string; org_id: string }[];
    for (const space of spaces) {
      if (!SPACE_ID.test(space.id)) continue;
      await this.withSpaceLock(space.id, () => this.sweepSpace(this.blobs.forOrg(space.org_id), space.id, graceMs, result));
    }
    return result;
  }

  private async sweepSpace(blobs: OrgBlobStore, spaceId: string, graceMs: number, result: SweepResult): Promise<void> {
    // Retired packs: their rows were switched away already; finish the deletion.
    const retired = (await this.db('packs').where({ space_id: spaceId, state: 'retired' }).select('id', 'size')) as { id: string; size: number | string }[];
    for (const p of retired) {
      const refs = await this.db('chunks').where({ pack_id: p.id }).first('id');
      if (refs) continue; // cannot happen (the switch moves every row); never delete what a row points at
      await blobs.delete(packKey(spaceId, p.id));
      await this.db('packs').where({ id: p.id, state: 'retired' }).del();
      result.retiredPacks++;
      result.bytesFreed += Number(p.size);
    }
    const cutoff = Date.now() - graceMs;
    // Pack objects without a row.
    const packPrefix = `spaces/${spaceId}/packs/`;
    let page: { key: string; id: string; size: number }[] = [];
    const flushPacks = async () => {
      const batch = page;
      page = [];
      if (batch.length === 0) return;
      // Busy is checked BEFORE the row query: a pack committed meanwhile then shows up in the query.
      const idle = batch.filter((e) => !this.isBusy(blobs.orgId, e.key));
      const rows = new Set(((await this.db('packs').whereIn('id', idle.map((e) => e.id)).select('id')) as { id: string }[]).map((r) => r.id));
      for (const e of idle) {
        if (rows.has(e.id) || this.isBusy(blobs.orgId, e.key)) continue;
        await blobs.delete(e.key);
        result.orphanPacks++;
        result.bytesFreed += e.size;
      }
    };
    for await (const entry of blobs.list(packPrefix)) {
      const id = entry.key.slice(packPrefix.length);
      if (id.includes('/') || entry.mtimeMs > cutoff) continue;
      page.push({ key: entry.key, id, size: entry.size });
      if (page.length >= SQL_BATCH) await flushPacks();
    }
    await flushPacks();
    // Standalone chunk objects that no row points at (no row, or a row pointing into a pack).
    const chunkPrefix = `spaces/${spaceId}/chunks/`;
    let chunks: { key: string; id: string; size: number }[] = [];
    const flushChunks = async () => {
      const batch = chunks;
      chunks = [];
      const claimed = batch.filter((e) => this.tryClaim(blobs.orgId, e.key));
      try {
        if (claimed.length === 0) return;
        const rows = await this.lookup(this.db, spaceId, claimed.map((e) => e.id));
        for (const e of claimed) {
          const row = rows.get(e.id);
          if (row && row.packId === null) continue;
          await blobs.delete(e.key);
          result.orphanChunks++;
          result.bytesFreed += e.size;
        }
      } finally {
        for (const e of claimed) this.release(blobs.orgId, e.key);
      }
    };
    for await (const entry of blobs.list(chunkPrefix)) {
      const id = entry.key.slice(chunkPrefix.length);
      if (!isChunkId(id) || entry.mtimeMs > cutoff) continue;
      chunks.push({ key: entry.key, id, size: entry.size });
      if (chunks.length >= SQL_BATCH) await flushChunks();
    }
    await flushChunks();
  }

  // ------------------------------------------------------------------------------------------ internals

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

  private isBusy(orgId: string, key: string): boolean {
    return this.busy.has(`${orgId}/${key}`);
  }

  private async withSpaceLock<T>(spaceId: string, fn: () => Promise<T>): Promise<T> {
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

  /** Plans the blob reads for `ids` (all present in `rows`), ordered by first request position. */
  private async plan(q: Q, spaceId: string, ids: readonly string[], rows: Map<string, IndexRow>): Promise<ReadUnit[]> {
    const order = new Map<string, number>();
    ids.forEach((id, i) => order.set(id, i));
    const perPack = new Map<string, IndexRow[]>();
    const units: ReadUnit[] = [];
    for (const id of ids) {
      const r = rows.get(id)!;
      if (r.packId === null) {
        units.push({ key: chunkKey(spaceId, id), packed: false, offset: 0, length: r.length, chunks: [{ id, at: 0, length: r.length }], first: order.get(id)! });
      } else {
        let list = perPack.get(r.packId);
        if (!list) perPack.set(r.packId, (list = []));
        list.push(r);
      }
    }
    const sizes = new Map<string, number>();
    for (const part of slices([...perPack.keys()])) {
      for (const p of (await q('packs').whereIn('id', part).select('id', 'size')) as { id: string; size: number | string }[]) sizes.set(p.id, Number(p.size));
    }
    for (const [packId, list] of perPack) units.push(...this.planPack(spaceId, packId, sizes.get(packId) ?? Infinity, list, order));
    units.sort((a, b) => a.first - b.first);
    return units;
  }

  /** Ranged reads for the wanted chunks of one pack (see getBatch). */
  private planPack(spaceId: string, packId: string, packSize: number, wanted: IndexRow[], order: Map<string, number>): ReadUnit[] {
    const key = packKey(spaceId, packId);
    const sorted = [...wanted].sort((a, b) => a.offset - b.offset);
    const wantedBytes = sorted.reduce((s, r) => s + r.length, 0);
    const units: ReadUnit[] = [];
    const whole = wantedBytes * 2 >= packSize;
    let unit: ReadUnit | null = null;
    for (const r of sorted) {
      const end = unit ? unit.offset + unit.length : 0;
      if (unit && (whole || r.offset - end <= this.readGapBytes)) {
        unit.length = Math.max(end, r.offset + r.length) - unit.offset;
      } else {
        unit = { key, packed: true, offset: r.offset, length: r.length, chunks: [], first: Infinity };
        units.push(unit);
      }
      unit.chunks.push({ id: r.id, at: r.offset - unit.offset, length: r.length });
      unit.first = Math.min(unit.first, order.get(r.id) ?? 0);
    }
    return units;
  }

  /**
   * Reads the units and yields their chunks in unit order. Up to `readsInFlight` reads run at once and a finished
   * read frees its slot at once (not only when its turn to be yielded comes: no head-of-line stall), while the
   * bytes in flight plus the bytes read but not yet yielded stay within `readAheadBytes` (one unit at least).
   */
  private async *readUnits(blobs: OrgBlobStore, spaceId: string, units: ReadUnit[]): AsyncGenerator<ChunkData, void, undefined> {
    const pending: { unit: ReadUnit; data: Promise<ChunkData[]> }[] = [];
    let next = 0;
    let running = 0;
    let ahead = 0;
    let stopped = false;
    const fill = () => {
      while (!stopped && next < units.length && running < this.readsInFlight && (pending.length === 0 || ahead + units[next]!.length <= this.readAheadBytes)) {
        const unit = units[next++]!;
        running++;
        ahead += unit.length;
        const data = this.readUnit(blobs, spaceId, unit, 0);
        data.then(
          () => {
            running--;
            fill();
          },
          () => void running--, // awaited below; an early stop must not leave an unhandled rejection
        );
        pending.push({ unit, data });
      }
    };
    try {
      fill();
      while (pending.length > 0) {
        const { unit, data } = pending.shift()!;
        const chunks = await data;
        ahead -= unit.length;
        fill();
        for (const c of chunks) yield c;
      }
    } finally {
      stopped = true;
    }
  }

  private async readUnit(blobs: OrgBlobStore, spaceId: string, unit: ReadUnit, depth: number): Promise<ChunkData[]> {
    try {
      if (unit.packed) {
        const raw = await blobs.getRange(unit.key, unit.offset, unit.length);
        const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
        return unit.chunks.map((c) => ({ id: c.id, ciphertext: buf.subarray(c.at, c.at + c.length) }));
      }
      const read = await blobs.get(unit.key);
      if (read.size !== unit.length) {
        read.stream.destroy();
        throw new ChunkCorruptError(`chunk ${unit.chunks[0]!.id}: object has ${read.size} bytes, its index says ${unit.length}`);
      }
      return [{ id: unit.chunks[0]!.id, ciphertext: await readStream(read.stream, unit.length, unit.key) }];
    } catch (err) {
      if (!(err instanceof BlobNotFoundError) || depth >= 2) throw err;
      // Moved by a compaction since the plan was made (the old pack is deleted only after the switch): re-plan.
      const ids = unit.chunks.map((c) => c.id);
      const rows = await this.lookup(this.db, spaceId, ids);
      const gone = ids.filter((id) => !rows.has(id));
      if (gone.length > 0) throw new ChunkNotFoundError(gone);
      const out: ChunkData[] = [];
      for (const u of await this.plan(this.db, spaceId, ids, rows)) out.push(...(await this.readUnit(blobs, spaceId, u, depth + 1)));
      return out;
    }
  }
}

// ------------------------------------------------------------------------------------------------ batch writer

interface PackEntry {
  id: string;
  offset: number;
  length: number;
}

interface WrittenPack {
  id: string;
  key: string;
  size: number;
  entries: PackEntry[];
}

interface WrittenChunk {
  id: string;
  key: string;
  length: number;
}

/** Chunks waiting for their existence check are held up to this many bytes (or SQL_BATCH chunks). */
const LOOKUP_GROUP_BYTES = 4 * MiB;

/** One putBatch: see ChunkStore.putBatch. */
class BatchWriter {
  private readonly seen = new Set<string>();
  private group: ChunkData[] = [];
  private groupBytes = 0;
  private count = 0;
  private total = 0;
  private duplicate = 0;
  private pack: { buf: Buffer; fill: number; entries: PackEntry[] } | null = null;
  private readonly packs: WrittenPack[] = [];
  private readonly standalone: WrittenChunk[] = [];
  /** Keys this batch holds (pack keys and standalone chunk keys); released at the end. */
  private readonly claimed = new Set<string>();
  private readonly packWrites = new Set<Promise<void>>();
  private readonly chunkWrites = new Set<Promise<void>>();
  private failure: { err: unknown } | null = null;
  /** Set once the index transaction committed: from then on the objects are referenced and never undone. */
  private committed = false;

  constructor(
    private readonly store: ChunkStore,
    private readonly blobs: OrgBlobStore,
    private readonly orgId: string,
    private readonly spaceId: string,
    private readonly limits: ChunkBatchLimits,
  ) {}

  async add(frame: ChunkData): Promise<void> {
    this.throwIfFailed();
    const { id, ciphertext } = frame;
    checkId(id);
    if (!(ciphertext instanceof Uint8Array)) throw new TypeError(`chunk ${id}: ciphertext must be bytes`);
    const n = ciphertext.length;
    if (n > this.limits.maxFrameBytes) throw new ChunkLimitError('maxFrameBytes', n, this.limits.maxFrameBytes);
    if (n < this.limits.minFrameBytes) throw new InvalidChunkError(id, 'bad_size', `${n} bytes, below the minimum of ${this.limits.minFrameBytes}`);
    if (++this.count > this.limits.maxCount) throw new ChunkLimitError('maxCount', this.count, this.limits.maxCount);
    this.total += FRAME_HEADER_BYTES + n;
    if (this.total > this.limits.maxTotalBytes) throw new ChunkLimitError('maxTotalBytes', this.total, this.limits.maxTotalBytes);
    if (this.seen.has(id)) {
      this.duplicate++;
      return;
    }
    this.seen.add(id);
    this.group.push(frame);
    this.groupBytes += n;
    if (this.group.length >= SQL_BATCH || this.groupBytes >= LOOKUP_GROUP_BYTES) await this.flushGroup();
  }

  /** Flushes everything, waits for every object, commits the index in one transaction. */
  async finish(): Promise<PutBatchResult> {
    await this.flushGroup();
    await this.sealPack();
    await this.drain();
    this.throwIfFailed();
    const { store, spaceId } = this;
    await store.emit('batch:beforeCommit', { spaceId, packs: this.packs.length, standalone: this.standalone.length });
    const wanted = [...this.packs.flatMap((p) => p.entries.map((e) => e.id)), ...this.standalone.map((s) => s.id)];
    const now = nowMs();
    const committed = await store.db.transaction(async (trx) => {
      // Concurrent uploads of the same chunks may have committed first: theirs win, ours become dead bytes.
      const existing = await store.lookup(trx, spaceId, wanted);
      const rows: Record<string, unknown>[] = [];
      const discard: string[] = [];
      let stored = 0;
      let bytes = 0;
      let packs = 0;
      let standalone = 0;
      for (const p of this.packs) {
        const fresh = p.entries.filter((e) => !existing.has(e.id));
        if (fresh.length === 0) {
          discard.push(p.key);
          continue;
        }
        const used = fresh.reduce((s, e) => s + e.length, 0);
        await trx('packs').insert({ id: p.id, space_id: spaceId, size: p.size, dead_bytes: p.size - used, state: 'live', created_at: now });
        for (const e of fresh) rows.push({ space_id: spaceId, id: e.id, length: e.length, pack_id: p.id, offset: e.offset, live: true, created_at: now });
        packs++;
        stored += fresh.length;
        bytes += used;
      }
      for (const s of this.standalone) {
        const other = existing.get(s.id);
        if (other) {
          // Only when the winner is packed is our object garbage; a standalone winner IS this key.
          if (other.packId !== null) discard.push(s.key);
          continue;
        }
        rows.push({ space_id: spaceId, id: s.id, length: s.length, pack_id: null, offset: null, live: true, created_at: now });
        standalone++;
        stored++;
        bytes += s.length;
      }
      for (const part of slices(rows)) await trx('chunks').insert(part);
      return { stored, bytes, packs, standalone, discard, raced: existing.size };
    });
    this.committed = true;
    try {
      await store.emit('batch:committed', { spaceId, stored: committed.stored });
      await forEachLimit(committed.discard, 8, (key) => this.blobs.delete(key)).catch(() => {}); // else: swept later
    } finally {
      this.releaseAll();
    }
    return { stored: committed.stored, duplicate: this.duplicate + committed.raced, bytes: committed.bytes, packs: committed.packs, standalone: committed.standalone };
  }

  /** After a failure: waits for writes in flight, deletes every object this batch wrote, releases its keys. */
  async abort(): Promise<void> {
    await this.drain();
    if (this.committed) return this.releaseAll();
    const keys = [...this.packs.map((p) => p.key), ...this.standalone.map((s) => s.key)];
    await forEachLimit(keys, 8, (key) => this.blobs.delete(key)).catch(() => {}); // what stays is swept later
    this.releaseAll();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.err;
  }

  private releaseAll(): void {
    for (const key of this.claimed) this.store.release(this.orgId, key);
    this.claimed.clear();
  }

  private async drain(): Promise<void> {
    await Promise.all([...this.packWrites, ...this.chunkWrites]);
  }

  private async flushGroup(): Promise<void> {
    const group = this.group;
    this.group = [];
    this.groupBytes = 0;
    if (group.length === 0) return;
    const { store, orgId, spaceId } = this;
    // Claim the standalone keys BEFORE the existence check: another upload of this process holds a key until
    // after its commit, so a chunk it stored is seen by the lookup below. A key busy right now (another upload
    // is writing it) is not waited for: that chunk is packed instead (no lock cycles between batches).
    const own = new Set<string>();
    for (const f of group) {
      if (f.ciphertext.length < store.packThresholdBytes) continue;
      const key = chunkKey(spaceId, f.id);
      if (store.tryClaim(orgId, key)) {
        this.claimed.add(key);
        own.add(f.id);
      }
    }
    const existing = await store.lookup(store.db, spaceId, group.map((f) => f.id));
    for (const f of group) {
      if (existing.has(f.id)) {
        this.duplicate++;
        if (own.has(f.id)) this.releaseKey(chunkKey(spaceId, f.id));
      } else if (own.has(f.id)) {
        await this.writeStandalone(f);
      } else {
        await this.appendPacked(f);
      }
    }
  }

  private releaseKey(key: string): void {
    this.claimed.delete(key);
    this.store.release(this.orgId, key);
  }

  private async appendPacked(f: ChunkData): Promise<void> {
    const n = f.ciphertext.length;
    const target = this.store.packTargetBytes;
    if (this.pack && this.pack.fill + n > target) await this.sealPack();
    if (!this.pack) this.pack = { buf: Buffer.allocUnsafe(Math.min(Math.max(target, n), Math.max(n, 1 * MiB))), fill: 0, entries: [] };
    const p = this.pack;
    if (p.fill + n > p.buf.length) {
      // Grow by doubling up to the target: small batches do not pay for a 16 MiB buffer.
      const bigger = Buffer.allocUnsafe(Math.max(p.fill + n, Math.min(Math.max(target, p.fill + n), p.buf.length * 2)));
      p.buf.copy(bigger, 0, 0, p.fill);
      p.buf = bigger;
    }
    p.buf.set(f.ciphertext, p.fill);
    p.entries.push({ id: f.id, offset: p.fill, length: n });
    p.fill += n;
    if (p.fill >= target) await this.sealPack();
  }

  private async sealPack(): Promise<void> {
    const p = this.pack;
    this.pack = null;
    if (!p || p.fill === 0) return;
    const id = newPackId();
    const key = packKey(this.spaceId, id);
    const body = p.buf.subarray(0, p.fill);
    this.store.tryClaim(this.orgId, key);
    this.claimed.add(key);
    this.packs.push({ id, key, size: p.fill, entries: p.entries });
    await this.slot(this.packWrites, this.store.packWritesInFlight);
    this.start(this.packWrites, async () => {
      await this.blobs.put(key, body);
      await this.store.emit('batch:packWritten', { spaceId: this.spaceId, packId: id, chunks: p.entries.length });
    });
  }

  private async writeStandalone(f: ChunkData): Promise<void> {
    const key = chunkKey(this.spaceId, f.id);
    this.standalone.push({ id: f.id, key, length: f.ciphertext.length });
    await this.slot(this.chunkWrites, this.store.standaloneWritesInFlight);
    this.start(this.chunkWrites, async () => {
      await this.blobs.put(key, f.ciphertext);
      await this.store.emit('batch:standaloneWritten', { spaceId: this.spaceId, chunkId: f.id });
    });
  }

  private async slot(set: Set<Promise<void>>, max: number): Promise<void> {
    while (set.size >= max) await Promise.race(set);
    this.throwIfFailed();
  }

  private start(set: Set<Promise<void>>, write: () => Promise<void>): void {
    const p: Promise<void> = write()
      .catch((err: unknown) => {
        this.failure ??= { err };
      })
      .finally(() => set.delete(p));
    set.add(p);
  }
}
