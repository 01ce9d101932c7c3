// Local writes (desktop/src/sync/atomic-write.ts): verified atomic downloads, a crash leaves only a temp file that is
// cleaned at start, deletes and moves that refuse to touch a file changed since the scan.
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { link, lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { contentHash, initCrypto } from '@kluis/shared';
import { cleanTemp, dropLeftoverLink, mkdirInside, moveLocal, removeLocal, writeFileAtomic } from '../../desktop/dist/sync/atomic-write.js';
import { LocalFsError, TEMP_PREFIX, type LocalFsErrorCode } from '../../desktop/dist/sync/local-paths.js';
import { EMPTY_HASH, scanFolder } from '../../desktop/dist/sync/scan.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const atomicWriteJs = path.resolve(here, '../../desktop/dist/sync/atomic-write.js');
const MTIME = 1_780_000_000_123;

async function tempRoot(t: ExecutionContext): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'kluis-write-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return root;
}

async function* chunks(bytes: Uint8Array, size = 1000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function temps(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(path.join(d, e.name));
      else if (e.name.startsWith(TEMP_PREFIX)) out.push(path.relative(dir, path.join(d, e.name)));
    }
  };
  await walk(dir);
  return out;
}

test.before(async () => {
  await initCrypto();
});

test('writeFileAtomic: writes verified content with its mtime, creates parent folders, leaves no temp', async (t) => {
  const root = await tempRoot(t);
  const data = randomBytes(123_457);
  const facts = await writeFileAtomic(root, 'Map/Sub/doc.bin', chunks(data), { size: data.length, hash: contentHash(data), mtimeMs: MTIME });
  const abs = path.join(root, 'Map', 'Sub', 'doc.bin');
  t.deepEqual(await readFile(abs), data);
  const st = await stat(abs);
  // utimes takes seconds as a double: the mtime lands within a microsecond; the index stores what lstat says.
  t.true(Math.abs(st.mtimeMs - MTIME) < 0.001, String(st.mtimeMs));
  t.deepEqual(facts, { size: data.length, mtimeMs: st.mtimeMs, ino: st.ino });
  t.deepEqual(await temps(root), []);
  // Replacing an existing file, and an empty file.
  const next = new TextEncoder().encode('v2');
  await writeFileAtomic(root, 'Map/Sub/doc.bin', chunks(next), { size: 2, hash: contentHash(next), mtimeMs: MTIME });
  t.is(await readFile(abs, 'utf8'), 'v2');
  await writeFileAtomic(root, 'empty', chunks(new Uint8Array()), { size: 0, hash: EMPTY_HASH, mtimeMs: MTIME });
  t.is((await stat(path.join(root, 'empty'))).size, 0);
});

test('writeFileAtomic: a hash or size mismatch throws, removes the temp, leaves the original untouched', async (t) => {
  const root = await tempRoot(t);
  await writeFile(path.join(root, 'keep.txt'), 'original');
  const data = new TextEncoder().encode('replacement');
  const cases: [string, { size: number; hash: string }, LocalFsErrorCode][] = [
    ['hash', { size: data.length, hash: 'f'.repeat(64) }, 'hash_mismatch'],
    ['short', { size: data.length + 1, hash: contentHash(data) }, 'size_mismatch'],
    ['long', { size: data.length - 1, hash: contentHash(data) }, 'size_mismatch'],
  ];
  for (const [what, expect, code] of cases) {
    const err = await t.throwsAsync(writeFileAtomic(root, 'keep.txt', chunks(data, 4), { ...expect, mtimeMs: MTIME }), { instanceOf: LocalFsError }, what);
    t.is(err?.code, code, what);
    t.is(await readFile(path.join(root, 'keep.txt'), 'utf8'), 'original', what);
    t.deepEqual(await temps(root), [], what);
  }
});

test('writeFileAtomic: a failing source (network error mid-download) leaves the original and no temp', async (t) => {
  const root = await tempRoot(t);
  await writeFile(path.join(root, 'keep.txt'), 'original');
  async function* broken(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(10);
    throw new Error('connection reset');
  }
  await t.throwsAsync(writeFileAtomic(root, 'keep.txt', broken(), { size: 20, hash: EMPTY_HASH, mtimeMs: MTIME }), { message: 'connection reset' });
  t.is(await readFile(path.join(root, 'keep.txt'), 'utf8'), 'original');
  t.deepEqual(await temps(root), []);
});

test('writeFileAtomic: `current` guards against a file changed since the scan', async (t) => {
  const root = await tempRoot(t);
  const data = new TextEncoder().encode('remote');
  const expect = { size: data.length, hash: contentHash(data), mtimeMs: MTIME };
  await writeFile(path.join(root, 'appeared.txt'), 'local, new');
  const err = await t.throwsAsync(writeFileAtomic(root, 'appeared.txt', chunks(data), expect, { current: null }), { instanceOf: LocalFsError });
  t.is(err?.code, 'changed');
  t.is(await readFile(path.join(root, 'appeared.txt'), 'utf8'), 'local, new');
  const st = await stat(path.join(root, 'appeared.txt'));
  const facts = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
  await t.throwsAsync(writeFileAtomic(root, 'appeared.txt', chunks(data), expect, { current: { ...facts, size: 1 } }), { instanceOf: LocalFsError });
  await writeFileAtomic(root, 'appeared.txt', chunks(data), expect, { current: facts });
  t.is(await readFile(path.join(root, 'appeared.txt'), 'utf8'), 'remote');
  await writeFileAtomic(root, 'brand-new.txt', chunks(data), expect, { current: null });
  t.deepEqual(await temps(root), []);
});

test('writeFileAtomic: refuses paths that leave the folder or pass through a symlink', async (t) => {
  const root = await tempRoot(t);
  const outside = await tempRoot(t);
  await symlink(outside, path.join(root, 'link'));
  const data = new TextEncoder().encode('x');
  const expect = { size: 1, hash: contentHash(data), mtimeMs: MTIME };
  for (const bad of ['link/x.txt', 'link/deeper/x.txt', '../x.txt', '/tmp/x.txt']) {
    const err = await t.throwsAsync(writeFileAtomic(root, bad, chunks(data), expect), { instanceOf: LocalFsError }, bad);
    t.is(err?.code, 'unsafe_path');
  }
  t.deepEqual(await readdir(outside), []);
  await t.throwsAsync(mkdirInside(root, 'link/sub'), { instanceOf: LocalFsError });
});

test('crash during a write: only a .kluis-tmp file remains; the scan ignores it and cleanTemp removes it', async (t) => {
  const root = await tempRoot(t);
  await mkdir(path.join(root, 'd'));
  await writeFile(path.join(root, 'd', 'doc.txt'), 'original');
  // A child process writes a download whose source never ends, and is killed (SIGKILL) once the temp file has data.
  const script = `
    import { writeFileAtomic } from ${JSON.stringify(pathToFileURL(atomicWriteJs).href)};
    async function* forever() { for (;;) { yield new Uint8Array(4096).fill(7); await new Promise((r) => setTimeout(r, 5)); } }
    await writeFileAtomic(${JSON.stringify(root)}, 'd/doc.txt', forever(), { size: 1e9, hash: '${'0'.repeat(64)}', mtimeMs: 1 });
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  for (let i = 0; i < 400; i++) {
    const found = await temps(root);
    if (found.length > 0 && (await stat(path.join(root, found[0]!))).size > 8192) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill('SIGKILL');
  t.is(await exited, 'SIGKILL');
  const left = await temps(root);
  t.is(left.length, 1);
  t.is(await readFile(path.join(root, 'd', 'doc.txt'), 'utf8'), 'original');
  const scan = await scanFolder(root, new Map(), { settleMs: 0 });
  t.deepEqual([...scan.entries.keys()].sort(), ['d', 'd/doc.txt']);
  t.deepEqual(scan.temps, left.map((p) => p.split(path.sep).join('/')));
  t.is(await cleanTemp(root), 1);
  t.deepEqual(await temps(root), []);
  t.is(await readFile(path.join(root, 'd', 'doc.txt'), 'utf8'), 'original');
});

test('cleanTemp: removes leftovers anywhere (or only the listed ones), nothing else', async (t) => {
  const root = await tempRoot(t);
  await mkdir(path.join(root, 'a', 'b'), { recursive: true });
  for (const p of [`${TEMP_PREFIX}1`, `a/${TEMP_PREFIX}2`, `a/b/${TEMP_PREFIX}3`, 'a/b/keep.txt', 'a/kluis-tmp-not-ours']) await writeFile(path.join(root, p), 'x');
  t.is(await cleanTemp(root, [`a/${TEMP_PREFIX}2`, 'a/b/keep.txt', '../escape']), 1);
  t.is(await cleanTemp(root), 2);
  t.deepEqual((await readdir(path.join(root, 'a'))).sort(), ['b', 'kluis-tmp-not-ours']);
  t.deepEqual(await readdir(path.join(root, 'a', 'b')), ['keep.txt']);
});

test('removeLocal: deletes only what still hashes as expected; a changed file is a conflict, not a loss', async (t) => {
  const root = await tempRoot(t);
  await writeFile(path.join(root, 'same.txt'), 'synced');
  await writeFile(path.join(root, 'edited.txt'), 'edited since the scan');
  const synced = contentHash(new TextEncoder().encode('synced'));
  t.true(await removeLocal(root, 'same.txt', synced));
  await t.throwsAsync(lstat(path.join(root, 'same.txt')));
  const err = await t.throwsAsync(removeLocal(root, 'edited.txt', synced), { instanceOf: LocalFsError });
  t.is(err?.code, 'changed');
  t.is(await readFile(path.join(root, 'edited.txt'), 'utf8'), 'edited since the scan');
  t.false(await removeLocal(root, 'same.txt', synced), 'already gone: a replayed journal step is fine');
  // Folders: only empty ones.
  await mkdir(path.join(root, 'full'));
  await writeFile(path.join(root, 'full', 'x'), 'x');
  await mkdir(path.join(root, 'empty'));
  const full = await t.throwsAsync(removeLocal(root, 'full', EMPTY_HASH), { instanceOf: LocalFsError });
  t.is(full?.code, 'changed');
  t.true(await removeLocal(root, 'empty', EMPTY_HASH));
  await t.throwsAsync(removeLocal(root, 'full', synced), { instanceOf: LocalFsError });
  // A symlink where a file was is not followed and not deleted.
  await symlink(path.join(root, 'edited.txt'), path.join(root, 'link'));
  await t.throwsAsync(removeLocal(root, 'link', synced), { instanceOf: LocalFsError });
  t.true((await lstat(path.join(root, 'link'))).isSymbolicLink());
});

test('a move killed between link and unlink: moveLocal and dropLeftoverLink finish it, and touch nothing else', async (t) => {
  const root = await tempRoot(t);
  const h = contentHash(new TextEncoder().encode('content'));
  // The state a kill leaves: the file under its old and its new name (moveLocal links, then unlinks).
  await mkdir(path.join(root, 'oud'));
  await mkdir(path.join(root, 'nieuw'));
  await writeFile(path.join(root, 'oud', 'a.txt'), 'content');
  await link(path.join(root, 'oud', 'a.txt'), path.join(root, 'nieuw', 'a.txt'));
  const ino = (await stat(path.join(root, 'nieuw', 'a.txt'))).ino;
  // moveLocal run again on that state (rename() would leave both names: POSIX does nothing for two names of one file).
  const facts = await moveLocal(root, 'oud/a.txt', 'nieuw/a.txt', h);
  t.is(facts.ino, ino);
  await t.throwsAsync(lstat(path.join(root, 'oud', 'a.txt')), undefined, 'the old name is gone');
  t.is((await stat(path.join(root, 'nieuw', 'a.txt'))).nlink, 1);
  // Journal recovery's way (journal.ts): the move is found done at its target, the leftover name removed.
  await link(path.join(root, 'nieuw', 'a.txt'), path.join(root, 'oud', 'b.txt'));
  t.true(await dropLeftoverLink(root, 'oud/b.txt', 'nieuw/a.txt', ino));
  await t.throwsAsync(lstat(path.join(root, 'oud', 'b.txt')));
  t.is(await readFile(path.join(root, 'nieuw', 'a.txt'), 'utf8'), 'content');
  // Not another file that happens to be at the old path, not a file with one name, not a name that is gone.
  await writeFile(path.join(root, 'oud', 'c.txt'), 'content');
  t.false(await dropLeftoverLink(root, 'oud/c.txt', 'nieuw/a.txt', ino), 'another inode');
  t.false(await dropLeftoverLink(root, 'nieuw/a.txt', 'oud/x.txt', ino), 'the only name of the file');
  t.false(await dropLeftoverLink(root, 'oud/weg.txt', 'nieuw/a.txt', ino));
  // Never for a case-only move: on a case-insensitive disk both are one name, the file's only one.
  await link(path.join(root, 'nieuw', 'a.txt'), path.join(root, 'nieuw', 'A.txt'));
  t.false(await dropLeftoverLink(root, 'nieuw/A.txt', 'nieuw/a.txt', ino));
  t.is(await readFile(path.join(root, 'nieuw', 'A.txt'), 'utf8'), 'content');
  t.is(await readFile(path.join(root, 'oud', 'c.txt'), 'utf8'), 'content');
});

test('moveLocal: renames unchanged content, never replaces, replays cleanly', async (t) => {
  const root = await tempRoot(t);
  await writeFile(path.join(root, 'a.txt'), 'content');
  const h = contentHash(new TextEncoder().encode('content'));
  const before = await stat(path.join(root, 'a.txt'));
  const facts = await moveLocal(root, 'a.txt', 'new/dir/b.txt', h);
  t.is(facts.ino, before.ino);
  t.is(facts.mtimeMs, before.mtimeMs);
  t.is(await readFile(path.join(root, 'new', 'dir', 'b.txt'), 'utf8'), 'content');
  await t.throwsAsync(lstat(path.join(root, 'a.txt')));
  // Replay after a crash: the source is gone, the target holds the content.
  t.deepEqual(await moveLocal(root, 'a.txt', 'new/dir/b.txt', h), facts);
  // Never over an existing file.
  await writeFile(path.join(root, 'c.txt'), 'content');
  await writeFile(path.join(root, 'taken.txt'), 'someone else');
  const exists = await t.throwsAsync(moveLocal(root, 'c.txt', 'taken.txt', h), { instanceOf: LocalFsError });
  t.is(exists?.code, 'exists');
  t.is(await readFile(path.join(root, 'taken.txt'), 'utf8'), 'someone else');
  // Not if the source changed.
  await writeFile(path.join(root, 'c.txt'), 'edited');
  const changed = await t.throwsAsync(moveLocal(root, 'c.txt', 'd.txt', h), { instanceOf: LocalFsError });
  t.is(changed?.code, 'changed');
  const missing = await t.throwsAsync(moveLocal(root, 'nothing.txt', 'e.txt', h), { instanceOf: LocalFsError });
  t.is(missing?.code, 'not_found');
});
