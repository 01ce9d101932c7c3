// The stored Merkle tree log (server/src/audit/merkle-store.ts, migration 015): entries written without it (an existing
// trail at the upgrade, a chain-only tool) get their subtrees from catchUpMerkle, after which appends, signed tree
// heads, verify() and proofs read from the database agree with a tree recomputed from the entries.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { openDatabase } from '../../server/dist/db/db.js';
import { SqlAuditLog, loadOrCreateServerSigningKey } from '../../server/dist/audit/log.js';
import { catchUpMerkle, consistencyPath, inclusionPath, rootAt } from '../../server/dist/audit/merkle-store.js';
import { chainEntryOf, type AuditDbRow } from '../helpers/audit-db.js';

test('an existing trail gets its Merkle subtrees; then heads, verify and proofs from the database agree with the entries', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kluis-merkle-store-'));
  const db = await openDatabase({ dataDir: dir });
  t.teardown(async () => {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const key = await loadOrCreateServerSigningKey(dir);
  const entry = (i: number) => ({ orgId: null, action: 'test.fill', outcome: 'success' as const, details: { i } });
  const chainOnly = new SqlAuditLog(db, key, { merkle: false, checkpointEvery: 100 });
  for (let i = 0; i < 250; i++) await chainOnly.appendStandalone(entry(i));
  t.is(Number((await db('audit_merkle').count({ n: '*' }).first())?.n), 0, 'written without the tree');
  t.is(await catchUpMerkle(db), 250);
  t.is(await catchUpMerkle(db), 0, 'idempotent');

  const log = new SqlAuditLog(db, key, { checkpointEvery: 100 });
  for (let i = 250; i < 420; i++) await log.appendStandalone(entry(i));
  await log.checkpoint();
  const rows = (await db('audit_log').orderBy('seq').select('*')) as AuditDbRow[];
  const leaves = rows.map((r) => k.fromHex(k.auditLeafHash(chainEntryOf(r))));
  const tree = new k.MerkleFrontier();
  const roots: Uint8Array[] = [new Uint8Array(0)];
  for (const l of leaves) {
    tree.push(l);
    roots.push(tree.root());
  }
  const heads = await log.treeHeads(0, 100);
  t.deepEqual(heads.map((h) => h.size), [300, 400, 420], 'a head with every checkpoint after the upgrade (C1 at 300 and 400, the last one at 420)');
  for (const h of heads) {
    t.is(h.root, k.toHex(roots[h.size]!));
    t.notThrows(() => k.verifyAuditTreeHead(h, h.signature, key.publicKey));
  }
  t.like(await log.verify({ now: Date.now() }), { ok: true, entries: 420 });
  for (const n of [1, 2, 250, 251, 420]) t.is(await rootAt(db, n), k.toHex(roots[n]!));
  for (let i = 0; i < 40; i++) {
    const size = 1 + Math.floor(Math.random() * 420);
    const seq = 1 + Math.floor(Math.random() * size);
    t.true(k.verifyMerkleInclusion(seq - 1, size, leaves[seq - 1]!, (await inclusionPath(db, seq, size)).map(k.fromHex), roots[size]!));
    const from = 1 + Math.floor(Math.random() * size);
    t.true(k.verifyMerkleConsistency(from, size, roots[from]!, roots[size]!, (await consistencyPath(db, from, size)).map(k.fromHex)));
  }
});

test('catch-up beside another process: racing catch-ups add each subtree once; beside a server appending they add nothing', async (t) => {
  // kluis-admin runs catchUpMerkle at every start while the server appends (with its subtrees). CI saw the tool read the
  // last leaf, the server append, and the tool then insert that entry's leaf again (UNIQUE constraint failed).
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kluis-merkle-race-'));
  const dbs = [await openDatabase({ dataDir: dir }), await openDatabase({ dataDir: dir }), await openDatabase({ dataDir: dir })];
  t.teardown(async () => {
    for (const db of dbs) await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const [a, b, server] = dbs as [typeof dbs[0], typeof dbs[0], typeof dbs[0]];
  const key = await loadOrCreateServerSigningKey(dir);
  const entry = (i: number) => ({ orgId: null, action: 'test.fill', outcome: 'success' as const, details: { i } });
  const chainOnly = new SqlAuditLog(a, key, { merkle: false, checkpointEvery: 0 });
  await a.transaction((trx) => chainOnly.appendMany(trx, Array.from({ length: 12_000 }, (_, i) => entry(i))));
  const added = await Promise.all([catchUpMerkle(a), catchUpMerkle(b)]);
  t.is(added[0] + added[1], 12_000, `each of the 12,000 chain-only entries got its leaf once (${added.join(' + ')})`);

  const log = new SqlAuditLog(server, key, { checkpointEvery: 0 });
  let appending = true;
  const appends = (async () => {
    let i = 0;
    while (appending) await log.appendStandalone(entry(20_000 + i++));
    return i;
  })();
  const rounds: number[] = [];
  for (let i = 0; i < 60; i++) rounds.push(await catchUpMerkle(i % 2 ? a : b));
  appending = false;
  const appended = await appends;
  t.true(appended > 0);
  t.deepEqual(rounds, Array(60).fill(0), 'the server writes its own subtrees; a catch-up beside it has nothing to add');
  const leaves = Number((await a('audit_merkle').where({ level: 0 }).count({ n: '*' }).first())?.n);
  t.is(leaves, 12_000 + appended);
  const tree = new k.MerkleFrontier();
  for (const r of (await a('audit_log').orderBy('seq').select('*')) as AuditDbRow[]) tree.push(k.fromHex(k.auditLeafHash(chainEntryOf(r))));
  t.is(await rootAt(a, 12_000 + appended), k.toHex(tree.root()), 'the stored subtrees give the root recomputed from the entries');
});
