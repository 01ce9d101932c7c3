// A server whose change log went back (docs/backup.md §6): restored from a backup taken before this device's last
// sync. Restore keeps the backup's rows as they were, seq numbers and version ids included, and the log then grows
// again from the backup's head. So either the server's head is below the position this index reached, or, once
// others committed after the restore, the seq of the newest version this index holds names another version. Both
// are certain: on a server that did not go back the head never decreases and a seq never changes its version. The
// folder is then bound afresh (no cursor, no remote or base rows, as a new client starts) and the next scan and
// reconcile upload what the server lacks; files both hold with the same content are only recorded.
import type { SyncContext } from './context.js';

/** Where a pull starts, and the version the server's first answer should show again. */
export interface RollbackProbe {
  since: number;
  seen: number;
  top: { seq: number; versionId: string } | null;
}

/**
 * The pull starts one change before the newest version the index holds (not a request more: the server's first
 * page shows it again). Versions up to the index's position are known and not opened again.
 */
export async function probeStart(ctx: SyncContext): Promise<RollbackProbe> {
  const seen = ctx.folder.lastSeq;
  if (seen === 0) return { since: 0, seen, top: null };
  const row = await ctx.db.newestRemoteUpTo(ctx.folder.id, seen);
  const seq = row?.seq ?? 0;
  if (!row || seq < 1 || seq > seen) return { since: seen, seen, top: null };
  return { since: seq - 1, seen, top: { seq, versionId: row.versionId } };
}

/** Whether the server's first page shows a change log older than this index's (see the top of this file). */
export function serverWentBack(page: { head: number; first: { seq: number; versionId: string } | null }, probe: RollbackProbe): boolean {
  if (page.head < probe.seen) return true;
  return probe.top !== null && page.first?.seq === probe.top.seq && page.first.versionId !== probe.top.versionId;
}

/** Drops what the index knows of the server for this folder, in one transaction, and reports it once. */
export async function rebind(ctx: SyncContext, head: number, probe: RollbackProbe): Promise<void> {
  await ctx.db.forgetServer(ctx.folder.id);
  ctx.folder.lastSeq = 0;
  ctx.ownSeqs.clear(); // seqs of the log that went back; others' versions take them again
  ctx.forgetCrypto();
  ctx.rebound = true;
  const behind = { head, seen: probe.seen };
  ctx.report.serverBehind = behind;
  ctx.emit('warning', behindText(behind));
}

/** The one line that says so (an engine warning, and `kluis sync --once`'s summary). */
export function behindText(b: { head: number; seen: number }): string {
  return `the server's history for this space is older than this device's (change ${b.head}, this device saw ${b.seen}): probably restored from a backup; re-checking every file`;
}
