// The database layer on PostgreSQL (server/src/db/postgres.ts, the PostgreSQL branch of migrations.ts): column types,
// the audit tables' triggers, bigints as numbers, read-only read connections, the writer lock, and the audit chain
// appended by two "nodes" (two pools, each with its group committer) at once.
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import * as k from '@kluis/shared';
import { openDatabase, openReadDatabase, type Db, type Tx } from '../../server/dist/db/db.js';
import { AUDIT_LOCK, LOCK_NAMESPACE } from '../../server/dist/db/postgres.js';
import { GroupCommitter } from '../../server/dist/db/group-commit.js';
import { SqlAuditLog, loadOrCreateServerSigningKey } from '../../server/dist/audit/log.js';
import type { AuditEntryInput } from '../../server/dist/audit/types.js';
import { sharedPostgres } from '../helpers/postgres.js';
import { usePostgres } from '../helpers/postgres-suite.js';

usePostgres();

const entry = (i: number): AuditEntryInput => ({ orgId: 'orgA', actorUserId: 'u1', actorDeviceId: 'd1', action: 'changes.read', targetType: 'space', targetId: 's1', outcome: 'success', details: { i } });

/** A fresh migrated database; closed (and its key dir removed) after the test. */
async function fresh(t: ExecutionContext): Promise<{ url: string; dir: string; db: Db }> {
  await k.initCrypto();
  const url = await (await sharedPostgres()).createDatabase();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kluis-pgdb-'));
  const db = await openDatabase({ dataDir: dir, url });
  t.teardown(async () => {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  return { url, dir, db };
}

/** A node: its own pools, group committer and audit log, with the lock the server passes (services.ts). */
async function node(t: ExecutionContext, url: string, dir: string, options: { locks?: boolean } = {}) {
  const db = options.locks === false
    ? knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 10 } }) // plain Knex: no writer lock
    : await openDatabase({ dataDir: dir, url });
  t.teardown(() => db.destroy());
  const committer = new GroupCommitter(db);
  const log = new SqlAuditLog(db, await loadOrCreateServerSigningKey(dir), {
    checkpointEvery: 100,
    transact: (fn) => committer.run(fn),
    ...(options.locks === false ? {} : { beforeAppend: async (trx: Tx) => void (await trx.raw('SELECT pg_advisory_xact_lock(?, ?)', [LOCK_NAMESPACE, AUDIT_LOCK])) }),
  });
  return { db, log, committer };
}

test('migrations: ms times, seqs and sizes are bigint, manifests bytea, flags boolean; migrating again changes nothing', async (t) => {
  const { url, dir, db } = await fresh(t);
  const cols = (await db('information_schema.columns').where({ table_schema: 'public' }).select('table_name', 'column_name', 'data_type')) as { table_name: string; column_name: string; data_type: string }[];
  const type = (table: string, column: string) => cols.find((c) => c.table_name === table && c.column_name === column)?.data_type;
  for (const c of cols.filter((c) => /(_at|^ts|seq|^size|_bytes|^offset|window_start|locked_until|expires_at)$/.test(c.column_name) && !c.table_name.startsWith('schema_migrations'))) {
    t.is(c.data_type, 'bigint', `${c.table_name}.${c.column_name}`);
  }
  t.is(type('versions', 'manifest'), 'bytea');
  t.is(type('versions', 'deleted'), 'boolean');
  t.is(type('chunks', 'live'), 'boolean');
  t.is(type('users', 'key_bundle'), 'text');
  const before = await db('schema_migrations').count({ n: '*' }).first();
  const again = await openDatabase({ dataDir: dir, url });
  await again.destroy();
  t.deepEqual(await db('schema_migrations').count({ n: '*' }).first(), before);
});

test('triggers: UPDATE, DELETE and TRUNCATE of the audit tables are refused, and so are INSERTs off the chain', async (t) => {
  const { dir, db } = await fresh(t);
  const log = new SqlAuditLog(db, await loadOrCreateServerSigningKey(dir));
  for (let i = 0; i < 3; i++) await log.appendStandalone(entry(i));
  await log.checkpoint();
  for (const table of ['audit_log', 'audit_checkpoints']) {
    await t.throwsAsync(db(table).update({ hash: 'f'.repeat(64) }), { message: /append-only/ }, `${table} update`);
    await t.throwsAsync(db(table).where('seq', '>', 0).del(), { message: /append-only/ }, `${table} delete`);
    await t.throwsAsync(db.raw(`TRUNCATE ${table} CASCADE`), { message: /append-only/ }, `${table} truncate`);
  }
  const head = (await db('audit_log').orderBy('seq', 'desc').first()) as { seq: number; hash: string };
  t.is(head.seq, 3, 'bigint seq read as a number');
  const row = { ts: 1, org_id: null, action: 'x.y', outcome: 'success', hash: 'a'.repeat(64) };
  await t.throwsAsync(db('audit_log').insert({ ...row, seq: 5, prev_hash: head.hash }), { message: /must extend the chain/ }, 'a gap');
  await t.throwsAsync(db('audit_log').insert({ ...row, seq: 4, prev_hash: 'b'.repeat(64) }), { message: /must extend the chain/ }, 'another prev_hash');
  await t.throwsAsync(db('audit_log').insert({ ...row, seq: 3, prev_hash: head.hash }), { message: /must extend the chain/ }, 'a second entry 3');
  await t.throwsAsync(db('audit_checkpoints').insert({ seq: 2, hash: 'c'.repeat(64), ts: 1, signer: 'x', signature: 'y' }), { message: /must name an existing entry/ });
  t.like(await log.verify(), { ok: true, entries: 3 });
});

test('numbers: bigints within 2^53 come back as numbers, larger ones as exact strings; read connections refuse writes', async (t) => {
  const { url, dir, db } = await fresh(t);
  const r = await db.raw('SELECT 5::bigint AS small, 9007199254740993::bigint AS big, count(*) AS n FROM orgs');
  t.deepEqual(r.rows[0], { small: 5, big: '9007199254740993', n: 0 });
  const read = openReadDatabase({ dataDir: dir, url });
  t.teardown(() => read.destroy());
  await t.throwsAsync(read('orgs').insert({ id: 'o1', name: 'x', enterprise_number: '0212345668', created_at: 1 }), { message: /read-only/ });
  t.deepEqual(await read('orgs').select('id'), []);
});

test('writer lock: a write transaction waits for the one holding it; read-only transactions and plain reads do not', async (t) => {
  const { url, dir, db } = await fresh(t);
  const other = await openDatabase({ dataDir: dir, url, migrate: false });
  t.teardown(() => other.destroy());
  const events: string[] = [];
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let started!: () => void;
  const begun = new Promise<void>((resolve) => (started = resolve));
  const first = db.transaction(async (trx) => {
    await trx('orgs').insert({ id: 'o1', name: 'first', enterprise_number: '0212345668', created_at: 1 });
    started();
    await held;
    events.push('first commits');
  });
  await begun;
  const second = other.transaction(async (trx) => {
    events.push('second runs');
    // READ COMMITTED after the lock: it sees the first one's row.
    t.truthy(await trx('orgs').where({ id: 'o1' }).first());
  });
  const readOnly = other.transaction(async (trx) => {
    t.falsy(await trx('orgs').where({ id: 'o1' }).first(), 'not committed yet');
    events.push('read-only runs');
  }, { readOnly: true });
  await readOnly;
  t.falsy(await other('orgs').where({ id: 'o1' }).first(), 'a plain read does not wait either');
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.deepEqual(events, ['read-only runs'], 'the second write transaction waits');
  release();
  await Promise.all([first, second]);
  t.deepEqual(events, ['read-only runs', 'first commits', 'second runs']);
});

test('audit chain: two nodes appending at once (group commit, savepoints, failures) give one gap-free valid chain', async (t) => {
  const { url, dir } = await fresh(t);
  const [a, b] = [await node(t, url, dir), await node(t, url, dir)];
  const n = 150;
  const results = await Promise.allSettled(Array.from({ length: 2 * n }, (_, i) => {
    const w = i % 2 === 0 ? a : b;
    // Every seventh caller fails after appending: its savepoint (or transaction) is rolled back, entry and all.
    return w.committer.run(async (trx) => {
      const seq = await w.log.append(trx, entry(i));
      if (i % 7 === 0) throw new Error(`caller ${i} fails`);
      return seq;
    });
  }));
  const ok = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<number>).value);
  const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
  t.true(failed.every((m) => /caller \d+ fails/.test(m)), failed.find((m) => !/caller \d+ fails/.test(m)));
  t.is(ok.length, results.length - Math.ceil((2 * n) / 7));
  t.deepEqual([...ok].sort((x, y) => x - y), Array.from({ length: ok.length }, (_, i) => i + 1), 'gap-free seqs, each once');
  t.true(a.committer.stats().largest > 1 || b.committer.stats().largest > 1, 'callers were grouped');
  const verified = await a.log.verify();
  t.like(verified, { ok: true, entries: ok.length });
  t.is(verified.checkpoints, Math.floor(ok.length / 100), 'a checkpoint at every 100th entry, from either node');
});

test('audit chain without the locks: racing appends are refused by the database, never forked', async (t) => {
  const { url, dir } = await fresh(t);
  const [a, b] = [await node(t, url, dir, { locks: false }), await node(t, url, dir, { locks: false })];
  const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a : b).log.appendStandalone(entry(i))));
  const stored = results.filter((r) => r.status === 'fulfilled').length;
  for (const r of results) {
    if (r.status === 'rejected') t.regex(String(r.reason), /must extend the chain|duplicate key/);
  }
  t.like(await a.log.verify(), { ok: true, entries: stored });
  t.log(`${stored} of 100 stored without the locks`);
});
