// The kept prepared statements of the sqlite Knex client (server/src/db/sqlite-statements.ts, issue 21 §2): Knex's
// answers stay what they were (rows, inserted ids, changed-row counts) when a statement is run again with new bindings,
// inside and outside transactions and savepoints; a failing statement fails alone and its text works again; a kept
// `SELECT *` follows a schema change; more texts than are kept still run; destroy() closes with statements kept.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase } from '../../server/dist/db/db.js';
import { STATEMENTS_PER_CONNECTION, keptStatement } from '../../server/dist/db/sqlite-statements.js';

test('kept statements: same answers as Knex gave, errors alone, schema changes followed, eviction, clean close', async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'kluis-kept-'));
  const db = await openDatabase({ dataDir });
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  await db.schema.createTable('kept_probe', (tb) => {
    tb.increments('id');
    tb.string('name').notNullable().unique();
    tb.integer('n').notNullable();
  });

  // Inserted ids and changed-row counts come from the statement's context (lastID, changes).
  const ids: unknown[] = [];
  for (let i = 1; i <= 5; i++) ids.push((await db('kept_probe').insert({ name: `p${i}`, n: i }))[0]);
  t.deepEqual(ids, [1, 2, 3, 4, 5]);
  t.is(await db('kept_probe').where('n', '>', 2).update({ n: 0 }), 3);
  t.is(await db('kept_probe').where('n', '>', 0).update({ n: 9 }), 2);
  t.is(await db('kept_probe').where({ name: 'nobody' }).del(), 0);
  t.deepEqual(await db('kept_probe').where({ n: 9 }).orderBy('id').pluck('name'), ['p1', 'p2']);
  t.deepEqual(await db('kept_probe').where({ n: 0 }).orderBy('id').pluck('name'), ['p3', 'p4', 'p5']);
  t.deepEqual(await db('kept_probe').where({ name: 'p4' }).first('id'), { id: 4 });

  // A constraint failure fails that statement alone; the same text then works; savepoints roll back their own rows.
  await t.throwsAsync(db('kept_probe').insert({ name: 'p1', n: 1 }), { message: /UNIQUE/ });
  t.deepEqual(await db('kept_probe').insert({ name: 'p6', n: 6 }), [6]);
  await db.transaction(async (trx) => {
    await trx('kept_probe').insert({ name: 'p7', n: 7 });
    await t.throwsAsync(trx.transaction(async (sp) => {
      await sp('kept_probe').insert({ name: 'p8', n: 8 });
      await sp('kept_probe').insert({ name: 'p1', n: 1 });
    }), { message: /UNIQUE/ });
    await trx('kept_probe').insert({ name: 'p9', n: 9 });
  });
  t.deepEqual(await db('kept_probe').orderBy('id').pluck('name'), ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p9']);
  // A transaction that throws leaves nothing behind, and a kept SELECT still sees the committed rows only.
  await t.throwsAsync(db.transaction(async (trx) => {
    await trx('kept_probe').insert({ name: 'p10', n: 10 });
    throw new Error('rolled back');
  }));
  t.is((await db('kept_probe').count({ c: '*' }).first())!.c, 8);

  // A kept SELECT * follows a new column (sqlite recompiles it).
  const star = () => db('kept_probe').where({ id: 1 }).first();
  t.deepEqual(Object.keys((await star())!), ['id', 'name', 'n']);
  await db.schema.alterTable('kept_probe', (tb) => tb.integer('extra').notNullable().defaultTo(42));
  t.deepEqual(await star(), { id: 1, name: 'p1', n: 9, extra: 42 });

  // More distinct texts than a connection keeps: the oldest are finalized, every answer stays right.
  for (let i = 0; i < STATEMENTS_PER_CONNECTION + 50; i++) {
    const row = await db.raw(`SELECT ? + ${i} AS v`, [1]);
    t.is((row as { v: number }[])[0]!.v, 1 + i);
  }
  t.deepEqual(await db('kept_probe').where({ name: 'p2' }).first('n'), { n: 9 });

  // Only data statements are kept.
  t.true(keptStatement('select 1') && keptStatement(' INSERT INTO x') && keptStatement('WITH a AS (SELECT 1) SELECT * FROM a'));
  t.false(keptStatement('BEGIN IMMEDIATE;') || keptStatement('SAVEPOINT trx2') || keptStatement('PRAGMA foreign_keys = ON') || keptStatement('create table y (a)'));

  await db.destroy(); // would fail (SQLITE_BUSY) if kept statements were left unfinalized
  t.pass();
});
