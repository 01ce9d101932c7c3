// The packed chunk store's vocabulary (chunks.ts): sizes, limits, public result types, index rows and object keys,
// and the small helpers every part of the store uses.
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Knex } from 'knex';
import { DEFAULT_FRAME_LIMITS, type FrameLimits } from '@kluis/shared';
import { ChunkCorruptError, InvalidChunkError } from './chunk-errors.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

// Frame sizes and batch limits live once, in @kluis/shared (shared/src/api/frames.ts): the store uses them as they are.
export { CHUNK_CIPHERTEXT_MAX, CHUNK_CIPHERTEXT_MIN, FRAME_HEADER_BYTES } from '@kluis/shared';

/**
 * Chunk ciphertexts of an upload batch shorter than this are packed; longer ones are objects of their own. The default
 * is above the largest chunk ciphertext (CHUNK_CIPHERTEXT_MAX, 2 MiB + 41), so every chunk of a batch is packed and a
 * batch of the sync client (4 MiB) is one object. Issue 22, W1: on a local Ceph RGW, putting 512 MiB cost RGW and its
 * OSD 4.7-5.5 s of CPU as 600 KiB objects (a 1 GiB file's FastCDC chunks) against 2.9 s as 4 MiB objects and 2.5-2.7 s
 * as 16 MiB ones (the minio client: 2.6-2.8 against 1.4-1.6 s), 2026-11-30, four puts in flight. When the server and
 * the store share the machine's cores, that per-object CPU is the upload's speed. Time alone had chosen 512 KiB
 * before (scripts/bench/storage.ts part (c), MB/s write / read, packed vs standalone: 4 KiB 70/185 vs 3.6/7;
 * 512 KiB 75/347 vs 116/222; 2 MiB 96/292 vs 120/383, on an idle store). KLUIS_PACK_THRESHOLD sets another value
 * (e.g. 524288 where the store's per-object cost is low and deleting a dead chunk outright is worth more than packing
 * it); single-chunk PUTs are always objects of their own.
 */
export const PACK_THRESHOLD_BYTES = 4 * MiB;
/**
 * A pack is sealed and written once it holds this many bytes (docs/architecture.md §3.1: 8–16 MiB). 8 MiB with two pack uploads in
 * flight wrote as fast as 16 MiB packs did in the benchmark, with a smaller memory bound (3 x 8 MiB per batch) and
 * finer-grained compaction.
 */
export const PACK_TARGET_BYTES = 8 * MiB;
/** Rows per IN list / multi-row insert (sqlite allows 32766 variables; 500 rows x 7 columns is far below). */
export const SQL_BATCH = 500;
const CHUNK_ID = /^[0-9a-f]{64}$/;
const ZERO_ID = '0'.repeat(64);
export const SPACE_ID = /^[A-Za-z0-9_-]{1,64}$/;

// ------------------------------------------------------------------------------------------------ types

/** One chunk: id (64 lower-case hex) and ciphertext. Structurally the same as `ChunkFrame` of @kluis/shared. */
export interface ChunkData {
  id: string;
  ciphertext: Uint8Array;
}

/** Limits of one upload batch: the frame parser's (`FrameLimits`), so that one object serves both. */
export type ChunkBatchLimits = FrameLimits;

export const DEFAULT_CHUNK_BATCH_LIMITS: Readonly<ChunkBatchLimits> = DEFAULT_FRAME_LIMITS;

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

export type Q = Knex | Knex.Transaction;

export interface IndexRow {
  id: string;
  length: number;
  packId: string | null;
  offset: number;
  live: boolean;
}

export interface RawChunkRow {
  id: string;
  length: number | string;
  pack_id: string | null;
  offset: number | string | null;
  live: boolean | number;
  created_at?: number | string;
}

export function toIndexRow(r: RawChunkRow): IndexRow {
  return { id: r.id, length: Number(r.length), packId: r.pack_id, offset: r.offset === null ? 0 : Number(r.offset), live: Boolean(r.live) };
}

export function isChunkId(id: unknown): id is string {
  return typeof id === 'string' && CHUNK_ID.test(id) && id !== ZERO_ID;
}

export function checkId(id: unknown): asserts id is string {
  if (!isChunkId(id)) throw new InvalidChunkError(id, 'bad_id', 'a chunk id is 64 lower-case hex digits (not all zero)');
}

export function packKey(spaceId: string, packId: string): string {
  return `spaces/${spaceId}/packs/${packId}`;
}

export function chunkKey(spaceId: string, chunkId: string): string {
  return `spaces/${spaceId}/chunks/${chunkId}`;
}

export function newPackId(): string {
  return randomBytes(16).toString('base64url');
}

export function slices<T>(items: readonly T[], size = SQL_BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export function limitsOf(limits?: Partial<ChunkBatchLimits>): ChunkBatchLimits {
  const out = { ...DEFAULT_CHUNK_BATCH_LIMITS };
  for (const [k, v] of Object.entries(limits ?? {})) if (v !== undefined) (out as Record<string, number>)[k] = v as number;
  return out;
}

/** Runs `fn` over `items` with at most `n` at once; rejects with the first error after all started ones settle. */
export async function forEachLimit<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
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

export async function readStream(stream: Readable, expected: number, what: string): Promise<Buffer> {
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

