// Carrying out what reconciliation (reconcile.ts) decided for one pass, in this order: the local writes and moves are
// journalled (journal.ts); index-only changes and local moves are done; downloads (download.ts); uploads and the
// versions of moves and deletions (upload.ts, commit.ts); last, local deletions, each guarded by a content check.
import { moveLocal, removeLocal, type LocalFacts } from './atomic-write.js';
import { makeVersion, type PendingCommit } from './commit.js';
import type { SyncContext } from './context.js';
import { baseOf, downloadAll, type DownloadItem } from './download.js';
import type { IndexChanges } from './index-db.js';
import { limitHeapGrowth, youngGenerationFor } from './heap-growth.js';
import { journalLocal } from './journal.js';
import { uploadTarget } from './reconcile.js';
import { EMPTY_HASH, type ScanResult } from './scan.js';
import { HASH_LATER, type BaseEntry, type LocalEntry, type SyncAction } from './types.js';
import { hashNow } from './hash-later.js';
import { uploadAll, type UploadItem } from './upload.js';

function currentFacts(l: LocalEntry | undefined): LocalFacts | null {
  return l ? { size: l.size, mtimeMs: l.mtimeMs, ino: l.ino } : null;
}

/** The base row of an unchanged entry whose local facts moved (touched, copied back): refreshed, so no re-hash next time. */
function refreshedFacts(a: { path: string }, base: Map<string, BaseEntry>, scan: ScanResult): BaseEntry | null {
  const b = base.get(a.path);
  const l = scan.entries.get(a.path);
  if (b && l && l.hash === b.hash && (l.size !== b.localSize || l.mtimeMs !== b.localMtimeMs || l.ino !== b.localIno)) {
    return { ...b, localSize: l.size, localMtimeMs: l.mtimeMs, localIno: l.ino };
  }
  return null;
}

/**
 * What a pass did: `busy`, anything at all; `again`, something another pass must look at before the folder can be
 * called in step (see act).
 */
export interface Acted {
  busy: boolean;
  again: boolean;
}

/**
 * Whether the versions this pass committed are the change log's newest entries from the position the pass pulled
 * to: no other device committed between that pull and the last of them (their seqs would be a gap, commit.ts ownRunEnd).
 */
function nothingCommittedBetween(ctx: SyncContext): boolean {
  for (const s of ctx.ownSeqs) if (s > ctx.folder.lastSeq) return false;
  return true;
}

/**
 * Carries out `actions`; returns whether anything was done and whether another pass is needed to confirm the folder
 * is in step. A pass that only committed local changes, every one of them, with no other device's version between
 * its pull and its commits, changed nothing that pass read: the disk is as its scan found it (the upload checks each
 * file against the scan) and the index holds the server's state up to its commits. Another pass would scan the whole
 * folder and pull for nothing (a tenth of a first sync of 10,000 small files, issue 22). A pass that wrote to the
 * disk (downloads, local moves and deletions, conflict copies), left a change (changed since its scan, unreadable,
 * refused or stale at the server) or saw another device commit asks for one.
 */
export async function act(ctx: SyncContext, actions: SyncAction[], base: Map<string, BaseEntry>, scan: ScanResult, signal?: AbortSignal): Promise<Acted> {
  // Nothing to do (an unchanged folder, the usual pass): neither the space's keys nor the journal are needed.
  if (actions.every((a) => a.type === 'none')) {
    const putBase = actions.map((a) => refreshedFacts(a, base, scan)).filter((b) => b !== null);
    if (putBase.length) await ctx.db.apply(ctx.folder.id, { putBase });
    return { busy: false, again: false };
  }
  // A pass with work makes garbage in proportion to its files: from here on V8 grows the heap less between full
  // collections (heap-growth.ts). Not before: an unchanged re-run, the CLI's usual pass, would pay the extra collections.
  limitHeapGrowth();
  youngGenerationFor(actions.reduce((n, a) => (a.type === 'none' ? n : n + 1), 0));
  const sc = await ctx.crypto();
  const report = ctx.report;
  const disk = (p: string): string => scan.diskPaths.get(p) ?? p;
  const index: IndexChanges & { putBase: BaseEntry[]; deleteBase: string[] } = { putBase: [], deleteBase: [] };
  const flushIndex = async (): Promise<void> => {
    if (!index.putBase.length && !index.deleteBase.length) return;
    await ctx.db.apply(ctx.folder.id, { deleteBase: index.deleteBase.splice(0), putBase: index.putBase.splice(0) });
  };
  const commits: PendingCommit[] = [];
  const uploads: UploadItem[] = [];
  const downloads: DownloadItem[] = [];
  const localDeletes: Extract<SyncAction, { type: 'delete-local' }>[] = [];
  let busy = false;
  let wroteLocal = false; // a local move or a conflict copy (downloads and local deletions are counted below)

  const fileIds = new Set<string>();
  for (const a of actions) {
    if ('remote' in a && a.remote) fileIds.add(a.remote.fileId);
    if ('base' in a && a.base) fileIds.add(a.base.fileId);
  }
  await ctx.keysFor([...fileIds]);
  const localJournal = await journalLocal(ctx, actions, disk);

  for (const a of actions) {
    if (signal?.aborted) break;
    switch (a.type) {
      case 'none': {
        const refreshed = refreshedFacts(a, base, scan);
        if (refreshed) index.putBase.push(refreshed);
        break;
      }
      case 'refuse':
        ctx.refuse(a.path, a.reason);
        break;
      case 'record':
        if (a.remote && !a.remote.deleted && a.local) index.putBase.push(baseOf(a.remote, a.local));
        else index.deleteBase.push(a.path);
        break;
      case 'move-local':
        busy = wroteLocal = true;
        try {
          const facts = await moveLocal(ctx.folder.root, disk(a.from), a.to, a.base.hash);
          index.deleteBase.push(a.from);
          index.putBase.push(baseOf(a.remote, facts));
          report.moved++;
        } catch (err) {
          ctx.localFailure(a.from, err);
        }
        break;
      case 'move-remote': {
        if (!sc.canWrite || sc.frozen) {
          ctx.readOnly(a.to, sc.frozen);
          break;
        }
        busy = true;
        const r = a.remote;
        if (r.keyEpoch !== sc.keyEpoch || !sc.keyFor(r.fileId, r.keyEpoch)) {
          // The space key was rotated since: the moved file goes up again under a fresh key (no chunk reuse).
          uploads.push({ path: a.to, local: a.local, fileId: r.fileId, parent: r.versionId, deleteBase: a.from });
          break;
        }
        const keys = sc.keyFor(r.fileId, r.keyEpoch)!;
        commits.push(makeVersion(ctx, sc, keys, {
          fileId: r.fileId, parent: r.versionId, path: a.to, kind: r.kind, size: r.size, mtimeMs: r.mtimeMs, chunks: r.chunks, hash: r.hash, deleted: false,
        }, 'move', { local: a.local, deleteBase: a.from }));
        break;
      }
      case 'upload':
        if (!sc.canWrite || sc.frozen) {
          // A large file the scan left to its upload (hash-later.ts) may only have been touched: hashed here to tell.
          if (a.local.hash === HASH_LATER) await hashNow(scan, [a.path], (p) => ctx.abs(p));
          const refreshed = refreshedFacts(a, base, scan);
          if (refreshed) index.putBase.push(refreshed);
          else if (scan.entries.has(a.path)) ctx.readOnly(a.path, sc.frozen);
          break;
        }
        busy = true;
        uploads.push({ path: a.path, local: a.local, ...uploadTarget(a), base: a.base });
        break;
      case 'download':
        busy = true;
        downloads.push({ remote: a.remote, path: a.path, current: currentFacts(scan.entries.get(a.path)), base: a.base });
        break;
      case 'conflict':
        busy = wroteLocal = true;
        try {
          await moveLocal(ctx.folder.root, disk(a.path), a.conflictPath, a.local.hash);
          report.conflicts.push(a.conflictPath);
          ctx.emit('warning', `${a.path}: changed here and on the server; your version is kept as "${a.conflictPath}"`);
          downloads.push({ remote: a.remote, path: a.path, current: null, base: null });
        } catch (err) {
          ctx.localFailure(a.path, err);
        }
        break;
      case 'delete-local':
        busy = true;
        localDeletes.push(a);
        break;
      case 'delete-remote': {
        if (!sc.canWrite || sc.frozen) {
          ctx.readOnly(a.path, sc.frozen);
          break;
        }
        busy = true;
        if (!sc.knows(a.base.fileId)) {
          report.errors.push({ path: a.path, reason: 'no key of this file opens for you' });
          break;
        }
        const { keys } = sc.writeKeys(a.base.fileId);
        commits.push(makeVersion(ctx, sc, keys, {
          fileId: a.base.fileId, parent: a.remote.versionId, path: a.path, kind: a.base.kind, size: 0, mtimeMs: Math.trunc(a.base.mtimeMs), chunks: [], hash: EMPTY_HASH, deleted: true,
        }, 'delete', { deleteBase: a.path }));
        break;
      }
    }
  }
  await flushIndex();

  if (downloads.length) {
    ctx.setState('downloading');
    await downloadAll({
      client: ctx.client, db: ctx.db, folder: ctx.folder, spaceId: sc.spaceId, limiter: ctx.limiter, report, signal,
      keys: (r, p) => ctx.keysOrReport(r, p),
      localFailure: (p, err) => ctx.localFailure(p, err),
      progress: (p) => ctx.emit('progress', p),
      diskPath: disk,
    }, downloads, index.putBase);
    await flushIndex();
  }
  if (localJournal !== null) await ctx.db.apply(ctx.folder.id, { journalDone: [localJournal] });
  let settled = 0;
  if (uploads.length || commits.length) {
    ctx.setState('uploading');
    settled = await uploadAll(ctx, uploads, commits, scan, signal);
  }
  for (const a of localDeletes) {
    if (signal?.aborted) break;
    try {
      const removed = await removeLocal(ctx.folder.root, disk(a.path), a.base.kind === 'dir' ? EMPTY_HASH : a.base.hash);
      index.deleteBase.push(a.path);
      if (removed) report.deletedLocal++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOTEMPTY') ctx.emit('warning', `${a.path}: deleted on the server, but the folder still holds files that are not synced; kept`);
      else ctx.localFailure(a.path, err);
    }
  }
  await flushIndex();
  const again = busy && (wroteLocal || downloads.length > 0 || localDeletes.length > 0 || settled < uploads.length + commits.length
    || !nothingCommittedBetween(ctx) || signal?.aborted === true);
  return { busy, again };
}
