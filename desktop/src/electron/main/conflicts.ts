// The handlers of conflicts:list|resolve (docs/desktop.md "Conflicts"). When both sides changed a file the engine
// keeps this device's version beside it as `name (conflict <device> <YYYY-MM-DD HHmm>).ext` (sync/conflict.ts) and
// the other side's at the path. Resolving is an edit of the folder like any other, which the watching engine syncs:
// "keep mine" writes the copy's content over the path and removes the copy; "keep theirs" removes the copy; "keep
// both" renames the copy to `name (copy).ext`. Nothing is lost: the version that gives way stays in the file's (or
// the copy's) version history on the server.
import { copyFileSync, readdirSync, renameSync, rmSync, statSync, existsSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ErrorCode, KluisError } from '@kluis/shared';
import { taggedName } from '../../sync/tagged-names.js';
import { isReservedName } from '../../sync/local-paths.js';
import type { AppCore } from './core.js';
import { insideFolder } from './folder-channels.js';
import type { Handlers } from './ipc.js';

const COPY = /^(.*) \(conflict (.+) (\d{4})-(\d{2})-(\d{2}) (\d{2})(\d{2})(?: \d+)?\)(\.[^.]+)?$/;

export interface ConflictCopy {
  /** the file both sides changed */
  path: string;
  /** this device's version, kept beside it */
  copyPath: string;
  at: number;
}

/** The file a conflict copy belongs to, and when the copy was made; null for any other name. */
export function parseConflictCopy(rel: string): ConflictCopy | null {
  const slash = rel.lastIndexOf('/');
  const m = COPY.exec(rel.slice(slash + 1));
  if (!m) return null;
  const [, stem, , y, mo, d, h, mi, ext] = m;
  return { path: `${rel.slice(0, slash + 1)}${stem}${ext ?? ''}`, copyPath: rel, at: Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi)) };
}

/** Every conflict copy in the folder whose original is still there, oldest first. */
export function conflictCopies(root: string): ConflictCopy[] {
  const out: ConflictCopy[] = [];
  const walk = (dir: string, rel: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (isReservedName(e.name, rel === '')) continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(dir, e.name), r);
      else if (e.isFile()) {
        const c = parseConflictCopy(r.normalize('NFC'));
        if (c && existsSync(path.join(root, ...c.path.split('/')))) out.push(c);
      }
    }
  };
  walk(root, '');
  return out.sort((a, b) => a.at - b.at || a.copyPath.localeCompare(b.copyPath));
}

export function conflictHandlers(core: AppCore): Pick<Handlers, 'conflicts:list' | 'conflicts:resolve'> {
  return {
    'conflicts:list': async ({ folderId }) => {
      const host = core.requireHost();
      const root = (await host.status(folderId)).path;
      const folder = host.folder(folderId);
      const conflicts = [];
      for (const c of conflictCopies(root)) {
        // Who made the version now at the path: the member whose edit met ours.
        const author = await folder.history(c.path).then((h) => h.versions.find((v) => v.current)?.author ?? null, () => null);
        conflicts.push({ ...c, otherAuthor: author ?? 'unknown' });
      }
      host.setConflicts(folderId, conflicts.length);
      return { conflicts };
    },
    'conflicts:resolve': async ({ folderId, path: rel, keep, copyPath }) => {
      const root = (await core.requireHost().status(folderId)).path;
      const copies = conflictCopies(root).filter((c) => c.path === rel && (copyPath === undefined || c.copyPath === copyPath));
      if (copies.length === 0) throw new KluisError(ErrorCode.NotFound, 'there is no such conflict in this folder (it may be resolved already)');
      if (copies.length > 1) throw new KluisError(ErrorCode.Conflict, `${rel} has ${copies.length} conflict copies: say which one (copyPath)`);
      const copy = insideFolder(root, copies[0]!.copyPath);
      const target = insideFolder(root, rel);
      if (keep === 'theirs') rmSync(copy);
      else if (keep === 'mine') {
        // A temp name the engine ignores, then one rename: the path never holds half a file.
        const tmp = path.join(path.dirname(target), `.kluis-tmp-${randomBytes(6).toString('hex')}`);
        copyFileSync(copy, tmp);
        renameSync(tmp, target);
        rmSync(copy);
      } else {
        const name = taggedName(rel, 'copy', (p) => existsSync(insideFolder(root, p)));
        renameSync(copy, insideFolder(root, name));
      }
      statSync(target);
      core.requireHost().setConflicts(folderId, conflictCopies(root).length);
      return { ok: true as const };
    },
  };
}
