// Tampering with the audit trail by someone who has the database file and deletes the signed checkpoints that would
// give the change away (issue 16 §2). Each case (a)–(e) verified as intact before the verification rules V3–V5 of
// docs/crypto.md §12; a log that grows legitimately keeps verifying across runs with the state file.
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { openDatabase, type Db } from '../../server/dist/db/db.js';
import { SqlAuditLog, loadOrCreateServerSigningKey, type SqlAuditLogOptions } from '../../server/dist/audit/log.js';
import { AUDIT_STATE_FILE, AuditStateError, readAuditState, verifyWithState } from '../../server/dist/audit/anchor.js';
import type { AuditEntryInput, AuditVerifyResult } from '../../server/dist/audit/types.js';
import { repoRoot } from '../helpers/server.js';
import { cutMerkle, dropTriggers, rebuildMerkle, type AuditDbRow as Row } from '../helpers/audit-db.js';

// ------------------------------------------------------------------------------------------ harness

const MINUTE = 60_000;

interface Harness {
  dir: string;
  db: Db;
  log: SqlAuditLog;
  key: k.ServerSigningKey;
  /** The log's clock (ms): every reading advances it by 1 ms; tests move it on to let time pass. */
  clock: { now: number };
  state: string;
}

async function fresh(t: ExecutionContext, options: SqlAuditLogOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kluis-tamper-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db = await openDatabase({ dataDir: dir });
  t.teardown(() => db.destroy());
  const key = await loadOrCreateServerSigningKey(dir);
  const clock = { now: Date.now() };
  const log = new SqlAuditLog(db, key, { now: () => clock.now++, ...options });
  return { dir, db, log, key, clock, state: path.join(dir, AUDIT_STATE_FILE) };
}

const entry = (i: number): AuditEntryInput => ({ orgId: 'orgA', actorUserId: 'u1', actorDeviceId: 'd1', action: 'changes.read', targetType: 'space', targetId: 's1', outcome: 'success', ip: '192.0.2.1', details: { i } });

/** Appends `n` more entries, in transactions of up to 500 (the boundary checkpoints are written inside them). */
async function fill(h: Harness, n: number): Promise<void> {
  for (let done = 0; done < n; done += 500) {
    await h.db.transaction(async (trx) => {
      for (let i = done; i < Math.min(n, done + 500); i++) await h.log.append(trx, entry(i));
    });
  }
}

/** Cuts the log after `seq`, with every checkpoint beyond it. */
async function truncateAfter(db: Db, seq: number): Promise<void> {
  await db('audit_log').where('seq', '>', seq).delete();
  await db('audit_checkpoints').where('seq', '>', seq).delete();
  await cutMerkle(db, seq);
}

const checkpointSeqs = async (db: Db): Promise<number[]> => (await db('audit_checkpoints').orderBy('seq').select('seq')).map((r: { seq: number }) => Number(r.seq));

/** Rewrites entry `seq` and re-hashes it and every later entry, as docs/crypto.md §12 defines the chain. */
async function rewriteAndRechain(db: Db, seq: number, change: Partial<Row>): Promise<void> {
  await db('audit_log').where({ seq }).update(change);
  const rows = (await db('audit_log').where('seq', '>=', seq).orderBy('seq').select('*')) as Row[];
  let prev = seq === 1 ? k.AUDIT_GENESIS : ((await db('audit_log').where({ seq: seq - 1 }).first('hash')) as { hash: string }).hash;
  for (const r of rows) {
    const hash = k.auditChainHash(prev, {
      seq: r.seq, ts: r.ts, orgId: r.org_id, actorUserId: r.actor_user_id, actorDeviceId: r.actor_device_id, action: r.action, targetType: r.target_type,
      targetId: r.target_id, outcome: r.outcome, ip: r.ip, userAgent: r.user_agent, client: r.client, details: r.details === null ? null : JSON.parse(r.details),
    });
    await db('audit_log').where({ seq: r.seq }).update({ prev_hash: prev, hash });
    prev = hash;
  }
  await rebuildMerkle(db);
}

function broken(t: ExecutionContext, v: AuditVerifyResult, seq: number, reason: RegExp): void {
  t.false(v.ok, `must not verify: ${JSON.stringify(v)}`);
  t.is(v.firstBroken?.seq, seq, JSON.stringify(v.firstBroken));
  t.regex(v.firstBroken?.reason ?? '', reason);
}

/** Runs kluis-admin --json on a data directory; resolves with its exit code and parsed output (even on failure). */
function admin(dataDir: string, args: string[]): Promise<{ code: number | null; out: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [path.join(repoRoot, 'server/dist/admin/cli.js'), '--json', ...args], {
      env: { PATH: process.env.PATH ?? '', KLUIS_DATA_DIR: dataDir, KLUIS_ENV: 'test' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('exit', (code) => {
      try {
        resolve({ code, out: JSON.parse(stdout) });
      } catch {
        reject(new Error(`kluis-admin ${args.join(' ')}: exit ${code}, no JSON:\n${stdout}\n${stderr}`));
      }
    });
  });
}

test.before(async () => {
  await k.initCrypto();
});

// ------------------------------------------------------------------------------------------ (a)–(e)

test('(a) deleting the last entry with its checkpoint: unsigned entries older than the interval, and the state file, give it away', async (t) => {
  const h = await fresh(t, { checkpointEvery: 10 });
  await fill(h, 25);
  await h.log.checkpoint(); // the timer's (or shutdown's) checkpoint over entry 25
  t.deepEqual(await checkpointSeqs(h.db), [10, 20, 25]);
  t.like(await verifyWithState(h.log, { file: h.state }), { ok: true, lastSeq: 25, state: { saved: { seq: 25 } } });

  await dropTriggers(h.db);
  await truncateAfter(h.db, 24);
  // With the state file: at once.
  broken(t, await verifyWithState(h.log, { file: h.state }), 25, /^entry 25 missing: the log ends at 24, but 25 entries were verified at .* \(state file\)/);
  t.is(readAuditState(h.state)?.seq, 25, 'a failed verification never moves the anchor back');
  // Without it: once the timer would have signed entries 21..24, their lack of a checkpoint shows.
  h.clock.now += 5 * MINUTE;
  broken(t, await h.log.verify(), 21, /^entry 21: not covered by a signed checkpoint \d+ s after it was written \(the newest checkpoint is at 20; one is due within 90 s\)/);
});

test('(b) truncating everything after the second-last checkpoint: the state file refuses the shorter log (CLI too)', async (t) => {
  // The data directory as the server leaves it (default checkpointEvery 1000), checked by kluis-admin itself.
  const h = await fresh(t, { now: Date.now });
  await fill(h, 2500);
  await h.log.checkpoint();
  const state = path.join(h.dir, 'elsewhere.json');
  const first = await admin(h.dir, ['audit', 'verify', '--state', state]);
  t.is(first.code, 0, JSON.stringify(first.out));
  t.like(first.out, { ok: true, entries: 2500, checkpoints: 3, lastCheckpointSeq: 2500, state: { file: state, previous: null } });
  // kluis-admin appended its own audit.verify entry to the verified chain, signed it on closing, and recorded it.
  const anchor = first.out.state.saved as { seq: number; hash: string };
  t.is(anchor.seq, 2501);
  const cps = await checkpointSeqs(h.db);
  t.deepEqual(cps, [1000, 2000, 2500, 2501]);

  await dropTriggers(h.db);
  const secondLast = cps[cps.length - 2]!;
  await truncateAfter(h.db, secondLast);
  const head = Number((await h.db('audit_log').max({ n: 'seq' }).first())?.n);
  t.is(head, secondLast);
  const again = await admin(h.dir, ['audit', 'verify', '--state', state]);
  t.is(again.code, 1);
  t.false(again.out.ok);
  t.is(again.out.firstBroken.seq, anchor.seq);
  t.regex(again.out.firstBroken.reason, new RegExp(`^entry ${anchor.seq} missing: the log ends at ${secondLast}, but`));
  t.is(again.out.state.saved, null);
  t.deepEqual(readAuditState(state) && { seq: readAuditState(state)!.seq, hash: readAuditState(state)!.hash }, anchor);
  t.deepEqual(await checkpointSeqs(h.db), [1000, 2000, 2500], 'no checkpoint is signed over a trail that did not verify');
});

test('(c) rewriting an entry and re-hashing every later one, its checkpoints deleted: the boundary checkpoint, the age rule and the state file each catch it', async (t) => {
  // Boundary: the checkpoint at 20 commits with entry 20, so its absence is proof.
  const h = await fresh(t, { checkpointEvery: 10 });
  await fill(h, 30);
  await dropTriggers(h.db);
  await rewriteAndRechain(h.db, 17, { outcome: 'denied' });
  await h.db('audit_checkpoints').where('seq', '>', 16).delete();
  await h.db('audit_tree_heads').where('size', '>', 16).delete(); // signed with them, as invalid as they are
  broken(t, await h.log.verify(), 20, /^checkpoint at 20 missing \(one is signed at every multiple of 10 entries\)$/);

  // Fewer entries than N: the timer's checkpoints at 100, 200, 300; 150 rewritten, 200 and 300 deleted.
  const g = await fresh(t);
  for (let i = 0; i < 3; i++) {
    await fill(g, 100);
    await g.log.checkpoint();
  }
  t.like(await verifyWithState(g.log, { file: g.state }), { ok: true, lastSeq: 300 });
  await dropTriggers(g.db);
  await rewriteAndRechain(g.db, 150, { actor_user_id: 'someone-else' });
  await g.db('audit_checkpoints').where('seq', '>=', 150).delete();
  await g.db('audit_tree_heads').where('size', '>=', 150).delete();
  // The state file: at once, even before the interval is over.
  broken(t, await verifyWithState(g.log, { file: g.state }), 300, /^entry 300: differs from the entry verified at .* \(state file\): the log was rewritten$/);
  // Without it: the entries after checkpoint 100 stay unsigned for longer than the timer allows.
  g.clock.now += 5 * MINUTE;
  broken(t, await g.log.verify(), 101, /^entry 101: not covered by a signed checkpoint/);
});

test('(d) deleting every checkpoint: 5,812 entries and 0 checkpoints do not verify', async (t) => {
  const h = await fresh(t);
  await fill(h, 5812);
  await h.log.checkpoint();
  t.like(await h.log.verify(), { ok: true, entries: 5812, checkpoints: 6 });
  await dropTriggers(h.db);
  await h.db('audit_checkpoints').delete();
  t.deepEqual(await checkpointSeqs(h.db), []);
  broken(t, await h.log.verify(), 1000, /^checkpoint at 1000 missing \(one is signed at every multiple of 1000 entries\)$/);
});

test('(e) cutting the log to 100 entries: refused by the state file at once, and by the age rule once the interval is over', async (t) => {
  const h = await fresh(t);
  await fill(h, 5812);
  await h.log.checkpoint();
  t.like(await verifyWithState(h.log, { file: h.state }), { ok: true, lastSeq: 5812 });
  await dropTriggers(h.db);
  await truncateAfter(h.db, 100);
  broken(t, await verifyWithState(h.log, { file: h.state }), 5812, /^entry 5812 missing: the log ends at 100, but 5812 entries were verified at/);
  h.clock.now += 5 * MINUTE;
  broken(t, await h.log.verify(), 1, /^entry 1: not covered by a signed checkpoint .*\(the newest checkpoint is at 0;/);
});

// ------------------------------------------------------------------------------------------ legitimate use

test('a log that grows legitimately verifies run after run with the state file, which records each new head (0600)', async (t) => {
  const h = await fresh(t, { checkpointEvery: 50 });
  let lastSeq = 0;
  for (let run = 0; run < 4; run++) {
    await fill(h, 37);
    if (run % 2 === 1) await h.log.checkpoint(); // as the timer would; on the other runs the tail is young and unsigned
    const r = await verifyWithState(h.log, { file: h.state });
    t.true(r.ok, JSON.stringify(r.firstBroken));
    t.is(r.lastSeq, (run + 1) * 37);
    t.is(r.state?.previous?.seq ?? 0, lastSeq, 'checked against the previous run');
    t.deepEqual(r.state?.saved, { seq: r.lastSeq, hash: r.lastHash });
    lastSeq = r.lastSeq!;
    const saved = JSON.parse(readFileSync(h.state, 'utf8'));
    t.like(saved, { format: 'kluis-audit-verified/v1', seq: lastSeq, hash: r.lastHash, serverPublicKey: h.key.publicKey });
    t.is(statSync(h.state).mode & 0o777, 0o600);
  }
  // Hours later, with the tail signed (the timer or shutdown did it), nothing is owed.
  await h.log.checkpoint();
  h.clock.now += 3 * 60 * MINUTE;
  t.like(await verifyWithState(h.log, { file: h.state }), { ok: true, lastSeq: 148, lastCheckpointSeq: 148 });
  // After a restart (a new log object on the same database and key), with more entries.
  const restarted = new SqlAuditLog(h.db, h.key, { checkpointEvery: 50, now: () => h.clock.now++ });
  await restarted.appendStandalone(entry(999));
  t.like(await verifyWithState(restarted, { file: h.state }), { ok: true, lastSeq: 149, state: { previous: { seq: 148 } } });
});

test('after a crash the unsigned tail fails the age rule until the restarted server signs it, which it does at start', async (t) => {
  const h = await fresh(t, { checkpointEvery: 50 });
  await fill(h, 30); // the server died before its timer or its shutdown signed these
  h.clock.now += 5 * MINUTE;
  broken(t, await h.log.verify(), 1, /^entry 1: not covered by a signed checkpoint/);
  const restarted = new SqlAuditLog(h.db, h.key, { checkpointEvery: 50, now: () => h.clock.now++ });
  restarted.start();
  await restarted.stop(); // waits for the checkpoint start() began
  t.like(await restarted.verify(), { ok: true, entries: 30, lastCheckpointSeq: 30 });
});

test('the state file: required and missing, or unreadable, stops verification and is never overwritten', async (t) => {
  const h = await fresh(t);
  await fill(h, 5);
  await t.throwsAsync(verifyWithState(h.log, { file: h.state, require: true }), { instanceOf: AuditStateError, message: /no state file/ });
  writeFileSync(h.state, '{"format":"something else"}');
  await t.throwsAsync(verifyWithState(h.log, { file: h.state }), { instanceOf: AuditStateError, message: /not a kluis-audit-verified\/v1 state file/ });
  t.is(readFileSync(h.state, 'utf8'), '{"format":"something else"}');
  const cli = await admin(h.dir, ['audit', 'verify', '--state', h.state]);
  t.is(cli.code, 2);
  t.is(cli.out.error.code, 'validation_failed');
  // --no-state reads and writes nothing; the default file lives in the data directory.
  rmSync(h.state);
  t.like((await admin(h.dir, ['audit', 'verify', '--no-state'])).out, { ok: true, state: null });
  t.is(readAuditState(h.state), null);
  const byDefault = await admin(h.dir, ['audit', 'verify']);
  t.like(byDefault.out, { ok: true, lastSeq: 6, state: { file: h.state, previous: null, saved: { seq: 7 } } });
  t.is(readAuditState(h.state)?.seq, 7, 'the verifier\'s own entry, appended to the verified chain');
  // Each verification is itself audited (system-wide), and a verified one is sealed by a checkpoint.
  const audited = await h.db('audit_log').where({ action: 'audit.verify' }).select('outcome', 'org_id', 'client');
  t.deepEqual(audited.map((r: { outcome: string; org_id: string | null }) => [r.outcome, r.org_id]), [['success', null], ['success', null]]);
});
