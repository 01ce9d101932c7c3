// Conflict detection and the winner rule (docs/architecture.md §4): pure functions, no I/O, table-tested.
//
// reconcile(base, local, remote) compares three states: what was last synced (base, by path), what the scan found
// (local, by path) and the newest server version of each file (remote, by fileId, each with its current path).
// "same" below means same kind and same content hash; "unchanged remote" means remote.versionId == base.versionId.
//
//  #  | base             | local                 | remote (file of base / other file at path)  | action
// ----+------------------+-----------------------+---------------------------------------------+----------------------------
//  1  | -                | present               | -                                           | upload (new file, parent null)
//  2  | -                | -                     | live at path                                | download (base null)
//  3  | -                | present               | live at path, same content                  | record
//  4  | -                | present               | live at path, other content (or kind)       | conflict (local -> copy)
//  5  | present          | same as base          | unchanged                                   | none
//  6  | present          | changed               | unchanged                                   | upload (parent = base.versionId)
//  7  | present          | missing               | unchanged                                   | delete-remote
//  8  | present          | same as base          | changed, same path                          | download (base = base)
//  9  | present          | changed               | changed, same content as local              | record
// 10  | present          | changed               | changed, other content                       | conflict (local -> copy, remote at path)
// 11  | present          | missing               | changed, same path                          | download (delete vs edit keeps the edit)
// 12  | present          | same as base          | deleted                                     | delete-local
// 13  | present          | changed               | deleted                                     | upload on top of the deletion (remote set:
//     |                  |                       |                                             |   parent = remote.versionId)
// 14  | present          | missing               | deleted                                     | record (both gone; drop the base row)
// 15  | present at p     | same as base          | same file moved to q, same content, q free  | move-local p -> q (no transfer)
// 16  | present at p     | same as base          | moved to q, content changed or q occupied   | delete-local p + (at q: rule 2/3/4)
// 17  | present at p     | changed               | moved to q                                  | upload p as a NEW file + (at q: 2/3/4)
// 18  | present at p     | missing               | moved to q                                  | record (drop row p) + (at q: 2/3/4)
// 19  | present at p,    | p missing; q has the  | unchanged                                   | move-remote p -> q (no upload)
//     | none at q        | same ino+size+mtime+  |                                             |
//     |                  | hash (dirs: same ino) |                                             |
// 20  | present          | same as base          | base file deleted/moved, other file now at p| download other (base = base)
// 21  | present          | changed               | base file deleted/moved, other file at p    | record if same content, else conflict
// 22  | any              | any                   | path refused by this OS (checkLocalPath),   | refuse (never written); if it was a move
//     |                  |                       |   or a second file at the same path, or a   |   of the base's file, p keeps its local
//     |                  |                       |   case clash on a case-insensitive system   |   copy (none / upload as new if edited)
// 23  | any              | path or an ancestor was skipped by the scan (settling, symlink, refused...) | none
// 24  | dir, delete-local of rule 12/16 while something stays under it locally  | upload the dir instead (keeps
//     |                  |                       |                                             |   the edit's parent alive remotely)
// 25  | dir, delete-remote of rule 7 while something stays under it remotely    | download the dir (re-create it)
// 26  | present          | same / missing        | no remote state in the index for the file   | none (nothing deleted on either side)
// 27  | present          | changed               | no remote state in the index for the file   | upload on top of the base (409 if stale)
//
// Decisions (2026-05):
// - Two live remote files at one path (two devices created it offline; the server cannot see paths): the file the
//   base already has at that path wins; else the lowest seq, then fileId. The others are refused with a reason and
//   stay on the server. Same rule for names differing only in case on a case-insensitive system; a remote name
//   that clashes by case with a local or base path of another file is refused (the clash resolves on a later pass
//   if the local one goes away).
// - A remote dir deletion over a local dir that still holds files becomes an `upload` of the dir on top of the
//   deletion, not a bare `record`: otherwise the server keeps a deleted folder with live children, and every
//   other client would re-create it as a new folder.
// - A remote folder move is not a rename on disk: the new folder is created, each child is moved (rule 15), the
//   old folder is removed when empty. So a child that cannot be moved never blocks the others.
// - A remote move of a file whose local copy was edited keeps the edit as a new file at the old path (rule 17):
//   re-uploading it as the same file would undo the colleague's move.
//
// Action order: moves first (they vacate paths; parents first by target), then everything else parents before
// children, then deletions children before parents. Contract for the engine:
// - `download` may overwrite the local file only if it is absent or still equal to `action.base` (kind + hash);
//   `action.base` may belong to another fileId (rule 20) — it is the guard, not the parent.
// - `delete-local` / `move-local` check the content first (removeLocal / moveLocal); `delete-local` of a dir is an
//   rmdir, never recursive.
// - `upload`: fileId and parent come from uploadTarget(action).
// - After an action its path's base row is rewritten: `record` with a live remote and a local entry stores that
//   pair; `record` without one of them (both deleted, or the file moved away) removes the row; moves remove `from`.
import type { BaseEntry, LocalEntry, RemoteEntry, SyncAction } from './types.js';
import { checkLocalPath, foldCase, isCaseInsensitivePlatform } from './local-paths.js';
import { conflictName } from './tagged-names.js';

/**
 * Which file an `upload` writes and on top of which version: the remote head it saw (for an upload over a remote
 * deletion, the deletion), else the base version, else a new file (fileId null, parent null).
 */
export function uploadTarget(action: Extract<SyncAction, { type: 'upload' }>): { fileId: string | null; parent: string | null } {
  if (action.remote) return { fileId: action.remote.fileId, parent: action.remote.versionId };
  if (action.base) return { fileId: action.base.fileId, parent: action.base.versionId };
  return { fileId: null, parent: null };
}

export interface ReconcileOptions {
  /** This device's name, for conflict copies. */
  device: string;
  /** The time written into conflict copy names (passed in: reconcile is pure). */
  now: Date;
  /** Whose naming rules decide `refuse` (default: the running platform). */
  platform?: NodeJS.Platform;
  /** Names differing only in case are one file (default: true on win32 and darwin). */
  caseInsensitive?: boolean;
  /**
   * Local paths whose state the scan could not establish (settling, symlinks, refused or unreadable names): they
   * and everything below them get `none` — a path that was not seen is not a deletion.
   */
  unknown?: Iterable<string>;
}

type RemoteState = 'unchanged' | 'changed' | 'deleted' | 'moved' | 'move-refused' | 'unknown';

interface Ordered {
  action: SyncAction;
  phase: 0 | 1 | 2;
  key: string;
  depth: number;
}

function depthOf(p: string): number {
  let n = 0;
  for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) === 47) n++;
  return n;
}

function sameLocalBase(l: LocalEntry, b: BaseEntry): boolean {
  return l.kind === b.kind && l.hash === b.hash;
}

function sameContent(l: LocalEntry, r: RemoteEntry): boolean {
  return l.kind === r.kind && l.hash === r.hash;
}

function ancestors(p: string, visit: (dir: string) => void): void {
  for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) visit(p.slice(0, i));
}

/** Three-way reconciliation of one folder: the table above, as a list of actions in execution order. Pure. */
export function reconcile(
  base: ReadonlyMap<string, BaseEntry>,
  local: ReadonlyMap<string, LocalEntry>,
  remote: ReadonlyMap<string, RemoteEntry>,
  options: ReconcileOptions,
): SyncAction[] {
  const platform = options.platform ?? process.platform;
  const ci = options.caseInsensitive ?? isCaseInsensitivePlatform(platform);
  const unknownSet = new Set(options.unknown ?? []);
  const isUnknown = (p: string): boolean => {
    if (unknownSet.size === 0) return false;
    if (unknownSet.has(p)) return true;
    let found = false;
    ancestors(p, (d) => {
      if (unknownSet.has(d)) found = true;
    });
    return found;
  };

  const out: Ordered[] = [];
  const emit = (action: SyncAction, phase: 0 | 1 | 2, key: string): void => {
    out.push({ action, phase, key, depth: depthOf(key) });
  };
  const refuse = (path: string, reason: string): void => emit({ type: 'refuse', path, reason }, 1, path);

  const baseByFile = new Map<string, BaseEntry>();
  for (const b of base.values()) baseByFile.set(b.fileId, b);
  const isOwner = (r: RemoteEntry, p: string): boolean => base.get(p)?.fileId === r.fileId;
  const priority = (p: string) => (x: RemoteEntry, y: RemoteEntry): number =>
    Number(isOwner(y, p)) - Number(isOwner(x, p)) || x.seq - y.seq || (x.fileId < y.fileId ? -1 : x.fileId > y.fileId ? 1 : 0);

  // 1. Which live remote file may appear at which local path (rule 22).
  const claimsByPath = new Map<string, RemoteEntry[]>();
  for (const r of remote.values()) {
    if (r.deleted) continue;
    if (!isOwner(r, r.path)) {
      const why = checkLocalPath(r.path, platform);
      if (why !== null) {
        refuse(r.path, why);
        continue;
      }
    }
    const list = claimsByPath.get(r.path);
    if (list) list.push(r);
    else claimsByPath.set(r.path, [r]);
  }
  const winnerAt = new Map<string, RemoteEntry>();
  for (const [p, list] of claimsByPath) {
    list.sort(priority(p));
    winnerAt.set(p, list[0]!);
    for (let i = 1; i < list.length; i++) {
      refuse(p, 'another file on the server has the same path (created on two devices at once); it stays on the server until one is renamed');
    }
  }
  if (ci) {
    const occupants = new Map<string, Set<string>>();
    const occupy = (p: string): void => {
      const k = foldCase(p);
      const s = occupants.get(k);
      if (s) s.add(p);
      else occupants.set(k, new Set([p]));
    };
    for (const p of local.keys()) occupy(p);
    for (const p of base.keys()) occupy(p);
    const groups = new Map<string, string[]>();
    for (const p of winnerAt.keys()) {
      const k = foldCase(p);
      const g = groups.get(k);
      if (g) g.push(p);
      else groups.set(k, [p]);
    }
    for (const [k, paths] of groups) {
      const occ = occupants.get(k);
      const kept: string[] = [];
      for (const q of paths) {
        const r = winnerAt.get(q)!;
        if (isOwner(r, q)) {
          kept.push(q);
          continue;
        }
        const ownPath = baseByFile.get(r.fileId)?.path;
        const clash = occ ? [...occ].find((o) => o !== q && o !== ownPath) : undefined;
        if (clash !== undefined) {
          winnerAt.delete(q);
          refuse(q, `differs only in letter case from "${clash}", which this file system cannot hold beside it`);
        } else kept.push(q);
      }
      if (kept.length > 1) {
        const entries = kept
          .map((q) => winnerAt.get(q)!)
          .sort((x, y) => Number(isOwner(y, y.path)) - Number(isOwner(x, x.path)) || x.seq - y.seq || (x.fileId < y.fileId ? -1 : 1));
        for (const r of entries.slice(1)) {
          winnerAt.delete(r.path);
          refuse(r.path, `differs only in letter case from "${entries[0]!.path}" on the server; this file system cannot hold both`);
        }
      }
    }
  }

  const stateOf = (b: BaseEntry): { state: RemoteState; r: RemoteEntry | null } => {
    const r = remote.get(b.fileId);
    if (!r) return { state: 'unknown', r: null };
    if (r.deleted) return { state: 'deleted', r };
    if (r.path === b.path) return { state: r.versionId === b.versionId ? 'unchanged' : 'changed', r };
    return { state: winnerAt.get(r.path) === r ? 'moved' : 'move-refused', r };
  };

  // Map order is enough here: which moves are found does not depend on it, and the output is sorted at the end.
  const baseList = [...base.values()];
  const consumedPath = new Set<string>(); // base+local side decided by a move
  const consumedClaim = new Set<string>(); // remote claim decided by a move

  // 2. Remote moves of unchanged files to a free path: rename on disk (rule 15).
  for (const b of baseList) {
    const { state, r } = stateOf(b);
    if (state !== 'moved' || !r) continue;
    const l = local.get(b.path);
    if (b.kind !== 'file' || r.kind !== 'file' || r.hash !== b.hash || !l || !sameLocalBase(l, b)) continue;
    if (isUnknown(b.path) || isUnknown(r.path) || local.has(r.path) || base.has(r.path)) continue;
    emit({ type: 'move-local', from: b.path, to: r.path, remote: r, base: b }, 0, r.path);
    consumedPath.add(b.path);
    consumedClaim.add(r.path);
  }

  // 3. Local moves: a base path gone locally whose inode (+ size, mtime, hash for files) turned up at a new path
  //    nobody else claims, with the remote unchanged (rule 19). Ambiguous matches fall back to upload + delete.
  const moveKey = (kind: string, ino: number, size: number, mtimeMs: number, hash: string): string =>
    kind === 'dir' ? `d:${ino}` : `f:${ino}:${size}:${mtimeMs}:${hash}`;
  const missing = new Map<string, BaseEntry[]>();
  for (const b of baseList) {
    if (consumedPath.has(b.path) || local.has(b.path) || isUnknown(b.path) || !(b.localIno > 0)) continue;
    if (stateOf(b).state !== 'unchanged') continue;
    const k = moveKey(b.kind, b.localIno, b.localSize, b.localMtimeMs, b.hash);
    const list = missing.get(k);
    if (list) list.push(b);
    else missing.set(k, [b]);
  }
  if (missing.size > 0) {
    const fresh = new Map<string, LocalEntry[]>();
    for (const l of local.values()) {
      if (base.has(l.path) || winnerAt.has(l.path) || isUnknown(l.path) || !(l.ino > 0)) continue;
      const k = moveKey(l.kind, l.ino, l.size, l.mtimeMs, l.hash);
      const list = fresh.get(k);
      if (list) list.push(l);
      else fresh.set(k, [l]);
    }
    for (const [k, bs] of missing) {
      const ls = fresh.get(k);
      if (bs.length !== 1 || ls?.length !== 1) continue;
      const b = bs[0]!;
      const l = ls[0]!;
      const r = remote.get(b.fileId)!;
      emit({ type: 'move-remote', from: b.path, to: l.path, local: l, base: b, remote: r }, 0, l.path);
      consumedPath.add(b.path);
      consumedPath.add(l.path);
      if (winnerAt.get(b.path) === r) consumedClaim.add(b.path);
    }
  }

  // 4. Everything else, path by path (rules 1-14, 16-18, 20-23).
  // Names a conflict copy must not take; built on the first conflict only (most passes have none).
  let taken: Set<string> | null = null;
  const takenKey = (p: string): string => (ci ? foldCase(p) : p);
  const conflictPathFor = (p: string): string => {
    if (taken === null) {
      const t = new Set<string>();
      for (const q of local.keys()) t.add(takenKey(q));
      for (const q of base.keys()) t.add(takenKey(q));
      for (const r of remote.values()) if (!r.deleted) t.add(takenKey(r.path));
      taken = t;
    }
    const used = taken;
    const c = conflictName(p, options.device, options.now, (q) => used.has(takenKey(q)));
    used.add(takenKey(c));
    return c;
  };
  const conflict = (p: string, l: LocalEntry, r: RemoteEntry, b: BaseEntry | null): void =>
    emit({ type: 'conflict', path: p, local: l, remote: r, base: b, conflictPath: conflictPathFor(p) }, 1, p);

  const paths = new Set<string>(base.keys());
  for (const p of local.keys()) paths.add(p);
  for (const p of winnerAt.keys()) paths.add(p);
  // Deletions decided here, to revisit for folders (rules 24, 25).
  const localDeletes: { p: string; b: BaseEntry; l: LocalEntry; state: RemoteState; r: RemoteEntry | null; index: number }[] = [];
  const remoteDeletes: { p: string; b: BaseEntry; r: RemoteEntry; index: number }[] = [];

  for (const p of paths) {
    const pathConsumed = consumedPath.has(p);
    const b = pathConsumed ? undefined : base.get(p);
    const l = pathConsumed ? undefined : local.get(p);
    const claim = consumedClaim.has(p) ? undefined : winnerAt.get(p);
    if (!b && !l && !claim) continue;
    if (isUnknown(p)) {
      emit({ type: 'none', path: p }, 1, p);
      continue;
    }
    if (!b) {
      if (l && !claim) emit({ type: 'upload', path: p, local: l, base: null, remote: null }, 1, p);
      else if (!l && claim) emit({ type: 'download', path: p, remote: claim, base: null }, 1, p);
      else if (l && claim) {
        if (sameContent(l, claim)) emit({ type: 'record', path: p, remote: claim, local: l }, 1, p);
        else conflict(p, l, claim, null);
      }
      continue;
    }
    const { state, r } = stateOf(b);
    const lSame = l !== undefined && sameLocalBase(l, b);
    if (state === 'unchanged') {
      if (lSame) emit({ type: 'none', path: p }, 1, p);
      else if (l) emit({ type: 'upload', path: p, local: l, base: b, remote: r }, 1, p);
      else {
        remoteDeletes.push({ p, b, r: r!, index: out.length });
        emit({ type: 'delete-remote', path: p, base: b, remote: r! }, 2, p);
      }
      continue;
    }
    if (state === 'changed') {
      if (!l || lSame) emit({ type: 'download', path: p, remote: r!, base: b }, 1, p);
      else if (sameContent(l, r!)) emit({ type: 'record', path: p, remote: r, local: l }, 1, p);
      else conflict(p, l, r!, b);
      continue;
    }
    // The base's file is gone from p (deleted, moved away, or unknown to the index); another file may claim p.
    if (claim) {
      if (!l) emit({ type: 'download', path: p, remote: claim, base: null }, 1, p);
      else if (lSame) emit({ type: 'download', path: p, remote: claim, base: b }, 1, p);
      else if (sameContent(l, claim)) emit({ type: 'record', path: p, remote: claim, local: l }, 1, p);
      else conflict(p, l, claim, b);
      continue;
    }
    if (state === 'unknown') {
      // The index has no remote state for this file: edits go up on top of the base (the server answers 409 if
      // that is not the head); nothing is deleted on either side until the remote state is known again.
      if (l && !lSame) emit({ type: 'upload', path: p, local: l, base: b, remote: null }, 1, p);
      else emit({ type: 'none', path: p }, 1, p);
      continue;
    }
    if (!l) {
      emit({ type: 'record', path: p, remote: state === 'deleted' ? r : null, local: null }, 1, p);
    } else if (!lSame) {
      // Rule 13 (deleted: a new version on top of the deletion) or 17 (moved: the edit becomes a new file).
      if (state === 'deleted') emit({ type: 'upload', path: p, local: l, base: b, remote: r }, 1, p);
      else emit({ type: 'upload', path: p, local: l, base: null, remote: null }, 1, p);
    } else if (state === 'move-refused') {
      emit({ type: 'none', path: p }, 1, p);
    } else {
      localDeletes.push({ p, b, l, state, r, index: out.length });
      emit({ type: 'delete-local', path: p, base: b, local: l }, 2, p);
    }
  }

  // 5. Folders are removed only when nothing stays under them (rules 24, 25). A survivor marks all its ancestors.
  if (localDeletes.some((d) => d.b.kind === 'dir') || remoteDeletes.some((d) => d.b.kind === 'dir')) {
    const localGone = new Set<string>();
    const remoteGone = new Set<string>(); // fileIds deleted or moved away remotely by this pass
    for (const { action } of out) {
      if (action.type === 'delete-local') localGone.add(action.path);
      else if (action.type === 'move-local') localGone.add(action.from);
      else if (action.type === 'delete-remote') remoteGone.add(`${action.base.fileId}\u0000${action.path}`);
      else if (action.type === 'move-remote') remoteGone.add(`${action.base.fileId}\u0000${action.from}`);
    }
    const localKeep = new Set<string>();
    const remoteKeep = new Set<string>();
    const keepLocal = (p: string): void => ancestors(p, (d) => localKeep.add(d));
    const keepRemote = (p: string): void => ancestors(p, (d) => remoteKeep.add(d));
    for (const p of local.keys()) if (!localGone.has(p)) keepLocal(p);
    for (const r of remote.values()) if (!r.deleted && !remoteGone.has(`${r.fileId}\u0000${r.path}`)) keepRemote(r.path);
    for (const u of unknownSet) {
      keepLocal(u);
      keepRemote(u);
    }
    for (const { action } of out) {
      switch (action.type) {
        case 'download':
          keepLocal(action.path);
          break;
        case 'conflict':
          keepLocal(action.path);
          keepLocal(action.conflictPath);
          keepRemote(action.conflictPath);
          break;
        case 'move-local':
          keepLocal(action.to);
          break;
        case 'upload':
          keepRemote(action.path);
          break;
        case 'move-remote':
          keepRemote(action.to);
          break;
        default:
          break;
      }
    }
    for (const d of localDeletes) {
      if (d.b.kind !== 'dir' || !localKeep.has(d.p)) continue;
      const keep: SyncAction = d.state === 'deleted'
        ? { type: 'upload', path: d.p, local: d.l, base: d.b, remote: d.r }
        : { type: 'upload', path: d.p, local: d.l, base: null, remote: null };
      out[d.index] = { action: keep, phase: 1, key: d.p, depth: depthOf(d.p) };
    }
    for (const d of remoteDeletes) {
      if (d.b.kind !== 'dir' || !remoteKeep.has(d.p)) continue;
      out[d.index] = { action: { type: 'download', path: d.p, remote: d.r, base: d.b }, phase: 1, key: d.p, depth: depthOf(d.p) };
    }
  }

  out.sort((x, y) => {
    if (x.phase !== y.phase) return x.phase - y.phase;
    if (x.depth !== y.depth) return x.phase === 2 ? y.depth - x.depth : x.depth - y.depth;
    if (x.key !== y.key) return x.key < y.key ? -1 : 1;
    return x.action.type < y.action.type ? -1 : x.action.type > y.action.type ? 1 : 0;
  });
  return out.map((o) => o.action);
}
