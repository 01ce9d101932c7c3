// The orphan sweep of the packed chunk store (chunks.ts): removes what interrupted uploads and compactions leave
// behind (invariant I3 in chunks.ts's header).
import type { OrgBlobStore } from '../blobstore/index.js';
import { isChunkId, packKey, SPACE_ID, SQL_BATCH, type SweepOptions, type SweepResult } from './chunk-model.js';
import type { ChunkStore } from './chunks.js';

export async function sweepOrphans(store: ChunkStore, options: SweepOptions = {}): Promise<SweepResult> {
  const result: SweepResult = { orphanPacks: 0, orphanChunks: 0, retiredPacks: 0, bytesFreed: 0 };
  const graceMs = options.graceMs ?? 60 * 60 * 1000;
  let query = store.db('spaces').select('id', 'org_id').orderBy('id');
  if (options.orgId !== undefined) query = query.where({ org_id: options.orgId });
  if (options.spaceId !== undefined) query = query.where({ id: options.spaceId });
  const spaces = (await query) as { id: string; org_id: string }[];
  for (const space of spaces) {
    if (!SPACE_ID.test(space.id)) continue;
    await store.withSpaceLock(space.id, () => sweepSpace(store, store.blobs.forOrg(space.org_id), space.id, graceMs, result));
  }
  return result;
}

async function sweepSpace(store: ChunkStore, blobs: OrgBlobStore, spaceId: string, graceMs: number, result: SweepResult): Promise<void> {
  // Retired packs: their rows were switched away already; finish the deletion.
  const retired = (await store.db('packs').where({ space_id: spaceId, state: 'retired' }).select('id', 'size')) as { id: string; size: number | string }[];
  for (const p of retired) {
    const refs = await store.db('chunks').where({ pack_id: p.id }).first('id');
    if (refs) continue; // cannot happen (the switch moves every row); never delete what a row points at
    await blobs.delete(packKey(spaceId, p.id));
    await store.db('packs').where({ id: p.id, state: 'retired' }).del();
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
    const idle = batch.filter((e) => !store.isBusy(blobs.orgId, e.key));
    const rows = new Set(((await store.db('packs').whereIn('id', idle.map((e) => e.id)).select('id')) as { id: string }[]).map((r) => r.id));
    for (const e of idle) {
      if (rows.has(e.id) || store.isBusy(blobs.orgId, e.key)) continue;
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
    const claimed = batch.filter((e) => store.tryClaim(blobs.orgId, e.key));
    try {
      if (claimed.length === 0) return;
      const rows = await store.lookup(store.db, spaceId, claimed.map((e) => e.id));
      for (const e of claimed) {
        const row = rows.get(e.id);
        if (row && row.packId === null) continue;
        await blobs.delete(e.key);
        result.orphanChunks++;
        result.bytesFreed += e.size;
      }
    } finally {
      for (const e of claimed) store.release(blobs.orgId, e.key);
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

