// Compaction of the packed chunk store (chunks.ts): rewrites packs that are more than half dead and deletes dead
// standalone chunks, keeping the invariants of chunks.ts's header across crashes.
import type { OrgBlobStore } from '../blobstore/index.js';
import { nowMs } from '../db/db.js';
import { chunkKey, forEachLimit, newPackId, packKey, slices, SQL_BATCH, toIndexRow, type CompactResult, type IndexRow, type RawChunkRow } from './chunk-model.js';
import type { ChunkStore } from './chunks.js';
import { readUnits, planPack } from './read-plan.js';

export async function compact(store: ChunkStore, orgId: string, spaceId?: string): Promise<CompactResult> {
  const result: CompactResult = { packsRewritten: 0, packsWritten: 0, chunksMoved: 0, deadChunksRemoved: 0, standaloneDeleted: 0, bytesFreed: 0, conflicts: 0 };
  const spaces = spaceId !== undefined ? [spaceId] : (await store.db('spaces').where({ org_id: orgId }).orderBy('id').select('id')).map((r: { id: string }) => r.id);
  for (const sid of spaces) {
    await store.checkSpace(store.db, orgId, sid);
    await store.withSpaceLock(sid, () => compactSpace(store, orgId, sid, result));
  }
  return result;
}

async function compactSpace(store: ChunkStore, orgId: string, spaceId: string, result: CompactResult): Promise<void> {
  const blobs = store.blobs.forOrg(orgId);
  const candidates = (await store.db('packs')
    .where({ space_id: spaceId, state: 'live' })
    .andWhere(store.db.raw('?? * 2 > ??', ['dead_bytes', 'size']))
    .orderBy('created_at')
    .select('id', 'size')) as { id: string; size: number | string }[];
  let group: { id: string; size: number; live: IndexRow[] }[] = [];
  let groupBytes = 0;
  for (const c of candidates) {
    const live = ((await store.db('chunks').where({ pack_id: c.id, live: true }).orderBy('offset').select('id', 'length', 'pack_id', 'offset', 'live')) as RawChunkRow[]).map(toIndexRow);
    const liveBytes = live.reduce((s, r) => s + r.length, 0);
    if (group.length > 0 && groupBytes + liveBytes > store.packTargetBytes) {
      await rewritePacks(store, blobs, spaceId, group, result);
      group = [];
      groupBytes = 0;
    }
    group.push({ id: c.id, size: Number(c.size), live });
    groupBytes += liveBytes;
  }
  if (group.length > 0) await rewritePacks(store, blobs, spaceId, group, result);
  await deleteDeadStandalone(store, blobs, spaceId, result);
}

async function rewritePacks(store: ChunkStore, blobs: OrgBlobStore, spaceId: string, sources: { id: string; size: number; live: IndexRow[] }[], result: CompactResult): Promise<void> {
  const total = sources.reduce((s, p) => s + p.live.reduce((t, r) => t + r.length, 0), 0);
  const placement = new Map<string, number>(); // chunk id -> offset in the new pack
  let newPack: { id: string; key: string } | null = null;
  if (total > 0) {
    const body = Buffer.allocUnsafe(total);
    let at = 0;
    for (const src of sources) {
      for await (const c of readUnits(store, blobs, spaceId, planPack(store, spaceId, src.id, src.size, src.live, new Map()))) {
        body.set(c.ciphertext, at);
        placement.set(c.id, at);
        at += c.ciphertext.length;
      }
    }
    newPack = { id: newPackId(), key: '' };
    newPack.key = packKey(spaceId, newPack.id);
    store.tryClaim(blobs.orgId, newPack.key);
    try {
      await blobs.put(newPack.key, body);
    } catch (err) {
      store.release(blobs.orgId, newPack.key);
      await blobs.delete(newPack.key).catch(() => {});
      throw err;
    }
    await store.emit('compact:packWritten', { spaceId, packId: newPack.id, sources: sources.map((s) => s.id) });
  }
  const sourceIds = sources.map((s) => s.id);
  let switched: { moved: number; dropped: number } | null = null;
  try {
    switched = await store.db.transaction(async (trx) => {
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
    if (newPack) store.release(blobs.orgId, newPack.key);
  }
  if (!switched) {
    if (newPack) await blobs.delete(newPack.key).catch(() => {});
    result.conflicts++;
    return;
  }
  await store.emit('compact:switched', { spaceId, sources: sourceIds, packId: newPack?.id ?? null });
  for (const src of sources) {
    await blobs.delete(packKey(spaceId, src.id));
    await store.emit('compact:oldDeleted', { spaceId, packId: src.id });
  }
  await store.db('packs').whereIn('id', sourceIds).andWhere({ state: 'retired' }).del();
  result.packsRewritten += sources.length;
  if (newPack) result.packsWritten++;
  result.chunksMoved += switched.moved;
  result.deadChunksRemoved += switched.dropped;
  result.bytesFreed += sources.reduce((s, p) => s + p.size, 0) - total;
}

async function deleteDeadStandalone(store: ChunkStore, blobs: OrgBlobStore, spaceId: string, result: CompactResult): Promise<void> {
  for (;;) {
    const rows = ((await store.db('chunks').where({ space_id: spaceId, live: false }).whereNull('pack_id').orderBy('id').limit(SQL_BATCH).select('id', 'length', 'pack_id', 'offset', 'live')) as RawChunkRow[]).map(toIndexRow);
    if (rows.length === 0) return;
    const claimed = rows.filter((r) => store.tryClaim(blobs.orgId, chunkKey(spaceId, r.id)));
    let gone: IndexRow[] = [];
    try {
      if (claimed.length > 0) {
        gone = await store.db.transaction(async (trx) => {
          const still = ((await trx('chunks').where({ space_id: spaceId, live: false }).whereNull('pack_id').whereIn('id', claimed.map((r) => r.id)).select('id', 'length', 'pack_id', 'offset', 'live')) as RawChunkRow[]).map(toIndexRow);
          if (still.length > 0) await trx('chunks').where({ space_id: spaceId, live: false }).whereNull('pack_id').whereIn('id', still.map((r) => r.id)).del();
          return still;
        });
        await store.emit('compact:standaloneRowsDeleted', { spaceId, count: gone.length });
        await forEachLimit(gone, 8, (r) => blobs.delete(chunkKey(spaceId, r.id)));
        await store.emit('compact:standaloneDeleted', { spaceId, count: gone.length });
      }
    } finally {
      for (const r of claimed) store.release(blobs.orgId, chunkKey(spaceId, r.id));
    }
    result.deadChunksRemoved += gone.length;
    result.standaloneDeleted += gone.length;
    result.bytesFreed += gone.reduce((s, r) => s + r.length, 0);
    if (gone.length === 0 || rows.length < SQL_BATCH) return;
  }
}
