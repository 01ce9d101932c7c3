// Large and small files hashed by their upload, not by the scan (issue 22, W1, W2 and W3). A scan hashes every new or
// changed file before reconcile sees it: for one large file that is a whole pass over it (about 1.6 s per GiB here)
// while the server and the object store wait, and then the upload reads it again to cut, hash and encrypt its chunks.
// So the scan leaves the hash of a large new or changed file to the upload (LocalEntry.hash = HASH_LATER), which hashes
// the bytes it reads anyway (read-encrypt.ts) and writes the hash into the entry.
// Small files likewise (up to READ_WHOLE_MAX): their upload reads each in one synchronous call and hashes it in that
// read, on the main thread, so the scan's open, read, close and hash of each are saved. A first sync of 10,000 files of
// 4 KiB (W2) spends that before the first byte goes out, while the server and the second core wait.
//
// What the hash decides before the upload is still decided with a real hash:
// - A move (reconcile.ts rule 3: the base path's inode, size, mtime and hash turned up at a new path): a file whose
//   inode, size and mtime are a base row's local facts is hashed by the scan (moveFacts below).
// - Both sides changed, or both created the same path: "same content" or a conflict copy. Before reconcile, every
//   HASH_LATER entry whose path the remote side touched (pathsToHashNow) is hashed as before (hashNow).
// What is left is an upload of local content over an unchanged remote. If the content turns out to be the base's
// after all (a file touched, or written back unchanged), the upload commits nothing and refreshes the base row's
// local facts (upload.ts), as act.ts does for a touched file the scan hashed. Where nothing may be uploaded (a viewer,
// a frozen space) act.ts hashes the file before calling it a refused change, so a touched file is no refusal.
import { hashFile } from './file-hash.js';
import type { ScanResult } from './scan.js';
import { HASH_LATER, type BaseEntry, type LocalEntry, type RemoteEntry } from './types.js';

/** Files of at least this size are hashed by their upload (one pass over them less); smaller ones by the scan. */
export const HASH_LATER_MIN = 32 * 1024 * 1024;

/** Which new or changed files the scan leaves to their upload to hash: by size, both bounds in bytes. */
export interface HashLaterSizes {
  /** large files: at least this many bytes (hashed beside their upload's read by the hash worker) */
  min: number;
  /** small files: 1 to this many bytes (hashed in their upload's one read; 0: none) */
  smallMax: number;
}

/** Whether the scan leaves a new or changed file of `size` bytes to its upload to hash (see HashLaterSizes). */
export function leftToUpload(size: number, sizes: HashLaterSizes): boolean {
  return size >= sizes.min || (size > 0 && size <= sizes.smallMax);
}

const factsKey = (ino: number, size: number, mtimeMs: number): string => `${ino}:${size}:${mtimeMs}`;

/** The local facts (inode, size, mtime) of base files left to their upload by size: a file with such facts may be a move. */
export function moveFacts(base: ReadonlyMap<string, BaseEntry>, sizes: HashLaterSizes): Set<string> {
  const out = new Set<string>();
  for (const b of base.values()) if (b.kind === 'file' && leftToUpload(b.localSize, sizes)) out.add(factsKey(b.localIno, b.localSize, b.localMtimeMs));
  return out;
}

/** Whether a file with these facts may be the move of a base file (see moveFacts): then the scan hashes it. */
export function mayBeMove(facts: ReadonlySet<string>, st: { ino: number; size: number; mtimeMs: number }): boolean {
  return facts.has(factsKey(st.ino, st.size, st.mtimeMs));
}

/**
 * The HASH_LATER paths reconcile needs the hash of: those where the remote side is not simply the base version (a
 * remote version of the base's file other than the base's, or any other remote file at that path). Pure.
 */
export function pathsToHashNow(local: ReadonlyMap<string, LocalEntry>, base: ReadonlyMap<string, BaseEntry>, remote: ReadonlyMap<string, RemoteEntry>): string[] {
  const later = new Set<string>();
  for (const l of local.values()) if (l.hash === HASH_LATER) later.add(l.path);
  if (later.size === 0) return [];
  const out = new Set<string>();
  for (const p of later) {
    const b = base.get(p);
    const r = b ? remote.get(b.fileId) : undefined;
    if (r && r.versionId !== b!.versionId) out.add(p);
  }
  for (const r of remote.values()) {
    if (!later.has(r.path)) continue;
    const b = base.get(r.path);
    if (!b || b.fileId !== r.fileId || b.versionId !== r.versionId) out.add(r.path);
  }
  return [...out];
}

/**
 * Hashes the HASH_LATER entries at `paths` now (see the top). A file that is gone, unreadable or changing while it
 * is read leaves the entries and is skipped as the scan would have skipped it: reconcile treats it as unknown.
 */
export async function hashNow(scan: ScanResult, paths: readonly string[], abs: (p: string) => string): Promise<void> {
  for (const p of paths) {
    const l = scan.entries.get(p);
    if (!l || l.hash !== HASH_LATER) continue;
    let hashed: Awaited<ReturnType<typeof hashFile>> = null;
    try {
      hashed = await hashFile(abs(scan.diskPaths.get(p) ?? p), { size: l.size, mtimeMs: l.mtimeMs, ino: l.ino });
    } catch {
      hashed = null;
    }
    if (hashed && hashed.size === l.size && hashed.mtimeMs === l.mtimeMs) {
      l.hash = hashed.hash;
      scan.hashed++;
      scan.hashedBytes += hashed.size;
    } else {
      scan.entries.delete(p);
      scan.skipped.push({ path: p, reason: 'changing' });
    }
  }
}
