// Local writes that cannot half-happen (docs/architecture.md §3: "downloads are written to a temp file beside the target, verified
// against `hash`, fsynced, then renamed"). A crash at any point leaves either the old file or the new one, plus at
// most a `.kluis-tmp-*` file that the scan ignores and cleanTemp removes at start.
//
// Every write, move and delete is guarded by what the engine believes is on disk: a delete or move checks that the
// file still hashes to what the index says, so an edit made since the scan becomes a conflict ('changed'), never
// a loss. The remaining window (between that check and the rename/unlink) is a few syscalls wide.
import { randomBytes } from 'node:crypto';
import { link, lstat, mkdir, open, opendir, rename, rmdir, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ContentHasher, initCrypto } from '@kluis/shared';
import { LocalFsError, TEMP_PREFIX, foldCase, resolveInside } from './local-paths.js';
import { hashFile } from './file-hash.js';
import { EMPTY_HASH } from './scan.js';

/** What a downloaded file must be. */
export interface WriteExpectation {
  size: number;
  /** hex BLAKE2b-256 of the content */
  hash: string;
  /** set on the file after writing */
  mtimeMs: number;
}

/** The local facts of a file after the engine wrote or moved it: what the index stores as localSize/Mtime/Ino. */
export interface LocalFacts {
  size: number;
  mtimeMs: number;
  ino: number;
}

export interface WriteOptions {
  /**
   * What the target must be right before the rename: null = must not exist, facts = must still have this size,
   * mtime and inode (unchanged since the scan). Omitted = not checked. A mismatch throws 'changed'.
   */
  current?: LocalFacts | null;
  platform?: NodeJS.Platform;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function fsyncDir(dir: string): Promise<void> {
  // Windows cannot open a directory for fsync; NTFS journals the rename itself.
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Creates the folder `relDir` (and its parents) under root, refusing to pass through symlinks or files.
 * Existing folders are fine. Returns the absolute path.
 */
export async function mkdirInside(root: string, relDir: string, platform: NodeJS.Platform = process.platform): Promise<string> {
  const target = await resolveInside(root, relDir, platform);
  const segments = relDir.split('/');
  let current = path.resolve(root);
  for (let i = 0; i < segments.length; i++) {
    current = path.join(current, segments[i]!);
    try {
      await mkdir(current);
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
    }
    const st = await lstat(current);
    if (st.isSymbolicLink() || !st.isDirectory()) {
      throw new LocalFsError('unsafe_path', `refused ${JSON.stringify(relDir)}: ${segments.slice(0, i + 1).join('/')} is not a folder`, relDir);
    }
  }
  return target;
}

async function parentOf(root: string, relPath: string, platform: NodeJS.Platform): Promise<string> {
  const slash = relPath.lastIndexOf('/');
  if (slash > 0) await mkdirInside(root, relPath.slice(0, slash), platform);
  return path.dirname(await resolveInside(root, relPath, platform));
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, off, bytes.length - off);
    off += bytesWritten;
  }
}

async function factsOf(abs: string): Promise<LocalFacts | null> {
  try {
    const st = await lstat(abs);
    return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
  } catch (err) {
    if (errno(err) === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Writes `source` to `relPath` under root atomically: temp file beside the target, hashed while written, size and
 * hash checked against `expect` (mismatch: temp removed, LocalFsError size_mismatch/hash_mismatch, target untouched),
 * mtime set, fsync, rename over the target, fsync of the folder. Returns the new file's local facts.
 */
export async function writeFileAtomic(root: string, relPath: string, source: AsyncIterable<Uint8Array>, expect: WriteExpectation, options: WriteOptions = {}): Promise<LocalFacts> {
  await initCrypto({ wasm: 'lazy' });
  const platform = options.platform ?? process.platform;
  const dir = await parentOf(root, relPath, platform);
  const target = await resolveInside(root, relPath, platform);
  const temp = path.join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
  const handle = await open(temp, 'wx', 0o644);
  let closed = false;
  try {
    const hasher = new ContentHasher();
    let size = 0;
    for await (const chunk of source) {
      size += chunk.length;
      if (size > expect.size) throw new LocalFsError('size_mismatch', `${relPath}: more than the expected ${expect.size} bytes`, relPath);
      hasher.update(chunk);
      await writeAll(handle, chunk);
    }
    if (size !== expect.size) throw new LocalFsError('size_mismatch', `${relPath}: ${size} bytes, expected ${expect.size}`, relPath);
    const hash = hasher.digest();
    if (hash !== expect.hash) throw new LocalFsError('hash_mismatch', `${relPath}: content does not match the expected hash`, relPath);
    // Seconds as a double keep sub-millisecond mtimes (a Date would truncate them).
    const mtime = expect.mtimeMs / 1000;
    await handle.utimes(mtime, mtime);
    await handle.sync();
    await handle.close();
    closed = true;
    if (options.current !== undefined) {
      const now = await factsOf(target);
      const want = options.current;
      const same = now === null ? want === null : want !== null && now.size === want.size && now.mtimeMs === want.mtimeMs && now.ino === want.ino;
      if (!same) throw new LocalFsError('changed', `${relPath} changed on disk since it was scanned`, relPath);
    }
    await rename(temp, target);
  } catch (err) {
    if (!closed) await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
  const facts = await factsOf(target);
  if (!facts) throw new LocalFsError('not_found', `${relPath} vanished right after it was written`, relPath);
  return facts;
}

/** Checks that `abs` (lstat'ed as `kind`) still holds `expectHash`; throws 'changed' otherwise. */
async function assertContent(abs: string, relPath: string, expectHash: string): Promise<void> {
  const st = await lstat(abs);
  if (st.isSymbolicLink()) throw new LocalFsError('changed', `${relPath} is now a symlink`, relPath);
  if (st.isDirectory()) {
    if (expectHash !== EMPTY_HASH) throw new LocalFsError('changed', `${relPath} is now a folder`, relPath);
    return;
  }
  const h = await hashFile(abs, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino });
  if (!h || h.hash !== expectHash) throw new LocalFsError('changed', `${relPath} was changed since the last sync`, relPath);
}

/**
 * Deletes a local file only if its content still hashes to `expectHash` (a folder: only if it is empty; pass
 * EMPTY_HASH). Returns false if it was already gone (replaying a journal step), true if deleted. Throws
 * LocalFsError('changed') when the file differs: the engine treats that as a conflict.
 */
export async function removeLocal(root: string, relPath: string, expectHash: string, platform: NodeJS.Platform = process.platform): Promise<boolean> {
  const abs = await resolveInside(root, relPath, platform);
  let st;
  try {
    st = await lstat(abs);
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
  if (st.isDirectory()) {
    if (expectHash !== EMPTY_HASH) throw new LocalFsError('changed', `${relPath} is now a folder`, relPath);
    try {
      await rmdir(abs);
    } catch (err) {
      if (errno(err) === 'ENOTEMPTY' || errno(err) === 'EEXIST') throw new LocalFsError('changed', `${relPath} is not empty`, relPath);
      throw err;
    }
  } else {
    await assertContent(abs, relPath, expectHash);
    await unlink(abs);
  }
  await fsyncDir(path.dirname(abs));
  return true;
}

/**
 * Renames `from` to `to` (both relative to root) if `from` still holds `expectHash`; never replaces an existing
 * `to` (throws 'exists'). Creates `to`'s parent folders. Idempotent: if `from` is gone and `to` holds the content,
 * it returns `to`'s facts. A change of letter case only (same inode) is a plain rename.
 */
export async function moveLocal(root: string, from: string, to: string, expectHash: string, platform: NodeJS.Platform = process.platform): Promise<LocalFacts> {
  const absFrom = await resolveInside(root, from, platform);
  const src = await factsOf(absFrom);
  if (src === null) {
    const absTo = await resolveInside(root, to, platform);
    if ((await factsOf(absTo)) !== null) {
      await assertContent(absTo, to, expectHash);
      return (await factsOf(absTo))!;
    }
    throw new LocalFsError('not_found', `${from} is not there to move`, from);
  }
  await assertContent(absFrom, from, expectHash);
  const toDir = await parentOf(root, to, platform);
  const absTo = await resolveInside(root, to, platform);
  const dst = await factsOf(absTo);
  if (dst !== null && dst.ino !== src.ino) throw new LocalFsError('exists', `${to} already exists`, to);
  const fromSt = await lstat(absFrom);
  // Two names of one file: a move of ours that a kill cut between link and unlink; dropLeftoverLink finishes it
  // (rename() would do nothing here: POSIX leaves both names of one file).
  if (dst !== null && (await dropLeftoverLink(root, from, to, dst.ino, platform))) {
    // the old name is gone: the move is done
  } else if (dst !== null || fromSt.isDirectory()) {
    // Same inode (case-only rename on a case-insensitive disk) or a folder: rename is the only way.
    if (dst === null && (await factsOf(absTo)) !== null) throw new LocalFsError('exists', `${to} already exists`, to);
    await rename(absFrom, absTo);
  } else {
    // link() fails with EEXIST instead of replacing: no window in which a file that appeared at `to` is lost.
    try {
      await link(absFrom, absTo);
      await unlink(absFrom);
    } catch (err) {
      const code = errno(err);
      if (code === 'EEXIST') throw new LocalFsError('exists', `${to} already exists`, to);
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV' && code !== 'ENOSYS') throw err;
      // File systems without hard links (FAT, some network shares): check, then rename.
      if ((await factsOf(absTo)) !== null) throw new LocalFsError('exists', `${to} already exists`, to);
      await rename(absFrom, absTo);
    }
  }
  await fsyncDir(toDir);
  if (path.dirname(absFrom) !== toDir) await fsyncDir(path.dirname(absFrom));
  const facts = await factsOf(absTo);
  if (!facts) throw new LocalFsError('not_found', `${to} vanished right after the move`, to);
  return facts;
}

/**
 * Finishes a move of a file that moveLocal began and a kill interrupted between its link() and unlink(): if `from` is
 * still another name of the file at the move's target (inode `ino`, more than one link), that name is removed and
 * true returned. Without this, journal recovery (journal.ts) recorded the move as done and dropped `from`'s base row
 * while the file was still there under the old name: the next pass took it for a new file and uploaded it, bringing
 * the moved file back at its old path for every member (found by test/integration/sync-crash.test.ts). Never for two
 * paths that differ only in letter case: on a case-insensitive disk they are one name, and removing it would lose the
 * file.
 */
export async function dropLeftoverLink(root: string, from: string, to: string, ino: number, platform: NodeJS.Platform = process.platform): Promise<boolean> {
  if (foldCase(from) === foldCase(to)) return false;
  let abs: string;
  try {
    abs = await resolveInside(root, from, platform);
  } catch {
    return false;
  }
  const st = await lstat(abs).catch(() => null);
  if (!st || !st.isFile() || st.ino !== ino || st.nlink < 2) return false;
  await unlink(abs);
  await fsyncDir(path.dirname(abs));
  return true;
}

/**
 * Removes leftover `.kluis-tmp-*` files under root (a crash during a write). Pass the scan's `temps` to skip the
 * walk. Call at start, before the engine writes anything. Returns how many were removed.
 */
export async function cleanTemp(root: string, temps?: readonly string[]): Promise<number> {
  const absRoot = path.resolve(root);
  let removed = 0;
  const remove = async (abs: string): Promise<void> => {
    try {
      const st = await lstat(abs);
      if (!st.isFile() || !path.basename(abs).startsWith(TEMP_PREFIX)) return;
      await unlink(abs);
      removed++;
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw err;
    }
  };
  if (temps) {
    for (const t of temps) {
      const abs = path.resolve(absRoot, ...t.split('/'));
      if (abs.startsWith(absRoot + path.sep)) await remove(abs);
    }
    return removed;
  }
  const stack = [absRoot];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let handle;
    try {
      handle = await opendir(dir, { bufferSize: 256 });
    } catch (err) {
      if (dir === absRoot) throw err;
      continue;
    }
    for await (const dirent of handle) {
      const abs = path.join(dir, dirent.name);
      if (dirent.isDirectory()) stack.push(abs);
      else if (dirent.isFile() && dirent.name.startsWith(TEMP_PREFIX)) await remove(abs);
    }
  }
  return removed;
}
