// Whole-file hashes (BLAKE2b-256, docs/crypto.md §7) of local files, for the scan (scan.ts, and its hash worker,
// hash-worker.ts), the journal's check of a half-done download and the atomic write's check before replacing a file.
// A hash is only returned for the file the caller saw: same inode, size and mtime before and after the read.
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { BULK_HASH_MIN, ContentHasher, contentHash, initCrypto, loadFastBlake2b } from '@kluis/shared/hashing';
import { LocalFsError } from './local-paths.js';
import { readBuffers } from './read-buffers.js';

const READ_BUFFER = 1024 * 1024;
// O_NOFOLLOW: a file swapped for a symlink between lstat and open is not followed (0 where the OS lacks it).
const OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0);

export interface HashedFile {
  hash: string;
  size: number;
  mtimeMs: number;
  ino: number;
}

/** What the caller already knows of a file (from lstat): the hash is only returned if it still holds afterwards. */
export interface FileFacts {
  size: number;
  mtimeMs: number;
  ino: number;
}

/**
 * Hashes a regular file without following a symlink. Returns null if the file changed while it was read: size or
 * mtime differ before and after, or (with `expect`, e.g. the scan's lstat) it is not that file any more. With
 * `expect` the first fstat is skipped: the scan already paid for an lstat.
 */
export async function hashFile(absPath: string, expect?: FileFacts): Promise<HashedFile | null> {
  await initCrypto({ wasm: 'lazy' });
  if (expect && expect.size <= SYNC_HASH_MAX) return hashFileSync(absPath, expect);
  const handle = await open(absPath, OPEN_FLAGS);
  try {
    let before: FileFacts;
    if (expect) before = expect;
    else {
      const st = await handle.stat();
      if (!st.isFile()) throw new LocalFsError('changed', `${absPath} is not a regular file`);
      before = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
    }
    let total = 0;
    let hash: string;
    if (before.size <= 64 * 1024) {
      // Small files (most of an office folder): one read, one hash call.
      const buf = Buffer.allocUnsafe(before.size + 1);
      for (;;) {
        const { bytesRead } = await handle.read(buf, total, buf.length - total, total);
        if (bytesRead === 0) break;
        total += bytesRead;
        if (total === buf.length) return null; // grew while reading
      }
      hash = contentHash(buf.subarray(0, total));
    } else {
      if (before.size >= BULK_HASH_MIN) await loadFastBlake2b();
      const hasher = new ContentHasher();
      const buf = readBuffers.allocate(READ_BUFFER);
      for (;;) {
        const { bytesRead } = await handle.read(buf, 0, buf.length, total);
        if (bytesRead === 0) break;
        hasher.update(buf.subarray(0, bytesRead));
        total += bytesRead;
      }
      readBuffers.give(buf); // after a failed read it is left to the garbage collector
      hash = hasher.digest();
    }
    return unchangedSince(await handle.stat(), before, total) ? { hash, size: total, mtimeMs: before.mtimeMs, ino: before.ino } : null;
  } finally {
    await handle.close();
  }
}

/**
 * Small files are hashed with synchronous calls (open, read, fstat, close): four thread-pool round trips cost more
 * than reading 64 KiB from the page cache (10,000 files of 4 KiB: about 0.3 s less per full hash).
 */
export const SYNC_HASH_MAX = 64 * 1024;
/** One buffer for every small file, one for larger ones: the calls below are synchronous, so no other hash shares them. */
const smallHashScratch = new Uint8Array(SYNC_HASH_MAX + 1);
let largeHashScratch: Uint8Array | undefined;

/**
 * hashFile with `expect`, in synchronous calls: small files on the main thread, any size in the scan's hash worker
 * (hash-pool.ts). Null if the file is not what `before` says any more, or changed while it was read.
 */
export function hashFileSync(absPath: string, before: FileFacts): HashedFile | null {
  const fd = openSync(absPath, OPEN_FLAGS);
  try {
    let total = 0;
    let hash: string;
    if (before.size <= SYNC_HASH_MAX) {
      const buf = smallHashScratch.subarray(0, before.size + 1);
      for (;;) {
        const n = readSync(fd, buf, total, buf.length - total, total);
        if (n === 0) break;
        total += n;
        if (total === buf.length) return null; // grew while reading
      }
      hash = contentHash(buf.subarray(0, total));
    } else {
      const buf = (largeHashScratch ??= new Uint8Array(READ_BUFFER));
      const hasher = new ContentHasher();
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, total);
        if (n === 0) break;
        hasher.update(buf.subarray(0, n));
        total += n;
      }
      hash = hasher.digest();
    }
    return unchangedSince(fstatSync(fd), before, total) ? { hash, size: total, mtimeMs: before.mtimeMs, ino: before.ino } : null;
  } finally {
    closeSync(fd);
  }
}

/** The file after its read is still the one `before` describes, and `total` bytes were read of it. */
function unchangedSince(after: Stats, before: FileFacts, total: number): boolean {
  return after.isFile() && after.ino === before.ino && total === before.size && after.size === before.size && after.mtimeMs === before.mtimeMs;
}
