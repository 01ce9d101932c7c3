// Audit log benchmark: appends per second (single-entry transactions, several appends per transaction,
// appendMany) and verify/export rates, on a real sqlite file (WAL, synchronous FULL) in a temp dir.
// Prints a table and writes bench-results/audit.json. Not a test: figures go into notes. Queries, export and verify
// over 10 million entries through the real API and kluis-admin: scripts/bench/audit-queries.ts.
//   npx tsc -b && node --import=tsx scripts/bench/audit.ts [-- --single 10000 --verify 100000]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { openDatabase, type Db } from '../../server/dist/db/db.js';
import { SqlAuditLog, loadOrCreateServerSigningKey } from '../../server/dist/audit/log.js';
import { exportAudit } from '../../server/dist/audit/export.js';
import type { AuditEntryInput } from '../../server/dist/audit/types.js';

const { values } = parseArgs({ options: { single: { type: 'string', default: '10000' }, verify: { type: 'string', default: '100000' } } });
const SINGLE = Number(values.single);
const VERIFY = Number(values.verify);

interface Row {
  name: string;
  what: string;
  count: number;
  seconds: number;
  perSecond: number;
}
const rows: Row[] = [];

function entry(i: number): AuditEntryInput {
  return {
    orgId: i % 3 ? 'AAAAAAAAAAAAAAAAAAAAAA' : 'BBBBBBBBBBBBBBBBBBBBBB',
    actorUserId: 'CCCCCCCCCCCCCCCCCCCCCC',
    actorDeviceId: 'DDDDDDDDDDDDDDDDDDDDDD',
    action: 'chunks.download',
    targetType: 'space',
    targetId: 'EEEEEEEEEEEEEEEEEEEEEE',
    outcome: 'success',
    ip: '2001:db8::1',
    userAgent: 'kluis-desktop/0.1.0 (Linux x86_64)',
    client: 'kluis-desktop/0.1.0',
    details: { chunks: i % 64, bytes: 4 * 1024 * 1024 },
  };
}

async function measure(name: string, what: string, count: number, fn: () => Promise<unknown>): Promise<Row> {
  const t0 = process.hrtime.bigint();
  await fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const row = { name, what, count, seconds, perSecond: count / seconds };
  rows.push(row);
  console.error(`  ${name.padEnd(34)} ${row.perSecond.toFixed(0).padStart(9)} /s  (${count} in ${seconds.toFixed(2)} s)`);
  return row;
}

async function withDb<T>(fn: (db: Db, log: SqlAuditLog, guessing: SqlAuditLog) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kluis-bench-audit-'));
  const db = await openDatabase({ dataDir: dir });
  try {
    const key = await loadOrCreateServerSigningKey(dir);
    return await fn(db, new SqlAuditLog(db, key, { guessHead: false }), new SqlAuditLog(db, key));
  } finally {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

console.error(`audit bench: ${SINGLE} single-entry transactions, verify over ${VERIFY} entries (sqlite WAL, synchronous FULL, ${os.tmpdir()})`);

await withDb(async (db, reading, guessing) => {
  await measure('append, 1 per transaction', `${SINGLE} appendStandalone (BEGIN IMMEDIATE, INSERT, COMMIT+fsync), head guessed`, SINGLE, async () => {
    for (let i = 0; i < SINGLE; i++) await guessing.appendStandalone(entry(i));
  });
  await measure('append, 1 per tx, head read', `${SINGLE} appendStandalone reading the head first (guessHead: false, the PostgreSQL mode)`, SINGLE, async () => {
    for (let i = 0; i < SINGLE; i++) await reading.appendStandalone(entry(i));
  });
  await measure('append, 100 per transaction', `${SINGLE} append() calls, 100 per transaction, head guessed`, SINGLE, async () => {
    for (let i = 0; i < SINGLE; i += 100) {
      await db.transaction(async (trx) => {
        for (let j = i; j < i + 100; j++) await guessing.append(trx, entry(j));
      });
    }
  });
  await measure('append, 100 per tx, head read', `${SINGLE} append() calls, 100 per transaction, guessHead: false`, SINGLE, async () => {
    for (let i = 0; i < SINGLE; i += 100) {
      await db.transaction(async (trx) => {
        for (let j = i; j < i + 100; j++) await reading.append(trx, entry(j));
      });
    }
  });
  await measure('appendMany, 1000 per transaction', `${SINGLE} entries, appendMany of 1000 per transaction`, SINGLE, async () => {
    for (let i = 0; i < SINGLE; i += 1000) {
      await db.transaction((trx) => guessing.appendMany(trx, Array.from({ length: 1000 }, (_, j) => entry(i + j))));
    }
  });
  const v = await guessing.verify();
  if (!v.ok) throw new Error(`chain broken after the append benches: ${JSON.stringify(v.firstBroken)}`);
});

await withDb(async (db, _reading, log) => {
  for (let i = 0; i < VERIFY; i += 2000) {
    await db.transaction((trx) => log.appendMany(trx, Array.from({ length: Math.min(2000, VERIFY - i) }, (_, j) => entry(i + j))));
  }
  let result: Awaited<ReturnType<SqlAuditLog['verify']>> | undefined;
  await measure('verify', `verify() over ${VERIFY} entries and ${Math.floor(VERIFY / 1000)} checkpoints (pages of 5000)`, VERIFY, async () => {
    result = await log.verify();
  });
  if (!result?.ok || result.entries !== VERIFY) throw new Error(`verify failed: ${JSON.stringify(result)}`);
  const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
  await measure('export JSON', `exportAudit(json) of ${VERIFY} entries to a null sink`, VERIFY, () => exportAudit(log, {}, 'json', sink()));
  await measure('export CSV', `exportAudit(csv) of ${VERIFY} entries to a null sink`, VERIFY, () => exportAudit(log, {}, 'csv', sink()));
  await measure('query, org filter, 1000/page', `the ${Math.floor((VERIFY * 2) / 3)} entries of one org, paged with afterSeq`, Math.floor((VERIFY * 2) / 3), async () => {
    let afterSeq = 0;
    for (;;) {
      const page = await log.query({ orgId: 'AAAAAAAAAAAAAAAAAAAAAA', afterSeq, limit: 1000 });
      if (page.length === 0) break;
      afterSeq = page[page.length - 1]!.seq;
    }
  });
});

const table = [
  `| ${'bench'.padEnd(34)} | ${'count'.padStart(7)} | ${'seconds'.padStart(8)} | ${'per second'.padStart(10)} |`,
  `|${'-'.repeat(36)}|${'-'.repeat(9)}|${'-'.repeat(10)}|${'-'.repeat(12)}|`,
  ...rows.map((r) => `| ${r.name.padEnd(34)} | ${String(r.count).padStart(7)} | ${r.seconds.toFixed(2).padStart(8)} | ${r.perSecond.toFixed(0).padStart(10)} |`),
].join('\n');
console.log(table);

mkdirSync('bench-results', { recursive: true });
writeFileSync(
  'bench-results/audit.json',
  JSON.stringify({ bench: 'audit', date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? '', tmpdir: os.tmpdir(), single: SINGLE, verifyEntries: VERIFY, rows }, null, 2) + '\n',
);
console.log('wrote bench-results/audit.json');
