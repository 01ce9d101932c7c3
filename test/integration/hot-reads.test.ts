// The prepared hot reads (server/src/db/hot-reads.ts): one statement per SQL text serves every binding, a row committed
// through the writer is seen by the next read, a bad statement fails alone, and close() leaves nothing open.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase, openReadDatabase } from '../../server/dist/db/db.js';
import { inList, openHotReads } from '../../server/dist/db/hot-reads.js';
import { databaseEnv } from '../helpers/server.js';

test('hot reads: prepared once, bound anew; fresh commits seen; a failing statement fails alone; closed after close()', async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'kluis-hot-'));
  const { KLUIS_DATABASE_URL: url } = await databaseEnv(dataDir);
  const db = await openDatabase({ dataDir, ...(url ? { url } : {}) });
  const read = openReadDatabase({ dataDir, ...(url ? { url } : {}) });
  const hot = await openHotReads({ dataDir, read, ...(url ? { url } : {}) });
  t.teardown(async () => {
    await hot.close();
    await read.destroy();
    await db.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });
  await db.schema.createTable('hot_probe', (tb) => {
    tb.string('id').primary();
    tb.string('grp').notNullable();
    tb.integer('n').notNullable();
  });
  await db('hot_probe').insert([{ id: 'a', grp: 'x', n: 1 }, { id: 'b', grp: 'x', n: 2 }, { id: 'c', grp: 'y', n: 3 }]);

  const byGroup = 'SELECT id, n AS "theN" FROM hot_probe WHERE grp = ? ORDER BY n';
  t.deepEqual((await hot.all(byGroup, ['x'])).map((r) => r.id), ['a', 'b']);
  t.deepEqual((await hot.all(byGroup, ['y'])).map((r) => r.id), ['c'], 'the same statement, other bindings');
  t.deepEqual(await hot.all(byGroup, ['none']), []);
  t.is(Number((await hot.first<{ theN: number }>(byGroup, ['y']))!.theN), 3, 'quoted aliases keep their case on both engines');
  t.is(await hot.first(byGroup, ['none']), undefined);

  // Many at once over the connections: each answer is its own.
  const many = await Promise.all(Array.from({ length: 40 }, (_, i) => hot.all(byGroup, [i % 2 ? 'x' : 'y'])));
  many.forEach((rows, i) => t.is(rows.length, i % 2 ? 2 : 1));

  // A commit through the writer is seen by the next read of a statement prepared before it.
  await db('hot_probe').insert({ id: 'd', grp: 'y', n: 4 });
  for (let i = 0; i < 4; i++) t.deepEqual((await hot.all(byGroup, ['y'])).map((r) => r.id), ['c', 'd']);

  // IN lists: padded to a power of two with the last value, same rows.
  const { marks, bindings } = inList(['a', 'c', 'd']);
  t.is(marks, '?, ?, ?, ?');
  t.deepEqual(bindings, ['a', 'c', 'd', 'd']);
  t.deepEqual((await hot.all(`SELECT id FROM hot_probe WHERE id IN (${marks}) ORDER BY id`, bindings)).map((r) => r.id), ['a', 'c', 'd']);
  t.throws(() => inList([]), { instanceOf: RangeError });
  t.throws(() => inList(Array.from({ length: 513 }, (_, i) => i)), { instanceOf: RangeError });

  // A statement that cannot be prepared rejects, again on a second try, and the others go on.
  await t.throwsAsync(hot.all('SELECT nope FROM hot_probe WHERE id = ?', ['a']));
  await t.throwsAsync(hot.all('SELECT nope FROM hot_probe WHERE id = ?', ['a']));
  t.is((await hot.all(byGroup, ['x'])).length, 2);
  // Read-only: the hot reads never write.
  await t.throwsAsync(hot.all("UPDATE hot_probe SET n = 9 WHERE id = ?", ['a']));
  t.is(Number((await db('hot_probe').where({ id: 'a' }).first()).n), 1);

  // A `*` statement prepared before a column was added (another node's migration) answers with the new column, on
  // every connection (PostgreSQL refuses the old plan once with 0A000; it is prepared again under a new name).
  const star = 'SELECT * FROM hot_probe WHERE id = ?';
  for (let i = 0; i < 8; i++) t.deepEqual(Object.keys((await hot.first(star, ['a']))!), ['id', 'grp', 'n']);
  await db.schema.alterTable('hot_probe', (tb) => tb.integer('extra').notNullable().defaultTo(7));
  for (let i = 0; i < 8; i++) t.is(Number((await hot.first<{ extra: number }>(star, ['a']))!.extra), 7);

  await hot.close();
  await t.throwsAsync(hot.all(byGroup, ['x']), { message: /closed/ });
});
