// One upload batch of the packed chunk store (ChunkStore.putBatch in chunks.ts): packs small chunks, writes large
// ones standalone, and commits every row of the batch in one transaction after all of its objects are written.
import type { OrgBlobStore } from '../blobstore/index.js';
import { insertRows } from '../db/bulk-insert.js';
import { nowMs } from '../db/db.js';
import { ChunkLimitError, InvalidChunkError } from './chunk-errors.js';
import { chunkKey, checkId, forEachLimit, FRAME_HEADER_BYTES, MiB, newPackId, packKey, SQL_BATCH, type ChunkBatchLimits, type ChunkData, type PutBatchResult } from './chunk-model.js';
import type { ChunkStore } from './chunks.js';
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
export class BatchWriter {
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
      this.store.frameBuffers.give(ciphertext);
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
      // One JSON parameter a part on sqlite (db/bulk-insert.ts), not 3,500: the most parameters of any W2 statement.
      await insertRows(trx, 'chunks', rows, SQL_BATCH);
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
        store.frameBuffers.give(f.ciphertext);
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
    // The whole target at once, uninitialised and reused from earlier batches (buffer-pool.ts): only the pages written
    // are ever touched, so a small batch pays for what it holds, not for the target. (Growing by doubling from 1 MiB
    // copied 3 MiB of every 4 MiB batch of the sync client and left 3 MiB of garbage; issue 22, W1's server profile.)
    if (!this.pack) this.pack = { buf: this.store.packBuffers.take(n), fill: 0, entries: [] };
    const p = this.pack;
    p.buf.set(f.ciphertext, p.fill);
    this.store.frameBuffers.give(f.ciphertext); // copied: the parser may assemble the next chunk in it
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
      this.store.packBuffers.give(p.buf); // written: nothing reads it any more (never after a failed write)
      await this.store.emit('batch:packWritten', { spaceId: this.spaceId, packId: id, chunks: p.entries.length });
    });
  }

  private async writeStandalone(f: ChunkData): Promise<void> {
    const key = chunkKey(this.spaceId, f.id);
    this.standalone.push({ id: f.id, key, length: f.ciphertext.length });
    await this.slot(this.chunkWrites, this.store.standaloneWritesInFlight);
    this.start(this.chunkWrites, async () => {
      await this.blobs.put(key, f.ciphertext);
      this.store.frameBuffers.give(f.ciphertext); // written (never after a failed write: a socket may still hold it)
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
