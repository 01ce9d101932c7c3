// Journal recovery of local moves (desktop/src/sync/journal.ts) on a real index and a real folder: a move found done
// at its target is recorded, and the file's old name, if a kill left it as a second link of the moved file, is
// removed with its base row. Before, the row went and the name stayed: the next pass uploaded the file as new at its
// old path (test/integration/sync-crash.test.ts found it in about one run in forty).
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

async function setUp(t: ExecutionContext) {
  const home = await mkdtemp(path.join(os.tmpdir(), 'kluis-journal-'));
  const root = path.join(home, 'map');
  await mkdir(path.join(root, 'oud'), { recursive: true });
  await mkdir(path.join(root, 'nieuw'));
  const db = await IndexDb.open(home);
  t.teardown(async () => {
    await db.close().catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  });
  const folder = await db.folder('space1', root);
  // Only what recovery of local steps uses; crypto is asked for once, up front.
  const ctx = { db, folder, crypto: async () => ({}), abs: (rel: string) => path.join(root, rel) } as unknown as SyncContext;
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
