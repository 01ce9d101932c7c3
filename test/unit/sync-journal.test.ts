// Journal recovery of local moves and conflict copies (desktop/src/sync/journal.ts) on a real index and a real folder:
// a move found done at its target is recorded, and the file's old name, if a kill left it as a second link of the
// moved file, is removed with its base row. Before, the row went and the name stayed: the next pass uploaded the file
// as new at its old path (test/integration/sync-crash.test.ts found it in about one run in forty). A conflict copy
// made the same way (link, unlink) loses its leftover old name too, instead of being copied a second time.
import test, { type ExecutionContext } from 'ava';
import { link, lstat, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { contentHash, initCrypto } from '@kluis/shared';
import type { SyncContext } from '../../desktop/dist/sync/context.js';
import { IndexDb } from '../../desktop/dist/sync/index-db.js';
import { recoverJournal, type JournalLocal } from '../../desktop/dist/sync/journal.js';
import type { BaseEntry } from '../../desktop/dist/sync/types.js';

test.before(async () => {
  await initCrypto();
});

/** A real index and an empty synced folder, and the part of a pass's context that recovery of local steps uses. */
async function openFolder(t: ExecutionContext) {
  const home = await mkdtemp(path.join(os.tmpdir(), 'kluis-journal-'));
  const root = path.join(home, 'map');
  await mkdir(root, { recursive: true });
  const db = await IndexDb.open(home);
  t.teardown(async () => {
    await db.close().catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  });
  const folder = await db.folder('space1', root);
  // crypto is asked for once, up front; local steps need none of it.
  const ctx = { db, folder, crypto: async () => ({}), abs: (rel: string) => path.join(root, rel) } as unknown as SyncContext;
  return { db, folder, ctx, root };
}

/** A synced file oud/a.txt and a journalled move of it to nieuw/a.txt, not yet done. */
async function setUp(t: ExecutionContext) {
  const { db, folder, ctx, root } = await openFolder(t);
  await mkdir(path.join(root, 'oud'));
  await mkdir(path.join(root, 'nieuw'));
  const content = new TextEncoder().encode('inhoud van het dossier');
  await writeFile(path.join(root, 'oud', 'a.txt'), content);
  const st = await stat(path.join(root, 'oud', 'a.txt'));
  const old: BaseEntry = {
    path: 'oud/a.txt', kind: 'file', fileId: 'file1', versionId: 'ver1', hash: contentHash(content), size: content.length, mtimeMs: Math.trunc(st.mtimeMs),
    localSize: st.size, localMtimeMs: st.mtimeMs, localIno: st.ino,
  };
  await db.apply(folder.id, { putBase: [old] });
  const { localSize: _s, localMtimeMs: _m, localIno: _i, ...target } = { ...old, path: 'nieuw/a.txt', versionId: 'ver2' };
  await db.journalAdd(folder.id, 'local', { steps: [{ path: 'nieuw/a.txt', disk: 'nieuw/a.txt', from: 'oud/a.txt', base: target }] } satisfies JournalLocal);
  return { db, folder, ctx, root, ino: st.ino };
}

test('a move killed between link and unlink: recovery records it and removes the old name', async (t) => {
  const { db, folder, ctx, root, ino } = await setUp(t);
  await link(path.join(root, 'oud', 'a.txt'), path.join(root, 'nieuw', 'a.txt'));
  t.true(await recoverJournal(ctx, new Map()));
  const base = await db.baseAll(folder.id);
  t.deepEqual([...base.keys()], ['nieuw/a.txt']);
  t.is(base.get('nieuw/a.txt')!.versionId, 'ver2');
  t.is(base.get('nieuw/a.txt')!.localIno, ino);
  await t.throwsAsync(lstat(path.join(root, 'oud', 'a.txt')), undefined, 'the old name is gone with its row');
  t.is((await stat(path.join(root, 'nieuw', 'a.txt'))).nlink, 1);
  t.deepEqual(await db.journalPending(folder.id), []);
});

test('a move killed before its link: recovery changes nothing, the next pass moves it', async (t) => {
  const { db, folder, ctx, root } = await setUp(t);
  t.true(await recoverJournal(ctx, new Map()));
  t.deepEqual([...(await db.baseAll(folder.id)).keys()], ['oud/a.txt']);
  t.true((await lstat(path.join(root, 'oud', 'a.txt'))).isFile());
  t.deepEqual(await db.journalPending(folder.id), []);
});

test('a conflict copy killed between link and unlink: recovery removes the old name, the server version comes next', async (t) => {
  const { db, folder, ctx, root } = await openFolder(t);
  const synced = new TextEncoder().encode('versie 1');
  const mine = new TextEncoder().encode('versie 2, hier bewerkt');
  await writeFile(path.join(root, 'nota.txt'), mine);
  const st = await stat(path.join(root, 'nota.txt'));
  const base: BaseEntry = {
    path: 'nota.txt', kind: 'file', fileId: 'file1', versionId: 'ver1', hash: contentHash(synced), size: synced.length, mtimeMs: 1_790_000_000_000,
    localSize: synced.length, localMtimeMs: 1_790_000_000_000, localIno: st.ino,
  };
  await db.apply(folder.id, { putBase: [base] });
  const copy = 'nota (conflict laptop 2026-12-01 0400).txt';
  const theirs = { path: 'nota.txt', kind: 'file' as const, fileId: 'file1', versionId: 'ver2', hash: contentHash(new TextEncoder().encode('versie 2, elders')), size: 16, mtimeMs: 1_790_000_100_000 };
  await db.journalAdd(folder.id, 'local', { steps: [{ path: 'nota.txt', disk: 'nota.txt', copy, base: theirs }] } satisfies JournalLocal);
  await link(path.join(root, 'nota.txt'), path.join(root, copy)); // killed here: the local version under both names
  t.true(await recoverJournal(ctx, new Map()));
  await t.throwsAsync(lstat(path.join(root, 'nota.txt')), undefined, 'the old name is gone: the next pass downloads the server version there');
  t.is((await stat(path.join(root, copy))).nlink, 1);
  t.deepEqual((await db.baseAll(folder.id)).get('nota.txt'), base, 'the base row stays until the download');
});
