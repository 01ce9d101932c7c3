// The audit witness (issue 20 §2; docs/operations.md "Audit witness"): `kluis-admin audit witness` run against a real
// server process holds the newest signed tree head, accepts heads that extend it, and raises an alarm (exit 3, an
// audit.witness.alert entry, its own alerts file) when the database is tampered with between two checks: an entry
// rewritten (chain and Merkle tree rebuilt, the server then signs over the forgery), the tail cut, and a forked history
// re-signed with the server's own key (which the server's own verification cannot tell from the real one).
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { admin, call, newOrg } from '../helpers/api.js';
import { databaseEnv, openServerDb, repoRoot, startServer, type RunningServer } from '../helpers/server.js';
import { loadConfig } from '../../server/dist/config.js';
import { chainEntryOf, cutMerkle, dropTriggers, rebuildMerkle, type AuditDbRow } from '../helpers/audit-db.js';

const ADMIN_CLI = path.join(repoRoot, 'server/dist/admin/cli.js');
const dirs: string[] = [];
const servers = new Set<RunningServer>();
test.after.always(async () => {
  for (const s of servers) await s.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Setup {
  srv: RunningServer;
  dataDir: string;
  orgId: string;
  token: string;
  tokenFile: string;
  state: string;
  port?: string;
}

function tmp(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** Starts the server on `dataDir`; a restart keeps the port, so that the witness sees the same server URL. */
async function start(dataDir: string, port?: string): Promise<RunningServer> {
  const srv = await startServer({ KLUIS_DATA_DIR: dataDir, ...(port ? { KLUIS_PORT: port } : {}) });
  servers.add(srv);
  return srv;
}

async function stop(s: Setup): Promise<void> {
  s.port = new URL(s.srv.url).port;
  await s.srv.stop();
  servers.delete(s.srv);
}

/** A server with an organisation whose admin's token the witness uses, and some audited activity. */
async function setup(): Promise<Setup> {
  const dataDir = tmp('kluis-witness-srv-');
  const srv = await start(dataDir);
  const { orgId, admin: a } = await newOrg(srv.url, dataDir);
  const tokenFile = path.join(tmp('kluis-witness-token-'), 'token');
  writeFileSync(tokenFile, a.token, { mode: 0o600 });
  const s = { srv, dataDir, orgId, token: a.token, tokenFile, state: tmp('kluis-witness-state-') };
  await activity(s, 5);
  return s;
}

async function activity(s: Setup, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await call(s.srv.url, 'GET', `/api/v1/orgs/${s.orgId}/audit?limit=1`, { token: s.token });
}

/** A new signed tree head over everything so far: the server signs the newest entry at shutdown and at start. */
async function newHead(s: Setup): Promise<void> {
  await stop(s);
  s.srv = await start(s.dataDir, s.port);
}

function witness(s: Setup, extra: string[] = []): Promise<{ code: number; out: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return new Promise((resolve) => {
    execFile(process.execPath, [ADMIN_CLI, '--json', 'audit', 'witness', '--server', s.srv.url, '--org', s.orgId, '--state', s.state, '--token-file', s.tokenFile, '--once', ...extra],
      { env: { PATH: process.env.PATH ?? '' } }, (err, stdout) => {
        const line = stdout.trim().split('\n').pop() ?? '';
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: line ? JSON.parse(line) : null });
      });
  });
}

async function newestHeadSize(s: Setup): Promise<number> {
  const r = await call(s.srv.url, 'GET', `/api/v1/orgs/${s.orgId}/audit/tree-heads?limit=1`, { token: s.token });
  return r.body.latest.size;
}

/** A witness that has checked twice and holds the newest head. */
async function watched(t: ExecutionContext): Promise<Setup & { held: number }> {
  const s = await setup();
  await newHead(s);
  const first = await witness(s);
  t.is(first.code, 0, JSON.stringify(first.out));
  t.true(first.out.ok && first.out.firstRun);
  await activity(s, 5);
  await newHead(s);
  const second = await witness(s);
  t.is(second.code, 0, JSON.stringify(second.out));
  t.true(second.out.head.size > first.out.head.size, 'the second head extends the first');
  return { ...s, held: second.out.head.size };
}

/** Rewrites entry `seq` as an attacker with the database would: content changed, chain re-hashed, Merkle tree rebuilt. */
async function rewrite(db: Awaited<ReturnType<typeof openServerDb>>, seq: number): Promise<void> {
  await dropTriggers(db);
  await db('audit_log').where({ seq }).update({ outcome: 'denied' });
  const rows = (await db('audit_log').where('seq', '>=', seq).orderBy('seq').select('*')) as AuditDbRow[];
  let prev = seq === 1 ? k.AUDIT_GENESIS : ((await db('audit_log').where({ seq: seq - 1 }).first('hash')) as { hash: string }).hash;
  for (const r of rows) {
    const hash = k.auditChainHash(prev, chainEntryOf(r));
    await db('audit_log').where({ seq: r.seq }).update({ prev_hash: prev, hash });
    prev = hash;
  }
  await rebuildMerkle(db);
}

async function alarmed(t: ExecutionContext, s: Setup, kind: string, reason: RegExp): Promise<void> {
  const r = await witness(s);
  t.is(r.code, 3, JSON.stringify(r.out));
  t.false(r.out.ok);
  t.is(r.out.alert.kind, kind);
  t.regex(r.out.alert.reason, reason);
  t.true(r.out.reported, 'the server took the report');
  const alerts = readFileSync(path.join(s.state, 'alerts.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.is(alerts.at(-1).kind, kind);
  const found = await call(s.srv.url, 'GET', `/api/v1/orgs/${s.orgId}/audit?action=audit.witness.alert`, { token: s.token });
  t.is(found.status, 200);
  t.like(found.body.entries.at(-1), { action: 'audit.witness.alert', outcome: 'failed', details: { kind } });
  // The held head is never replaced by the one that failed: the alarm repeats at the next check.
  const again = await witness(s);
  t.is(again.code, 3);
}

test('the witness holds the newest head and accepts heads that extend it', async (t) => {
  const s = await watched(t);
  const r = await witness(s);
  t.is(r.code, 0);
  t.is(r.out.head.size, s.held, 'nothing new: the same head');
  const state = JSON.parse(readFileSync(path.join(s.state, 'witness.json'), 'utf8'));
  t.like(state, { format: 'kluis-audit-witness/v1', orgId: s.orgId, head: { size: s.held } });
  t.false(existsSync(path.join(s.state, 'alerts.jsonl')));
});

test('a rewritten entry (chain and Merkle tree rebuilt, the server signing over the forgery) is a fork', async (t) => {
  const s = await watched(t);
  await stop(s);
  const db = await openServerDb(s.dataDir);
  await rewrite(db, 3);
  await db.destroy();
  s.srv = await start(s.dataDir, s.port);
  await activity(s, 3);
  await newHead(s);
  t.true((await newestHeadSize(s)) > s.held);
  await alarmed(t, s, 'fork', /does not extend the one of size \d+ this witness holds/);
});

test('a truncated tail is a rollback', async (t) => {
  const s = await watched(t);
  await stop(s);
  const db = await openServerDb(s.dataDir);
  await dropTriggers(db);
  const cut = s.held - 4;
  await db('audit_log').where('seq', '>', cut).delete();
  await db('audit_checkpoints').where('seq', '>', cut).delete();
  await cutMerkle(db, cut);
  await db.destroy();
  s.srv = await start(s.dataDir, s.port);
  await alarmed(t, s, 'rollback', /smaller than the \d+ this witness holds|signs no tree head of size/);
});

test('a forked history re-signed with the server key passes the server\'s own verification, not the witness', async (t) => {
  const s = await watched(t);
  await stop(s);
  const db = await openServerDb(s.dataDir);
  await rewrite(db, 2);
  // Every checkpoint and tree head signed again, with the real key, over the forged history.
  const seed = new Uint8Array(readFileSync(path.join(s.dataDir, 'audit-signing.key')));
  const key = k.serverSigningKeyFromSeed(seed);
  const cps = (await db('audit_checkpoints').select('seq', 'ts')) as { seq: number; ts: number }[];
  await db('audit_checkpoints').delete();
  await db('audit_tree_heads').delete();
  const nodes = new Map<string, Uint8Array>();
  for (const n of (await db('audit_merkle').select('*')) as { level: number; idx: number; hash: string }[]) nodes.set(`${n.level}/${n.idx}`, k.fromHex(n.hash));
  const read: k.MerkleNodeReader = async (ns) => ns.map((n) => nodes.get(`${n.level}/${n.index}`)!);
  for (const cp of cps) {
    const seq = Number(cp.seq);
    const ts = Number(cp.ts);
    const { hash } = (await db('audit_log').where({ seq }).first('hash')) as { hash: string };
    await db('audit_checkpoints').insert({ seq, hash, ts, signer: key.publicKey, signature: k.signAuditCheckpoint({ seq, hash, ts }, key) });
    const root = k.toHex(await k.merkleRootAt(read, seq));
    await db('audit_tree_heads').insert({ size: seq, root, ts, signer: key.publicKey, signature: k.signAuditTreeHead({ size: seq, root, ts }, key) });
  }
  await db.destroy();
  const verified = await admin(s.dataDir, ['audit', 'verify', '--no-state']);
  t.true(verified.ok, `the forgery is perfect to the server itself: ${JSON.stringify(verified)}`);
  s.srv = await start(s.dataDir, s.port);
  await alarmed(t, s, 'fork', /a different root|has another root than the one this witness holds/);
});

test('bad input: the proof and head endpoints refuse what they cannot answer', async (t) => {
  const s = await setup();
  await newHead(s);
  const size = await newestHeadSize(s);
  const get = (q: string) => call(s.srv.url, 'GET', `/api/v1/orgs/${s.orgId}/audit/${q}`, { token: s.token });
  for (const q of ['proofs/inclusion', 'proofs/inclusion?seq=0', 'proofs/inclusion?seq=abc', 'proofs/inclusion?seq=1&extra=1', 'proofs/consistency', 'proofs/consistency?from=-1', 'tree-heads?limit=0', 'tree-heads?limit=5000']) {
    const r = await get(q);
    t.is(r.status, 400, q);
    t.is(r.body.error.code, 'validation_failed', q);
  }
  t.is((await get(`proofs/consistency?from=${size + 1}`)).status, 400, 'from beyond the newest head');
  t.is((await get(`proofs/consistency?from=1&to=${size + 10}`)).body.error.code, 'not_found', 'no head of that size');
  t.is((await get(`proofs/inclusion?seq=${size + 50}`)).status, 404, 'no such entry');
  const other = await newOrg(s.srv.url, s.dataDir, 'Ander OCMW');
  t.is((await call(s.srv.url, 'GET', `/api/v1/orgs/${s.orgId}/audit/tree-heads`, { token: other.admin.token })).status, 404, 'another organisation');
  t.is((await call(s.srv.url, 'GET', `/api/v1/orgs/${s.orgId}/audit/tree-heads`)).status, 401, 'no session');
  const bad = await call(s.srv.url, 'POST', `/api/v1/orgs/${s.orgId}/audit/witness-alerts`, { token: s.token, json: { kind: 'nonsense' } });
  t.is(bad.status, 400);
  // An inclusion proof for an entry of the organisation verifies against its signed head.
  const entries = (await call(s.srv.url, 'GET', `/api/v1/orgs/${s.orgId}/audit?limit=1`, { token: s.token })).body.entries;
  const p = await get(`proofs/inclusion?seq=${entries[0].seq}`);
  t.is(p.status, 200);
  t.true(k.verifyMerkleInclusion(p.body.seq - 1, p.body.size, k.fromHex(p.body.leafHash), p.body.path.map(k.fromHex), k.fromHex(p.body.head.root)));
  t.is(p.body.leafHash, k.auditLeafHash({ ...Object.fromEntries(Object.entries(entries[0]).filter(([f]) => f !== 'prevHash' && f !== 'hash')) }));
});

test.before(async () => {
  await k.initCrypto();
});

test('verify-export checks an export offline: chain, signed checkpoints and tree heads, inclusion proofs; a changed byte fails', async (t) => {
  const s = await setup();
  await newHead(s);
  await activity(s, 3);
  await newHead(s);
  // Entries after the newest signed head: the export signs one that covers them, so every entry gets its proof.
  await activity(s, 2);
  const out = path.join(tmp('kluis-export-'), 'org.json');
  // Written to a file, so nothing on stdout for the admin() helper to parse.
  await new Promise<void>((resolve, reject) => {
    void databaseEnv(s.dataDir).then((db) => execFile(process.execPath, [ADMIN_CLI, 'audit', 'export', '--org', s.orgId, '--format', 'json', '--proofs', '--out', out],
      { env: { PATH: process.env.PATH ?? '', KLUIS_DATA_DIR: s.dataDir, KLUIS_ENV: 'test', ...db } }, (err) => (err ? reject(err) : resolve())));
  });
  const info = await call(s.srv.url, 'GET', '/api/v1/info');
  const check = (file: string) => new Promise<{ code: number; out: any }>((resolve) => { // eslint-disable-line @typescript-eslint/no-explicit-any
    execFile(process.execPath, [ADMIN_CLI, '--json', 'audit', 'verify-export', file, '--public-key', info.body.auditPublicKey], { env: { PATH: process.env.PATH ?? '' } }, (err, stdout) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: JSON.parse(stdout.trim().split('\n').pop()!) });
    });
  });
  const good = await check(out);
  t.is(good.code, 0, JSON.stringify(good.out));
  const doc = JSON.parse(readFileSync(out, 'utf8'));
  t.like(good.out, { ok: true, entries: doc.entries.length, included: doc.entries.length });
  t.true(good.out.treeHeads >= 1);
  t.true(doc.entries.length > 5);

  const altered = (change: (d: any) => void): string => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const d = structuredClone(doc);
    change(d);
    const f = path.join(path.dirname(out), `altered-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(f, JSON.stringify(d));
    return f;
  };
  // An entry rewritten with its hashes recomputed (a consistent chain), caught by its inclusion proof.
  const rewritten = altered((d) => {
    const e = d.entries[1];
    e.outcome = 'denied';
    const { prevHash, hash: _hash, ...chained } = e;
    e.hash = k.auditChainHash(prevHash, chained);
  });
  const r1 = await check(rewritten);
  t.is(r1.code, 1);
  t.regex(r1.out.problem, /entry \d+: prev_hash does not match/);
  // The newest entry, re-hashed and with the checkpoints over it dropped: the chain alone cannot tell; its proof can.
  const last = await check(altered((d) => {
    const e = d.entries.at(-1);
    e.outcome = 'denied';
    const { prevHash, hash: _hash, ...chained } = e;
    e.hash = k.auditChainHash(prevHash, chained);
    d.checkpoints = d.checkpoints.filter((c: { seq: number }) => c.seq !== e.seq);
    d.treeHeads = d.treeHeads.filter((h: { size: number }) => h.size < e.seq);
  }));
  t.is(last.code, 1, JSON.stringify(last.out));
  t.regex(last.out.problem, /entry \d+: not proven included in the tree head of size/);
  const r2 = await check(altered((d) => {
    d.inclusion[0].path[0] = d.inclusion[0].path[0].replace(/^./, (c: string) => (c === '0' ? '1' : '0'));
  }));
  t.is(r2.code, 1);
  t.regex(r2.out.problem, /not proven included/);
  const r3 = await check(altered((d) => {
    d.treeHead.size += 1;
  }));
  t.is(r3.code, 1);
  t.regex(r3.out.problem, /newest tree head: signature invalid/);
});

test('retention: at least 10 years, configurable upward only; the configuration refuses less', (t) => {
  t.is(loadConfig({ KLUIS_DATA_DIR: '/tmp/x' }).auditRetentionYears, 10);
  t.is(loadConfig({ KLUIS_DATA_DIR: '/tmp/x', KLUIS_AUDIT_RETENTION_YEARS: '25' }).auditRetentionYears, 25);
  // A ConfigError stops the server at start with exit 2, like every other one (environments.test.ts).
  for (const bad of ['9', '0', '-10', '10.5', 'forever']) {
    t.throws(() => loadConfig({ KLUIS_DATA_DIR: '/tmp/x', KLUIS_AUDIT_RETENTION_YEARS: bad }), { name: 'ConfigError', message: /^KLUIS_AUDIT_RETENTION_YEARS: / }, bad);
  }
  t.throws(() => loadConfig({ KLUIS_DATA_DIR: '/tmp/x', KLUIS_AUDIT_RETENTION_YEARS: '9' }), { message: /at least 10 \(years\)/ });
});
