// The group committer (server/src/db/group-commit.ts) against a real database (sqlite; PostgreSQL in
// pg-group-commit.test.ts) with the audit log: members of
// one group commit together, a member that throws loses only its own writes and audit entry, the hash chain
// stays valid through savepoint rollbacks, entries keep the order of the callers, and a group whose
// transaction breaks has its other members retried alone.
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { openDatabase, type Db, type Tx } from '../../server/dist/db/db.js';
import { databaseEnv, testEngine } from '../helpers/server.js';
import { CommitterClosedError, GroupCommitter } from '../../server/dist/db/group-commit.js';
import { SqlAuditLog, loadOrCreateServerSigningKey } from '../../server/dist/audit/log.js';
import type { AuditEntryInput } from '../../server/dist/audit/types.js';

interface Harness {
  db: Db;
  log: SqlAuditLog;
  committer: GroupCommitter;
}

async function fresh(t: ExecutionContext, options: { checkpointEvery?: number; guessHead?: boolean } = {}): Promise<Harness> {
  await k.initCrypto();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kluis-gc-'));
  const db = await openDatabase({ dataDir: dir, ...(await databaseEnv(dir).then((e) => (e.KLUIS_DATABASE_URL ? { url: e.KLUIS_DATABASE_URL } : {}))) });
  t.teardown(async () => {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  await db.schema.createTable('gc_items', (tb) => {
    tb.string('id').primary();
    tb.integer('member').notNullable();
  });
  const committer = new GroupCommitter(db);
  const log = new SqlAuditLog(db, await loadOrCreateServerSigningKey(dir), { ...options, transact: (fn) => committer.run(fn) });
  return { db, log, committer };
}

const entry = (i: number, action = 'changes.read'): AuditEntryInput => ({ orgId: 'orgA', actorUserId: 'u1', actorDeviceId: 'd1', action, targetType: 'space', targetId: 's1', outcome: 'success', details: { i } });

/** Holds the committer busy until the returned release() is called, so that what is queued meanwhile forms one group. */
function hold(c: GroupCommitter): { release: () => void; done: Promise<unknown> } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const done = c.run(async () => gate);
  return { release, done };
}

/** A member's work: one row of its own and its audit entry; members in `failing` throw afterwards. */
function member(h: Harness, i: number, failing: Set<number>) {
  return async (trx: Tx) => {
    await trx('gc_items').insert({ id: `m${i}`, member: i });
    const seq = await h.log.append(trx, entry(i));
    if (failing.has(i)) throw new Error(`member ${i} fails`);
    return seq;
  };
}

test('members queued together share one transaction; one that throws loses only its own writes and entry', async (t) => {
  const h = await fresh(t);
  await h.log.appendStandalone(entry(-1, 'server.start')); // the log has a head to guess
  await h.committer.flush();
  const gate = hold(h.committer);
  const failing = new Set([3]);
  const results = Array.from({ length: 8 }, (_, i) => h.committer.run(member(h, i, failing)));
  gate.release();
  await gate.done;
  const settled = await Promise.allSettled(results);

  t.is(settled.filter((s) => s.status === 'rejected').length, 1);
  const bad = settled[3] as PromiseRejectedResult;
  t.is((bad.reason as Error).message, 'member 3 fails'); // its own error, not a group failure
  const stats = h.committer.stats();
  t.is(stats.largest, 8, 'the eight members ran as one group');
  t.is(stats.broken, 0);

  const items = (await h.db('gc_items').orderBy('member').pluck('member')) as number[];
  t.deepEqual(items, [0, 1, 2, 4, 5, 6, 7]);
  const entries = await h.log.query({ action: 'changes.read' });
  t.deepEqual(entries.map((e) => e.details!.i), [0, 1, 2, 4, 5, 6, 7]);
  // The seqs the members were given are the seqs they have: the rolled-back entry's seq went to member 4.
  const seqs = settled.filter((s) => s.status === 'fulfilled').map((s) => (s as PromiseFulfilledResult<number>).value);
  t.deepEqual(seqs, entries.map((e) => e.seq));
  const v = await h.log.verify();
  t.true(v.ok, JSON.stringify(v.firstBroken));
  t.is(v.entries, 8);
});

test('several failing members in one group, the first and the last too: the chain stays valid', async (t) => {
  const h = await fresh(t);
  const gate = hold(h.committer);
  const failing = new Set([0, 4, 5, 9, 19]);
  const results = await Promise.allSettled([...Array.from({ length: 20 }, (_, i) => h.committer.run(member(h, i, failing))), (gate.release(), gate.done)]);
  t.is(results.filter((r) => r.status === 'rejected').length, failing.size);
  const kept = Array.from({ length: 20 }, (_, i) => i).filter((i) => !failing.has(i));
  t.deepEqual((await h.log.query({})).map((e) => e.details!.i), kept);
  t.deepEqual(await h.db('gc_items').orderBy('member').pluck('member'), kept);
  t.true((await h.log.verify()).ok);
  // The next append (its guessed head was rolled back) still extends the chain.
  t.is(await h.log.appendStandalone(entry(99)), kept.length + 1);
  t.true((await h.log.verify()).ok);
});

test('many concurrent reads: one entry each, in the order of the callers, few transactions', async (t) => {
  const h = await fresh(t, { checkpointEvery: 100 });
  const n = 500;
  const seqs = await Promise.all(Array.from({ length: n }, (_, i) => h.log.appendStandalone(entry(i))));
  t.deepEqual(seqs, Array.from({ length: n }, (_, i) => i + 1), 'each caller got its own seq, in call order');
  const entries = await h.log.query({ limit: n });
  t.is(entries.length, n);
  t.deepEqual(entries.map((e) => e.details!.i), Array.from({ length: n }, (_, i) => i));
  const stats = h.committer.stats();
  t.is(stats.members, n);
  t.true(stats.groups < n / 4, `${stats.groups} transactions for ${n} entries`);
  const v = await h.log.verify();
  t.true(v.ok);
  t.is(v.checkpoints, 5, 'the checkpoints due inside groups were written with them');
});

test('with the head read first (the PostgreSQL mode) a group with failures stays valid too', async (t) => {
  const h = await fresh(t, { guessHead: false });
  const gate = hold(h.committer);
  const failing = new Set([1, 2, 6]);
  const results = Array.from({ length: 10 }, (_, i) => h.committer.run(member(h, i, failing)));
  gate.release();
  await Promise.allSettled(results);
  t.deepEqual((await h.log.query({})).map((e) => e.details!.i), [0, 3, 4, 5, 7, 8, 9]);
  t.true((await h.log.verify()).ok);
});

test('no promise settles before its group committed', async (t) => {
  const h = await fresh(t);
  const gate = hold(h.committer);
  let settled = false;
  const p = h.committer.run(async (trx) => {
    await trx('gc_items').insert({ id: 'x', member: 1 });
    return 'done';
  });
  void p.then(() => (settled = true));
  await new Promise((r) => setTimeout(r, 50));
  t.false(settled, 'still queued behind the busy group');
  gate.release();
  t.is(await p, 'done');
  t.is((await h.db('gc_items').count({ n: '*' }).first())?.n, 1);
});

test('a member that breaks the group transaction: the others are run again alone and commit', async (t) => {
  const h = await fresh(t);
  const gate = hold(h.committer);
  let evilRuns = 0;
  const good = (i: number) => h.committer.run(member(h, i, new Set()));
  const results = [
    good(0),
    good(1),
    // Ends the whole transaction under the group (as sqlite does itself after some I/O errors): its savepoint
    // can no longer be released.
    h.committer.run(async (trx) => {
      evilRuns++;
      await trx('gc_items').insert({ id: 'evil', member: -1 });
      await trx.raw('ROLLBACK');
      // PostgreSQL only warns about the COMMIT of its retry alone (no transaction is open any more), which would look
      // committed: there it fails on its own too (its ROLLBACK TO SAVEPOINT in the group fails as RELEASE does).
      if (testEngine() === 'postgres') throw new Error('evil member');
    }),
    good(3),
    good(4),
  ];
  gate.release();
  const settled = await Promise.allSettled(results);
  t.deepEqual(settled.map((s) => s.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
  t.is(h.committer.stats().broken, 1);
  t.is(evilRuns, 2, 'the breaking member was retried alone as well (and failed on its own)');
  t.deepEqual(await h.db('gc_items').orderBy('member').pluck('member'), [0, 1, 3, 4]);
  t.deepEqual((await h.log.query({})).map((e) => e.details!.i), [0, 1, 3, 4]);
  t.true((await h.log.verify()).ok);
  // The committer goes on working.
  t.is(await h.committer.run(async (trx) => (await trx('gc_items').count({ n: '*' }).first())?.n), 4);
});

test('a group of one runs in a plain transaction; errors reach the caller unchanged', async (t) => {
  const h = await fresh(t);
  await t.throwsAsync(h.committer.run(async (trx) => {
    await trx('gc_items').insert({ id: 'a', member: 1 });
    throw new RangeError('nope');
  }), { instanceOf: RangeError, message: 'nope' });
  t.is((await h.db('gc_items').count({ n: '*' }).first())?.n, 0);
  // A failing statement (duplicate key) inside a group rolls back only that member.
  await h.db('gc_items').insert({ id: 'dup', member: 0 });
  const gate = hold(h.committer);
  const r = [h.committer.run((trx) => trx('gc_items').insert({ id: 'dup', member: 1 })), h.committer.run((trx) => trx('gc_items').insert({ id: 'ok', member: 2 }))];
  gate.release();
  const s = await Promise.allSettled(r);
  t.is(s[0]!.status, 'rejected');
  t.regex(String((s[0] as PromiseRejectedResult).reason), /UNIQUE|duplicate key/);
  t.is(s[1]!.status, 'fulfilled');
  t.deepEqual(await h.db('gc_items').orderBy('member').pluck('id'), ['dup', 'ok']);
});

test('close() lets queued work finish, then refuses more', async (t) => {
  const h = await fresh(t);
  const gate = hold(h.committer);
  const queued = Array.from({ length: 5 }, (_, i) => h.log.appendStandalone(entry(i)));
  const closing = h.committer.close();
  await t.throwsAsync(h.log.appendStandalone(entry(9)), { instanceOf: CommitterClosedError });
  gate.release();
  await closing;
  t.deepEqual(await Promise.all(queued), [1, 2, 3, 4, 5]);
  t.true((await h.log.verify()).ok);
});
