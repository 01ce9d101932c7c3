// API latency benchmark (server issue): p50/p95/p99 and requests/s of `changes` and `commits` with 100
// concurrent clients for 30 s each, beside GET /healthz under the same load (the framework's floor, measured in
// the same run). Starts its own server (sqlite + fs store in a temp dir). Prints a table, writes
// bench-results/api.json.   npm run build && node --import=tsx scripts/bench/api.ts [--clients 100 --seconds 30]
// The clients read every response body in full but do not parse it (as for /healthz): 100 clients are 100
// machines, and JSON-parsing 128 KB pages here would take a core of this one from the server. --parse parses
// them, as earlier versions of this bench did (that client alone caps changes near 400 req/s on 2 cores).
// The CPU column is the server's CPU time per request (/proc), steadier than req/s on a shared machine; the next one the
// load generator's own (it shares the cores); the last one the SQL statements per request (the server's
// kluis_db_statements_total, by pool). --client http|fetch: the load generator (lib/http-client.ts; fetch was the
// only one until issue 21's last figures and costs the client about three times the CPU per request).
// Options: --only healthz,changes,unchanged,commits (run some phases; the table and api.json then hold only those),
// --profile DIR (the server writes a V8 CPU profile there at exit: open it in Chrome DevTools or speedscope),
// --engine sqlite|pg (pg: a throw-away PostgreSQL cluster of test/helpers/postgres.ts, fsync off; its processes' CPU
// is counted apart), --nodes 1|2 (2, pg only: a second API node on the same database; client c talks to node c % 2,
// a round-robin in the client, so that no proxy's CPU mixes into the figures). api.json is named after the setup
// (api.json for sqlite on one node, api-pg-1.json, api-pg-2.json).
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { databaseEnv, startSecondNode, startServer, type RunningServer } from '../../test/helpers/server.js';
import { stopSharedPostgres } from '../../test/helpers/postgres.js';
import { call, newColleague, newOrg, newSpace, type User } from '../../test/helpers/api.js';
import { newFile, version, type FileHandle } from '../../test/helpers/files.js';
import { closeHttpClient, httpRequest } from './lib/http-client.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '100' }, seconds: { type: 'string', default: '30' }, only: { type: 'string' }, profile: { type: 'string' },
    parse: { type: 'boolean', default: false }, client: { type: 'string', default: 'http' }, engine: { type: 'string', default: 'sqlite' }, nodes: { type: 'string', default: '1' },
  },
});
const ENGINE = values.engine === 'pg' || values.engine === 'postgres' ? 'pg' : 'sqlite';
const NODES = Number(values.nodes);
if (values.engine !== 'sqlite' && ENGINE !== 'pg') throw new Error('--engine is sqlite or pg');
if (NODES !== 1 && NODES !== 2) throw new Error('--nodes is 1 or 2');
if (NODES === 2 && ENGINE !== 'pg') throw new Error('--nodes 2 needs --engine pg (nodes share the database)');
// test/helpers/server.ts gives each server a database of the shared throw-away cluster under this variable.
if (ENGINE === 'pg') process.env.KLUIS_TEST_DB = 'postgres';
if (values.client !== 'http' && values.client !== 'fetch') throw new Error('--client is http or fetch');
const CLIENTS = Number(values.clients);
const SECONDS = Number(values.seconds);
const ONLY = values.only ? new Set(values.only.split(',')) : null;
const runs = (name: string) => !ONLY || ONLY.has(name);

/** Node refuses --cpu-prof in NODE_OPTIONS: a preload module that profiles through the inspector instead. */
function profilerPreload(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = path.resolve(dir, 'cpu-profile-preload.mjs');
  const out = path.resolve(dir, `server-${Date.now()}.cpuprofile`);
  writeFileSync(file, [
    "import { Session } from 'node:inspector';",
    "import { writeFileSync } from 'node:fs';",
    'const s = new Session(); s.connect();',
    "s.post('Profiler.enable'); s.post('Profiler.setSamplingInterval', { interval: 200 }); s.post('Profiler.start');",
    `process.on('exit', () => s.post('Profiler.stop', (err, r) => { if (!err) writeFileSync(${JSON.stringify(out)}, JSON.stringify(r.profile)); }));`,
  ].join('\n'));
  return file;
}

await k.initCrypto();
const serverEnv = { KLUIS_LOG_LEVEL: 'silent', ...(values.profile ? { NODE_OPTIONS: `--import=${profilerPreload(values.profile)}` } : {}) };
const srv = await startServer(serverEnv);
const nodes: RunningServer[] = [srv];
try {
  if (NODES === 2) nodes.push(await startSecondNode(srv, serverEnv));
  const pgPort = ENGINE === 'pg' ? new URL((await databaseEnv(srv.dataDir)).KLUIS_DATABASE_URL!).port : '';
  // 10 people, each with a space; 10 clients per space (their devices and colleagues' sessions share the log).
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const people: User[] = [a];
  while (people.length < 10) people.push(await newColleague(srv.url, a));
  const spaces = await Promise.all(people.map((p) => newSpace(srv.url, p)));
  // A realistic log to read: 2,000 versions per space.
  for (const [i, s] of spaces.entries()) {
    for (let b = 0; b < 2; b++) {
      const versions = Array.from({ length: 1000 }, (_, j) => version(people[i]!, s.spaceId, s.pair, 1, newFile(), { parent: null, path: `map/${b}/${j}.txt` }).entry);
      const r = await call(srv.url, 'POST', `/api/v1/spaces/${s.spaceId}/commits`, { token: people[i]!.token, json: { versions } });
      if (r.status !== 201) throw new Error(`seeding failed: ${JSON.stringify(r.body).slice(0, 200)}`);
    }
  }

  /**
   * The server process's CPU time (user + system, ms) from /proc: on a machine shared with other work, requests/s
   * and latency follow the neighbours' load, the CPU spent per request does not (much). NaN where /proc is missing.
   */
  /** utime + stime of `pid`, and with `children` the cutime + cstime of the children it reaped. */
  const cpuMsOf = (pid: number | undefined, children = false): number => {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return ((Number(fields[11]) + Number(fields[12]) + (children ? Number(fields[13]) + Number(fields[14]) : 0)) * 1000) / 100;
    } catch {
      return NaN;
    }
  };
  const serverCpuMs = (): number => nodes.reduce((sum, n) => sum + cpuMsOf(n.proc.pid), 0);
  /**
   * CPU of the PostgreSQL cluster: its postmaster (found by its `-p PORT`), the backends it forked, and those of them
   * that ended (the postmaster reaps them: its children's time).
   */
  const postgresCpuMs = (): number => {
    if (!pgPort) return 0;
    const procs = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return { pid: Number(pid), ppid: Number(stat.split(') ')[1]!.split(' ')[1]), cmd: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0') };
      } catch {
        return null;
      }
    }).filter((p) => p !== null);
    const master = procs.find((p) => p.cmd[0]!.endsWith('/postgres') && p.cmd[p.cmd.indexOf('-p') + 1] === pgPort);
    if (!master) return NaN;
    return procs.filter((p) => p.pid === master.pid || p.ppid === master.pid).reduce((sum, p) => sum + cpuMsOf(p.pid, p.pid === master.pid), 0);
  };

  /** SQL statements the server has sent so far, per pool (its /metrics, db/statement-count.ts). */
  const statementCounts = async (): Promise<Record<string, number>> => {
    const out: Record<string, number> = { write: 0, read: 0, hot: 0 };
    for (const node of nodes) {
      const text = await (await fetch(`${node.url}/metrics`)).text();
      for (const m of text.matchAll(/^kluis_db_statements_total\{pool="(\w+)"\} (\d+)/gm)) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
    }
    return out;
  };

  interface Phase { name: string; what: string; latencies: number[]; errors: number; seconds: number; cpuMs: number; clientCpuMs: number; pgCpuMs: number; statements: Record<string, number>; loadavg: number[] }
  const phases: Phase[] = [];

  async function phase(name: string, what: string, request: (client: number, n: number) => Promise<number>): Promise<Phase> {
    const latencies: number[] = [];
    let errors = 0;
    const end = performance.now() + SECONDS * 1000;
    const t0 = performance.now();
    const cpu0 = serverCpuMs();
    const client0 = process.cpuUsage();
    const pg0 = postgresCpuMs();
    const sql0 = await statementCounts();
    await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
      for (let n = 0; performance.now() < end; n++) {
        const s = performance.now();
        const status = await request(c, n);
        latencies.push(performance.now() - s);
        if (status >= 400) errors++;
      }
    }));
    const cpuMs = serverCpuMs() - cpu0;
    const clientUsage = process.cpuUsage(client0);
    const clientCpuMs = (clientUsage.user + clientUsage.system) / 1000;
    const pgCpuMs = postgresCpuMs() - pg0;
    const sql1 = await statementCounts();
    const statements = Object.fromEntries(Object.keys(sql1).map((pool) => [pool, sql1[pool]! - (sql0[pool] ?? 0)]));
    const p = { name, what, latencies: latencies.sort((x, y) => x - y), errors, seconds: (performance.now() - t0) / 1000, cpuMs, clientCpuMs, pgCpuMs, statements, loadavg: os.loadavg() };
    phases.push(p);
    console.error(`  ${name}: ${latencies.length} requests, ${errors} errors`);
    return p;
  }

  /** One API request; resolves with its status once the whole body has arrived. */
  const nodeUrl = (client: number) => nodes[client % nodes.length]!.url;
  async function send(client: number, method: string, url: string, token: string, json?: unknown): Promise<number> {
    if (values.parse) return (await call(nodeUrl(client), method, url, { token, json })).status;
    const headers: Record<string, string> = { 'x-kluis-client': 'kluis-bench/0.1.0', authorization: `Bearer ${token}` };
    if (json !== undefined) headers['content-type'] = 'application/json';
    const body = json === undefined ? undefined : JSON.stringify(json);
    if (values.client === 'http') return httpRequest(nodeUrl(client) + url, method, headers, body);
    const res = await fetch(nodeUrl(client) + url, { method, headers, body });
    await res.arrayBuffer();
    return res.status;
  }

  console.error(`api bench: ${CLIENTS} clients x ${SECONDS} s per phase, ${ENGINE}, ${NODES} node(s)`);
  if (runs('healthz')) {
    await phase('baseline: GET /healthz', 'no auth, no database', async (c) => values.client === 'http'
      ? httpRequest(`${nodeUrl(c)}/healthz`, 'GET', {})
      : (await fetch(`${nodeUrl(c)}/healthz`).then(async (r) => (await r.arrayBuffer(), r.status))));
  }
  // What a synced client asks most: anything after the head it has? Here the head of the seeded log, so nothing new.
  const heads = new Map<string, number>();
  for (const [i, s] of spaces.entries()) {
    const r = await call(srv.url, 'GET', `/api/v1/spaces/${s.spaceId}/changes?since=0&limit=1`, { token: people[i]!.token });
    heads.set(s.spaceId, (r.body as { head: number }).head);
  }
  if (runs('unchanged')) await phase('GET changes (nothing new)', 'since the head (auth + membership + head + audit entry)', async (c) => {
    const s = spaces[c % spaces.length]!;
    return send(c, 'GET', `/api/v1/spaces/${s.spaceId}/changes?since=${heads.get(s.spaceId)!}&limit=100`, people[c % people.length]!.token);
  });
  if (runs('changes')) await phase('GET changes', 'since a random seq, limit 100 (auth + membership + page + audit entry)', async (c) => {
    const s = spaces[c % spaces.length]!;
    const since = Math.floor(Math.random() * 1900);
    return send(c, 'GET', `/api/v1/spaces/${s.spaceId}/changes?since=${since}&limit=100`, people[c % people.length]!.token);
  });
  const files = new Map<number, { file: FileHandle; head: string | null }>();
  if (runs('commits')) await phase('POST commits', 'one new version of the client\'s own file (parent check, seq, audit, event)', async (c) => {
    const i = c % people.length;
    const s = spaces[i]!;
    const mine = files.get(c) ?? { file: newFile(), head: null };
    const v = version(people[i]!, s.spaceId, s.pair, 1, mine.file, { parent: mine.head, path: `bench/${c}.txt` });
    const status = await send(c, 'POST', `/api/v1/spaces/${s.spaceId}/commits`, people[i]!.token, { versions: [v.entry] });
    if (status === 201) files.set(c, { file: mine.file, head: v.versionId });
    return status;
  });

  const pct = (xs: number[], q: number) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN;
  const rows = phases.map((p) => ({
    name: p.name, what: p.what, requests: p.latencies.length, errors: p.errors, rps: p.latencies.length / p.seconds,
    p50: pct(p.latencies, 0.5), p95: pct(p.latencies, 0.95), p99: pct(p.latencies, 0.99), max: p.latencies[p.latencies.length - 1] ?? NaN,
    cpuMsPerRequest: p.cpuMs / p.latencies.length, clientCpuMsPerRequest: p.clientCpuMs / p.latencies.length, postgresCpuMsPerRequest: p.pgCpuMs / p.latencies.length, loadavgAtEnd: p.loadavg,
    sqlPerRequest: Object.fromEntries(Object.entries(p.statements).map(([pool, n]) => [pool, n / p.latencies.length])),
  }));
  const sql = (r: (typeof rows)[number]) => `${Object.values(r.sqlPerRequest).reduce((a, b) => a + b, 0).toFixed(2)} (${Object.entries(r.sqlPerRequest).map(([pool, n]) => `${pool} ${n.toFixed(2)}`).join(', ')})`;
  const pgCol = ENGINE === 'pg';
  console.log(`${ENGINE}, ${NODES} node(s), ${CLIENTS} clients, ${SECONDS} s per phase`);
  console.log(`| phase | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | server CPU ms/req | client CPU ms/req |${pgCol ? ' PostgreSQL CPU ms/req |' : ''} SQL statements/req | load average (1 min) |`);
  console.log(`|---|---:|---:|---:|---:|---:|---:|---:|---:|${pgCol ? '---:|' : ''}---|---:|`);
  for (const r of rows) console.log(`| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(1)} | ${r.p95.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.max.toFixed(0)} | ${r.errors} | ${r.cpuMsPerRequest.toFixed(2)} | ${r.clientCpuMsPerRequest.toFixed(2)} |${pgCol ? ` ${r.postgresCpuMsPerRequest.toFixed(2)} |` : ''} ${sql(r)} | ${r.loadavgAtEnd[0]!.toFixed(2)} |`);
  // Issue 21's goals: nothing new >= 2,000 req/s with p95 < 50 ms; one version committed >= 1,000 req/s, p95 < 100 ms.
  const goals: Record<string, { rps: number; p95: number }> = { 'GET changes (nothing new)': { rps: 2000, p95: 50 }, 'POST commits': { rps: 1000, p95: 100 } };
  const goal = rows.every((r) => r.errors === 0 && (!goals[r.name] || (r.rps >= goals[r.name]!.rps && r.p95 < goals[r.name]!.p95)));
  console.log(`\nload average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} cpus)`);
  console.log(`goal (nothing new >= 2,000 req/s p95 < 50 ms, commits >= 1,000 req/s p95 < 100 ms, no errors): ${goal ? 'met' : 'MISSED'}`);
  mkdirSync('bench-results', { recursive: true });
  const out = ENGINE === 'sqlite' ? 'bench-results/api.json' : `bench-results/api-pg-${NODES}.json`;
  writeFileSync(out, JSON.stringify({ bench: 'api', date: new Date().toISOString(), engine: ENGINE, nodes: NODES, clients: CLIENTS, seconds: SECONDS, parse: values.parse, loadavg: os.loadavg(), node: process.version, cpus: os.cpus().length, rows, goalMet: goal }, null, 2) + '\n');
  console.log(`wrote ${out}`);
} finally {
  closeHttpClient();
  for (const n of nodes.slice(1)) await n.stop();
  await srv.stop();
  await stopSharedPostgres();
}
