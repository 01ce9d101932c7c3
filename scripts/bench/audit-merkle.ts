// Merkle tree log benchmark (issue 20 §2): audit appends per second with the Merkle log and with the hash chain alone,
// in the same run on the same machine (sqlite WAL, synchronous FULL, temp dirs), and the time to build inclusion and
// consistency proofs from the stored subtrees of a large tree. Proofs read only `audit_merkle`, so the large tree is
// filled with synthetic leaves (SHA-256 leaf hashes of a counter) rather than full entries: the proof time does not
// depend on what the leaves hash. Prints a table and writes bench-results/audit-merkle.json. Not a test.
//   npx tsc -b && node --import=tsx scripts/bench/audit-merkle.ts [-- --appends 5000 --leaves 10000000 --proofs 1000]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as k from '@kluis/shared';
import { openDatabase, type Db } from '../../server/dist/db/db.js';
import { SqlAuditLog, loadOrCreateServerSigningKey } from '../../server/dist/audit/log.js';
import { consistencyPath, inclusionPath, insertNodes, rootAt } from '../../server/dist/audit/merkle-store.js';
import type { AuditEntryInput } from '../../server/dist/audit/types.js';

const { values } = parseArgs({ options: { appends: { type: 'string', default: '5000' }, leaves: { type: 'string', default: '10000000' }, proofs: { type: 'string', default: '1000' } } });
const APPENDS = Number(values.appends);
const LEAVES = Number(values.leaves);
const PROOFS = Number(values.proofs);

function entry(i: number): AuditEntryInput {
  return {
    orgId: 'AAAAAAAAAAAAAAAAAAAAAA', actorUserId: 'CCCCCCCCCCCCCCCCCCCCCC', actorDeviceId: 'DDDDDDDDDDDDDDDDDDDDDD', action: 'chunks.download',
    targetType: 'space', targetId: 'EEEEEEEEEEEEEEEEEEEEEE', outcome: 'success', ip: '2001:db8::1', userAgent: 'kluis-desktop/0.1.0 (Linux x86_64)',
    client: 'kluis-desktop/0.1.0', details: { chunks: i % 64, bytes: 4 * 1024 * 1024 },
  };
}

async function withDb<T>(fn: (db: Db, dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kluis-bench-merkle-'));
  const db = await openDatabase({ dataDir: dir });
  try {
    return await fn(db, dir);
  } finally {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;

interface AppendRow { mode: 'chain only' | 'chain + Merkle'; pattern: string; round: number; entries: number; perSecond: number }
const appendRows: AppendRow[] = [];

async function appendRun(merkle: boolean, round: number): Promise<void> {
  await withDb(async (db, dir) => {
    const key = await loadOrCreateServerSigningKey(dir);
    const log = new SqlAuditLog(db, key, { merkle });
    const mode = merkle ? 'chain + Merkle' : 'chain only';
    let t0 = process.hrtime.bigint();
    for (let i = 0; i < APPENDS; i++) await log.appendStandalone(entry(i));
    appendRows.push({ mode, pattern: '1 per transaction (fsync each)', round, entries: APPENDS, perSecond: APPENDS / seconds(t0) });
    t0 = process.hrtime.bigint();
    const many = APPENDS * 10;
    for (let i = 0; i < many; i += 100) await db.transaction(async (trx) => {
      for (let j = i; j < i + 100; j++) await log.append(trx, entry(j));
    });
    appendRows.push({ mode, pattern: '100 per transaction', round, entries: many, perSecond: many / seconds(t0) });
    const v = await log.verify();
    if (!v.ok) throw new Error(`bench log does not verify: ${JSON.stringify(v.firstBroken)}`);
  });
}

console.error(`audit-merkle bench: ${APPENDS} single appends and ${APPENDS * 10} in transactions of 100 per mode and round; proofs over ${LEAVES} leaves (${os.tmpdir()}); load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
await k.initCrypto();
// Alternating rounds, so that a burst of other load on the shared machine hits both modes alike.
for (let round = 1; round <= 2; round++) {
  await appendRun(false, round);
  await appendRun(true, round);
  console.error(appendRows.slice(-4).map((r) => `  round ${r.round} ${r.mode.padEnd(15)} ${r.pattern.padEnd(31)} ${r.perSecond.toFixed(0).padStart(7)} /s`).join('\n'));
}

const proofResult = await withDb(async (db) => {
  let t0 = process.hrtime.bigint();
  const tree = new k.MerkleFrontier();
  const counter = new Uint8Array(8);
  const view = new DataView(counter.buffer);
  const BATCH = 50_000;
  for (let i = 0; i < LEAVES; i += BATCH) {
    const nodes: ReturnType<k.MerkleFrontier['push']> = [];
    for (let j = i; j < Math.min(LEAVES, i + BATCH); j++) {
      view.setFloat64(0, j);
      nodes.push(...tree.push(k.merkleLeafHash(counter)));
    }
    await db.transaction((trx) => insertNodes(trx, nodes));
    if ((i / BATCH) % 20 === 0) console.error(`  filled ${i + BATCH} leaves in ${seconds(t0).toFixed(0)} s`);
  }
  const fillSeconds = seconds(t0);
  const root = k.toHex(tree.root());
  t0 = process.hrtime.bigint();
  const stored = await rootAt(db, LEAVES);
  const rootMs = seconds(t0) * 1000;
  if (stored !== root) throw new Error('stored root differs');
  const rnd = (n: number) => Math.floor(Math.random() * n);
  const inclusionMs: number[] = [];
  const consistencyMs: number[] = [];
  const roots = new Map<number, Uint8Array>();
  for (let p = 0; p < PROOFS; p++) {
    const size = LEAVES - rnd(1000);
    const seq = 1 + rnd(size);
    let t = process.hrtime.bigint();
    const path1 = await inclusionPath(db, seq, size);
    inclusionMs.push(seconds(t) * 1000);
    const from = 1 + rnd(size);
    t = process.hrtime.bigint();
    const path2 = await consistencyPath(db, from, size);
    consistencyMs.push(seconds(t) * 1000);
    if (p < 20) {
      // Spot checks: the proofs verify against the roots.
      for (const n of [size, from]) if (!roots.has(n)) roots.set(n, k.fromHex(await rootAt(db, n)));
      view.setFloat64(0, seq - 1);
      if (!k.verifyMerkleInclusion(seq - 1, size, k.merkleLeafHash(counter), path1.map(k.fromHex), roots.get(size)!)) throw new Error('inclusion proof fails');
      if (!k.verifyMerkleConsistency(from, size, roots.get(from)!, roots.get(size)!, path2.map(k.fromHex))) throw new Error('consistency proof fails');
    }
  }
  const bytes = ((await db.raw('PRAGMA page_count')) as { page_count: number }[])[0]!.page_count * ((await db.raw('PRAGMA page_size')) as { page_size: number }[])[0]!.page_size;
  return { leaves: LEAVES, fillSeconds, dbBytes: bytes, rootMs, inclusion: { p50: pct(inclusionMs, 50), p95: pct(inclusionMs, 95), max: Math.max(...inclusionMs) }, consistency: { p50: pct(consistencyMs, 50), p95: pct(consistencyMs, 95), max: Math.max(...consistencyMs) } };
});

const load = os.loadavg();
const lines = ['| mode | pattern | round | entries | entries/s |', '|---|---|---:|---:|---:|', ...appendRows.map((r) => `| ${r.mode} | ${r.pattern} | ${r.round} | ${r.entries} | ${r.perSecond.toFixed(0)} |`)];
lines.push('', `proofs over ${proofResult.leaves} leaves (audit_merkle ${(proofResult.dbBytes / 1e9).toFixed(2)} GB, filled in ${proofResult.fillSeconds.toFixed(0)} s):`, '',
  '| proof | p50 ms | p95 ms | max ms |', '|---|---:|---:|---:|',
  `| inclusion (random entry, random size near the end) | ${proofResult.inclusion.p50.toFixed(2)} | ${proofResult.inclusion.p95.toFixed(2)} | ${proofResult.inclusion.max.toFixed(2)} |`,
  `| consistency (random pair) | ${proofResult.consistency.p50.toFixed(2)} | ${proofResult.consistency.p95.toFixed(2)} | ${proofResult.consistency.max.toFixed(2)} |`,
  `| root of the whole tree | ${proofResult.rootMs.toFixed(2)} | | |`, '', `load average (1, 5, 15 min) at the end: ${load.map((x) => x.toFixed(2)).join(', ')}; ${os.cpus().length} cores`);
console.log(lines.join('\n'));
mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/audit-merkle.json', JSON.stringify({ at: new Date().toISOString(), appends: appendRows, proofs: proofResult, loadavg: load, cores: os.cpus().length }, null, 2));
console.log('wrote bench-results/audit-merkle.json');
