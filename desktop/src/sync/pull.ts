// Pulling: the space's change log, page by page, into the index's remote state (docs/architecture.md §4). Versions
// whose manifest or signer does not verify are refused and reported once; files that came through a file request
// are placed so that they never take the place of another file.
import { existsSync } from 'node:fs';
import type { SyncContext } from './context.js';
import { conflictStamp, taggedName } from './tagged-names.js';
import { pullChanges } from './remote.js';
import { probeStart, rebind, serverWentBack } from './rollback.js';
import type { RemoteEntry } from './types.js';

/**
 * Brings the index's remote state up to the server's head. Returns how many versions changed. `refused`: the
 * versions already reported as refused (each is reported once per engine).
 */
export async function pull(ctx: SyncContext, refused: Set<string>): Promise<number> {
  let changed = 0;
  const probe = await probeStart(ctx);
  let first = true;
  for await (const page of pullChanges(ctx.client, ctx.folder.spaceId, () => ctx.crypto(), probe.since, 1000, (versionId, seq) => seq <= probe.seen || ctx.ownCommits.has(versionId))) {
    if (first && serverWentBack(page, probe)) {
      await rebind(ctx, page.head, probe);
      return pull(ctx, refused);
    }
    first = false;
    if (page.uploads.size > 0) await placeUploads(ctx, page.entries, page.uploads);
    // Nothing new (an unchanged space): no write transaction.
    if (page.entries.length === 0 && page.wraps.length === 0 && page.refused.length === 0 && page.next === ctx.folder.lastSeq) continue;
    await ctx.db.apply(ctx.folder.id, { putRemote: page.entries, putWraps: page.wraps, lastSeq: page.next });
    ctx.folder.lastSeq = page.next;
    for (const s of ctx.ownSeqs) if (s <= page.next) ctx.ownSeqs.delete(s); // passed: no run from the position needs them
    changed += page.entries.length;
    for (const r of page.refused) {
      if (refused.has(r.versionId)) continue;
      refused.add(r.versionId);
      ctx.report.refused.push({ path: `(file ${r.fileId}, version ${r.versionId})`, reason: r.reason });
      ctx.emit('warning', `a version from the server was refused: ${r.reason}`);
    }
  }
  return changed;
}

/**
 * A file that came through a file request never takes the place of another (docs/crypto.md §9.2): the uploader
 * cannot see the folder's names. If its path is held by another file (on the server, in the index, or on disk),
 * it is kept as `name (upload <YYYY-MM-DD HHmm>).ext`, stamped with the server's commit time (UTC), so every
 * device picks the same name. The index keeps that path as the file's remote path; a member's next edit or move
 * commits it.
 */
async function placeUploads(ctx: SyncContext, entries: RemoteEntry[], uploads: Map<string, number>): Promise<void> {
  const remote = await ctx.db.remoteAll(ctx.folder.id);
  const base = await ctx.db.baseAll(ctx.folder.id);
  const held = new Map<string, string>();
  for (const r of remote.values()) if (!r.deleted) held.set(r.path, r.fileId);
  for (const [p, b] of base) held.set(p, b.fileId);
  for (const e of entries) if (!e.deleted && !uploads.has(e.versionId)) held.set(e.path, e.fileId);
  for (const e of entries) {
    const at = uploads.get(e.versionId);
    if (at === undefined) continue;
    const taken = (p: string) => {
      const owner = held.get(p);
      return owner === undefined ? existsSync(ctx.abs(p)) : owner !== e.fileId;
    };
    if (taken(e.path)) e.path = taggedName(e.path, `upload ${conflictStamp(new Date(at))}`, taken);
    held.set(e.path, e.fileId);
  }
}
