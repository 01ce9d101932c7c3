// insertRows (server/src/db/bulk-insert.ts): a commit's rows as one JSON parameter per part on sqlite, Knex's
// multi-row INSERT on PostgreSQL. Every value comes back as Knex's own INSERT stores it (a twin table), across parts,
// and a failing row fails the statement like an INSERT.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { openDatabase } from '../../server/dist/db/db.js';
import { insertRows } from '../../server/dist/db/bulk-insert.js';
import { databaseEnv } from '../helpers/server.js';

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
    manifest: Buffer.from(Array.from({ length: 40 + (i % 7) }, (_, k) => (i * 31 + k * 7) & 0xff)),
    wrap: JSON.stringify({ v: 2, text: `é"\\'; DROP TABLE versions; -- ${i}`, n: i }),
  };
}

test('insertRows stores what Knex\'s INSERT stores, across parts; a bad row fails the whole statement', async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'kluis-bulk-'));
  const { KLUIS_DATABASE_URL: url } = await databaseEnv(dataDir);
  const db = await openDatabase({ dataDir, ...(url ? { url } : {}) });
  t.teardown(async () => {
    await db.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });
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

  // A duplicate key in the last part: nothing of that call is left once its transaction rolls back.
  const again = [row(5000), row(5001), row(3)];
  await t.throwsAsync(db.transaction(async (trx) => insertRows(trx, 'bulk_json', again, 50)));
  t.is(Number((await db('bulk_json').count({ n: '*' }))[0]!.n), rows.length);
  await t.throwsAsync(insertRows(db, 'bulk_json', [row(6000), { ...row(6001), extra: 1 }], 50), { message: /different columns/ });
  await insertRows(db, 'bulk_json', [], 50);
  t.is(Number((await db('bulk_json').count({ n: '*' }))[0]!.n), rows.length);
});
