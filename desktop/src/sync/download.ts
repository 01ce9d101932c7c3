// The downloads of one pass (act.ts): folders are created; files up to SMALL_DOWNLOAD bytes come in
// shared framed batches; larger ones stream in windows (transfer.ts fileContent). Every file goes through
// writeFileAtomic: a temp file beside the target, checked against the signed manifest's size and hash, fsynced,
// renamed over the target only if the target is still what the scan saw. The engine journals the pass's writes
// before calling this, so a kill at any point loses and duplicates nothing (engine.ts, "Crash safety"; journal.ts).
//
// Delta download. A new version of a large file mostly repeats the version the local copy holds, under the same
// file key, so with the same keyed chunk ids. The index keeps the chunk list of every large synced version
// (keepChunks, index-db.ts base_chunks). When the local file is the synced version of the same file (the download
// replaces it: reconcile found it unchanged), each chunk of the new version whose id the old list names is read from
// the local file at its old offset and used only if its keyed id, recomputed from those bytes, matches; otherwise
// (the file changed under us) that chunk is fetched like the rest. After a key rotation the new version has a fresh
// file key, so no id matches and everything is fetched. The whole-file hash check stays the final word.
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import type { ApiClient } from '../api/client.js';
import { mkdirInside, writeFileAtomic, type LocalFacts } from './atomic-write.js';
import type { Progress } from './context.js';
import type { FolderRecord, IndexDb } from './index-db.js';
import { LocalFsError } from './local-paths.js';
import type { FileKeys } from './remote.js';
import { each, fetchChunks, fileContent, type DownloadCounts, type LocalChunks, type RateLimiter } from './transfer.js';
import type { BaseEntry, LocalEntry, RemoteEntry } from './types.js';

/** Files up to this size download together in shared batches; larger ones stream in windows, as deltas if they can. */
export const SMALL_DOWNLOAD = 4 * 1024 * 1024;
const GROUP_BYTES = 16 * 1024 * 1024;
const GROUP_FILES = 2000;
const WRITE_CONCURRENCY = 4;

/** A file or folder to bring to the remote version. */
export interface DownloadItem {
  remote: RemoteEntry;
  /** the target's facts at scan time (null: it must not exist); the write is refused if they changed */
  current: LocalFacts | null;
  path: string;
  /** the base row the local file at `path` matched (reconcile's guard), if any: the source of a delta */
  base: BaseEntry | null;
}

/** What the engine lends a download pass. */
export interface DownloadPass {
  client: ApiClient;
  db: IndexDb;
  folder: FolderRecord;
  spaceId: string;
  limiter: RateLimiter;
  report: DownloadCounts & { downloaded: number; errors: { path: string; reason: string }[] };
  /** the file key a remote version was written with; null when none opens (reported by the callee) */
  keys(r: RemoteEntry, relPath: string): FileKeys | null;
  localFailure(relPath: string, err: unknown): void;
  progress(p: Progress): void;
  /** the path on disk (as the scan found it) of a synced path */
  diskPath(relPath: string): string;
  signal?: AbortSignal | undefined;
}

/** The chunk list a base row keeps for `r`: only large files (the ones that stream, and so can be deltas). */
export function keepChunks(r: RemoteEntry): [string, number][] | undefined {
  return r.kind === 'file' && r.size > SMALL_DOWNLOAD && r.chunks.length > 1 ? r.chunks : undefined;
}

/** The base row for a path now holding remote version `r` with these local facts. */
export function baseOf(r: RemoteEntry, local: LocalFacts | LocalEntry): BaseEntry {
  const chunks = keepChunks(r);
  return {
    path: r.path, kind: r.kind, fileId: r.fileId, versionId: r.versionId, hash: r.hash, size: r.size, mtimeMs: r.mtimeMs,
    localSize: local.size, localMtimeMs: local.mtimeMs, localIno: local.ino, ...(chunks ? { chunks } : {}),
  };
}

/**
 * Where the chunks of `d`'s new version may be on disk: the local file, if it is the synced version of the same
 * file and the index knows that version's chunk list; null otherwise (everything is fetched).
 */
async function localChunks(pass: DownloadPass, d: DownloadItem): Promise<LocalChunks | null> {
  const b = d.base;
  if (!b || !d.current || b.kind !== 'file' || b.fileId !== d.remote.fileId || b.versionId === d.remote.versionId) return null;
  const previous = await pass.db.baseChunks(pass.folder.id, d.path, b.versionId);
  if (!previous) return null;
  const wanted = new Set(d.remote.chunks.map(([id]) => id));
  const at = new Map<string, { offset: number; size: number }>();
  let offset = 0;
  for (const [id, size] of previous) {
    if (wanted.has(id) && !at.has(id)) at.set(id, { offset, size });
    offset += size;
  }
  if (at.size === 0) return null;
  return { absPath: path.join(pass.folder.root, ...pass.diskPath(d.path).split('/')), at };
}

/** Downloads `list`; the base rows of what was written are pushed to `putBase`. */
export async function downloadAll(pass: DownloadPass, list: DownloadItem[], putBase: BaseEntry[]): Promise<void> {
  const { signal, report, folder } = pass;
  const total = list.reduce((n, d) => n + d.remote.size, 0);
  let filesDone = 0;
  let bytesDone = 0;
  const progress = (bytes: number): void => {
    filesDone++;
    bytesDone += bytes;
    pass.progress({ phase: 'downloading', filesDone, filesTotal: list.length, bytesDone, bytesTotal: total });
  };

  const writeOne = async (d: DownloadItem, source: AsyncIterable<Uint8Array>): Promise<void> => {
    try {
      const facts = await writeFileAtomic(folder.root, pass.diskPath(d.path), source, { size: d.remote.size, hash: d.remote.hash, mtimeMs: d.remote.mtimeMs }, { current: d.current });
      putBase.push(baseOf(d.remote, facts));
      report.downloaded++;
    } catch (err) {
      if (err instanceof LocalFsError && (err.code === 'hash_mismatch' || err.code === 'size_mismatch')) {
        report.errors.push({ path: d.path, reason: 'the content from the server does not match its signed manifest: not written (report this to your security officer)' });
      } else pass.localFailure(d.path, err);
    }
    progress(d.remote.size);
  };

  // The file's subkeys are looked up once per file, not per chunk.
  const small: { d: DownloadItem; keys: FileKeys['subkeys'] }[] = [];
  for (const d of list) {
    if (signal?.aborted) return;
    if (d.remote.kind === 'dir') {
      try {
        const abs = await mkdirInside(folder.root, pass.diskPath(d.path));
        const st = await lstat(abs);
        putBase.push(baseOf(d.remote, { size: 0, mtimeMs: st.mtimeMs, ino: st.ino }));
        report.downloaded++;
      } catch (err) {
        pass.localFailure(d.path, err);
      }
      progress(0);
      continue;
    }
    const keys = pass.keys(d.remote, d.path);
    if (!keys) continue;
    if (d.remote.size > SMALL_DOWNLOAD) {
      const local = await localChunks(pass, d);
      await writeOne(d, fileContent(pass.client, pass.spaceId, d.remote.chunks, keys.subkeys, pass.limiter, undefined, { counts: report, ...(local ? { local } : {}) }));
    } else small.push({ d, keys: keys.subkeys });
  }
  // Small files: one framed request per group of files, then written WRITE_CONCURRENCY at a time.
  let group: typeof small = [];
  let groupBytes = 0;
  const runGroup = async (): Promise<void> => {
    const g = group;
    group = [];
    groupBytes = 0;
    const wanted = new Map<string, { id: string; keys: FileKeys['subkeys'] }>();
    for (const { d, keys } of g) for (const [id] of d.remote.chunks) wanted.set(id, { id, keys });
    const plain = await fetchChunks(pass.client, pass.spaceId, [...wanted.values()], pass.limiter, report);
    await each(g, WRITE_CONCURRENCY, async ({ d }) => {
      const chunks = d.remote.chunks.map(([id]) => plain.get(id)!);
      await writeOne(d, (async function* () {
        yield* chunks;
      })());
    });
  };
  for (const item of small) {
    if (signal?.aborted) return;
    group.push(item);
    groupBytes += item.d.remote.size;
    if (groupBytes >= GROUP_BYTES || group.length >= GROUP_FILES) await runGroup();
  }
  if (group.length) await runGroup();
}
