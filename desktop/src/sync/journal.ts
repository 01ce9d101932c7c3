// The operation journal of the engine (engine.ts, "Crash safety"): what a pass is about to do, written to the index
// before it is done, so that a kill at any point loses nothing and duplicates nothing.
// - 'local': the downloads and local moves of a pass, with the base rows they produce. At start, each one found done
//   on disk (same hash at its target) gets its base row, so a later remote change is an ordinary update, never a
//   conflict with our own download or a re-upload of a moved file.
// - 'commit': a commit batch, with the base rows it will produce. At start, a pending commit whose version the server
//   holds gets its base rows, so a later local edit is an ordinary edit and never a conflict with ourselves; a commit
//   the server never got is simply redone by the next cycle.
import { lstat } from 'node:fs/promises';
import { dropLeftoverLink, type LocalFacts } from './atomic-write.js';
import type { SyncContext } from './context.js';
import { keepChunks } from './download.js';
import type { IndexChanges } from './index-db.js';
import { fileHistory, isTransient } from './remote.js';
import { hashFile } from './file-hash.js';
import type { BaseEntry, RemoteEntry, SyncAction } from './types.js';

/** Local writes and moves about to happen: after a kill, the ones found done on disk get their base rows. */
export interface JournalLocal {
  steps: {
    path: string;
    disk: string;
    /** a move: the path it moves from */
    from?: string;
    /** a conflict: the conflict copy the local file is moved to before the server's version is downloaded */
    copy?: string;
    base: Omit<BaseEntry, 'localSize' | 'localMtimeMs' | 'localIno'>;
  }[];
}

/** A commit batch about to be sent: after a kill, the versions the server holds get their base rows. */
export interface JournalCommit {
  versions: { fileId: string; versionId: string; putBase?: BaseEntry; deleteBase?: string }[];
}

/**
 * Journals the local writes and moves of `actions` before any is done: a kill between writing a file and recording
 * it must not make the next start take our own download for a local edit (a conflict copy, or an upload of a
 * duplicate). Returns the journal entry's id (null: nothing to journal).
 */
export async function journalLocal(ctx: SyncContext, actions: readonly SyncAction[], disk: (p: string) => string): Promise<number | null> {
  const steps: JournalLocal['steps'] = [];
  const target = (r: RemoteEntry): JournalLocal['steps'][number]['base'] => {
    const chunks = keepChunks(r); // so a recovered step also records the chunk list (the next delta's source)
    return { path: r.path, kind: r.kind, fileId: r.fileId, versionId: r.versionId, hash: r.hash, size: r.size, mtimeMs: r.mtimeMs, ...(chunks ? { chunks } : {}) };
  };
  for (const a of actions) {
    if (a.type === 'download') steps.push({ path: a.path, disk: disk(a.path), base: target(a.remote) });
    else if (a.type === 'conflict') steps.push({ path: a.path, disk: disk(a.path), copy: a.conflictPath, base: target(a.remote) });
    else if (a.type === 'move-local') steps.push({ path: a.to, disk: a.to, from: a.from, base: target(a.remote) });
  }
  return steps.length ? ctx.db.journalAdd(ctx.folder.id, 'local', { steps } satisfies JournalLocal) : null;
}

/** Journals a commit batch before it is sent; returns the entry's id. */
export function journalCommit(ctx: SyncContext, versions: JournalCommit['versions']): Promise<number> {
  return ctx.db.journalAdd(ctx.folder.id, 'commit', { versions } satisfies JournalCommit);
}

/**
 * Finishes what a crash interrupted (see the top); `remote` is the index's remote state, just pulled. Returns whether
 * there was anything to finish.
 */
export async function recoverJournal(ctx: SyncContext, remote: Map<string, RemoteEntry>): Promise<boolean> {
  const pending = await ctx.db.journalPending(ctx.folder.id);
  if (pending.length === 0) return false;
  const sc = await ctx.crypto();
  for (const j of pending) {
    const changes: IndexChanges = { journalDone: [j.id] };
    if (j.op === 'local') {
      const putBase: BaseEntry[] = [];
      const deleteBase: string[] = [];
      for (const step of (j.payload as JournalLocal).steps) {
        if (step.copy !== undefined) {
          // The local version is moved aside (link, then unlink) before the download: a kill between the two left it
          // under both names, and the next pass would have made a second conflict copy of it. The old name goes.
          const copied = await lstat(ctx.abs(step.copy)).catch(() => null);
          if (copied?.isFile()) await dropLeftoverLink(ctx.folder.root, step.disk, step.copy, copied.ino);
        }
        const facts = await onDisk(ctx, step.disk, step.base.kind, step.base.hash);
        if (!facts) continue;
        putBase.push({ ...step.base, localSize: facts.size, localMtimeMs: facts.mtimeMs, localIno: facts.ino });
        if (step.from !== undefined && step.from !== step.path) {
          // A move killed between its link and its unlink left the file under both names: the old one goes too.
          if (step.base.kind === 'file') await dropLeftoverLink(ctx.folder.root, step.from, step.disk, facts.ino);
          deleteBase.push(step.from);
        }
      }
      changes.putBase = putBase;
      changes.deleteBase = deleteBase;
    } else if (j.op === 'commit') {
      const payload = j.payload as JournalCommit;
      const putBase: BaseEntry[] = [];
      const deleteBase: string[] = [];
      for (const v of payload.versions) {
        let committed = remote.get(v.fileId)?.versionId === v.versionId;
        if (!committed && remote.has(v.fileId)) {
          try {
            await ctx.keysFor([v.fileId]);
            committed = (await fileHistory(ctx.client, sc, v.fileId)).some((h) => h.version.versionId === v.versionId);
          } catch (err) {
            if (isTransient(err)) throw err;
          }
        }
        if (!committed) continue;
        if (v.deleteBase !== undefined) deleteBase.push(v.deleteBase);
        if (v.putBase) putBase.push(v.putBase);
      }
      changes.deleteBase = deleteBase;
      changes.putBase = putBase;
    }
    await ctx.db.apply(ctx.folder.id, changes);
  }
  await ctx.db.journalPrune(ctx.folder.id);
  return true;
}

/** The local facts of `rel` if it holds exactly `hash` (a folder: if it is a folder), else null. */
async function onDisk(ctx: SyncContext, rel: string, kind: 'file' | 'dir', hash: string): Promise<LocalFacts | null> {
  let st;
  try {
    st = await lstat(ctx.abs(rel));
  } catch {
    return null;
  }
  if (kind === 'dir') return st.isDirectory() ? { size: 0, mtimeMs: st.mtimeMs, ino: st.ino } : null;
  if (!st.isFile() || st.size === undefined) return null;
  const h = await hashFile(ctx.abs(rel), { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino }).catch(() => null);
  return h && h.hash === hash ? { size: h.size, mtimeMs: h.mtimeMs, ino: h.ino } : null;
}
