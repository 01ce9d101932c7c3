// How fast the incident rules keep up with the audit trail (issue 20 §1): entries evaluated per second by one
// watcher round (server/src/incidents/watcher.ts) over `--entries` synthetic entries of a working day (chunk reads,
// commits, logins, some refusals; 200 accounts on 40 networks, default thresholds), beside the plain read of the same
// entries by seq in pages of 200 (the floor: what the round cannot go below). sqlite in a temp data dir. Prints a table,
// writes bench-results/incidents.json. Not a test.
//   npm run build && node --import=tsx scripts/bench/incidents.ts -- --entries 20000
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { initCrypto } from '@kluis/shared';
import { openDatabase } from '../../server/dist/db/db.js';
import { SqlAuditLog, loadOrCreateServerSigningKey } from '../../server/dist/audit/log.js';
import { IncidentWatcher } from '../../server/dist/incidents/watcher.js';
import type { AuditEntryInput } from '../../server/dist/audit/types.js';

const { values } = parseArgs({ options: { entries: { type: 'string', default: '20000' } }, allowPositionals: true });
const N = Number(values.entries);
await initCrypto();
const dir = mkdtempSync(path.join(os.tmpdir(), 'kluis-bench-incidents-'));
const db = await openDatabase({ dataDir: dir });
const audit = new SqlAuditLog(db, await loadOrCreateServerSigningKey(dir), { checkpointEvery: 0 });
const orgId = 'benchorg0000000000000A';
await db('orgs').insert({ id: orgId, name: 'Bench', enterprise_number: '0212345668', created_at: Date.now() });
const users = Array.from({ length: 200 }, (_, i) => ({ id: `user${String(i).padStart(18, '0')}`, device: `dev${String(i).padStart(19, '0')}`, ip: `10.${i % 40}.${i % 7}.${i % 250}` }));
const start = Date.now();
for (let done = 0; done < N; done += 500) {
  await db.transaction((trx) => audit.appendMany(trx, Array.from({ length: Math.min(500, N - done) }, (_, j): AuditEntryInput => {
    const n = done + j;
    const u = users[n % users.length]!;
    const kind = n % 20;
    const base = { orgId, actorUserId: u.id, actorDeviceId: u.device, ip: u.ip, targetType: 'space', targetId: `space${n % 50}` };
    if (kind < 12) return { ...base, action: 'chunks.download', outcome: 'success' as const, details: { count: 4, bytes: 2_000_000 } };
    if (kind < 16) return { ...base, action: 'commit.create', outcome: 'success' as const, details: { versions: 3 } };
    if (kind < 18) return { ...base, action: 'changes.read', outcome: 'success' as const };
    if (kind < 19) return { ...base, action: 'space.list', outcome: 'denied' as const, details: { status: 403, code: 'forbidden' } };
    return { ...base, actorUserId: null, actorDeviceId: null, action: 'auth.login', targetType: 'user', targetId: u.id, outcome: 'failed' as const, details: { status: 401 } };
  })));
}
console.error(`filled ${N} entries in ${((Date.now() - start) / 1000).toFixed(1)} s`);

// Floor: the same entries read by seq in pages of 200.
let t0 = performance.now();
for (let after = 0; ;) {
  const rows = await db('audit_log').select('*').where('seq', '>', after).orderBy('seq').limit(200);
  if (rows.length === 0) break;
  after = Number(rows[rows.length - 1].seq);
}
const readMs = performance.now() - t0;

const watcher = new IncidentWatcher(db, audit, { intervalMs: 1000, verifyEveryMs: 0, postgres: false, onError: (err) => { throw err; } });
t0 = performance.now();
const opened = await watcher.round();
const roundMs = performance.now() - t0;
// The longest single batch transaction (it holds the writer while it runs): one more batch of 200 fresh entries.
await db.transaction((trx) => audit.appendMany(trx, Array.from({ length: 200 }, (_, j) => ({ orgId, actorUserId: users[j]!.id, actorDeviceId: users[j]!.device, ip: users[j]!.ip, action: 'chunks.download', outcome: 'success' as const, details: { count: 4, bytes: 2_000_000 } }))));
t0 = performance.now();
await watcher.round();
const batchMs = performance.now() - t0;

const rows = [
  { what: 'read by seq (floor)', entries: N, ms: readMs, perSecond: N / (readMs / 1000) },
  { what: 'rules evaluated (one round)', entries: N, ms: roundMs, perSecond: N / (roundMs / 1000) },
  { what: 'one batch of 200 (a transaction)', entries: 200, ms: batchMs, perSecond: 200 / (batchMs / 1000) },
];
console.log('| what | entries | ms | entries/s |\n|---|---|---|---|');
for (const r of rows) console.log(`| ${r.what} | ${r.entries} | ${r.ms.toFixed(0)} | ${r.perSecond.toFixed(0)} |`);
console.log(`incidents opened: ${opened}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const out = path.join(process.cwd(), 'bench-results');
mkdirSync(out, { recursive: true });
writeFileSync(path.join(out, 'incidents.json'), JSON.stringify({ entries: N, rows, opened, loadavg: os.loadavg() }, null, 2));
await db.destroy();
rmSync(dir, { recursive: true, force: true });
