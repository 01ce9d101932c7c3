// The client's local index (desktop/src/sync/index-db.ts): migrations, folders, base/remote round trips, batching
// beyond one statement, all-or-nothing changes, the operation journal.
import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sqlite3 from 'sqlite3';
import { BATCH_ROWS, INDEX_FILENAME, IndexDb } from '../../desktop/dist/sync/index-db.js';
import type { BaseEntry, RemoteEntry } from '../../desktop/dist/sync/types.js';

async function openTemp(t: ExecutionContext): Promise<{ db: IndexDb; home: string }> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'kluis-index-'));
  const db = await IndexDb.open(home);
  t.teardown(async () => {
    await db.close().catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  });
  return { db, home };
}

function base(i: number, over: Partial<BaseEntry> = {}): BaseEntry {
  return {
    path: `map ${i % 10}/bestand-${i}.txt`, kind: 'file', fileId: `file${i}`, versionId: `ver${i}`, hash: i.toString(16).padStart(64, '0'),
    size: i * 3, mtimeMs: 1_790_000_000_000 + i, localSize: i * 3, localMtimeMs: 1_790_000_000_000.123 + i, localIno: 9_007_199_254_740_000 + i, ...over,
  };
}

function remote(i: number, over: Partial<RemoteEntry> = {}): RemoteEntry {
  return {
    fileId: `file${i}`, versionId: `ver${i}`, seq: i + 1, path: `map/é${i}.txt`, kind: 'file', size: 7, mtimeMs: 1_790_000_000_000, hash: 'ab'.repeat(32),
    deleted: false, chunks: [['cd'.repeat(32), 7]], keyEpoch: 2, ...over,
  };
}

test('index: opens <home>/index.sqlite3, migrates once, reopens', async (t) => {
  const { db, home } = await openTemp(t);
  t.true(existsSync(path.join(home, INDEX_FILENAME)));
  const f = await db.folder('space1', path.join(home, 'sync'));
  await db.close();
  const again = await IndexDb.open(home);
  t.deepEqual(await again.folders(), [f]);
  const mode = (await again.knex.raw('PRAGMA journal_mode')) as { journal_mode: string }[];
  t.is(mode[0]!.journal_mode, 'wal');
  await again.close();
});

test('index: an index with every migration opens without the migrator; one a migration short is migrated; one a newer client migrated is refused', async (t) => {
  const { db, home } = await openTemp(t);
  const names = ((await db.knex('schema_migrations').select('name')) as { name: string }[]).map((r) => r.name);
  t.true(names.length >= 3);
  // The migrator's lock row is written on every run of it: untouched when nothing is pending.
  await db.knex('schema_migrations_lock').update({ is_locked: 7 });
  await db.close();
  const same = await IndexDb.open(home);
  t.is(((await same.knex('schema_migrations_lock').first('is_locked')) as { is_locked: number }).is_locked, 7, 'the migrator did not run');
  await same.knex('schema_migrations_lock').update({ is_locked: 0 });
  // An index from before the last migration (as an older client left it): migrated on open.
  const last = names[names.length - 1]!;
  t.is(last, '003_base_chunks');
  await same.knex.schema.dropTable('base_chunks');
  await same.knex('schema_migrations').where({ name: last }).delete();
  await same.close();
  const older = await IndexDb.open(home);
  t.true(await older.knex.schema.hasTable('base_chunks'));
  t.deepEqual(((await older.knex('schema_migrations').select('name')) as { name: string }[]).map((r) => r.name), names);
  // A migration this client does not know (a newer client's index): refused as before, not silently used.
  await older.knex('schema_migrations').insert({ name: '999_from_the_future', batch: 99, migration_time: new Date() });
  await older.close();
  await t.throwsAsync(IndexDb.open(home), { message: /999_from_the_future|corrupt/i });
});

test('index: folder() gets or creates by (space, root)', async (t) => {
  const { db, home } = await openTemp(t);
  const a = await db.folder('space1', path.join(home, 'A'));
  const a2 = await db.folder('space1', path.join(home, 'sub', '..', 'A'));
  const b = await db.folder('space1', path.join(home, 'B'));
  const c = await db.folder('space2', path.join(home, 'A'));
  t.is(a2.id, a.id);
  t.not(b.id, a.id);
  t.not(c.id, a.id);
  t.is(a.lastSeq, 0);
  t.is(a.root, path.join(home, 'A'));
  await db.setLastSeq(a.id, 42);
  t.is((await db.folderById(a.id))!.lastSeq, 42);
  t.is((await db.folder('space1', path.join(home, 'A'))).lastSeq, 42);
  await t.throwsAsync(db.setLastSeq(a.id, -1), { instanceOf: RangeError });
  await t.throwsAsync(db.setLastSeq(9999, 1), { message: /no folder/ });
});

test('index: base entries round trip exactly (fractional mtimes, big inodes), upsert and delete', async (t) => {
  const { db, home } = await openTemp(t);
  const f = await db.folder('s', home);
  const entries = [base(1), base(2), base(3, { kind: 'dir', size: 0, localSize: 0, path: 'map leeg' })];
  await db.putBase(f.id, entries);
  const got = await db.baseAll(f.id);
  t.deepEqual([...got.values()].sort((x, y) => x.path.localeCompare(y.path)), [...entries].sort((x, y) => x.path.localeCompare(y.path)));
  const moved = { ...base(1), versionId: 'ver1b', hash: 'f'.repeat(64) };
  await db.putBase(f.id, [moved]);
  t.deepEqual((await db.baseAll(f.id)).get(moved.path), moved);
  await db.deleteBase(f.id, [base(2).path, 'not there']);
  t.deepEqual([...(await db.baseAll(f.id)).keys()].sort(), [base(1).path, 'map leeg'].sort());
});

test(`index: batches beyond ${BATCH_ROWS} rows per statement, one transaction`, async (t) => {
  const { db, home } = await openTemp(t);
  const f = await db.folder('s', home);
  const other = await db.folder('s', path.join(home, 'other'));
  const n = BATCH_ROWS * 4 + 123;
  const entries = Array.from({ length: n }, (_, i) => base(i));
  await db.putBase(f.id, entries);
  await db.putBase(other.id, [base(0)]);
  const got = await db.baseAll(f.id);
  t.is(got.size, n);
  t.deepEqual(got.get(base(n - 1).path), base(n - 1));
  await db.deleteBase(f.id, entries.slice(0, n - 10).map((e) => e.path));
  t.is((await db.baseAll(f.id)).size, 10);
  t.is((await db.baseAll(other.id)).size, 1, 'other folders are untouched');
  const rs = Array.from({ length: n }, (_, i) => remote(i));
  await db.putRemote(f.id, rs, n);
  t.is((await db.remoteAll(f.id)).size, n);
  t.is((await db.folderById(f.id))!.lastSeq, n);
});

test('index: remote entries round trip (chunks as JSON, deleted flag) and move the change-log position together', async (t) => {
  const { db, home } = await openTemp(t);
  const f = await db.folder('s', home);
  const r1 = remote(1);
  const r2 = remote(2, { deleted: true, chunks: [], size: 0, kind: 'dir' });
  await db.putRemote(f.id, [r1, r2], 7);
  const got = await db.remoteAll(f.id);
  t.deepEqual(got.get('file1'), r1);
  t.deepEqual(got.get('file2'), r2);
  t.is((await db.folderById(f.id))!.lastSeq, 7);
  const r1b = remote(1, { versionId: 'next', seq: 9, path: 'elders.txt' });
  await db.putRemote(f.id, [r1b]);
  t.deepEqual((await db.remoteAll(f.id)).get('file1'), r1b);
  t.is((await db.folderById(f.id))!.lastSeq, 7, 'without lastSeq the position stays');
  await db.deleteRemote(f.id, ['file2']);
  t.deepEqual([...(await db.remoteAll(f.id)).keys()], ['file1']);
});

test('index: apply() is all or nothing', async (t) => {
  const { db, home } = await openTemp(t);
  const f = await db.folder('s', home);
  await db.putBase(f.id, [base(1)]);
  const j = await db.journalAdd(f.id, 'download', { path: base(2).path });
  // A move (delete + put) and a journal step in one go.
  await db.apply(f.id, { deleteBase: [base(1).path], putBase: [{ ...base(1), path: 'nieuw.txt' }], journalDone: [j] });
  t.deepEqual([...(await db.baseAll(f.id)).keys()], ['nieuw.txt']);
  t.deepEqual(await db.journalPending(f.id), []);
  // A failing part (unknown folder for lastSeq) rolls back the rest.
  const ghost = 4242;
  await t.throwsAsync(db.apply(ghost, { lastSeq: 3 }));
  await t.throwsAsync(db.apply(f.id, { putBase: [base(5)], lastSeq: -4 }));
  t.deepEqual([...(await db.baseAll(f.id)).keys()], ['nieuw.txt']);
  // Foreign keys are on: rows need their folder.
  await t.throwsAsync(db.putBase(ghost, [base(6)]));
});

test('index: the operation journal keeps pending steps in order until they are done', async (t) => {
  const { db, home } = await openTemp(t);
  const f = await db.folder('s', home);
  const g = await db.folder('s', path.join(home, 'g'));
  const a = await db.journalAdd(f.id, 'upload', { path: 'a.txt', chunks: ['x'], n: 1 });
  const b = await db.journalAdd(f.id, 'delete-local', { path: 'b.txt' });
  await db.journalAdd(g.id, 'upload', null);
  t.true(b > a);
  const pending = await db.journalPending(f.id);
  t.deepEqual(pending.map((p) => [p.id, p.op, p.payload, p.state]), [
    [a, 'upload', { path: 'a.txt', chunks: ['x'], n: 1 }, 'pending'],
    [b, 'delete-local', { path: 'b.txt' }, 'pending'],
  ]);
  await db.journalDone(a);
  t.deepEqual((await db.journalPending(f.id)).map((p) => p.id), [b]);
  t.is(await db.journalPrune(f.id), 1);
  t.is((await db.journalPending(g.id)).length, 1);
});

test('index: base and remote rows of a folder larger than one read page come back whole, each once, without another folder\'s', async (t) => {
  const { db, home } = await openTemp(t);
  const f = await db.folder('s', home);
  const other = await db.folder('s', path.join(home, 'other'));
  // 2.5 read pages (index-db READ_PAGE = 5000), names in several scripts and cases: the pages follow sqlite's order.
  const n = 12_345;
  const names = (i: number) => [`Map ${i % 7}/bestand-${i}.txt`, `map ${i % 7}/été ${i}.txt`, `ZZ/${i}`, `a/Ωμέγα-${i}`][i % 4]!;
  await db.putBase(f.id, Array.from({ length: n }, (_, i) => base(i, { path: names(i) })));
  await db.putRemote(f.id, Array.from({ length: n }, (_, i) => remote(i, { path: names(i) })));
  await db.putBase(other.id, [base(n + 1)]);
  await db.putRemote(other.id, [remote(n + 1)]);
  const gotBase = await db.baseAll(f.id);
  const gotRemote = await db.remoteAll(f.id);
  t.is(gotBase.size, n);
  t.is(gotRemote.size, n);
  for (const i of [0, 4999, 5000, 5001, 9999, 10_000, n - 1]) {
    t.deepEqual(gotBase.get(names(i)), base(i, { path: names(i) }));
    t.deepEqual(gotRemote.get(`file${i}`), remote(i, { path: names(i) }));
  }
  t.false(gotBase.has(base(n + 1).path));
  t.false(gotRemote.has(`file${n + 1}`));
});

test('index: writes run one at a time in the order asked; a journal step asked for during a failing transaction survives it', async (t) => {
  const { db, home } = await openTemp(t);
  const f = await db.folder('s', home);
  // Not awaited in between: a transaction that fails after its first statement (a negative position) and rolls back,
  // a journal step asked for while it runs, another transaction, another step. On one connection without the queue
  // the first step's INSERT would land inside the failing transaction and vanish with it, and the second BEGIN
  // would fail inside the first.
  const failing = db.apply(f.id, { putBase: [base(1)], lastSeq: -4 });
  const step = db.journalAdd(f.id, 'commit', { versions: ['v1'] });
  const good = db.apply(f.id, { putBase: [base(2)], lastSeq: 5, putWraps: [{ fileId: 'file2', keyEpoch: 1, wrap: { v: 2 } }] });
  const after = db.journalAdd(f.id, 'local', { steps: [] });
  await t.throwsAsync(failing, { instanceOf: RangeError });
  await good;
  const [a, b] = [await step, await after];
  t.true(b > a, 'in the order asked');
  t.deepEqual((await db.journalPending(f.id)).map((p) => p.id), [a, b]);
  t.deepEqual([...(await db.baseAll(f.id)).keys()], [base(2).path], 'the failing transaction left nothing, the next one committed');
  t.is((await db.folderById(f.id))!.lastSeq, 5);
});

test('index: wraps and chunk lists round trip as JSON; names that look like SQL or JSON are data', async (t) => {
  const { db, home } = await openTemp(t);
  const f = await db.folder('s', home);
  const wrap = { v: 2, epoch: 3, sealed: 'AbC-_'.repeat(20), nested: { list: [1, 2.5, null, true], text: 'é"\\\u0000' } };
  const odd = `it's "quoted" ], [ '); DROP TABLE base; --`;
  const chunks: [string, number][] = [['ef'.repeat(32), 2_097_152], ['01'.repeat(32), 1]];
  await db.apply(f.id, {
    putBase: [base(1, { path: odd, chunks }), base(2, { path: '[1,2]' })],
    putRemote: [remote(1, { path: odd, chunks })],
    putWraps: [{ fileId: 'file1', keyEpoch: 1, wrap }, { fileId: 'file1', keyEpoch: 2, wrap: { ...wrap, epoch: 4 } }],
  });
  t.deepEqual([...(await db.baseAll(f.id)).keys()].sort(), ['[1,2]', odd].sort());
  t.deepEqual(await db.baseChunks(f.id, odd, 'ver1'), chunks);
  t.is(await db.baseChunks(f.id, '[1,2]', 'ver2'), null, 'an entry without chunks has no chunk list');
  t.deepEqual((await db.remoteAll(f.id)).get('file1')!.chunks, chunks);
  t.deepEqual((await db.wraps(f.id, ['file1', 'file2'])).get('file1'), [wrap, { ...wrap, epoch: 4 }]);
  // A move drops the old path's chunk list with its base row.
  await db.apply(f.id, { deleteBase: [odd], deleteRemote: ['file1'] });
  t.is(await db.baseChunks(f.id, odd, 'ver1'), null);
  t.is((await db.remoteAll(f.id)).size, 0);
});

test('index: rows written from JSON parameters hold text, integers and reals, as bound values did (typeof in sqlite)', async (t) => {
  const { db, home } = await openTemp(t);
  const f = await db.folder('s', home);
  const chunks: [string, number][] = [['ef'.repeat(32), 7]];
  await db.apply(f.id, {
    putBase: [base(1, { path: 'été/ß ✓.txt', chunks })],
    putRemote: [remote(1, { path: 'été/ß ✓.txt', chunks })],
    putWraps: [{ fileId: 'file1', keyEpoch: 1, wrap: { sealed: 'é' } }],
  });
  await db.journalAdd(f.id, 'commit', { path: 'été' });
  // The index's own connection is busy with nothing now; a second one reads the file as it is.
  const raw = new sqlite3.Database(path.join(home, INDEX_FILENAME), sqlite3.OPEN_READONLY);
  t.teardown(() => new Promise<void>((resolve) => raw.close(() => resolve())));
  const get = (sql: string) => new Promise<Record<string, unknown>>((resolve, reject) => raw.get(sql, (err, row) => (err ? reject(err) : resolve(row as Record<string, unknown>))));
  t.deepEqual(await get('SELECT typeof(path) p, typeof(hash) h, typeof(size) s, typeof(mtime_ms) m, typeof(local_mtime_ms) lm, typeof(local_ino) li, path FROM base'),
    { p: 'text', h: 'text', s: 'integer', m: 'real', lm: 'real', li: 'real', path: 'été/ß ✓.txt' });
  t.deepEqual(await get('SELECT typeof(chunks) c, chunks FROM base_chunks'), { c: 'text', chunks: JSON.stringify(chunks) });
  t.deepEqual(await get('SELECT typeof(file_id) f, typeof(seq) s, typeof(deleted) d, typeof(chunks) c, path FROM remote'), { f: 'text', s: 'integer', d: 'integer', c: 'text', path: 'été/ß ✓.txt' });
  t.deepEqual(await get('SELECT typeof(wrap) w, wrap FROM file_wraps'), { w: 'text', wrap: '{"sealed":"é"}' });
  t.deepEqual(await get('SELECT typeof(payload) p, payload FROM journal'), { p: 'text', payload: '{"path":"été"}' });
});

test('index: close() lets the writes asked for before it finish', async (t) => {
  const { db, home } = await openTemp(t);
  const f = await db.folder('s', home);
  const entries = Array.from({ length: BATCH_ROWS * 2 + 7 }, (_, i) => base(i));
  const writes = [db.putBase(f.id, entries), db.journalAdd(f.id, 'commit', { versions: [] }), db.setLastSeq(f.id, 42)];
  await db.close();
  await Promise.all(writes);
  const again = await IndexDb.open(home);
  t.teardown(() => again.close());
  t.is((await again.baseAll(f.id)).size, entries.length);
  t.is((await again.journalPending(f.id)).length, 1);
  t.is((await again.folderById(f.id))!.lastSeq, 42);
});
