// Filesystem blob store: the embedded default (docs/architecture.md §8). Rules of the interface: ./index.ts.
//
// Layout under the root directory:
//   <root>/<orgStorageName(orgId)>/<key segments as directories...>/<last segment>@
// Every object is a file whose name is its last key segment followed by `@`, a character keys cannot contain,
// so the key `a` (file `a@`) and the key `a/b` (directory `a`, file `b@`) coexist as they do in S3.
// Temp files are `@tmp-<random>` in the target's directory; they never end in `@`, so they are never listed
// or read as objects. A crash can leave one behind: it is garbage (safe to remove when old), never an object.
//
// Writes are atomic and durable: write a temp file in the same directory, fsync it, rename it over the final
// name, fsync the directory (and the parents of directories the put created). No reader ever sees a partial
// file under a final name; a put whose source fails removes its temp file. Deletes fsync the directory too and
// prune directories left empty; a put racing that pruning retries its directory creation.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { access, mkdir, open, readdir, rename, rmdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import {
  BlobNotFoundError,
  BlobRangeError,
  type BlobListEntry,
  type BlobRead,
  type BlobStat,
  type BlobStore,
  type BlobStream,
  type OrgBlobStore,
  BlobUnavailableError,
  expectedPutSize,
  orgStorageName,
  probeWithTimeout,
  sizedChunks,
  validateKey,
  validatePrefix,
  validateRangeArgs,
} from './index.js';

const OBJECT_SUFFIX = '@';
const TEMP_PREFIX = '@tmp-';

export interface FsBlobStoreOptions {
  /** Root directory; created (with parents) by `openFsBlobStore`. */
  root: string;
}

/** Opens (creating if needed) a filesystem blob store rooted at `options.root`. */
export async function openFsBlobStore(options: FsBlobStoreOptions): Promise<FsBlobStore> {
  const root = path.resolve(options.root);
  // Chunks are ciphertext, but who stores how much, when and in which space is nobody else's business: 0700/0600.
  await mkdir(root, { recursive: true, mode: 0o700 });
  return new FsBlobStore(root);
}

export class FsBlobStore implements BlobStore {
  readonly kind = 'fs' as const;
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  forOrg(orgId: string): OrgBlobStore {
    return new FsOrgBlobStore(orgId, path.join(this.root, orgStorageName(orgId)));
  }

  async ready(): Promise<void> {
    await probeWithTimeout(`blob store directory ${this.root}`, 5000, async () => {
      const st = await stat(this.root);
      if (!st.isDirectory()) throw new BlobUnavailableError(`${this.root} is not a directory`);
      await access(this.root, fsConstants.R_OK | fsConstants.W_OK);
    });
  }

  async close(): Promise<void> {}
}

function isCode(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as NodeJS.ErrnoException).code ?? '');
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  let done = 0;
  while (done < chunk.byteLength) {
    const { bytesWritten } = await fh.write(chunk, done, chunk.byteLength - done);
    done += bytesWritten;
  }
}

class FsOrgBlobStore implements OrgBlobStore {
  readonly orgId: string;
  private readonly dir: string;

  constructor(orgId: string, dir: string) {
    this.orgId = orgId;
    this.dir = dir;
  }

  private objectPath(key: string): string {
    return path.join(this.dir, ...key.split('/')) + OBJECT_SUFFIX;
  }

  put(key: string, data: Uint8Array): Promise<void>;
  put(key: string, data: BlobStream, size: number): Promise<void>;
  async put(key: string, data: Uint8Array | BlobStream, size?: number): Promise<void> {
    validateKey(key);
    const expected = expectedPutSize(key, data, size);
    const finalPath = this.objectPath(key);
    const dir = path.dirname(finalPath);
    const { fh, tmp, created } = await this.openTemp(dir);
    let renamed = false;
    try {
      try {
        for await (const chunk of sizedChunks(key, data, expected)) await writeAll(fh, chunk);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, finalPath);
      renamed = true;
    } finally {
      if (!renamed) {
        await unlink(tmp).catch(() => {});
        for (const d of created) await rmdir(d).catch(() => {}); // leaf first; stops mattering once non-empty
      }
    }
    // The rename is durable once its directory is synced; new directories need their parents synced too.
    await fsyncDir(dir);
    for (const d of created) await fsyncDir(path.dirname(d));
  }

  /** Creates `dir` (and parents) and a fresh temp file in it; retries when a concurrent delete prunes `dir`. */
  private async openTemp(dir: string): Promise<{ fh: FileHandle; tmp: string; created: string[] }> {
    for (let attempt = 0; ; attempt++) {
      const first = await mkdir(dir, { recursive: true, mode: 0o700 });
      const created: string[] = [];
      if (first !== undefined) {
        for (let d = dir; ; d = path.dirname(d)) {
          created.push(d);
          if (d === first || d === path.dirname(d)) break;
        }
      }
      const tmp = path.join(dir, `${TEMP_PREFIX}${randomBytes(12).toString('hex')}`);
      try {
        const fh = await open(tmp, 'wx', 0o600);
        return { fh, tmp, created };
      } catch (err) {
        if (!isCode(err, 'ENOENT') || attempt >= 10) throw err;
      }
    }
  }

  async get(key: string): Promise<BlobRead> {
    validateKey(key);
    const fh = await this.openForRead(key);
    try {
      const { size } = await fh.stat();
      return { size, stream: fh.createReadStream({ autoClose: true }) };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  private async openForRead(key: string): Promise<FileHandle> {
    try {
      return await open(this.objectPath(key), 'r');
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR')) throw new BlobNotFoundError(key, { cause: err });
      throw err;
    }
  }

  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    validateKey(key);
    validateRangeArgs(key, offset, length);
    const fh = await this.openForRead(key);
    try {
      const { size } = await fh.stat();
      if (offset + length > size) throw new BlobRangeError(key, offset, length, `object has ${size} bytes`);
      const out = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(out, done, length - done, offset + done);
        if (bytesRead === 0) throw new BlobRangeError(key, offset, length, 'object shrank while reading');
        done += bytesRead;
      }
      return out;
    } finally {
      await fh.close();
    }
  }

  async stat(key: string): Promise<BlobStat | null> {
    validateKey(key);
    try {
      const st = await stat(this.objectPath(key));
      return { size: st.size, mtimeMs: st.mtimeMs };
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR')) return null;
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.stat(key)) !== null;
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    const file = this.objectPath(key);
    try {
      await unlink(file);
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR')) return;
      throw err;
    }
    const dir = path.dirname(file);
    await fsyncDir(dir).catch((err: unknown) => {
      if (!isCode(err, 'ENOENT')) throw err;
    });
    // Prune directories this delete emptied, up to (not including) the organisation's directory.
    for (let d = dir; d.length > this.dir.length && d.startsWith(this.dir + path.sep); d = path.dirname(d)) {
      try {
        await rmdir(d);
      } catch {
        break; // not empty (ENOTEMPTY/EEXIST), already gone, or in use: stop pruning
      }
    }
  }

  async *list(prefix = ''): AsyncGenerator<BlobListEntry, void, undefined> {
    validatePrefix(prefix);
    const base = prefix.slice(0, prefix.lastIndexOf('/') + 1); // '' or 'a/b/'
    yield* this.walk(base, prefix);
  }

  /** Depth-first walk of the directory for key prefix `rel` ('' or ending in '/'), in ascending key order. */
  private async *walk(rel: string, prefix: string): AsyncGenerator<BlobListEntry, void, undefined> {
    const dirPath = rel === '' ? this.dir : path.join(this.dir, ...rel.slice(0, -1).split('/'));
    let entries;
    try {
      entries = await readdir(dirPath, { withFileTypes: true });
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR')) return;
      throw err;
    }
    // Sort as keys sort: a directory `d` stands for the keys `d/...`, a file `f@` for the key `f`.
    const items: { sortKey: string; name: string; isDir: boolean }[] = [];
    for (const e of entries) {
      if (e.isDirectory()) {
        if (!e.name.includes(OBJECT_SUFFIX)) items.push({ sortKey: `${rel}${e.name}/`, name: e.name, isDir: true });
      } else if (e.isFile() && e.name.endsWith(OBJECT_SUFFIX) && !e.name.startsWith(TEMP_PREFIX)) {
        items.push({ sortKey: rel + e.name.slice(0, -OBJECT_SUFFIX.length), name: e.name, isDir: false });
      }
    }
    items.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    for (const item of items) {
      if (item.isDir) {
        if (item.sortKey.startsWith(prefix) || prefix.startsWith(item.sortKey)) yield* this.walk(item.sortKey, prefix);
      } else if (item.sortKey.startsWith(prefix)) {
        try {
          const st = await stat(path.join(dirPath, item.name));
          yield { key: item.sortKey, size: st.size, mtimeMs: st.mtimeMs };
        } catch (err) {
          if (!isCode(err, 'ENOENT')) throw err; // deleted while listing: skip it
        }
      }
    }
  }
}
