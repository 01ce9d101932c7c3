// The audit trail (docs/architecture.md §7, docs/crypto.md §12) against a real sqlite file in a temp dir: appends inside
// transactions (rollback, savepoints, concurrency), the append-only triggers, tampering by someone with the
// database file (who drops the triggers first), the signing key file, queries, and exports.
import test, { type ExecutionContext } from 'ava';
import { chmodSync, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import * as k from '@kluis/shared';
import { openDatabase, type Db } from '../../server/dist/db/db.js';
import { AuditInputError, SigningKeyFileError, SqlAuditLog, loadOrCreateServerSigningKey, type SqlAuditLogOptions } from '../../server/dist/audit/log.js';
import { AUDIT_CSV_COLUMNS, checkAuditExport, exportAudit } from '../../server/dist/audit/export.js';
import type { AuditEntry, AuditEntryInput, AuditFilter } from '../../server/dist/audit/types.js';
import { dropTriggers, type AuditDbRow as Row } from '../helpers/audit-db.js';

// ------------------------------------------------------------------------------------------ harness

interface Harness {
  dir: string;
  db: Db;
  log: SqlAuditLog;
  key: k.ServerSigningKey;
}

function tempDir(t: ExecutionContext, prefix = 'kluis-audit-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function fresh(t: ExecutionContext, options: SqlAuditLogOptions = {}): Promise<Harness> {
  const dir = tempDir(t);
  const db = await openDatabase({ dataDir: dir });
  t.teardown(() => db.destroy());
  const key = await loadOrCreateServerSigningKey(dir);
  const log = new SqlAuditLog(db, key, options);
  return { dir, db, log, key };
}

const base: AuditEntryInput = { orgId: 'orgA', actorUserId: 'u1', actorDeviceId: 'd1', action: 'space.create', targetType: 'space', targetId: 's1', outcome: 'success', ip: '192.0.2.1', userAgent: 'kluis-test', client: 'kluis-cli/0.1.0', details: { n: 1 } };

/** Appends `n` entries in transactions of `batch`; entry i (0-based) from `make(i)`. */
async function fill(h: Harness, n: number, make: (i: number) => AuditEntryInput = (i) => ({ ...base, details: { i } }), batch = 500): Promise<void> {
  for (let start = 0; start < n; start += batch) {
    await h.db.transaction(async (trx) => {
      for (let i = start; i < Math.min(n, start + batch); i++) await h.log.append(trx, make(i));
    });
  }
}

const rowOf = async (db: Db, seq: number): Promise<Row> => (await db('audit_log').where({ seq }).first()) as Row;

/** The chained object exactly as docs/crypto.md §12 defines it, written independently of the server code. */
function chainObject(r: Row): Record<string, unknown> {
  return {
    seq: r.seq,
    ts: r.ts,
    orgId: r.org_id,
    actorUserId: r.actor_user_id,
    actorDeviceId: r.actor_device_id,
    action: r.action,
    targetType: r.target_type,
    targetId: r.target_id,
    outcome: r.outcome,
    ip: r.ip,
    userAgent: r.user_agent,
    client: r.client,
    details: r.details === null ? null : (JSON.parse(r.details) as unknown),
  };
}

/** Recomputes the hashes of entries from..to (inclusive) as an attacker who rewrote entry `from` would. */
async function rechain(db: Db, from: number, to: number): Promise<void> {
  let prev = from === 1 ? k.AUDIT_GENESIS : (await rowOf(db, from - 1)).hash;
  for (let seq = from; seq <= to; seq++) {
    const r = await rowOf(db, seq);
    const hash = k.auditChainHash(prev, chainObject({ ...r, prev_hash: prev }));
    await db('audit_log').where({ seq }).update({ prev_hash: prev, hash });
    prev = hash;
  }
}

async function broken(t: ExecutionContext, log: SqlAuditLog, seq: number, reason: string | RegExp): Promise<void> {
  const v = await log.verify();
  t.false(v.ok, 'verify must fail');
  t.is(v.firstBroken?.seq, seq, `first broken: ${JSON.stringify(v.firstBroken)}`);
  if (typeof reason === 'string') t.is(v.firstBroken?.reason, reason);
  else t.regex(v.firstBroken?.reason ?? '', reason);
}

test.before(async () => {
  await k.initCrypto();
});

// ------------------------------------------------------------------------------------------ appending

test('append: the stored hash is BLAKE2b(prevHash || canonical entry) over exactly the documented fields', async (t) => {
  let now = 1_700_000_000_000;
  const h = await fresh(t, { now: () => now++ });
  const seq = await h.log.appendStandalone({ ...base, details: { b: [1, 'x'], a: null } });
  t.is(seq, 1);
  const r = await rowOf(h.db, 1);
  t.is(r.prev_hash, k.AUDIT_GENESIS);
  t.is(r.details, '{"a":null,"b":[1,"x"]}', 'details stored as canonical JSON');
  const expected = k.auditChainHash(k.AUDIT_GENESIS, {
    seq: 1, ts: 1_700_000_000_000, orgId: 'orgA', actorUserId: 'u1', actorDeviceId: 'd1', action: 'space.create', targetType: 'space',
    targetId: 's1', outcome: 'success', ip: '192.0.2.1', userAgent: 'kluis-test', client: 'kluis-cli/0.1.0', details: { a: null, b: [1, 'x'] },
  });
  t.is(r.hash, expected);
  // Absent optional fields are null in the chain.
  await h.log.appendStandalone({ orgId: null, action: 'server.start', outcome: 'success' });
  const r2 = await rowOf(h.db, 2);
  t.is(r2.hash, k.auditChainHash(r.hash, {
    seq: 2, ts: 1_700_000_000_001, orgId: null, actorUserId: null, actorDeviceId: null, action: 'server.start', targetType: null,
    targetId: null, outcome: 'success', ip: null, userAgent: null, client: null, details: null,
  }));
  t.like(await h.log.verify(), { ok: true, entries: 2, lastSeq: 2, lastHash: r2.hash });
});

test('append: a transaction that rolls back leaves no entry, and the chain continues correctly afterwards', async (t) => {
  const h = await fresh(t, { checkpointEvery: 4 });
  for (let i = 0; i < 3; i++) await h.log.appendStandalone({ ...base, details: { i } });
  const err = await t.throwsAsync(
    h.db.transaction(async (trx) => {
      await trx('throttle').insert({ key: 'k1', failures: 1, window_start: 0, locked_until: 0 });
      t.is(await h.log.append(trx, { ...base, action: 'doomed.one' }), 4);
      t.is(await h.log.append(trx, { ...base, action: 'doomed.two' }), 5); // would have written checkpoint 4 too
      throw new Error('boom');
    }),
  );
  t.is(err?.message, 'boom');
  t.is((await h.db('audit_log').count('* as n').first())?.n, 3);
  t.is((await h.db('audit_checkpoints').count('* as n').first())?.n, 0, 'the checkpoint rolled back with its entry');
  t.is(await h.db('throttle').where({ key: 'k1' }).first(), undefined, 'the main change rolled back too');
  t.deepEqual((await h.log.query({ action: 'doomed.one' })).length, 0);

  // The next append takes seq 4 and links to entry 3.
  t.is(await h.log.appendStandalone({ ...base, action: 'after.rollback' }), 4);
  const r3 = await rowOf(h.db, 3);
  const r4 = await rowOf(h.db, 4);
  t.is(r4.prev_hash, r3.hash);
  t.is(r4.action, 'after.rollback');
  t.like(await h.log.verify(), { ok: true, entries: 4, checkpoints: 1 });

  // A savepoint that rolls back inside a transaction that commits.
  await h.db.transaction(async (trx) => {
    t.is(await h.log.append(trx, { ...base, action: 'outer.before' }), 5);
    await t.throwsAsync(
      trx.transaction(async (inner) => {
        t.is(await h.log.append(inner, { ...base, action: 'inner.doomed' }), 6);
        throw new Error('inner boom');
      }),
    );
    t.is(await h.log.append(trx, { ...base, action: 'outer.after' }), 6);
  });
  t.deepEqual((await h.log.query({})).map((e) => e.action), ['space.create', 'space.create', 'space.create', 'after.rollback', 'outer.before', 'outer.after']);
  t.like(await h.log.verify(), { ok: true, entries: 6 });
});

test('append: 200 concurrent transactions (and parallel appends inside one) give a gap-free, valid chain', async (t) => {
  const h = await fresh(t, { checkpointEvery: 50 });
  const seqs = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      i % 2 === 0
        ? h.log.appendStandalone({ ...base, details: { i } })
        : h.db.transaction(async (trx) => {
            await trx('throttle').insert({ key: `c${i}`, failures: 0, window_start: 0, locked_until: 0 });
            return h.log.append(trx, { ...base, details: { i } });
          }),
    ),
  );
  t.deepEqual([...seqs].sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i + 1));
  // 50 appends fired at once inside one transaction.
  const inOne = await h.db.transaction((trx) => Promise.all(Array.from({ length: 50 }, (_, i) => h.log.append(trx, { ...base, details: { j: i } }))));
  t.deepEqual([...inOne].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => 201 + i));
  const v = await h.log.verify();
  t.like(v, { ok: true, entries: 250, checkpoints: 5, lastSeq: 250 });
  const rows = (await h.db('audit_log').select('seq').orderBy('seq')) as { seq: number }[];
  t.deepEqual(rows.map((r) => r.seq), Array.from({ length: 250 }, (_, i) => i + 1));
});

test('append: one statement per append when the head guess holds; a stale guess (rollback, savepoint, another writer) is refused by the database and retried', async (t) => {
  const h = await fresh(t);
  const statements: string[] = [];
  h.db.on('query', (q: { sql: string }) => {
    if (/audit_log/.test(q.sql)) statements.push(q.sql.split(' ')[0]!.toLowerCase());
  });
  await h.log.appendStandalone(base); // first: reads the head
  statements.length = 0;
  await h.db.transaction(async (trx) => {
    for (let i = 0; i < 10; i++) await h.log.append(trx, base);
  });
  t.deepEqual(statements, Array(10).fill('insert'), 'steady state: one INSERT per append');

  await t.throwsAsync(h.db.transaction(async (trx) => {
    await h.log.append(trx, base);
    throw new Error('rollback');
  }));
  statements.length = 0;
  t.is(await h.log.appendStandalone(base), 12);
  t.deepEqual(statements, ['insert', 'select', 'insert'], 'the stale guess was refused, the head read, the entry inserted');

  // Another writer of the same file (a second process, here a second instance) moves the head behind our back.
  const other = new SqlAuditLog(h.db, h.key);
  for (let i = 0; i < 20; i++) {
    const a = await h.log.appendStandalone({ ...base, details: { by: 'one', i } });
    const b = await other.appendStandalone({ ...base, details: { by: 'two', i } });
    t.is(b, a + 1);
  }
  t.like(await h.log.verify(), { ok: true, entries: 52 });

  // Without guessing (the PostgreSQL mode) every append reads the head first.
  const reading = new SqlAuditLog(h.db, h.key, { guessHead: false });
  statements.length = 0;
  await reading.appendStandalone(base);
  await reading.appendStandalone(base);
  t.deepEqual(statements, ['select', 'insert', 'select', 'insert']);
  t.like(await h.log.verify(), { ok: true, entries: 54 });
});

test('appendMany: one head read and multi-row INSERTs, checkpoints inside, all-or-nothing with its transaction', async (t) => {
  const h = await fresh(t, { checkpointEvery: 500 });
  await h.log.appendStandalone(base);
  const seqs = await h.db.transaction((trx) => h.log.appendMany(trx, Array.from({ length: 1234 }, (_, i) => ({ ...base, details: { i } }))));
  t.deepEqual(seqs, Array.from({ length: 1234 }, (_, i) => i + 2));
  t.deepEqual((await h.log.listCheckpoints({ fromSeq: 1, toSeq: 10_000 })).map((c) => c.seq), [500, 1000]);
  await t.throwsAsync(h.db.transaction(async (trx) => {
    await h.log.appendMany(trx, Array.from({ length: 600 }, () => base));
    throw new Error('rollback');
  }));
  await t.throwsAsync(h.db.transaction((trx) => h.log.appendMany(trx, [base, { ...base, action: 'BAD' }])), { instanceOf: AuditInputError });
  t.is(await h.log.appendStandalone(base), 1236);
  t.deepEqual(await h.db.transaction((trx) => h.log.appendMany(trx, [])), []);
  t.like(await h.log.verify(), { ok: true, entries: 1236, checkpoints: 2 });
});

test('append: refuses malformed entries, cleans and truncates client-supplied text', async (t) => {
  const h = await fresh(t);
  const bad: [string, AuditEntryInput][] = [
    ['action with capitals', { ...base, action: 'Space.create' }],
    ['action too short', { ...base, action: 'a' }],
    ['action with a space', { ...base, action: 'space create' }],
    ['action too long', { ...base, action: 'a'.repeat(65) }],
    ['unknown outcome', { ...base, outcome: 'maybe' as never }],
    ['float in details', { ...base, details: { x: 1.5 } }],
    ['undefined in details', { ...base, details: { x: undefined as never } }],
    ['details not an object', { ...base, details: [1, 2] as never }],
    ['details too large', { ...base, details: { x: 'y'.repeat(9000) } }],
    ['orgId too long', { ...base, orgId: 'o'.repeat(33) }],
    ['targetId too long', { ...base, targetId: 't'.repeat(129) }],
    ['orgId missing', { action: 'x.y', outcome: 'success' } as never],
  ];
  for (const [what, entry] of bad) await t.throwsAsync(h.log.appendStandalone(entry), { instanceOf: AuditInputError }, what);
  await t.throwsAsync(h.log.append(h.db as never, base), { instanceOf: AuditInputError, message: /transaction/ });
  t.is((await h.db('audit_log').count('* as n').first())?.n, 0, 'nothing was written');

  const ua = 'é'.repeat(400) + '\uD800' + '\u0000';
  const seq = await h.log.appendStandalone({ ...base, userAgent: ua, client: 'c'.repeat(150), ip: '\uDC00' });
  const [e] = await h.log.query({});
  t.is(e!.seq, seq);
  t.is(e!.userAgent, 'é'.repeat(300));
  t.is(e!.client, 'c'.repeat(100));
  t.is(e!.ip, '\uFFFD');
  // Truncation is by code points and never splits a surrogate pair.
  await h.log.appendStandalone({ ...base, userAgent: '😀'.repeat(301) });
  t.is((await h.log.query({ afterSeq: 1 }))[0]!.userAgent, '😀'.repeat(300));
  t.like(await h.log.verify(), { ok: true, entries: 2 });
});

// ------------------------------------------------------------------------------------------ triggers

test('triggers: UPDATE and DELETE through Knex are refused on audit_log and audit_checkpoints; so are INSERTs off the chain', async (t) => {
  const h = await fresh(t, { checkpointEvery: 5 });
  await fill(h, 7);
  await h.log.checkpoint();
  t.is((await h.db('audit_checkpoints').count('* as n').first())?.n, 2);
  const before = await h.log.verify();
  t.true(before.ok);

  await t.throwsAsync(h.db('audit_log').where({ seq: 3 }).update({ action: 'forged.action' }), { message: /audit_log is append-only/ });
  await t.throwsAsync(h.db('audit_log').where({ seq: 7 }).delete(), { message: /audit_log is append-only/ });
  await t.throwsAsync(h.db('audit_log').delete(), { message: /audit_log is append-only/ });
  await t.throwsAsync(h.db('audit_checkpoints').where({ seq: 5 }).update({ ts: 1 }), { message: /audit_checkpoints is append-only/ });
  await t.throwsAsync(h.db('audit_checkpoints').delete(), { message: /audit_checkpoints is append-only/ });

  const r7 = await rowOf(h.db, 7);
  const row = { ...r7, seq: 9 }; // a gap
  await t.throwsAsync(h.db('audit_log').insert(row), { message: /extend the chain/ });
  await t.throwsAsync(h.db('audit_log').insert({ ...r7, seq: 8 }), { message: /extend the chain/ }, 'wrong prev_hash');
  await t.throwsAsync(h.db('audit_checkpoints').insert({ seq: 6, hash: r7.hash, ts: 1, signer: h.key.publicKey, signature: 'x' }), { message: /existing entry/ });

  t.is((await h.db('audit_log').count('* as n').first())?.n, 7);
  t.deepEqual(await h.log.verify(), before);
});

// ------------------------------------------------------------------------------------------ tampering

test('tamper: editing any one field of entry k is named as entry k', async (t) => {
  const h = await fresh(t, { checkpointEvery: 1000 });
  await fill(h, 30);
  await dropTriggers(h.db);
  const original = await rowOf(h.db, 17);
  const edits: Partial<Row>[] = [
    { ts: original.ts + 1 },
    { org_id: 'orgB' },
    { actor_user_id: 'u2' },
    { actor_device_id: null },
    { action: 'space.delete' },
    { target_type: 'file' },
    { target_id: 's2' },
    { outcome: 'denied' },
    { ip: '198.51.100.7' },
    { user_agent: 'other' },
    { client: null },
    { details: '{"i":99}' },
    { hash: original.hash.replace(/^./, (c) => (c === '0' ? '1' : '0')) },
  ];
  for (const edit of edits) {
    await h.db('audit_log').where({ seq: 17 }).update(edit);
    await broken(t, h.log, 17, 'entry 17: hash does not match its content');
    await h.db('audit_log').where({ seq: 17 }).update(original);
    t.true((await h.log.verify()).ok, `restored after ${Object.keys(edit).join()}`);
  }
  // The same meaning in a non-canonical form is refused too.
  await h.db('audit_log').where({ seq: 17 }).update({ details: '{ "i": 16 }' });
  await broken(t, h.log, 17, 'entry 17: details are not canonical JSON');
  await h.db('audit_log').where({ seq: 17 }).update(original);
  // A prev_hash edit names the entry too.
  await h.db('audit_log').where({ seq: 17 }).update({ prev_hash: '1'.repeat(64) });
  await broken(t, h.log, 17, 'entry 17: prev_hash does not match the hash of entry 16');
});

test('tamper: deleting entry k is named as the gap', async (t) => {
  const h = await fresh(t);
  await fill(h, 30);
  await dropTriggers(h.db);
  await h.db('audit_log').where({ seq: 17 }).delete();
  await broken(t, h.log, 17, 'entry 17 missing (gap after 16)');
  const v = await h.log.verify();
  t.is(v.entries, 16);
  t.is(v.lastSeq, 16);
  await h.db('audit_log').where({ seq: 1 }).delete();
  await broken(t, h.log, 1, 'entry 1 missing (the log starts at 2)');
});

test('tamper: swapping the contents of two rows is caught at the first of them', async (t) => {
  const h = await fresh(t);
  await fill(h, 30, (i) => ({ ...base, actorUserId: `u${i % 3}`, details: { i } }));
  await dropTriggers(h.db);
  const a = await rowOf(h.db, 10);
  const b = await rowOf(h.db, 20);
  const { seq: _sa, ...contentA } = a;
  const { seq: _sb, ...contentB } = b;
  // Whole rows (hashes included) exchanged.
  await h.db('audit_log').where({ seq: 10 }).update(contentB);
  await h.db('audit_log').where({ seq: 20 }).update(contentA);
  await broken(t, h.log, 10, 'entry 10: prev_hash does not match the hash of entry 9');
  // Only the payload exchanged, chain columns left in place.
  const { prev_hash: _pa, hash: _ha, ...payloadA } = contentA;
  const { prev_hash: _pb, hash: _hb, ...payloadB } = contentB;
  await h.db('audit_log').where({ seq: 10 }).update({ ...payloadB, prev_hash: a.prev_hash, hash: a.hash });
  await h.db('audit_log').where({ seq: 20 }).update({ ...payloadA, prev_hash: b.prev_hash, hash: b.hash });
  await broken(t, h.log, 10, 'entry 10: hash does not match its content');
  // Neighbours reordered.
  await h.db('audit_log').where({ seq: 10 }).update(contentA);
  await h.db('audit_log').where({ seq: 20 }).update(contentB);
  t.true((await h.log.verify()).ok);
  const r11 = await rowOf(h.db, 11);
  const { seq: _s11, ...content11 } = r11;
  await h.db('audit_log').where({ seq: 10 }).update(content11);
  await h.db('audit_log').where({ seq: 11 }).update(contentA);
  await broken(t, h.log, 10, 'entry 10: prev_hash does not match the hash of entry 9');
});

test('tamper: an edited entry with a recomputed hash is caught at the next entry; a re-chained tail at the checkpoint', async (t) => {
  const h = await fresh(t, { checkpointEvery: 10 });
  await fill(h, 30);
  await dropTriggers(h.db);
  await h.db('audit_log').where({ seq: 17 }).update({ outcome: 'denied' });
  await rechain(h.db, 17, 17);
  await broken(t, h.log, 18, 'entry 18: prev_hash does not match the hash of entry 17');
  // Rewriting every later hash too: the checkpoint at 20 still holds the original hash.
  await rechain(h.db, 17, 30);
  await broken(t, h.log, 20, 'checkpoint at 20: hash does not match entry 20');
  // Even the newest entry alone, when a checkpoint covers it.
  const h2 = await fresh(t, { checkpointEvery: 10 });
  await fill(h2, 30);
  await dropTriggers(h2.db);
  await h2.db('audit_log').where({ seq: 30 }).update({ action: 'space.delete' });
  await rechain(h2.db, 30, 30);
  await broken(t, h2.log, 30, 'checkpoint at 30: hash does not match entry 30');
});

test('tamper: a checkpoint forged with another key, or altered, is caught', async (t) => {
  const h = await fresh(t, { checkpointEvery: 10 });
  await fill(h, 30);
  await dropTriggers(h.db);
  // The attacker rewrites entry 17 and everything after it, then replaces the checkpoints they invalidated.
  await h.db('audit_log').where({ seq: 17 }).update({ outcome: 'denied' });
  await rechain(h.db, 17, 30);
  const evil = k.generateServerSigningKey();
  const forge = async (signerField: string): Promise<void> => {
    await h.db('audit_checkpoints').where('seq', '>=', 20).delete();
    for (const seq of [20, 30]) {
      const { hash } = await rowOf(h.db, seq);
      const cp = { seq, hash, ts: Date.now() };
      await h.db('audit_checkpoints').insert({ ...cp, signer: signerField, signature: k.signAuditCheckpoint(cp, evil) });
    }
  };
  await forge(evil.publicKey);
  await broken(t, h.log, 20, `checkpoint at 20: signed by an untrusted key ${evil.publicKey}`);
  await forge(h.key.publicKey);
  await broken(t, h.log, 20, 'checkpoint at 20: signature invalid');

  // A genuine checkpoint whose ts (or seq) is altered no longer verifies.
  const h2 = await fresh(t, { checkpointEvery: 10 });
  await fill(h2, 20);
  await dropTriggers(h2.db);
  await h2.db('audit_checkpoints').where({ seq: 10 }).update({ ts: 1 });
  await broken(t, h2.log, 10, 'checkpoint at 10: signature invalid');
  // A restart with another key (lost key file) cannot vouch for the old checkpoints either.
  const other = new SqlAuditLog(h.db, k.generateServerSigningKey());
  await broken(t, other, 10, /checkpoint at 10: signed by an untrusted key/);
  // ...unless the old key is listed as trusted.
  const h3 = await fresh(t, { checkpointEvery: 10 });
  await fill(h3, 20);
  const rotated = new SqlAuditLog(h3.db, k.generateServerSigningKey(), { trustedPublicKeys: [h3.key.publicKey] });
  t.like(await rotated.verify(), { ok: true, checkpoints: 2 });
});

test('tamper: truncating the newest entries below the last checkpoint is caught', async (t) => {
  const h = await fresh(t, { checkpointEvery: 10 });
  await fill(h, 25);
  await h.log.checkpoint(); // seals 25
  await h.log.checkpoint(); // nothing new: no second checkpoint
  t.deepEqual((await h.db('audit_checkpoints').select('seq').orderBy('seq')).map((r: { seq: number }) => r.seq), [10, 20, 25]);
  t.like(await h.log.verify(), { ok: true, entries: 25, checkpoints: 3 });
  await dropTriggers(h.db);
  await h.db('audit_log').where('seq', '>', 22).delete();
  await broken(t, h.log, 25, 'checkpoint at 25: entry 25 is missing (the log ends at 22)');
  await h.db('audit_log').where('seq', '>', 14).delete();
  await broken(t, h.log, 20, 'checkpoint at 20: entry 20 is missing (the log ends at 14)');
  await h.db('audit_log').delete();
  await broken(t, h.log, 10, 'checkpoint at 10: entry 10 is missing (the log ends at 0)');
});

test('checkpoint timer: start() checkpoints the newest entry on its interval; stop() ends it', async (t) => {
  const h = await fresh(t, { checkpointEvery: 0, checkpointIntervalMs: 30 });
  await fill(h, 3);
  h.log.start();
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && (await h.log.listCheckpoints({ fromSeq: 1, toSeq: 100 })).length === 0) await new Promise((r) => setTimeout(r, 20));
  await h.log.stop();
  const cps = await h.log.listCheckpoints({ fromSeq: 1, toSeq: 100 });
  t.deepEqual(cps.map((c) => c.seq), [3]);
  t.is(cps[0]!.signer, h.key.publicKey);
  await h.log.appendStandalone(base);
  await new Promise((r) => setTimeout(r, 100));
  t.is((await h.log.listCheckpoints({ fromSeq: 1, toSeq: 100 })).length, 1, 'stopped');
  t.like(await h.log.verify(), { ok: true, entries: 4, checkpoints: 1 });
});

// ------------------------------------------------------------------------------------------ signing key

test('signing key: created 0600 with 32 bytes, loaded again unchanged, and its checkpoints verify after a restart', async (t) => {
  const dir = tempDir(t);
  const key = await loadOrCreateServerSigningKey(dir);
  const file = path.join(dir, 'audit-signing.key');
  const st = statSync(file);
  t.is(st.mode & 0o777, 0o600);
  t.is(st.size, 32);
  const again = await loadOrCreateServerSigningKey(dir);
  t.is(again.publicKey, key.publicKey);
  t.deepEqual(again.secretKey, key.secretKey);

  const db = await openDatabase({ dataDir: dir });
  t.teardown(() => db.destroy());
  await new SqlAuditLog(db, key, { checkpointEvery: 2 }).appendStandalone(base);
  await new SqlAuditLog(db, key, { checkpointEvery: 2 }).appendStandalone(base);
  const restarted = new SqlAuditLog(db, await loadOrCreateServerSigningKey(dir));
  t.like(await restarted.verify(), { ok: true, entries: 2, checkpoints: 1 });
});

test('signing key: a group/world-readable file, a wrong-size file or a symlink makes loading fail clearly', async (t) => {
  const dir = tempDir(t);
  await loadOrCreateServerSigningKey(dir);
  const file = path.join(dir, 'audit-signing.key');
  const good = readFileSync(file);
  chmodSync(file, 0o644);
  await t.throwsAsync(loadOrCreateServerSigningKey(dir), { instanceOf: SigningKeyFileError, message: /audit-signing\.key: readable or writable by group or others \(mode 0644\); run chmod 600/ });
  chmodSync(file, 0o640);
  await t.throwsAsync(loadOrCreateServerSigningKey(dir), { instanceOf: SigningKeyFileError, message: /mode 0640/ });
  chmodSync(file, 0o600);
  t.truthy(await loadOrCreateServerSigningKey(dir));

  for (const size of [0, 31, 33, 64]) {
    writeFileSync(file, Buffer.alloc(size, 7), { mode: 0o600 });
    await t.throwsAsync(loadOrCreateServerSigningKey(dir), { instanceOf: SigningKeyFileError, message: new RegExp(`${size} bytes, a signing seed is exactly 32 bytes`) }, `size ${size}`);
  }
  writeFileSync(file, good, { mode: 0o600 });

  const dir2 = tempDir(t);
  symlinkSync(file, path.join(dir2, 'audit-signing.key'));
  await t.throwsAsync(loadOrCreateServerSigningKey(dir2), { instanceOf: SigningKeyFileError, message: /symbolic link/ });
});

// ------------------------------------------------------------------------------------------ queries

interface Made {
  seq: number;
  ts: number;
  input: AuditEntryInput;
}

/** 120 entries over orgs A, B and system-wide, three actors, four actions, three outcomes, ts 1000 apart. */
async function queryFixture(t: ExecutionContext): Promise<{ h: Harness; made: Made[] }> {
  let now = 1_800_000_000_000;
  const h = await fresh(t, { now: () => now });
  const orgs = ['orgA', 'orgB', null];
  const actions = ['auth.login', 'space.create', 'chunks.download', 'audit.export'];
  const outcomes = ['success', 'denied', 'failed'] as const;
  const made: Made[] = [];
  await h.db.transaction(async (trx) => {
    for (let i = 0; i < 120; i++) {
      now = 1_800_000_000_000 + i * 1000;
      const orgId = orgs[i % 3]!;
      const input: AuditEntryInput = {
        orgId,
        actorUserId: orgId === null ? null : `${orgId}-u${i % 4}`,
        actorDeviceId: `dev${i % 2}`,
        action: actions[i % 4]!,
        targetType: 'space',
        targetId: `t${i % 5}`,
        outcome: outcomes[i % 7 === 0 ? 1 : i % 11 === 0 ? 2 : 0],
        details: { i },
      };
      made.push({ seq: await h.log.append(trx, input), ts: now, input });
    }
  });
  return { h, made };
}

function expectSeqs(made: Made[], pred: (m: Made) => boolean): number[] {
  return made.filter(pred).map((m) => m.seq);
}

test('query: each filter and their combinations return exactly the expected rows, oldest first', async (t) => {
  const { h, made } = await queryFixture(t);
  const T0 = 1_800_000_000_000;
  const cases: [AuditFilter, (m: Made) => boolean][] = [
    [{}, () => true],
    [{ orgId: 'orgA' }, (m) => m.input.orgId === 'orgA'],
    [{ orgId: null }, (m) => m.input.orgId === null],
    [{ actorUserId: 'orgB-u1' }, (m) => m.input.actorUserId === 'orgB-u1'],
    [{ actorDeviceId: 'dev1' }, (m) => m.input.actorDeviceId === 'dev1'],
    [{ action: 'chunks.download' }, (m) => m.input.action === 'chunks.download'],
    [{ targetType: 'space', targetId: 't3' }, (m) => m.input.targetId === 't3'],
    [{ outcome: 'denied' }, (m) => m.input.outcome === 'denied'],
    [{ outcome: 'failed' }, (m) => m.input.outcome === 'failed'],
    [{ since: T0 + 30_000, until: T0 + 60_000 }, (m) => m.ts >= T0 + 30_000 && m.ts < T0 + 60_000],
    [{ since: T0 + 119_000 }, (m) => m.ts >= T0 + 119_000],
    [{ until: T0 }, () => false],
    [{ orgId: 'orgA', action: 'auth.login', outcome: 'success', since: T0 + 10_000 }, (m) => m.input.orgId === 'orgA' && m.input.action === 'auth.login' && m.input.outcome === 'success' && m.ts >= T0 + 10_000],
    [{ orgId: 'orgB', actorUserId: 'orgA-u0' }, () => false],
    [{ afterSeq: 100 }, (m) => m.seq > 100],
    [{ beforeSeq: 5 }, (m) => m.seq < 5],
    [{ orgId: 'orgA', limit: 3 }, (m) => m.input.orgId === 'orgA' && m.seq <= 7],
  ];
  for (const [filter, pred] of cases) {
    const got = await h.log.query(filter);
    t.deepEqual(got.map((e) => e.seq), expectSeqs(made, pred), JSON.stringify(filter));
  }
  // Newest first on request.
  const desc = await h.log.query({ orgId: 'orgB', order: 'desc', limit: 5 });
  t.deepEqual(desc.map((e) => e.seq), expectSeqs(made, (m) => m.input.orgId === 'orgB').reverse().slice(0, 5));
  // Entries come back whole.
  const one = (await h.log.query({ afterSeq: 6, limit: 1 }))[0]!;
  const m7 = made[6]!;
  t.like(one, { seq: 7, ts: m7.ts, orgId: m7.input.orgId, actorUserId: m7.input.actorUserId, action: m7.input.action, outcome: m7.input.outcome, details: { i: 6 }, ip: null, userAgent: null, client: null });
  t.regex(one.hash, /^[0-9a-f]{64}$/);
  t.is(one.prevHash, (await h.log.query({ afterSeq: 5, limit: 1 }))[0]!.hash);
  await t.throwsAsync(h.log.query({ limit: 0 }), { instanceOf: AuditInputError });
  await t.throwsAsync(h.log.query({ since: 1.5 }), { instanceOf: AuditInputError });
});

test('query: a time range within one organisation returns exactly its entries, also when the clock stepped back', async (t) => {
  // The range is first turned into the seqs it spans (log.ts): entries whose ts is out of seq order must not be lost.
  let now = 1_800_000_000_000;
  const h = await fresh(t, { now: () => now });
  const made: { seq: number; ts: number; orgId: string }[] = [];
  const steps = [0, 10, 20, 30, 5, 40, 50, 15, 60, 70, 25, 80]; // seconds; 5, 15 and 25 come after a step back
  await h.db.transaction(async (trx) => {
    for (const [i, step] of steps.entries()) {
      now = 1_800_000_000_000 + step * 1000;
      const orgId = i % 4 === 3 ? 'orgB' : 'orgA';
      made.push({ seq: await h.log.append(trx, { ...base, orgId, details: { i } }), ts: now, orgId });
    }
  });
  const T = (s: number) => 1_800_000_000_000 + s * 1000;
  for (const [since, until] of [[T(4), T(26)], [T(0), T(1)], [T(15), T(16)], [T(81), T(90)], [undefined, T(20)], [T(45), undefined]] as const) {
    const want = made.filter((m) => m.orgId === 'orgA' && (since === undefined || m.ts >= since) && (until === undefined || m.ts < until)).map((m) => m.seq);
    const range = { orgId: 'orgA', ...(since !== undefined ? { since } : {}), ...(until !== undefined ? { until } : {}) };
    t.deepEqual((await h.log.query(range)).map((e) => e.seq), want, JSON.stringify(range));
    t.deepEqual((await h.log.query({ ...range, order: 'desc' })).map((e) => e.seq), [...want].reverse());
    t.deepEqual((await h.log.query({ ...range, order: 'desc', limit: 2, beforeSeq: want.at(-1) ?? 1 })).map((e) => e.seq), want.slice(0, -1).reverse().slice(0, 2));
  }
});

test('query: paging by seq (both directions) returns every row once, and org A never sees org B', async (t) => {
  const { h, made } = await queryFixture(t);
  const all: AuditEntry[] = [];
  let afterSeq: number | undefined;
  for (;;) {
    const page = await h.log.query({ orgId: 'orgA', limit: 7, afterSeq });
    if (page.length === 0) break;
    t.true(page.length <= 7);
    all.push(...page);
    afterSeq = page[page.length - 1]!.seq;
  }
  t.deepEqual(all.map((e) => e.seq), expectSeqs(made, (m) => m.input.orgId === 'orgA'));
  t.true(all.every((e) => e.orgId === 'orgA'));

  const back: number[] = [];
  let beforeSeq: number | undefined;
  for (;;) {
    const page = await h.log.query({ orgId: 'orgA', order: 'desc', limit: 9, beforeSeq });
    if (page.length === 0) break;
    back.push(...page.map((e) => e.seq));
    beforeSeq = page[page.length - 1]!.seq;
  }
  t.deepEqual(back, expectSeqs(made, (m) => m.input.orgId === 'orgA').reverse());

  // Every other criterion stays inside the org.
  for (const f of [{ actorUserId: 'orgB-u1' }, { action: 'auth.login' }, { outcome: 'denied' as const }, { targetId: 't1' }, { since: 0 }]) {
    const got = await h.log.query({ ...f, orgId: 'orgA' });
    t.true(got.every((e) => e.orgId === 'orgA'), JSON.stringify(f));
  }
  t.deepEqual(await h.log.query({ orgId: 'orgA', actorUserId: 'orgB-u1' }), []);
  t.deepEqual(await h.log.query({ orgId: 'orgC' }), []);
});

// ------------------------------------------------------------------------------------------ export

/** A strict RFC 4180 parser (CRLF records; quoted fields may hold anything); returns null for an unquoted empty field. */
function parseCsv(text: string): (string | null)[][] {
  const rows: (string | null)[][] = [];
  let row: (string | null)[] = [];
  let i = 0;
  while (i < text.length) {
    let field: string | null;
    if (text[i] === '"') {
      let s = '';
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) throw new Error('unterminated quote');
        s += text.slice(i, q);
        if (text[q + 1] === '"') {
          s += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      field = s;
    } else {
      let j = i;
      while (j < text.length && text[j] !== ',' && text[j] !== '\r' && text[j] !== '\n') j++;
      const raw = text.slice(i, j);
      if (raw.includes('"')) throw new Error(`bare quote in ${raw}`);
      field = raw === '' ? null : raw;
      i = j;
    }
    row.push(field);
    if (text[i] === ',') {
      i++;
    } else if (text.startsWith('\r\n', i)) {
      rows.push(row);
      row = [];
      i += 2;
    } else if (i >= text.length) {
      rows.push(row);
    } else {
      throw new Error(`unexpected ${JSON.stringify(text[i])} at ${i}`);
    }
  }
  return rows;
}

/** Collects what is written, slowly, with a small buffer: exercises backpressure and counts the writes. */
class SlowSink extends Writable {
  chunks: string[] = [];
  constructor() {
    super({ highWaterMark: 1024, decodeStrings: false });
  }
  override _write(chunk: string | Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk.toString());
    setImmediate(cb);
  }
  get text(): string {
    return this.chunks.join('');
  }
}

test('export: CSV has a header and one record per entry, RFC 4180 quoting, and formula cells neutralised', async (t) => {
  const h = await fresh(t);
  const nasty: AuditEntryInput[] = [
    { ...base, userAgent: 'Mozilla/5.0 (X11, Linux), "quoted"', details: { note: 'a,b', multi: 'line1\nline2' } },
    { ...base, targetId: '=HYPERLINK("http://evil","x")', client: '+cmd', ip: '-1+1', userAgent: '@SUM(A1:A2)' },
    { ...base, userAgent: "'already quoted", client: '\tTAB', targetId: '' },
    { orgId: null, action: 'server.start', outcome: 'failed' },
  ];
  for (const e of nasty) await h.log.appendStandalone(e);
  const sink = new SlowSink();
  t.deepEqual(await exportAudit(h.log, {}, 'csv', sink), { entries: 4 });
  const text = sink.text;
  t.true(text.endsWith('\r\n'));
  t.true(text.includes('"Mozilla/5.0 (X11, Linux), ""quoted"""'), 'commas and quotes are quoted and doubled');
  t.true(text.includes(`"'=HYPERLINK(""http://evil"",""x"")"`), 'formula neutralised, then quoted');
  const rows = parseCsv(text);
  t.deepEqual(rows[0], [...AUDIT_CSV_COLUMNS]);
  t.is(rows.length, 5);
  const col = (name: (typeof AUDIT_CSV_COLUMNS)[number]) => AUDIT_CSV_COLUMNS.indexOf(name);
  // No data cell starts with a formula trigger.
  for (const r of rows.slice(1)) for (const cell of r) if (cell) t.notRegex(cell, /^[=+\-@\t\r]/);
  const entries = await h.log.query({});
  const unescape = (cell: string | null) => (cell !== null && cell.startsWith("'") ? cell.slice(1) : cell);
  entries.forEach((e, i) => {
    const r = rows[i + 1]!;
    t.is(r.length, AUDIT_CSV_COLUMNS.length);
    t.is(r[col('seq')], String(e.seq));
    t.is(r[col('ts')], String(e.ts));
    t.is(r[col('time')], new Date(e.ts).toISOString());
    t.is(unescape(r[col('orgId')]!), e.orgId);
    t.is(unescape(r[col('targetId')]!), e.targetId);
    t.is(unescape(r[col('userAgent')]!), e.userAgent);
    t.is(unescape(r[col('client')]!), e.client);
    t.is(unescape(r[col('ip')]!), e.ip);
    t.is(r[col('details')], e.details === null ? null : k.canonicalJson(e.details));
    t.is(r[col('prevHash')], e.prevHash);
    t.is(r[col('hash')], e.hash);
  });
  t.is(rows[2]![col('client')], "'+cmd");
  t.is(rows[2]![col('ip')], "'-1+1");
  t.is(rows[2]![col('userAgent')], "'@SUM(A1:A2)");
  t.is(rows[3]![col('userAgent')], "''already quoted", "a leading ' is escaped too, so one strip always recovers the value");
  t.is(rows[3]![col('client')], "'\tTAB");
  t.is(rows[3]![col('targetId')], '', 'empty string is "" (null is an empty field)');
  t.is(rows[4]![col('actorUserId')], null);
  t.is(rows[1]![col('details')], '{"multi":"line1\\nline2","note":"a,b"}');
});

test('export: JSON parses, carries the public key, the filter, the entries and their checkpoints, and chain-checks', async (t) => {
  const h = await fresh(t, { checkpointEvery: 10 });
  await fill(h, 35, (i) => ({ ...base, orgId: i % 2 ? 'orgA' : 'orgB', userAgent: 'quote " and \\ and \u2028', details: { i } }));
  const sink = new SlowSink();
  t.deepEqual(await exportAudit(h.log, {}, 'json', sink, { now: () => 42 }), { entries: 35 });
  const doc = JSON.parse(sink.text) as { format: string; serverPublicKey: string; exportedAt: number; filter: unknown; entries: AuditEntry[]; checkpoints: { seq: number }[]; count: number };
  t.is(doc.format, 'kluis-audit-export/v1');
  t.is(doc.serverPublicKey, h.log.publicKey);
  t.is(doc.exportedAt, 42);
  t.deepEqual(doc.filter, {});
  t.is(doc.count, 35);
  t.deepEqual(doc.entries, await h.log.query({}));
  t.deepEqual(doc.checkpoints.map((c) => c.seq), [10, 20, 30]);
  t.like(checkAuditExport(doc, [h.key.publicKey]), { ok: true, entries: 35, checkpoints: 3, complete: true });
  // An edited export is caught offline.
  const edited = JSON.parse(sink.text) as typeof doc;
  edited.entries[4]!.outcome = 'denied';
  t.like(checkAuditExport(edited, [h.key.publicKey]), { ok: false, problem: 'entry 5: hash does not match its content' });
  const foreign = checkAuditExport(doc, [k.generateServerSigningKey().publicKey]);
  t.false(foreign.ok);
  t.regex(foreign.problem ?? '', /^checkpoint at 10: signed by an untrusted key/);

  // Filtered, newest first: only that org, and the filter is echoed.
  const sink2 = new SlowSink();
  await exportAudit(h.log, { orgId: 'orgA', order: 'desc', limit: 5 }, 'json', sink2);
  const doc2 = JSON.parse(sink2.text) as typeof doc;
  t.deepEqual(doc2.filter, { orgId: 'orgA', order: 'desc', limit: 5 });
  t.deepEqual(doc2.entries.map((e) => e.seq), [34, 32, 30, 28, 26]);
  t.true(doc2.entries.every((e) => e.orgId === 'orgA'));
  t.deepEqual(doc2.checkpoints.map((c) => c.seq), [30]);
  t.like(checkAuditExport(doc2, [h.key.publicKey]), { ok: true, entries: 5, complete: false });

  // Nothing matches: still valid JSON.
  const sink3 = new SlowSink();
  t.deepEqual(await exportAudit(h.log, { orgId: 'nobody' }, 'json', sink3), { entries: 0 });
  const doc3 = JSON.parse(sink3.text) as typeof doc;
  t.deepEqual(doc3.entries, []);
  t.deepEqual(doc3.checkpoints, []);
  t.is(doc3.count, 0);
  const sink4 = new SlowSink();
  await exportAudit(h.log, { orgId: 'nobody' }, 'csv', sink4);
  t.is(sink4.text, AUDIT_CSV_COLUMNS.join(',') + '\r\n');
});

test('export: a destination that fails or closes mid-way rejects the export instead of hanging or crashing', async (t) => {
  const h = await fresh(t);
  await h.db.transaction((trx) => h.log.appendMany(trx, Array.from({ length: 3000 }, (_, i) => ({ ...base, details: { i } }))));
  let writes = 0;
  const failing = new Writable({
    highWaterMark: 1,
    write(_chunk, _enc, cb) {
      setImmediate(() => cb(++writes === 3 ? new Error('disk full') : null));
    },
  });
  await t.throwsAsync(exportAudit(h.log, {}, 'json', failing, { pageSize: 100 }), { message: 'disk full' });
  const closing = new Writable({
    highWaterMark: 1,
    write(_chunk, _enc, cb) {
      setImmediate(cb);
    },
  });
  setTimeout(() => closing.destroy(), 5);
  await t.throwsAsync(exportAudit(h.log, {}, 'csv', closing, { pageSize: 10 }), { message: /destination (is )?closed|premature close/i });
});

test('export: 20,000 entries stream to a file as valid JSON and CSV in pages; query limits default to 1000 and cap at 10,000', async (t) => {
  t.timeout(60_000);
  const h = await fresh(t);
  const started = Date.now();
  for (let start = 0; start < 20_000; start += 2000) {
    await h.db.transaction((trx) => h.log.appendMany(trx, Array.from({ length: 2000 }, (_, j) => ({ ...base, orgId: (start + j) % 2 ? 'orgA' : 'orgB', details: { i: start + j } }))));
  }
  const filled = Date.now();
  t.is((await h.log.query({})).length, 1000);
  t.is((await h.log.query({ limit: 50_000 })).length, 10_000);

  const jsonFile = path.join(h.dir, 'audit.json');
  const out = createWriteStream(jsonFile);
  let writes = 0;
  const origWrite = out.write.bind(out);
  out.write = ((chunk: unknown, ...rest: never[]) => {
    writes++;
    return origWrite(chunk as string, ...rest);
  }) as typeof out.write;
  t.deepEqual(await exportAudit(h.log, {}, 'json', out), { entries: 20_000 });
  t.true(writes >= 20, `written incrementally (${writes} writes)`);
  const doc = JSON.parse(readFileSync(jsonFile, 'utf8')) as { entries: AuditEntry[]; checkpoints: unknown[]; count: number; serverPublicKey: string };
  t.is(doc.count, 20_000);
  t.is(doc.entries.length, 20_000);
  t.deepEqual(doc.entries.map((e) => e.seq).slice(0, 3), [1, 2, 3]);
  t.is(doc.entries[19_999]!.seq, 20_000);
  t.is(doc.checkpoints.length, 20);
  t.like(checkAuditExport(doc, [h.key.publicKey]), { ok: true, entries: 20_000, checkpoints: 20, complete: true });

  const csvFile = path.join(h.dir, 'audit.csv');
  await exportAudit(h.log, { orgId: 'orgA' }, 'csv', createWriteStream(csvFile));
  const lines = readFileSync(csvFile, 'utf8').split('\r\n');
  t.is(lines.length, 10_002, 'header + 10,000 records + the empty string after the last CRLF');
  t.is(lines[10_001], '');
  const v = await h.log.verify();
  t.like(v, { ok: true, entries: 20_000, checkpoints: 20 });
  t.log(`fill ${filled - started} ms, export+verify ${Date.now() - filled} ms`);
});
