// Read planning for the packed chunk store (chunks.ts getBatch, compaction): which blob reads serve a set of
// chunks (ranged GETs grouped per pack, whole standalone objects), and reading them with bounded read-ahead.
import type { OrgBlobStore } from '../blobstore/index.js';
import { BlobNotFoundError } from '../blobstore/index.js';
import { ChunkCorruptError, ChunkNotFoundError } from './chunk-errors.js';
import { chunkKey, packKey, readStream, slices, type ChunkData, type IndexRow, type Q } from './chunk-model.js';
import type { ChunkStore } from './chunks.js';

/** A planned blob read: a range of a pack, or a whole standalone object, and the chunks it yields. */
export interface ReadUnit {
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

/** Plans the blob reads for `ids` (all present in `rows`), ordered by first request position. */
export async function planReads(store: ChunkStore, q: Q, spaceId: string, ids: readonly string[], rows: Map<string, IndexRow>): Promise<ReadUnit[]> {
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
  for (const [packId, list] of perPack) units.push(...planPack(store, spaceId, packId, sizes.get(packId) ?? Infinity, list, order));
  units.sort((a, b) => a.first - b.first);
  return units;
}

/** Ranged reads for the wanted chunks of one pack (see getBatch). */
export function planPack(store: ChunkStore, spaceId: string, packId: string, packSize: number, wanted: IndexRow[], order: Map<string, number>): ReadUnit[] {
  const key = packKey(spaceId, packId);
  const sorted = [...wanted].sort((a, b) => a.offset - b.offset);
  const wantedBytes = sorted.reduce((s, r) => s + r.length, 0);
  const units: ReadUnit[] = [];
  const whole = wantedBytes * 2 >= packSize;
  let unit: ReadUnit | null = null;
  for (const r of sorted) {
    const end = unit ? unit.offset + unit.length : 0;
    if (unit && (whole || r.offset - end <= store.readGapBytes)) {
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
export async function* readUnits(store: ChunkStore, blobs: OrgBlobStore, spaceId: string, units: ReadUnit[]): AsyncGenerator<ChunkData, void, undefined> {
  const pending: { unit: ReadUnit; data: Promise<ChunkData[]> }[] = [];
  let next = 0;
  let running = 0;
  let ahead = 0;
  let stopped = false;
  const fill = () => {
    while (!stopped && next < units.length && running < store.readsInFlight && (pending.length === 0 || ahead + units[next]!.length <= store.readAheadBytes)) {
      const unit = units[next++]!;
      running++;
      ahead += unit.length;
      const data = readUnit(store, blobs, spaceId, unit, 0);
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

async function readUnit(store: ChunkStore, blobs: OrgBlobStore, spaceId: string, unit: ReadUnit, depth: number): Promise<ChunkData[]> {
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
    const rows = await store.lookup(store.db, spaceId, ids);
    const gone = ids.filter((id) => !rows.has(id));
    if (gone.length > 0) throw new ChunkNotFoundError(gone);
    const out: ChunkData[] = [];
    for (const u of await planReads(store, store.db, spaceId, ids, rows)) out.push(...(await readUnit(store, blobs, spaceId, u, depth + 1)));
    return out;
  }
}
