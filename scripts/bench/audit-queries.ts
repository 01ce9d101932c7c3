// Audit queries over a large trail (issue 18): a filtered page of GET /api/v1/orgs/:orgId/audit (p50/p95 per filter,
// goal p95 < 200 ms), export throughput (rows/s, CSV and JSON) and `kluis-admin audit verify` throughput (entries/s),
// on a real server over a sqlite data dir holding `--entries` synthetic entries (lib/audit-fill.ts: a valid chain,
// 30 % of it the benched organisation's, a year of timestamps). Baselines measured in the same run: the unfiltered
// page (the organisation only) and `SELECT count(*)` on the table. Prints a table and the load average, writes
// bench-results/audit-queries[-LABEL].json. Not a test: figures go into notes. (scripts/bench/audit.ts measures appends.)
//   npm run build && node --import=tsx scripts/bench/audit-queries.ts -- --entries 10000000 --dir /tmp/kluis-audit10m
// --dir keeps the filled data dir for a second run (e.g. before and after a migration: it runs at the next open,
// timed here); without it a temp dir is filled and removed.
// --engine postgres: the same on PostgreSQL (Debian's, a throwaway cluster in a temp dir as the tests start it,
// test/helpers/postgres.ts), filled, queried and removed in one run (--dir then holds only the server's key files).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { openDatabase } from '../../server/dist/db/db.js';
import { SqlAuditLog, loadOrCreateServerSigningKey } from '../../server/dist/audit/log.js';
import type { AuditFilter } from '../../server/dist/audit/types.js';
import { databaseEnv, repoRoot, startServer } from '../../test/helpers/server.js';
import { newOrg } from '../../test/helpers/api.js';
import { stopSharedPostgres } from '../../test/helpers/postgres.js';
import { ACTIONS, fillAudit, fillAuditPostgres, spaceOf, userOf, type FillShape } from './lib/audit-fill.js';

const { values } = parseArgs({
  options: { entries: { type: 'string', default: '10000000' }, dir: { type: 'string' }, runs: { type: 'string', default: '40' }, label: { type: 'string', default: '' }, skip: { type: 'string', default: '' }, phases: { type: 'string' }, engine: { type: 'string', default: 'sqlite' } },
});
const ENTRIES = Number(values.entries);
const RUNS = Number(values.runs);
/** Parts not to run this time (comma-separated: queries, export, verify), e.g. for a second run after a migration. */
const SKIP = new Set(values.skip.split(',').filter(Boolean));
/** Only the query phases whose name matches this regular expression (default: all). */
const PHASES = values.phases ? new RegExp(values.phases) : null;
const dir = values.dir ? path.resolve(values.dir) : mkdtempSync(path.join(os.tmpdir(), 'kluis-bench-auditq-'));
const metaFile = path.join(dir, 'bench-meta.json');
const log = (s: string) => console.error(s);
if (values.engine !== 'sqlite' && values.engine !== 'postgres') throw new Error('--engine: sqlite or postgres');
const PG = values.engine === 'postgres';
if (PG) {
  if (existsSync(metaFile)) throw new Error(`--engine postgres fills its database in each run: ${dir} must not hold a previous fill`);
  process.env.KLUIS_TEST_DB = 'postgres'; // the helpers (servers, kluis-admin) then use this process's cluster
}
/** KLUIS_DATABASE_URL of this run's database (PostgreSQL), {} on sqlite. */
const dbEnv = await databaseEnv(dir);
const dbOptions = { dataDir: dir, ...(dbEnv.KLUIS_DATABASE_URL ? { url: dbEnv.KLUIS_DATABASE_URL } : {}) };
const DAY = 86_400_000;

interface Meta { orgId: string; token: string; shape: FillShape; fillPerSecond: number; indexSeconds: number }

let meta: Meta;
if (existsSync(metaFile)) {
  meta = JSON.parse(readFileSync(metaFile, 'utf8')) as Meta;
  if (meta.shape.entries !== ENTRIES) throw new Error(`${dir} holds ${meta.shape.entries} entries, not ${ENTRIES}`);
  log(`reusing ${dir}: ${meta.shape.entries} entries (filled at ${meta.fillPerSecond.toFixed(0)} entries/s)`);
} else {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const srv = await startServer({ KLUIS_DATA_DIR: dir, ...dbEnv });
  const { orgId, admin } = await newOrg(srv.url, dir);
  await srv.stop();
  const shape: FillShape = { entries: ENTRIES, orgId, share: 0.3, otherOrgs: 20, usersPerOrg: 500, spacesPerOrg: 2000, days: 365 };
  log(`filling ${dir} with ${ENTRIES} entries`);
  const db = await openDatabase(dbOptions);
  let last = 0;
  const { perSecond: fillPerSecond, indexSeconds } = await (PG ? fillAuditPostgres : fillAudit)(db, dir, shape, (done, rate) => {
    if (done - last >= 500_000 || done === ENTRIES) {
      last = done;
      log(`  ${done} entries, ${rate.toFixed(0)}/s, load ${os.loadavg()[0]!.toFixed(2)}`);
    }
  });
  await db.destroy();
  meta = { orgId, token: admin.token, shape, fillPerSecond, indexSeconds };
  log(`filled at ${fillPerSecond.toFixed(0)} entries/s, indexes rebuilt in ${indexSeconds.toFixed(0)} s`);
  writeFileSync(metaFile, JSON.stringify(meta, null, 2));
}

// Migrations not yet applied to this data dir (a new index) run here, timed, rather than inside the server's start.
const t0 = performance.now();
const db = await openDatabase(dbOptions);
const migrateSeconds = (performance.now() - t0) / 1000;
const c0 = performance.now();
const total = Number(((await db('audit_log').count({ n: '*' }).first()) as { n: number }).n);
const countMs = performance.now() - c0;
const indexes = (PG
  ? ((await db.raw("SELECT indexname AS name FROM pg_indexes WHERE tablename = 'audit_log' ORDER BY indexname")) as { rows: { name: string }[] }).rows
  : ((await db.raw("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_log' ORDER BY name")) as { name: string }[])).map((r) => r.name);
await db.destroy();
log(`open + migrations ${migrateSeconds.toFixed(1)} s; ${total} entries; indexes: ${indexes.join(', ')}`);

interface Row { name: string; what: string; runs: number; p50: number; p95: number; max: number; results: number; queryP50: number; queryP95: number }
const rows: Row[] = [];
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

const srv = await startServer({ KLUIS_DATA_DIR: dir, KLUIS_LOG_LEVEL: 'warn', ...dbEnv });
// The server's own search (SqlAuditLog.query, as the route calls it) in this process, on a connection of its own: the
// database's share of a page, without the HTTP request, the session check and the request's own audit entry.
const qdb = await openDatabase(dbOptions);
const qlog = new SqlAuditLog(qdb, await loadOrCreateServerSigningKey(dir));
const FILTER: Record<string, string> = { actor: 'actorUserId', action: 'action', target: 'targetId', outcome: 'outcome', since: 'since', until: 'until', beforeSeq: 'beforeSeq' };
async function direct(query: Record<string, string>): Promise<number> {
  const filter: Record<string, string | number> = { orgId: meta.orgId, order: 'desc', limit: 100 };
  for (const [k, v] of Object.entries(query)) filter[FILTER[k]!] = ['since', 'until', 'beforeSeq'].includes(k) ? Number(v) : v;
  const t = performance.now();
  await qlog.query(filter as AuditFilter);
  return performance.now() - t;
}
const base = `${srv.url}/api/v1/orgs/${meta.orgId}/audit`;
const headers = { authorization: `Bearer ${meta.token}`, 'x-kluis-client': 'kluis-bench/0.1.0' };
const end = Date.now();
const yearStart = end - meta.shape.days * DAY;
const rareActions = ACTIONS.filter(([, share]) => share < 0.001).map(([a]) => a);

async function page(query: Record<string, string>): Promise<{ ms: number; n: number }> {
  const url = `${base}?${new URLSearchParams({ order: 'desc', limit: '100', ...query })}`;
  const t = performance.now();
  const res = await fetch(url, { headers });
  const body = (await res.json()) as { entries?: unknown[]; error?: unknown };
  const ms = performance.now() - t;
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${JSON.stringify(body)}`);
  return { ms, n: body.entries!.length };
}

async function phase(name: string, what: string, query: (i: number) => Record<string, string>): Promise<void> {
  if (SKIP.has('queries') || (PHASES && !PHASES.test(name))) return;
  await page(query(RUNS)); // one warm-up
  const times: number[] = [];
  let results = 0;
  for (let i = 0; i < RUNS; i++) {
    const r = await page(query(i));
    times.push(r.ms);
    results += r.n;
  }
  times.sort((a, b) => a - b);
  const qtimes: number[] = [];
  for (let i = 0; i < RUNS; i++) qtimes.push(await direct(query(i)));
  qtimes.sort((a, b) => a - b);
  const row = { name, what, runs: RUNS, p50: pct(times, 50), p95: pct(times, 95), max: times[times.length - 1]!, results: results / RUNS, queryP50: pct(qtimes, 50), queryP95: pct(qtimes, 95) };
  rows.push(row);
  log(`  ${name.padEnd(34)} p50 ${row.p50.toFixed(1).padStart(7)} ms  p95 ${row.p95.toFixed(1).padStart(7)} ms  max ${row.max.toFixed(0).padStart(5)} ms  query alone p95 ${row.queryP95.toFixed(1).padStart(7)} ms  ${row.results.toFixed(0)} rows/page  load ${os.loadavg()[0]!.toFixed(2)}`);
}

// A day somewhere in the year, different per run.
const day = (i: number) => yearStart + ((i * 37) % (meta.shape.days - 1)) * DAY;
const midSeq = String(Math.floor(total / 2));
log(`audit queries: ${RUNS} runs each, 100 entries a page, newest first`);
await phase('baseline: unfiltered page', 'the organisation only (the console\'s first view)', () => ({}));
await phase('actor', 'one user (1 of 500)', (i) => ({ actor: userOf(0, i % 50) }));
await phase('actor, page in mid-log', 'one user, beforeSeq = half the log (paging back)', (i) => ({ actor: userOf(0, i % 50), beforeSeq: midSeq }));
await phase('action, common', 'chunks.upload (20 %)', () => ({ action: 'chunks.upload' }));
await phase('action, rare', `${rareActions.join(' / ')} (0.01 % each)`, (i) => ({ action: rareActions[i % rareActions.length]! }));
await phase('target', 'one space (1 of 2000)', (i) => ({ target: spaceOf(0, i % 50) }));
await phase('outcome denied', '4 %', () => ({ outcome: 'denied' }));
await phase('outcome failed, page in mid-log', '1 %, beforeSeq = half the log', () => ({ outcome: 'failed', beforeSeq: midSeq }));
await phase('time range, one day', 'since/until one day', (i) => ({ since: String(day(i)), until: String(day(i) + DAY) }));
await phase('time range, 30 days', 'since/until 30 days, nothing else (a month of one organisation)', (i) => ({ since: String(day(i)), until: String(day(i) + 30 * DAY) }));
await phase('actor + 30 days', 'one user in a month', (i) => ({ actor: userOf(0, i % 50), since: String(day(i)), until: String(day(i) + 30 * DAY) }));
await phase('actor + outcome denied', 'one user, 4 % of its entries', (i) => ({ actor: userOf(0, i % 50), outcome: 'denied' }));
await phase('action rare + 30 days', 'a rare action in a month', (i) => ({ action: rareActions[i % rareActions.length]!, since: String(day(i)), until: String(day(i) + 30 * DAY) }));
await phase('target + action + day', 'one space, chunks.download, one day', (i) => ({ target: spaceOf(0, i % 50), action: 'chunks.download', since: String(day(i)), until: String(day(i) + DAY) }));

interface Rate { name: string; what: string; count: number; seconds: number; perSecond: number }
const rates: Rate[] = [];
async function exportRate(format: 'csv' | 'json', days: number): Promise<void> {
  if (SKIP.has('export')) return;
  const since = end - days * DAY - DAY;
  const t = performance.now();
  const res = await fetch(`${base}/export?${new URLSearchParams({ format, since: String(since), until: String(end) })}`, { headers });
  if (res.status !== 200) throw new Error(`export ${format}: ${res.status} ${await res.text()}`);
  let count = 0;
  let bytes = 0;
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) {
    bytes += chunk.length;
    // CSV: one line per entry after the header; JSON: one "prevHash" per entry (checkpoints have none)
    const text = decoder.decode(chunk, { stream: true });
    count += format === 'csv' ? text.split('\r\n').length - 1 : text.split('"prevHash"').length - 1;
  }
  if (format === 'csv') count -= 1;
  const seconds = (performance.now() - t) / 1000;
  rates.push({ name: `export ${format}, ${days} days`, what: `GET .../audit/export, ${(bytes / 1e6).toFixed(0)} MB`, count, seconds, perSecond: count / seconds });
  log(`  export ${format}: ${count} rows in ${seconds.toFixed(1)} s = ${(count / seconds).toFixed(0)} rows/s (${(bytes / 1e6).toFixed(0)} MB)  load ${os.loadavg()[0]!.toFixed(2)}`);
}
await exportRate('csv', 30);
await exportRate('json', 30);
await srv.stop();
await qdb.destroy();

// kluis-admin audit verify over the whole trail (the entries the bench's own requests added included).
if (!SKIP.has('verify')) await verifyRate();
async function verifyRate(): Promise<void> {
  const v0 = performance.now();
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(repoRoot, 'server/dist/admin/cli.js'), '--json', 'audit', 'verify'], {
    env: { PATH: process.env.PATH ?? '', KLUIS_DATA_DIR: dir, KLUIS_ENV: 'test', ...dbEnv }, maxBuffer: 16 * 1024 * 1024,
  });
  const verifySeconds = (performance.now() - v0) / 1000;
  const verified = JSON.parse(stdout) as { ok: boolean; entries: number };
  if (!verified.ok) throw new Error(`verify failed: ${stdout}`);
  rates.push({ name: 'kluis-admin audit verify', what: 'whole trail, a process of its own (start included)', count: verified.entries, seconds: verifySeconds, perSecond: verified.entries / verifySeconds });
  log(`  verify: ${verified.entries} entries in ${verifySeconds.toFixed(1)} s = ${(verified.entries / verifySeconds).toFixed(0)} entries/s`);
}

const loadavg = os.loadavg();
console.log(`\naudit queries over ${total} entries (${values.engine}), ${RUNS} runs each; baseline SELECT count(*): ${countMs.toFixed(0)} ms; indexes: ${indexes.join(', ')}`);
// Each p95 against the baseline's (the unfiltered page of the same run, under the same load).
const baseP95 = rows.find((r) => r.name.startsWith('baseline'))?.p95;
console.log('| query (org + ...) | p50 ms | p95 ms | max ms | p95 / baseline p95 | query alone p50 / p95 ms | rows/page | what |');
console.log('|---|---:|---:|---:|---:|---:|---:|---|');
for (const r of rows) console.log(`| ${r.name} | ${r.p50.toFixed(1)} | ${r.p95.toFixed(1)} | ${r.max.toFixed(0)} | ${baseP95 ? `${(r.p95 / baseP95).toFixed(2)}×` : '—'} | ${r.queryP50.toFixed(1)} / ${r.queryP95.toFixed(1)} | ${r.results.toFixed(0)} | ${r.what} |`);
console.log('\n| throughput | count | seconds | per second |');
console.log('|---|---:|---:|---:|');
for (const r of rates) console.log(`| ${r.name} | ${r.count} | ${r.seconds.toFixed(1)} | ${r.perSecond.toFixed(0)} |`);
const goal = rows.length > 0 && rows.every((r) => r.p95 < 200);
const queryGoal = rows.length > 0 && rows.every((r) => r.queryP95 < 200);
if (rows.length > 0) console.log(`\ngoal p95 < 200 ms for every filtered page: ${goal ? 'met' : 'MISSED'} through the API; ${queryGoal ? 'met' : 'MISSED'} for the search alone`);
console.log(`load average at the end: ${loadavg.map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} cpus, shared)`);
mkdirSync('bench-results', { recursive: true });
const out = `bench-results/audit-queries${values.label ? `-${values.label}` : ''}.json`;
writeFileSync(out, JSON.stringify({
  bench: 'audit-queries', engine: values.engine, date: new Date().toISOString(), label: values.label, entries: total, shape: meta.shape, fillPerSecond: meta.fillPerSecond,
  migrateSeconds, indexSeconds: meta.indexSeconds, countMs, indexes, runs: RUNS, rows, rates, goalMet: goal, queryGoalMet: queryGoal, loadavg, node: process.version, cpus: os.cpus().length,
}, null, 2) + '\n');
console.log(`wrote ${out}`);
await stopSharedPostgres();
if (!values.dir) rmSync(dir, { recursive: true, force: true });
