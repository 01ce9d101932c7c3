// The scan (docs/architecture.md §4): the truth about the local folder. Watcher events only schedule scans;
// a scan walks the whole tree, compares each file's size + mtime + inode with the index and hashes only what
// changed. Nothing here writes to the folder.
//
// Decisions (2026-05):
// - Iterative walk (an explicit stack): deep trees cannot overflow the call stack. lstat only: symlinks are never
//   followed, they are reported as skipped. Sockets, FIFOs and devices are skipped too.
// - lstat runs synchronously in slices of 64 entries with a yield between slices (statMode 'sync', default): on
//   this 2-core VM with a warm cache that walked 100,000 entries in about half the time of 64 async lstat calls in
//   flight, because each async call is a thread-pool round trip. Hashing stays async (4 files in flight).
//   Folders are listed with readdirSync in that mode too (2026-11, issue 22), and the yield comes every 64 entries
//   across folders; 'async' lists them with opendir.
// - Directories are entries (kind 'dir', size 0, hash = BLAKE2b-256 of nothing) so empty folders sync.
// - Names are NFC-normalised into paths. On Linux the name on disk may be NFD: `diskPaths` maps such paths to the
//   relative path to open. Two names that become one path (NFC, or case on a case-insensitive folder) are both
//   refused and not descended into: which one is "the" file is the user's call, not ours.
// - A file whose mtime is within `settleMs` of now is skipped as 'settling' (still being written); a file whose
//   size or mtime changes while it is hashed is skipped as 'changing'. Both are picked up by a later scan. Files
//   whose size + mtime + inode match the index are not settling even if recent: they are the engine's own writes.
// - Ignored: the engine's temp files (`.kluis-tmp-*`, anywhere; listed in `temps` for cleanTemp) and the marker
//   name `.kluis` at the root (reserved; the engine may keep a marker there).
// - Every path that is not in `entries` but was seen (skipped, refused, unreadable) must be passed to reconcile as
//   `unknown`: a path that was not seen is not a deletion. `unknownPaths(result)` gives that list.
// - With `hashLaterMin` and `hashLaterSmallMax`, large and small new or changed files are left to the upload to hash
//   (hash-later.ts).
import { lstatSync, readdirSync } from 'node:fs';
import { lstat, opendir, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { initCrypto } from '@kluis/shared';
import { HASH_LATER, type BaseEntry, type LocalEntry } from './types.js';
import { leftToUpload, mayBeMove, moveFacts, type HashLaterSizes } from './hash-later.js';
import { SYNC_HASH_MAX, hashFile, type HashedFile } from './file-hash.js';
import { HashPool } from './hash-pool.js';
import { MAX_PATH_BYTES } from '@kluis/shared';
import { LocalFsError, MARKER_NAME, TEMP_PREFIX, foldCase, inspectLocalName, isCaseInsensitivePlatform } from './local-paths.js';

/** BLAKE2b-256 of zero bytes: the hash of every folder (and of empty files). */
export const EMPTY_HASH = '0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8';

export type SkipReason = 'settling' | 'changing' | 'symlink' | 'special' | 'unreadable' | 'vanished';

export interface ScanIssue<R extends string = string> {
  path: string;
  reason: R;
  detail?: string;
}

export interface ScanOptions {
  /** A file modified less than this long ago is skipped as 'settling' (default 1000 ms). */
  settleMs?: number;
  /** "Now" for the settle rule, ms since 1970 (default: the clock when each file is looked at). */
  now?: number;
  /** Naming rules (default: the running platform). */
  platform?: NodeJS.Platform;
  /** Treat names differing only in case as one (default: true on win32 and darwin). */
  caseInsensitive?: boolean;
  /** Warn about names Windows cannot hold (default true; see local-paths.ts). */
  portable?: boolean;
  /** Files hashed at once (default 4). */
  concurrency?: number;
  /**
   * How entries are lstat'ed: 'sync' (default) runs lstatSync in slices of `statBatch` entries and yields to the
   * event loop between slices; 'async' puts `statBatch` lstat calls in flight on libuv's thread pool. On a warm
   * cache the sync form is about twice as fast (no thread-pool round trip per entry) and blocks for well under a
   * millisecond at a time (plus one folder listing: a few ms for a folder of 10,000 names); 'async' suits slow
   * network shares where one lstat can take milliseconds.
   */
  statMode?: 'sync' | 'async';
  /** Entries per lstat slice (default 64). */
  statBatch?: number;
  signal?: AbortSignal;
  /**
   * Rescan only these folders (relative paths as on disk, each walked with everything below it) and take the rest
   * from `previous`, the last scan of the same folder. The watcher's events name the folders to look at; the
   * engine runs full scans at start, after every pass that changed the disk, and periodically.
   */
  only?: { previous: ScanResult; dirs: readonly string[] };
  /**
   * New or changed files of at least this many bytes are not hashed: their entry's hash is HASH_LATER and the upload
   * hashes them (hash-later.ts), unless they may be a move. Default: every file is hashed.
   */
  hashLaterMin?: number;
  /** The same for new or changed files of 1 to this many bytes (hash-later.ts). Default 0: none. */
  hashLaterSmallMax?: number;
}

export interface ScanResult {
  entries: Map<string, LocalEntry>;
  /** Names that cannot be synced as they are (collisions, unsafe names). Never uploaded. */
  refused: ScanIssue[];
  /** Paths not examined this time (settling, changing, symlinks, special files, unreadable folders). */
  skipped: ScanIssue<SkipReason>[];
  /** Synced, but with a portability problem (e.g. a name Windows cannot hold). */
  warnings: ScanIssue[];
  /** Files read and hashed (the rest reused the index's hash). */
  hashed: number;
  hashedBytes: number;
  /** Path -> relative path on disk, for names stored in another Unicode form (only those). */
  diskPaths: Map<string, string>;
  /** Relative disk paths of leftover `.kluis-tmp-*` files. */
  temps: string[];
}

/** The paths reconcile must treat as unknown (their subtrees included). */
export function unknownPaths(result: Pick<ScanResult, 'refused' | 'skipped'>): string[] {
  return [...result.refused.map((r) => r.path), ...result.skipped.map((s) => s.path)];
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
// eslint-disable-next-line no-control-regex
const ASCII = /^[\u0000-\u007f]*$/;

/** A counting semaphore that hands a released slot straight to the next waiter. */
function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

interface DirTask {
  abs: string;
  /** NFC path relative to the root ('' for the root). */
  rel: string;
  /** Relative path as stored on disk. */
  disk: string;
}

/**
 * For a partial scan: copies `previous` into `result` without anything inside the folders to rescan, and returns
 * those folders as the walk's starting points (a folder inside another one listed is walked once, as part of it).
 */
function partialStart(absRoot: string, only: NonNullable<ScanOptions['only']>, result: ScanResult): DirTask[] {
  const norm = (d: string): string => {
    const posix = d.split(path.sep).join('/').replace(/\/+$/, '');
    return posix === '.' ? '' : posix.replace(/^\.\//, '');
  };
  const disks = [...new Set(only.dirs.map(norm))].sort();
  const tops: string[] = [];
  for (const d of disks) if (!tops.some((t) => t === '' || d === t || d.startsWith(`${t}/`))) tops.push(d);
  const rels = tops.map((d) => (ASCII.test(d) ? d : d.normalize('NFC')));
  const inside = (p: string): boolean => rels.some((r) => r === '' || p.startsWith(`${r}/`));
  const prev = only.previous;
  for (const [p, e] of prev.entries) if (!inside(p)) result.entries.set(p, e);
  for (const [p, d] of prev.diskPaths) if (!inside(p)) result.diskPaths.set(p, d);
  result.refused.push(...prev.refused.filter((x) => !inside(x.path)));
  // Skipped paths outside stay skipped (unknown to reconcile: never read as deletions); the engine rescans the
  // folders of settling ones.
  result.skipped.push(...prev.skipped.filter((x) => !inside(x.path)));
  result.warnings.push(...prev.warnings.filter((x) => !inside(x.path)));
  return tops.map((disk, i) => ({ abs: disk === '' ? absRoot : path.join(absRoot, ...disk.split('/')), rel: rels[i]!, disk }));
}

/** Walks `root` and returns what is there, reusing `base` hashes for files whose size + mtime + inode match. */
export async function scanFolder(root: string, base: ReadonlyMap<string, BaseEntry>, options: ScanOptions = {}): Promise<ScanResult> {
  await initCrypto({ wasm: 'lazy' });
  const absRoot = path.resolve(root);
  // Files above SYNC_HASH_MAX are hashed on the main thread and, once there are two or more, on a worker too.
  const pool = new HashPool(SYNC_HASH_MAX, hashFile);
  try {
    return await scanWith(absRoot, base, options, pool);
  } finally {
    await pool.close();
  }
}

async function scanWith(
  absRoot: string,
  base: ReadonlyMap<string, BaseEntry>,
  options: ScanOptions,
  pool: HashPool,
): Promise<ScanResult> {
  const hashSlot = limiter(Math.max(1, options.concurrency ?? 4));
  const settleMs = options.settleMs ?? 1000;
  const platform = options.platform ?? process.platform;
  const ci = options.caseInsensitive ?? isCaseInsensitivePlatform(platform);
  const statBatch = Math.max(1, options.statBatch ?? 64);
  const statMode = options.statMode ?? 'sync';
  const later: HashLaterSizes = { min: options.hashLaterMin ?? Infinity, smallMax: options.hashLaterSmallMax ?? 0 };
  let moves: Set<string> | undefined; // moveFacts(base), made at the first file left to its upload

  let rootStat: Stats;
  try {
    rootStat = await stat(absRoot);
  } catch (err) {
    throw new LocalFsError('root_missing', `the synced folder ${absRoot} is not there (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  // A missing or replaced root must never look like "everything was deleted".
  if (!rootStat.isDirectory()) throw new LocalFsError('root_missing', `the synced folder ${absRoot} is not a folder`);

  const result: ScanResult = { entries: new Map(), refused: [], skipped: [], warnings: [], hashed: 0, hashedBytes: 0, diskPaths: new Map(), temps: [] };
  const hashing: Promise<void>[] = [];
  const stack: DirTask[] = options.only ? partialStart(absRoot, options.only, result) : [{ abs: absRoot, rel: '', disk: '' }];

  const hashInto = (abs: string, rel: string, st: Stats): Promise<void> =>
    hashSlot(async () => {
      let h: HashedFile | null;
      try {
        const facts = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
        h = await (pool.tryHash(abs, facts) ?? hashFile(abs, facts));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') result.skipped.push({ path: rel, reason: 'vanished' });
        else if (code === 'ELOOP' || code === 'EMLINK') result.skipped.push({ path: rel, reason: 'symlink' });
        else if (code === 'EISDIR' || err instanceof LocalFsError) result.skipped.push({ path: rel, reason: 'changing' });
        else result.skipped.push({ path: rel, reason: 'unreadable', detail: code ?? String(err) });
        return;
      }
      if (!h || h.size !== st.size || h.mtimeMs !== st.mtimeMs) {
        result.skipped.push({ path: rel, reason: 'changing' });
        return;
      }
      result.hashed++;
      result.hashedBytes += h.size;
      result.entries.set(rel, { path: rel, kind: 'file', size: h.size, mtimeMs: h.mtimeMs, ino: h.ino, hash: h.hash });
    });

  let sinceYield = 0;
  while (stack.length > 0) {
    if (options.signal?.aborted) throw options.signal.reason ?? new Error('scan aborted');
    const dir = stack.pop()!;
    let names: string[] = [];
    try {
      // 'sync': one readdirSync per folder, like the lstat slices (an async iteration awaited every entry: the
      // largest part of a no-op scan's own time, issue 22); 'async' keeps the folder reads off the event loop too.
      if (statMode === 'sync') names = readdirSync(dir.abs);
      else for await (const dirent of await opendir(dir.abs, { bufferSize: 256 })) names.push(dirent.name);
    } catch (err) {
      if (dir.rel === '') throw err;
      result.entries.delete(dir.rel);
      const code = (err as NodeJS.ErrnoException).code;
      result.skipped.push(code === 'ENOENT' ? { path: dir.rel, reason: 'vanished' } : { path: dir.rel, reason: 'unreadable', detail: code ?? String(err) });
      continue;
    }

    // Group names by the path they become, to find the ones that collide.
    const byPath = new Map<string, string[]>();
    for (const name of names) {
      if (name.startsWith(TEMP_PREFIX)) {
        result.temps.push(dir.disk === '' ? name : `${dir.disk}/${name}`);
        continue;
      }
      if (dir.rel === '' && name === MARKER_NAME) continue;
      // ASCII names (most of them) are NFC already: skip ICU for them.
      const nfc = ASCII.test(name) ? name : name.normalize('NFC');
      const list = byPath.get(nfc);
      if (list) list.push(name);
      else byPath.set(nfc, [name]);
    }
    const folded = new Map<string, string[]>();
    if (ci) {
      for (const nfc of byPath.keys()) {
        const k = foldCase(nfc);
        const list = folded.get(k);
        if (list) list.push(nfc);
        else folded.set(k, [nfc]);
      }
    }

    const todo: { name: string; rel: string; disk: string }[] = [];
    for (const [nfc, diskNames] of byPath) {
      const rel = dir.rel === '' ? nfc : `${dir.rel}/${nfc}`;
      if (diskNames.length > 1) {
        result.refused.push({ path: rel, reason: `${diskNames.length} names on disk become this one path after Unicode normalisation; rename all but one` });
        continue;
      }
      if (ci) {
        const same = folded.get(foldCase(nfc))!;
        if (same.length > 1) {
          result.refused.push({ path: rel, reason: `differs only in letter case from "${same.find((o) => o !== nfc)}" in the same folder; rename one` });
          continue;
        }
      }
      // Parents were checked when their folder was listed: only the new name, and the total length.
      const verdict = inspectLocalName(nfc, dir.rel === '', platform, { portable: options.portable ?? true });
      if (verdict.refused !== null || Buffer.byteLength(rel, 'utf8') > MAX_PATH_BYTES) {
        result.refused.push({ path: rel, reason: verdict.refused ?? `path longer than ${MAX_PATH_BYTES} bytes` });
        continue;
      }
      if (verdict.warning !== null) result.warnings.push({ path: rel, reason: verdict.warning });
      const name = diskNames[0]!;
      const disk = dir.disk === '' ? name : `${dir.disk}/${name}`;
      if (disk !== rel) result.diskPaths.set(rel, disk);
      todo.push({ name, rel, disk });
    }

    // Names from a listing hold no separator and are never '.' or '..': joined by hand, without path.join's
    // normalisation of the whole path (the largest cost of a no-op scan of 10,000 files, issue 22).
    const prefix = dir.abs.endsWith(path.sep) ? dir.abs : dir.abs + path.sep;
    for (let i = 0; i < todo.length; i += statBatch) {
      const batch = todo.slice(i, i + statBatch);
      let stats: (Stats | Error)[];
      if (statMode === 'async') {
        stats = await Promise.all(batch.map((t) => lstat(prefix + t.name).catch((err: NodeJS.ErrnoException) => err)));
      } else {
        // At most statBatch entries between yields, across folders too (a folder read no longer yields by itself).
        if (sinceYield >= statBatch) {
          sinceYield = 0;
          await yieldToLoop();
        }
        sinceYield += batch.length;
        stats = batch.map((t) => {
          try {
            return lstatSync(prefix + t.name);
          } catch (err) {
            return err as Error;
          }
        });
      }
      for (let j = 0; j < batch.length; j++) {
        const t = batch[j]!;
        const st = stats[j]!;
        if (st instanceof Error) {
          const code = (st as NodeJS.ErrnoException).code;
          result.skipped.push(code === 'ENOENT' ? { path: t.rel, reason: 'vanished' } : { path: t.rel, reason: 'unreadable', detail: code ?? st.message });
          continue;
        }
        const abs = prefix + t.name;
        if (st.isSymbolicLink()) {
          result.skipped.push({ path: t.rel, reason: 'symlink', detail: 'symlinks are not followed or synced' });
        } else if (st.isDirectory()) {
          result.entries.set(t.rel, { path: t.rel, kind: 'dir', size: 0, mtimeMs: st.mtimeMs, ino: st.ino, hash: EMPTY_HASH });
          stack.push({ abs, rel: t.rel, disk: t.disk });
        } else if (st.isFile()) {
          const b = base.get(t.rel);
          if (b && b.kind === 'file' && b.localSize === st.size && b.localMtimeMs === st.mtimeMs && b.localIno === st.ino) {
            result.entries.set(t.rel, { path: t.rel, kind: 'file', size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, hash: b.hash });
          } else if (Math.abs((options.now ?? Date.now()) - st.mtimeMs) < settleMs) {
            // Within settleMs of now on either side; an mtime further in the future (clock skew) is not waited for.
            result.skipped.push({ path: t.rel, reason: 'settling' });
          } else if (leftToUpload(st.size, later) && !mayBeMove((moves ??= moveFacts(base, later)), st)) {
            result.entries.set(t.rel, { path: t.rel, kind: 'file', size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, hash: HASH_LATER });
          } else {
            hashing.push(hashInto(abs, t.rel, st));
          }
        } else {
          result.skipped.push({ path: t.rel, reason: 'special', detail: 'not a regular file or folder' });
        }
      }
    }
  }
  await Promise.all(hashing);
  return result;
}
