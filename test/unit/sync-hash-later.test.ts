// Large and small files hashed by their upload (desktop/src/sync/hash-later.ts): what the scan leaves unhashed, which of those
// are hashed before reconcile all the same (moves, paths the remote side touched), and what hashNow does with a file
// that changed or went.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { contentHash, initCrypto } from '@kluis/shared';
import { hashNow, leftToUpload, pathsToHashNow } from '../../desktop/dist/sync/hash-later.js';
import { scanFolder } from '../../desktop/dist/sync/scan.js';
import { HASH_LATER, READ_WHOLE_MAX, type BaseEntry, type LocalEntry, type RemoteEntry } from '../../desktop/dist/sync/types.js';

const OLD = new Date('2026-01-01T00:00:00Z');
const MIN = 64 * 1024;

test.before(async () => {
  await initCrypto({ wasm: 'lazy' });
});

async function root(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kluis-later-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function put(dir: string, rel: string, content: Uint8Array): Promise<void> {
  await writeFile(path.join(dir, rel), content);
  await utimes(path.join(dir, rel), OLD, OLD);
}

function baseRow(p: string, l: { size: number; mtimeMs: number; ino: number }, hash: string, fileId = `F-${p}`, versionId = 'v1'): BaseEntry {
  return { path: p, kind: 'file', fileId, versionId, hash, size: l.size, mtimeMs: l.mtimeMs, localSize: l.size, localMtimeMs: l.mtimeMs, localIno: l.ino };
}

const big = (fill: number): Uint8Array => new Uint8Array(MIN + 10).fill(fill);

test('the scan leaves new and changed files of hashLaterMin bytes or more unhashed; smaller, unchanged and movable ones are hashed as before', async (t) => {
  const dir = await root(t);
  await put(dir, 'small.txt', new Uint8Array(100).fill(1));
  await put(dir, 'new.bin', big(2));
  await put(dir, 'kept.bin', big(3));
  await put(dir, 'edited.bin', big(4));
  await put(dir, 'moved-from.bin', big(5));
  const first = await scanFolder(dir, new Map(), { settleMs: 0 });
  t.is(first.entries.get('new.bin')!.hash, contentHash(big(2)), 'without the option every file is hashed');
  // The index as after a first sync of all but new.bin.
  const base = new Map<string, BaseEntry>();
  for (const p of ['small.txt', 'kept.bin', 'edited.bin', 'moved-from.bin']) base.set(p, baseRow(p, first.entries.get(p)!, first.entries.get(p)!.hash));
  await put(dir, 'edited.bin', big(6));
  await utimes(path.join(dir, 'edited.bin'), OLD, new Date('2026-02-01T00:00:00Z'));
  await rename(path.join(dir, 'moved-from.bin'), path.join(dir, 'moved-to.bin'));

  const scan = await scanFolder(dir, base, { settleMs: 0, hashLaterMin: MIN });
  t.is(scan.entries.get('new.bin')!.hash, HASH_LATER, 'a new large file is left to its upload');
  t.is(scan.entries.get('edited.bin')!.hash, HASH_LATER, 'a changed large file is left to its upload');
  t.is(scan.entries.get('kept.bin')!.hash, base.get('kept.bin')!.hash, 'an unchanged one keeps the index hash');
  t.is(scan.entries.get('small.txt')!.hash, contentHash(new Uint8Array(100).fill(1)), 'a small file is hashed by the scan');
  t.is(scan.entries.get('moved-to.bin')!.hash, contentHash(big(5)), 'a file with a base row\'s inode, size and mtime (a move) is hashed');
  t.is(scan.hashed, 1, 'the scan read one file: the moved one');
  const sizes = Object.fromEntries([...scan.entries].map(([p, e]) => [p, e.size]));
  t.deepEqual(sizes, { 'small.txt': 100, 'new.bin': MIN + 10, 'kept.bin': MIN + 10, 'edited.bin': MIN + 10, 'moved-to.bin': MIN + 10 });
});

test('leftToUpload: large files from min, small ones from 1 byte to smallMax, the empty file and the sizes between never', (t) => {
  const sizes = { min: MIN, smallMax: 1000 };
  t.deepEqual([0, 1, 1000, 1001, MIN - 1, MIN, MIN * 10].map((n) => leftToUpload(n, sizes)), [false, true, true, false, false, true, true]);
  t.deepEqual([1, 1000, MIN].map((n) => leftToUpload(n, { min: Infinity, smallMax: 0 })), [false, false, false], 'the defaults of scanFolder: none');
});

test('the scan leaves small new and changed files (up to hashLaterSmallMax) to their upload; a possible move, an empty file and a larger one are hashed', async (t) => {
  const dir = await root(t);
  const small = (fill: number): Uint8Array => new Uint8Array(4096).fill(fill);
  await put(dir, 'kept.txt', small(1));
  await put(dir, 'edited.txt', small(2));
  await put(dir, 'moved-from.txt', small(3));
  await put(dir, 'mid.bin', new Uint8Array(READ_WHOLE_MAX + 1).fill(4));
  const first = await scanFolder(dir, new Map(), { settleMs: 0 });
  const base = new Map<string, BaseEntry>();
  for (const p of first.entries.keys()) base.set(p, baseRow(p, first.entries.get(p)!, first.entries.get(p)!.hash));
  await put(dir, 'new.txt', small(5));
  await put(dir, 'empty.txt', new Uint8Array(0));
  await put(dir, 'edited.txt', small(6));
  await utimes(path.join(dir, 'edited.txt'), OLD, new Date('2026-02-01T00:00:00Z'));
  await put(dir, 'mid-new.bin', new Uint8Array(READ_WHOLE_MAX + 1).fill(7));
  await rename(path.join(dir, 'moved-from.txt'), path.join(dir, 'moved-to.txt'));

  const scan = await scanFolder(dir, base, { settleMs: 0, hashLaterSmallMax: READ_WHOLE_MAX });
  t.is(scan.entries.get('new.txt')!.hash, HASH_LATER, 'a new small file is left to its upload');
  t.is(scan.entries.get('edited.txt')!.hash, HASH_LATER, 'a changed small file too');
  t.is(scan.entries.get('kept.txt')!.hash, base.get('kept.txt')!.hash, 'an unchanged one keeps the index hash');
  t.is(scan.entries.get('moved-to.txt')!.hash, contentHash(small(3)), 'a small file with a base row\'s inode, size and mtime (a move) is hashed');
  t.is(scan.entries.get('empty.txt')!.hash, contentHash(new Uint8Array(0)), 'the empty file is hashed (nothing to read)');
  t.is(scan.entries.get('mid-new.bin')!.hash, contentHash(new Uint8Array(READ_WHOLE_MAX + 1).fill(7)), 'a file above the bound is hashed by the scan');
  t.is(scan.hashed, 3, 'the scan read the move, the empty file and the larger one');
});

const local = (p: string, hash = HASH_LATER): LocalEntry => ({ path: p, kind: 'file', size: 1, mtimeMs: 1, ino: 1, hash });
const remoteRow = (fileId: string, p: string, versionId: string, deleted = false): RemoteEntry => ({
  fileId, versionId, seq: 1, path: p, kind: 'file', size: 1, mtimeMs: 1, hash: 'h', deleted, chunks: [], keyEpoch: 1,
});
const facts = { size: 1, mtimeMs: 1, ino: 1 };

test('pathsToHashNow: the paths whose remote side is anything but the base version', (t) => {
  const base = new Map<string, BaseEntry>([
    ['same.bin', baseRow('same.bin', facts, 'h1')],
    ['newer.bin', baseRow('newer.bin', facts, 'h2')],
    ['moved.bin', baseRow('moved.bin', facts, 'h3')],
    ['gone.bin', baseRow('gone.bin', facts, 'h4')],
    ['hashed.bin', baseRow('hashed.bin', facts, 'h5')],
  ]);
  const remote = new Map<string, RemoteEntry>([
    ['F-same.bin', remoteRow('F-same.bin', 'same.bin', 'v1')], // the base version: the upload may go ahead
    ['F-newer.bin', remoteRow('F-newer.bin', 'newer.bin', 'v2')], // a colleague's newer version
    ['F-moved.bin', remoteRow('F-moved.bin', 'elsewhere.bin', 'v2')], // moved away remotely
    ['F-gone.bin', remoteRow('F-gone.bin', 'gone.bin', 'v2', true)], // deleted remotely
    ['F-other', remoteRow('F-other', 'both-new.bin', 'v1')], // created on both sides
    ['F-hashed.bin', remoteRow('F-hashed.bin', 'hashed.bin', 'v2')], // changed, but the scan hashed this one
  ]);
  const entries = new Map<string, LocalEntry>(
    ['same.bin', 'newer.bin', 'moved.bin', 'gone.bin', 'both-new.bin', 'only-here.bin'].map((p) => [p, local(p)]),
  );
  entries.set('hashed.bin', local('hashed.bin', 'h5x'));
  t.deepEqual(pathsToHashNow(entries, base, remote).sort(), ['both-new.bin', 'gone.bin', 'moved.bin', 'newer.bin']);
  t.deepEqual(pathsToHashNow(new Map([['same.bin', local('same.bin', 'h1')]]), base, remote), [], 'nothing left unhashed: nothing to do');
});

test('hashNow hashes the files it is given; one gone or changed since the scan leaves the entries as changing', async (t) => {
  const dir = await root(t);
  for (const [p, fill] of [['a.bin', 7], ['gone.bin', 8], ['grown.bin', 9]] as const) await put(dir, p, big(fill));
  const scan = await scanFolder(dir, new Map(), { settleMs: 0, hashLaterMin: MIN });
  t.true([...scan.entries.values()].every((e) => e.hash === HASH_LATER));
  await unlink(path.join(dir, 'gone.bin'));
  await writeFile(path.join(dir, 'grown.bin'), big(9).subarray(0, MIN)); // a different size now
  await utimes(path.join(dir, 'grown.bin'), OLD, OLD);
  t.is((await stat(path.join(dir, 'grown.bin'))).size, MIN);
  await hashNow(scan, ['a.bin', 'gone.bin', 'grown.bin'], (p) => path.join(dir, p));
  t.is(scan.entries.get('a.bin')!.hash, contentHash(big(7)));
  t.false(scan.entries.has('gone.bin'));
  t.false(scan.entries.has('grown.bin'));
  t.deepEqual(scan.skipped.map((s) => `${s.path}:${s.reason}`).sort(), ['gone.bin:changing', 'grown.bin:changing']);
  t.is(scan.hashed, 1);
});
