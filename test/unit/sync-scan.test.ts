// The local scan (desktop/src/sync/scan.ts) on real temp folders: entries, symlinks, Unicode forms, collisions,
// reuse of the index's hashes, settling files, the engine's own temp files.
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { contentHash, initCrypto } from '@kluis/shared';
import { reconcile } from '../../desktop/dist/sync/reconcile.js';
import { EMPTY_HASH, scanFolder, unknownPaths, type ScanResult } from '../../desktop/dist/sync/scan.js';
import { hashFile } from '../../desktop/dist/sync/file-hash.js';
import { LocalFsError } from '../../desktop/dist/sync/local-paths.js';
import type { BaseEntry, LocalEntry } from '../../desktop/dist/sync/types.js';

const OLD = new Date('2026-01-01T00:00:00Z');

async function tempRoot(t: ExecutionContext): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'kluis-scan-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return root;
}

/** Writes files (content) and folders (null) with an old mtime, so nothing is settling. */
async function tree(root: string, spec: Record<string, string | Uint8Array | null>): Promise<void> {
  for (const [rel, content] of Object.entries(spec)) {
    const abs = path.join(root, ...rel.split('/'));
    if (content === null) await mkdir(abs, { recursive: true });
    else {
      await mkdir(path.dirname(abs), { recursive: true });
      await writeFile(abs, content);
      await utimes(abs, OLD, OLD);
    }
  }
}

function asBase(entries: Map<string, LocalEntry>): Map<string, BaseEntry> {
  const out = new Map<string, BaseEntry>();
  for (const e of entries.values()) {
    out.set(e.path, { path: e.path, kind: e.kind, fileId: `F-${e.path}`, versionId: 'v1', hash: e.hash, size: e.size, mtimeMs: e.mtimeMs, localSize: e.size, localMtimeMs: e.mtimeMs, localIno: e.ino });
  }
  return out;
}

const paths = (r: ScanResult) => [...r.entries.keys()].sort();

test.before(async () => {
  await initCrypto();
});

test('scan: files with their content hash, folders (also empty ones) as dir entries', async (t) => {
  const root = await tempRoot(t);
  await tree(root, { 'a.txt': 'alpha', 'Map/b.txt': 'beta', 'Map/Sub/c.bin': new Uint8Array([0, 1, 2]), 'Leeg': null, 'Map/Leeg2': null, 'zero': '' });
  const r = await scanFolder(root, new Map());
  t.deepEqual(paths(r), ['Leeg', 'Map', 'Map/Leeg2', 'Map/Sub', 'Map/Sub/c.bin', 'Map/b.txt', 'a.txt', 'zero']);
  t.is(r.entries.get('a.txt')!.hash, contentHash(new TextEncoder().encode('alpha')));
  t.is(r.entries.get('a.txt')!.size, 5);
  t.is(r.entries.get('Leeg')!.kind, 'dir');
  t.is(r.entries.get('Leeg')!.hash, EMPTY_HASH);
  t.is(r.entries.get('zero')!.hash, EMPTY_HASH);
  t.is(r.hashed, 4);
  t.deepEqual([r.refused, r.skipped, r.warnings, r.temps], [[], [], [], []]);
});

test('scan: a large file is hashed streaming and matches the one-shot hash', async (t) => {
  const root = await tempRoot(t);
  const big = randomBytes(3 * 1024 * 1024 + 17);
  await tree(root, { 'big.bin': big });
  const r = await scanFolder(root, new Map());
  t.is(r.entries.get('big.bin')!.hash, contentHash(big));
  t.is(r.hashedBytes, big.length);
  const h = await hashFile(path.join(root, 'big.bin'));
  t.is(h!.hash, contentHash(big));
});

test('scan: symlinks are skipped with a reason and never followed', async (t) => {
  const root = await tempRoot(t);
  const outside = await tempRoot(t);
  await tree(outside, { 'secret.txt': 'do not sync' });
  await tree(root, { 'real.txt': 'x' });
  await symlink(path.join(outside, 'secret.txt'), path.join(root, 'file-link'));
  await symlink(outside, path.join(root, 'dir-link'));
  await symlink(path.join(root, 'nowhere'), path.join(root, 'dangling'));
  const r = await scanFolder(root, new Map());
  t.deepEqual(paths(r), ['real.txt']);
  t.deepEqual(r.skipped.map((s) => `${s.path}:${s.reason}`).sort(), ['dangling:symlink', 'dir-link:symlink', 'file-link:symlink']);
  t.deepEqual(unknownPaths(r).sort(), ['dangling', 'dir-link', 'file-link']);
});

test('scan: an NFD name on disk becomes an NFC path, with the disk name kept for opening it', async (t) => {
  const root = await tempRoot(t);
  const nfd = 'Cafe\u0301/re\u0301sume\u0301.txt';
  await tree(root, { [nfd]: 'café' });
  const r = await scanFolder(root, new Map(), { caseInsensitive: false });
  const nfc = nfd.normalize('NFC');
  t.not(nfc, nfd);
  t.deepEqual(paths(r), ['Café', nfc].sort());
  t.is(r.diskPaths.get(nfc), nfd);
  t.is(r.diskPaths.get('Café'), 'Cafe\u0301');
  t.is(await readFile(path.join(root, r.diskPaths.get(nfc)!), 'utf8'), 'café');
});

test('scan: two names that become one path after NFC are both refused', async (t) => {
  const root = await tempRoot(t);
  await tree(root, { 'caf\u00e9.txt': 'composed', 'cafe\u0301.txt': 'decomposed', 'ok.txt': 'fine' });
  const r = await scanFolder(root, new Map(), { caseInsensitive: false });
  t.deepEqual(paths(r), ['ok.txt']);
  t.is(r.refused.length, 1);
  t.is(r.refused[0]!.path, 'caf\u00e9.txt');
  t.regex(r.refused[0]!.reason, /normalisation/);
});

test('scan: names differing only in case are refused on a case-insensitive folder, kept otherwise', async (t) => {
  const root = await tempRoot(t);
  await tree(root, { 'Readme.md': 'one', 'README.md': 'two', 'Docs/x': 'x', 'docs': null });
  const ci = await scanFolder(root, new Map(), { caseInsensitive: true });
  t.deepEqual(paths(ci), []);
  t.deepEqual(ci.refused.map((x) => x.path).sort(), ['Docs', 'README.md', 'Readme.md', 'docs']);
  const cs = await scanFolder(root, new Map(), { caseInsensitive: false });
  t.deepEqual(paths(cs), ['Docs', 'Docs/x', 'README.md', 'Readme.md', 'docs']);
});

test('scan: unchanged files (size + mtime + inode as in the index) are not read again', async (t) => {
  const root = await tempRoot(t);
  const spec: Record<string, string> = {};
  for (let i = 0; i < 50; i++) spec[`d${i % 5}/f${i}.txt`] = `content ${i}`;
  await tree(root, spec);
  const first = await scanFolder(root, new Map());
  t.is(first.hashed, 50);
  const base = asBase(first.entries);
  const second = await scanFolder(root, base);
  t.is(second.hashed, 0);
  t.deepEqual([...second.entries.values()].sort((a, b) => a.path.localeCompare(b.path)), [...first.entries.values()].sort((a, b) => a.path.localeCompare(b.path)));
  // One edit (new size), one touch (same content, new mtime): exactly those two are read.
  await writeFile(path.join(root, 'd0/f0.txt'), 'changed content');
  await utimes(path.join(root, 'd0/f0.txt'), OLD, new Date(OLD.getTime() + 5000));
  await utimes(path.join(root, 'd1/f1.txt'), OLD, new Date(OLD.getTime() + 5000));
  const third = await scanFolder(root, base);
  t.is(third.hashed, 2);
  t.not(third.entries.get('d0/f0.txt')!.hash, first.entries.get('d0/f0.txt')!.hash);
  t.is(third.entries.get('d1/f1.txt')!.hash, first.entries.get('d1/f1.txt')!.hash);
});

test('scan: a file modified within settleMs is skipped as settling, and picked up later', async (t) => {
  const root = await tempRoot(t);
  await tree(root, { 'old.txt': 'old' });
  await writeFile(path.join(root, 'fresh.txt'), 'being written');
  const now = Date.now();
  const r = await scanFolder(root, new Map(), { now, settleMs: 60_000 });
  t.deepEqual(paths(r), ['old.txt']);
  t.deepEqual(r.skipped, [{ path: 'fresh.txt', reason: 'settling' }]);
  t.deepEqual(unknownPaths(r), ['fresh.txt']);
  const later = await scanFolder(root, new Map(), { now: now + 61_000, settleMs: 60_000 });
  t.deepEqual(paths(later), ['fresh.txt', 'old.txt']);
  // An unchanged file (the engine's own recent write) is not settling.
  const base = asBase(later.entries);
  const again = await scanFolder(root, base, { now, settleMs: 60_000 });
  t.deepEqual(paths(again), ['fresh.txt', 'old.txt']);
  t.is(again.hashed, 0);
});

test('scan: the engine\'s temp files and the root marker are ignored; temps are listed for cleanTemp', async (t) => {
  const root = await tempRoot(t);
  await tree(root, { '.kluis-tmp-0011': 'partial', 'd/.kluis-tmp-abcd': 'partial', '.kluis/state': 'x', 'd/.kluis': 'not the marker', 'a.txt': 'a' });
  const r = await scanFolder(root, new Map());
  t.deepEqual(paths(r), ['a.txt', 'd', 'd/.kluis']);
  t.deepEqual(r.temps.sort(), ['.kluis-tmp-0011', 'd/.kluis-tmp-abcd']);
});

test('scan: names that cannot be synced are refused, names Windows cannot hold are synced with a warning', async (t) => {
  const root = await tempRoot(t);
  await tree(root, { 'back\\slash.txt': 'x', 'ctl\u0001.txt': 'x', 'aux.txt': 'x', 'what?.txt': 'x', 'ok.txt': 'x' });
  const r = await scanFolder(root, new Map(), { platform: 'linux' });
  t.deepEqual(paths(r), ['aux.txt', 'ok.txt', 'what?.txt']);
  t.deepEqual(r.refused.map((x) => x.path).sort(), ['back\\slash.txt', 'ctl\u0001.txt']);
  t.deepEqual(r.warnings.map((x) => x.path).sort(), ['aux.txt', 'what?.txt']);
  const quiet = await scanFolder(root, new Map(), { platform: 'linux', portable: false });
  t.deepEqual(quiet.warnings, []);
});

test('scan: a missing root is an error, never an empty folder', async (t) => {
  const root = await tempRoot(t);
  const err = await t.throwsAsync(scanFolder(path.join(root, 'gone'), new Map()), { instanceOf: LocalFsError });
  t.is(err?.code, 'root_missing');
  await tree(root, { 'file': 'x' });
  await t.throwsAsync(scanFolder(path.join(root, 'file'), new Map()), { instanceOf: LocalFsError });
});

test('scan: an unreadable folder is skipped (its subtree unknown), not reported as empty', async (t) => {
  if (process.getuid?.() === 0) {
    t.pass('running as root: permissions do not stop reads');
    return;
  }
  const root = await tempRoot(t);
  await tree(root, { 'locked/x.txt': 'x', 'open.txt': 'y' });
  await chmod(path.join(root, 'locked'), 0o000);
  t.teardown(() => chmod(path.join(root, 'locked'), 0o755));
  const r = await scanFolder(root, new Map());
  t.deepEqual(paths(r), ['open.txt']);
  t.deepEqual(r.skipped.map((s) => `${s.path}:${s.reason}`), ['locked:unreadable']);
});

test('hashFile: null when the file is not what the caller saw (changed between lstat and read)', async (t) => {
  const root = await tempRoot(t);
  await tree(root, { 'a.txt': 'abc' });
  const abs = path.join(root, 'a.txt');
  const st = await lstat(abs);
  const facts = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
  t.is((await hashFile(abs, facts))!.hash, contentHash(new TextEncoder().encode('abc')));
  t.is(await hashFile(abs, { ...facts, mtimeMs: facts.mtimeMs + 1 }), null);
  t.is(await hashFile(abs, { ...facts, size: 2 }), null);
  t.is(await hashFile(abs, { ...facts, ino: facts.ino + 1 }), null);
  await symlink(abs, path.join(root, 'link'));
  await t.throwsAsync(hashFile(path.join(root, 'link')), { code: 'ELOOP' });
});

test('scan + reconcile: a settling or symlinked path that is in the index is not taken for a deletion', async (t) => {
  const root = await tempRoot(t);
  await tree(root, { 'a.txt': 'a', 'd/b.txt': 'b' });
  const first = await scanFolder(root, new Map());
  const base = asBase(first.entries);
  const remote = new Map([...base.values()].map((b) => [b.fileId, {
    fileId: b.fileId, versionId: b.versionId, seq: 1, path: b.path, kind: b.kind, size: b.size, mtimeMs: b.mtimeMs, hash: b.hash, deleted: false, chunks: [] as [string, number][], keyEpoch: 1,
  }]));
  await writeFile(path.join(root, 'a.txt'), 'being rewritten');
  await rm(path.join(root, 'd'), { recursive: true });
  await symlink(os.tmpdir(), path.join(root, 'd'));
  const scan = await scanFolder(root, base, { settleMs: 60_000 });
  const actions = reconcile(base, scan.entries, remote, { device: 'pc', now: new Date(), platform: 'linux', unknown: unknownPaths(scan) });
  t.deepEqual(actions.map((a) => `${a.type} ${'path' in a ? a.path : ''}`).sort(), ['none a.txt', 'none d', 'none d/b.txt']);
});

test('scan: sync and async lstat modes see the same tree', async (t) => {
  const root = await tempRoot(t);
  const spec: Record<string, string | null> = { 'leeg': null, 'x/y/z.txt': 'z' };
  for (let i = 0; i < 150; i++) spec[`veel/f${i}`] = `${i}`;
  await tree(root, spec);
  await symlink(root, path.join(root, 'x', 'loop'));
  const a = await scanFolder(root, new Map(), { statMode: 'async', statBatch: 7 });
  const s = await scanFolder(root, new Map(), { statMode: 'sync', statBatch: 7 });
  t.deepEqual(paths(a), paths(s));
  t.is(a.entries.size, 155);
  t.deepEqual(a.skipped, s.skipped);
  for (const [p, e] of a.entries) t.deepEqual(s.entries.get(p), e);
});
