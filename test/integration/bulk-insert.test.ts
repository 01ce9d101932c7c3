// insertRows (server/src/db/bulk-insert.ts) and whereInValues (db/in-values.ts): a commit's rows and id lists as one
// JSON parameter on sqlite, Knex's multi-row INSERT and whereIn on PostgreSQL. Every value comes back as Knex's own
// INSERT stores it (a twin table), across parts; a failing row fails the statement like an INSERT; a list selects
// exactly what Knex's whereIn selects.
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { openDatabase } from '../../server/dist/db/db.js';
import { insertRows } from '../../server/dist/db/bulk-insert.js';
import { whereInValues } from '../../server/dist/db/in-values.js';
import { databaseEnv } from '../helpers/server.js';

/** The server's database (sqlite, or PostgreSQL in the pg- twin) in a temp dir, closed and removed after the test. */
async function openTemp(t: ExecutionContext): Promise<Knex> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'kluis-bulk-'));
  const { KLUIS_DATABASE_URL: url } = await databaseEnv(dataDir);
  const db = await openDatabase({ dataDir, ...(url ? { url } : {}) });
  t.teardown(async () => {
    await db.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return db;
}

async function columns(db: Knex, name: string): Promise<void> {
  await db.schema.createTable(name, (tb) => {
    tb.string('id', 32).primary();
    tb.string('parent_id', 32);
    tb.integer('ord').notNullable();
    tb.bigInteger('big').notNullable();
    tb.double('mtime');
    tb.boolean('deleted').notNullable();
    tb.binary('manifest').notNullable();
    tb.text('wrap').notNullable();
    tb.text('note');
  });
}

function row(i: number) {
  return {
    id: `v${String(i).padStart(5, '0')}`,
    parent_id: i % 3 ? null : `p${i}`,
    ord: i - 600,
    big: 2 ** 52 + i,
    mtime: i % 2 ? 1_790_000_000_000.125 + i : null,
    deleted: i % 4 === 0,
    manifest: Buffer.from(Array.from({ length: i % 11 ? 40 + (i % 7) : 0 }, (_, k) => (i * 31 + k * 7) & 0xff)),
    // long (beside the JSON, db/bulk-insert.ts) for odd rows
    wrap: JSON.stringify({ v: 2, text: `é"\\'; DROP TABLE versions; -- ${i}`, n: i, ...(i % 2 ? { pad: 'x'.repeat(300) } : {}) }),
    note: i % 5 === 0 ? null : i % 5 === 1 ? `${i}: é€😀 `.repeat(40) : i % 5 === 2 ? '' : `n${i}`,
  };
}

test('insertRows stores what Knex\'s INSERT stores, across parts; a bad row fails the whole statement', async (t) => {
  const db = await openTemp(t);
  await columns(db, 'bulk_json');
  await columns(db, 'bulk_knex');
  const rows = Array.from({ length: 1_234 }, (_, i) => row(i)); // three sqlite parts of at most 500
  await db.transaction(async (trx) => insertRows(trx, 'bulk_json', rows, 50));
  for (let i = 0; i < rows.length; i += 50) await db('bulk_knex').insert(rows.slice(i, i + 50));
  const viaJson = await db('bulk_json').orderBy('id');
  const viaKnex = await db('bulk_knex').orderBy('id');
  t.is(viaJson.length, rows.length);
  t.deepEqual(viaJson, viaKnex);
  t.true(Buffer.isBuffer(viaJson[5].manifest));
  t.deepEqual(viaJson[5].manifest, rows[5]!.manifest);
  t.is(viaJson[7].wrap, rows[7]!.wrap);
  t.is(viaJson[6].note, rows[6]!.note);
  t.is(viaJson[5].note, null);
  t.is(viaJson[7].note, '');
  t.deepEqual(viaJson[11].manifest, Buffer.alloc(0));

  // A duplicate key in the last part: nothing of that call is left once its transaction rolls back.
  const again = [row(5000), row(5001), row(3)];
  await t.throwsAsync(db.transaction(async (trx) => insertRows(trx, 'bulk_json', again, 50)));
  t.is(Number((await db('bulk_json').count({ n: '*' }))[0]!.n), rows.length);
  await t.throwsAsync(insertRows(db, 'bulk_json', [row(6000), { ...row(6001), extra: 1 }], 50), { message: /different columns/ });
  await t.throwsAsync(insertRows(db, 'bulk_json', [row(6000), { ...row(6001), manifest: 'text' }], 50), { message: /mixes Buffers/ });
  await insertRows(db, 'bulk_json', [], 50);
  t.is(Number((await db('bulk_json').count({ n: '*' }))[0]!.n), rows.length);
});

test('whereInValues selects what whereIn selects: missing, repeated and odd ids, an empty list, combined with other conditions', async (t) => {
  const db = await openTemp(t);
  await columns(db, 'in_probe');
  const odd = `it's "x") OR 1=1 --`;
  await insertRows(db, 'in_probe', [...Array.from({ length: 700 }, (_, i) => row(i)), { ...row(9999), id: odd }], 50);
  const ids = [...Array.from({ length: 600 }, (_, i) => row(i * 2).id), 'absent', row(4).id, odd];
  const ours = (list: string[]) => whereInValues(db, db('in_probe as p').where('p.ord', '>', -590), 'p.id', list).select('p.id').orderBy('p.id');
  const knexs = (list: string[]) => db('in_probe as p').where('p.ord', '>', -590).whereIn('p.id', list).select('p.id').orderBy('p.id');
  const got = await ours(ids);
  t.deepEqual(got, await knexs(ids));
  t.is(got.length, 345, 'the even ids from 12 to 698 (ord > -590) and the odd one, each once');
  t.true(got.some((r: { id: string }) => r.id === odd));
  t.deepEqual(await ours([]), []);
  t.deepEqual(await ours(['absent']), []);
});
