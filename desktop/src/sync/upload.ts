// The uploads of one pass: a batched, bounded pipeline (read -> FastCDC -> encrypt -> framed batch upload -> batched
// commit). Chunks are uploaded before the commit that names them; unreferenced chunks of an interrupted upload cost
// space only. Commits go COMMIT_BATCH versions at a time while reading goes on; they overlap (usually two in flight),
// their index writes in the order they were started.
import { commitBatch, makeVersion, type PendingCommit } from './commit.js';
import type { Progress, SyncContext } from './context.js';
import { isTransient, type FileKeys } from './remote.js';
import { EMPTY_HASH, type ScanResult } from './scan.js';
import { readAndEncrypt, type ReadFile } from './read-encrypt.js';
import { ChunkUploader, each } from './transfer.js';
import { HASH_LATER, READ_WHOLE_MAX, type BaseEntry, type LocalEntry } from './types.js';
import { traceMemory } from './memory-trace.js';
import { hashFile } from './file-hash.js';
import { HashPool } from './hash-pool.js';

const COMMIT_BATCH = 500;
const READ_CONCURRENCY = 4;

/** A file to upload as a new version: of `fileId` on top of `parent`, or a new file (fileId null). */
export interface UploadItem {
  path: string;
  local: LocalEntry;
  fileId: string | null;
  parent: string | null;
  /** a move re-uploaded under a fresh key: the old path's base row goes */
  deleteBase?: string;
  /** the path's base row: a file hashed by its upload (HASH_LATER) whose content is this row's is not committed */
  base?: BaseEntry | null;
}

/**
 * A file the scan left to its upload to hash (hash-later.ts) that turned out to hold its base version's content
 * (touched, or written back unchanged): the base row with the file's new facts, to store instead of a new version.
 */
function unchangedAfterAll(a: UploadItem, hash: string): BaseEntry | null {
  const b = a.base;
  if (!b || b.kind !== 'file' || b.hash !== hash || a.fileId !== b.fileId || a.parent !== b.versionId) return null;
  return { ...b, localSize: a.local.size, localMtimeMs: a.local.mtimeMs, localIno: a.local.ino };
}

/**
 * The chunk ids of the version `a` replaces, when the index keeps its chunk list (large files) and the server has
 * not answered a commit of this file with missing chunks: the server holds them (read-encrypt.ts).
 */
async function heldChunks(ctx: SyncContext, a: UploadItem): Promise<[string, number][] | undefined> {
  if (a.fileId === null || a.parent === null || a.deleteBase !== undefined || ctx.chunksMissing.has(a.fileId)) return undefined;
  return (await ctx.db.baseChunks(ctx.folder.id, a.path, a.parent)) ?? undefined;
}

/**
 * Uploads `uploads` and commits them with `commits` (versions made without an upload: moves, deletions). Returns how
 * many of them are settled: committed, or found to hold their base version's content. Any other is left to the next
 * pass (changed since the scan, unreadable, refused by the server), and act.ts then asks for that pass.
 */
export async function uploadAll(ctx: SyncContext, uploads: UploadItem[], commits: PendingCommit[], scan: ScanResult, signal?: AbortSignal): Promise<number> {
  const sc = await ctx.crypto();
  // Progress counts plaintext bytes done when they need no more sending: a batch sent or found stored (the uploader's
  // onDone), or a chunk the server holds from the version it replaces (never sent). Not when read: reading runs ahead
  // of sending by the chunker's 8 MiB window per file and the uploader's batches in flight (up to 16 MiB), so a count
  // of reads showed the disk's speed, then nothing to go while batches still went at the bandwidth limit.
  // A file given up (changed since the scan, unreadable) leaves the total; chunks of it already queued may still be
  // counted when sent, so done is capped at the total.
  let total = uploads.reduce((n, a) => n + a.local.size, 0);
  let filesDone = 0;
  let bytesDone = 0;
  const emitProgress = (): void => {
    ctx.emit('progress', { phase: 'uploading', filesDone, filesTotal: uploads.length, bytesDone: Math.min(bytesDone, total), bytesTotal: total } satisfies Progress);
  };
  const done = (bytes: number): void => {
    if (bytes === 0) return;
    bytesDone += bytes;
    emitProgress();
  };
  const giveUp = (a: UploadItem): void => {
    total -= a.local.size;
  };
  const uploader = new ChunkUploader(ctx.client, sc.spaceId, { limiter: ctx.limiter, onDone: done });
  emitProgress(); // what there is to do, before the first byte goes
  // Commits overlap (the server checks and stores one while the next is on its way), their index writes in the order
  // they were started (commit.ts commitBatch `after`), so a later batch never lands before an earlier one.
  let settled = 0;
  let recorded: Promise<void> = Promise.resolve();
  const commitNow = (batch: PendingCommit[]): Promise<void> => {
    const before = recorded;
    const mine = (async () => {
      await uploader.barrier(); // the chunks of this batch's versions, not those read since
      // Not `settled += await ...`: that reads `settled` before the wait, and two commits in flight lose one's count.
      const committed = await commitBatch(ctx, batch, before);
      settled += committed;
    })();
    recorded = mine;
    mine.catch(() => undefined); // awaited by the next commit, or at the end
    return before;
  };
  const queue = commits;
  const maybeCommit = async (): Promise<void> => {
    if (queue.length < COMMIT_BATCH) return;
    // This reader waits for the commit before its own, so commits overlap by about two (at most one per reader).
    await commitNow(queue.splice(0, queue.length));
  };

  let hasher: HashPool | undefined; // started at the first file to hash (HASH_LATER), ended with the pass
  try {
    await each(uploads, READ_CONCURRENCY, async (a) => {
      if (signal?.aborted) return;
      const l = a.local;
      let keys: FileKeys;
      let fileId: string;
      let known = false;
      if (a.fileId === null) {
        ({ fileId, keys } = sc.newFile());
      } else {
        if (!sc.knows(a.fileId)) {
          ctx.report.errors.push({ path: a.path, reason: 'no key of this file opens for you' });
          giveUp(a);
          return;
        }
        fileId = a.fileId;
        const w = sc.writeKeys(fileId);
        keys = w.keys;
        known = !w.fresh;
      }
      let content = { hash: EMPTY_HASH, size: 0, chunks: [] as [string, number][] };
      if (l.kind === 'file') {
        let read: ReadFile | null;
        const abs = ctx.abs(scan.diskPaths.get(a.path) ?? a.path);
        // A file the scan left to its upload to hash (hash-later.ts): a worker hashes it while this thread cuts and
        // encrypts it (null: gone or changed; a failure is the read's to report). Not a small one: its one read hashes
        // it (read-encrypt.ts readSmall). The worker used to hash those too, each file read and hashed twice.
        const later = l.hash === HASH_LATER;
        const aside = later && l.size > READ_WHOLE_MAX ? (hasher ??= new HashPool(0, hashFile)).hashAside(abs, l).catch(() => null) : undefined;
        try {
          // The scan's hash is reused when the file is still what the scan found (read-encrypt.ts, "Hash once").
          const previous = known ? await heldChunks(ctx, a) : undefined;
          read = await readAndEncrypt(abs, keys.subkeys, uploader, known, { onHeld: done, expect: l, ...(previous ? { previous } : {}) });
        } catch (err) {
          if (isTransient(err)) throw err;
          ctx.localFailure(a.path, err);
          giveUp(a);
          return;
        }
        // Changed since the scan (still being written): not uploaded half-written; the next pass takes it.
        if (!read) {
          giveUp(a);
          return;
        }
        if (later) {
          // Hashed in the read (a small file: its length must still be the scan's size, read-encrypt.ts readSmall) or
          // beside it under the same test of the file's facts as the read (file-hash.ts hashFileSync): both saw the
          // scan's file. null: changed or gone since.
          const h = read.hash !== HASH_LATER ? { hash: read.hash } : ((await aside) ?? null);
          if (!h) {
            giveUp(a);
            return;
          }
          read.hash = l.hash = h.hash; // the scan's entry (the engine's last scan) holds the real hash from now on
          const refreshed = unchangedAfterAll(a, h.hash);
          if (refreshed) {
            await ctx.db.apply(ctx.folder.id, { putBase: [refreshed] });
            settled++;
            filesDone++;
            emitProgress();
            return;
          }
        }
        content = read;
      }
      queue.push(makeVersion(ctx, sc, keys, {
        fileId, parent: a.parent, path: a.path, kind: l.kind, size: content.size, mtimeMs: Math.trunc(l.mtimeMs), chunks: content.chunks, hash: content.hash, deleted: false,
      }, a.deleteBase !== undefined ? 'move' : 'upload', { local: l, ...(a.deleteBase !== undefined ? { deleteBase: a.deleteBase } : {}) }));
      filesDone++;
      if (filesDone % 1000 === 0) traceMemory(`uploaded ${filesDone}`);
      emitProgress();
      await maybeCommit();
    });
  } finally {
    await hasher?.close();
  }
  if (queue.length) commitNow(queue.splice(0, queue.length));
  await recorded;
  ctx.report.bytesUploaded += uploader.sentBytes;
  return settled;
}
