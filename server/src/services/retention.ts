// Version retention (docs/architecture.md §3): history older than a space's retention is expired; chunks that no retained
// version names any more are marked dead, which is what compaction later reclaims. A version becomes history when
// a newer version of its file replaces it, and its age counts from then (not from when it was written): a file
// overwritten or deleted yesterday can be restored for the whole retention, however old its content is. The
// newest version of a file is kept however old, unless it is a deletion past retention (the file then leaves the
// trash for good).
import type { Db } from '../db/db.js';
import type { AuditLog } from '../audit/types.js';
import type { ChunkStore } from '../storage/chunks.js';

export interface RetentionResult {
  spaces: number;
  expiredVersions: number;
  deadChunks: number;
}

/** Expires what retention allows in every space (or one), marking unreferenced chunks dead. */
export async function applyRetention(db: Db, chunks: ChunkStore, audit: AuditLog, now = Date.now(), onlySpace?: string): Promise<RetentionResult> {
  const result: RetentionResult = { spaces: 0, expiredVersions: 0, deadChunks: 0 };
  const spaces = await (onlySpace ? db('spaces').where({ id: onlySpace }) : db('spaces')).select('id', 'org_id', 'retention_days');
  for (const space of spaces) {
    const cutoff = now - Number(space.retention_days) * 86_400_000;
    await db.transaction(async (trx) => {
      const expiring = await trx('versions as v')
        .join('files as f', 'f.id', 'v.file_id')
        // The version that replaced it (history is linear: a commit's parent is the head).
        .leftJoin('versions as n', (j) => {
          j.on('n.parent_id', '=', 'v.id').andOn('n.file_id', '=', 'v.file_id');
        })
        .where('v.space_id', space.id)
        .whereNull('v.expired_at')
        .andWhere((q) => q
          .where((h) => h.whereRaw('v.id <> f.head_version_id').andWhere('n.created_at', '<', cutoff))
          .orWhere((d) => d.whereRaw('v.id = f.head_version_id').andWhere('v.deleted', true).andWhere('v.created_at', '<', cutoff)))
        .distinct('v.id');
      if (!expiring.length) return;
      const ids = expiring.map((r) => r.id as string);
      for (let i = 0; i < ids.length; i += 500) await trx('versions').whereIn('id', ids.slice(i, i + 500)).update({ expired_at: now });
      // Chunks named by an expired version and by no retained one.
      const candidates = new Set<string>();
      for (let i = 0; i < ids.length; i += 500) {
        for (const r of await trx('version_chunks').whereIn('version_id', ids.slice(i, i + 500)).distinct('chunk_id')) candidates.add(r.chunk_id);
      }
      const stillUsed = new Set<string>();
      const list = [...candidates];
      for (let i = 0; i < list.length; i += 500) {
        const rows = await trx('version_chunks as vc').join('versions as v', 'v.id', 'vc.version_id')
          .where('v.space_id', space.id).whereNull('v.expired_at').whereIn('vc.chunk_id', list.slice(i, i + 500)).distinct('vc.chunk_id');
        for (const r of rows) stillUsed.add(r.chunk_id);
      }
      const dead = list.filter((id) => !stillUsed.has(id));
      if (dead.length) await chunks.markDead(space.org_id, space.id, dead, trx);
      await audit.append(trx, { orgId: space.org_id, action: 'retention.expire', targetType: 'space', targetId: space.id, outcome: 'success', client: 'kluis-server', details: { versions: ids.length, deadChunks: dead.length } });
      result.spaces++;
      result.expiredVersions += ids.length;
      result.deadChunks += dead.length;
    });
  }
  return result;
}
