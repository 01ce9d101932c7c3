// The scan's hash worker (desktop/src/sync/hash-pool.ts, hash-worker.ts): files above the synchronous size are hashed
// on a worker thread beside the main thread, from the second such file of a scan on, with the same answers as
// hashFile: the content hash, null for a file that is not what the scan saw, the error of a file that is gone; and a
// worker ended early leaves its files to the main thread.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { contentHash, initCrypto } from '@kluis/shared';
import { HashPool } from '../../desktop/dist/sync/hash-pool.js';
import { scanFolder } from '../../desktop/dist/sync/scan.js';
import { hashFile, type FileFacts, type HashedFile } from '../../desktop/dist/sync/file-hash.js';

const KiB = 1024;

test.before(async () => {
  await initCrypto();
});

async function files(t: { teardown(f: () => Promise<void>): void }, sizes: number[]): Promise<{ root: string; paths: string[]; bytes: Buffer[] }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'kluis-hashpool-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const bytes = sizes.map((n) => randomBytes(n));
  const paths = await Promise.all(bytes.map(async (b, i) => {
    const p = path.join(root, `f${i}.bin`);
    await writeFile(p, b);
    return p;
  }));
  return { root, paths, bytes };
}

const factsOf = async (p: string): Promise<FileFacts> => {
  const st = await stat(p);
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
};

test('the first large file stays with the caller; later ones go to the worker and hash as hashFile does', async (t) => {
  const { paths, bytes } = await files(t, [100 * KiB, 3000 * KiB + 7, 65 * KiB, 2 * KiB]);
  const hereCalls: string[] = [];
  const pool = new HashPool(64 * KiB, (p, f) => {
    hereCalls.push(p);
    return hashFile(p, f);
  });
  try {
    t.is(pool.tryHash(paths[0]!, await factsOf(paths[0]!)), null, 'one large file is not worth a worker');
    t.is(pool.tryHash(paths[3]!, await factsOf(paths[3]!)), null, 'a small file is never offered');
    const a = pool.tryHash(paths[1]!, await factsOf(paths[1]!));
    const b = pool.tryHash(paths[2]!, await factsOf(paths[2]!));
    t.not(a, null);
    t.not(b, null);
    t.is(pool.tryHash(paths[0]!, await factsOf(paths[0]!)), null, 'the worker holds two files at most');
    const [ha, hb] = (await Promise.all([a, b])) as HashedFile[];
    t.is(ha!.hash, contentHash(bytes[1]!));
    t.is(ha!.size, bytes[1]!.length);
    t.is(hb!.hash, contentHash(bytes[2]!));
    t.deepEqual(hereCalls, []);
  } finally {
    await pool.close();
  }
});

test('the worker answers null for a file that is not what the scan saw, and the error of one that is gone', async (t) => {
  const { paths } = await files(t, [200 * KiB, 200 * KiB, 200 * KiB]);
  const pool = new HashPool(64 * KiB, hashFile);
  try {
    pool.tryHash(paths[0]!, await factsOf(paths[0]!)); // the first stays here
    const facts = await factsOf(paths[1]!);
    t.is(await pool.tryHash(paths[1]!, { ...facts, size: facts.size + 1 }), null, 'another size than the scan saw');
    const gone = await factsOf(paths[2]!);
    await rm(paths[2]!);
    const err = await t.throwsAsync(pool.tryHash(paths[2]!, gone)!);
    t.is((err as NodeJS.ErrnoException).code, 'ENOENT');
  } finally {
    await pool.close();
  }
});

test('files given to a worker that is ended meanwhile are hashed by the main thread', async (t) => {
  const { paths, bytes } = await files(t, [100 * KiB, 8192 * KiB, 8192 * KiB]);
  const hereCalls: string[] = [];
  const pool = new HashPool(64 * KiB, (p, f) => {
    hereCalls.push(p);
    return hashFile(p, f);
  });
  pool.tryHash(paths[0]!, await factsOf(paths[0]!));
  const a = pool.tryHash(paths[1]!, await factsOf(paths[1]!))!;
  const b = pool.tryHash(paths[2]!, await factsOf(paths[2]!))!;
  await pool.close(); // before the worker has even started up
  t.is((await a)!.hash, contentHash(bytes[1]!));
  t.is((await b)!.hash, contentHash(bytes[2]!));
  t.deepEqual(hereCalls.sort(), [paths[1]!, paths[2]!].sort());
  t.is(pool.tryHash(paths[1]!, await factsOf(paths[1]!)), null, 'a closed pool offers nothing');
});

test('a scan of many large files gives every file its content hash', async (t) => {
  const { root, bytes } = await files(t, Array.from({ length: 12 }, (_, i) => 70 * KiB + i * 37 * KiB));
  const old = new Date('2026-01-01T00:00:00Z');
  const { utimes } = await import('node:fs/promises');
  for (let i = 0; i < bytes.length; i++) await utimes(path.join(root, `f${i}.bin`), old, old);
  const r = await scanFolder(root, new Map());
  t.is(r.hashed, 12);
  for (let i = 0; i < bytes.length; i++) t.is(r.entries.get(`f${i}.bin`)?.hash, contentHash(bytes[i]!), `f${i}`);
});

test('hashAside (an upload\'s hash of a file the scan left to it) always takes the worker, whatever the size and queue; after close, the main thread', async (t) => {
  const { paths, bytes } = await files(t, [10, 3000 * KiB, 200 * KiB, 5 * KiB]);
  const hereCalls: string[] = [];
  const pool = new HashPool(0, (p, f) => {
    hereCalls.push(p);
    return hashFile(p, f);
  });
  const hashes = await Promise.all(paths.map(async (p) => pool.hashAside(p, await factsOf(p))));
  t.deepEqual(hashes.map((h) => h!.hash), bytes.map((b) => contentHash(b)));
  t.deepEqual(hereCalls, [], 'four files at once, the first of them tiny: all on the worker');
  await pool.close();
  const after = await pool.hashAside(paths[0]!, await factsOf(paths[0]!));
  t.is(after!.hash, contentHash(bytes[0]!));
  t.deepEqual(hereCalls, [paths[0]], 'no worker any more: hashed here');
});
