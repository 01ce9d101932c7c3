// Background maintenance on one node at a time (server/src/db/maintenance-lock.ts, issue 21 §3): two
// `kluis-admin maintenance` runs started together on one PostgreSQL database, as two nodes' rounds would: exactly
// one runs, the other skips; once it has ended, a later run proceeds; a holder killed with SIGKILL does not block the
// next run (the database ends its session, and with it the lock). To keep the runs overlapping, the test holds
// the `spaces` table (the first thing a run reads) locked: the run that got the maintenance lock waits there.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import pg from 'pg';
import { databaseEnv } from '../helpers/server.js';
import { admin } from '../helpers/api.js';
import { spawnAdmin } from '../helpers/crash-store.js';
import { usePostgres } from '../helpers/postgres-suite.js';
import { LOCK_NAMESPACE, MAINTENANCE_LOCK } from '../../server/dist/db/postgres.js';

const SKIPPED = { skipped: true, reason: 'maintenance runs on another node' };
let dataDir: string;
let env: Record<string, string>;
let db: pg.Client;

test.before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'kluis-mlock-'));
  const { KLUIS_DATABASE_URL } = await databaseEnv(dataDir);
  env = { KLUIS_DATABASE_URL: KLUIS_DATABASE_URL! };
  // A first run on its own (it migrates the database and makes the data dir's keys): it runs.
  const first = await admin(dataDir, ['maintenance']);
  if (!first.retention) throw new Error(`the first run did not run: ${JSON.stringify(first)}`);
  db = new pg.Client({ connectionString: KLUIS_DATABASE_URL });
  db.on('error', () => {}); // a failing query still fails its test; a dropped idle connection must not end the file
  await db.connect();
});
// Registered before usePostgres(): ava runs after hooks in order, and this client must close before the cluster stops.
test.after.always(async () => {
  await db?.end().catch(() => {});
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});
usePostgres();

/** Holds `spaces` so that a maintenance run waits at its first query, until `release()`. */
async function holdSpaces(): Promise<{ release(): Promise<void> }> {
  await db.query('BEGIN');
  await db.query('LOCK TABLE spaces IN ACCESS EXCLUSIVE MODE');
  return { release: async () => void (await db.query('ROLLBACK')) };
}

/** How many sessions hold the maintenance lock. */
async function holders(): Promise<number> {
  const r = await db.query<{ n: string }>("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2 AND granted",
    [LOCK_NAMESPACE, MAINTENANCE_LOCK]);
  return Number(r.rows[0]!.n);
}

async function until(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return cond();
}

test.serial('two runs started together: exactly one runs, the other skips; after it ends, a later run proceeds', async (t) => {
  const held = await holdSpaces();
  let released = false;
  try {
    const runs = [spawnAdmin(dataDir, ['--json', 'maintenance'], env), spawnAdmin(dataDir, ['--json', 'maintenance'], env)];
    // The one without the lock ends at once, while the other waits (holding the lock) for the table.
    const first = await Promise.race(runs.map((r, i) => r.done.then((d) => ({ ...d, i }))));
    t.is(first.code, 0, first.stderr);
    t.deepEqual(JSON.parse(first.stdout), SKIPPED);
    t.is(await holders(), 1, 'the other run holds the maintenance lock');
    const other = runs[1 - first.i]!;
    t.is(other.proc.exitCode, null, 'the other run is still running');
    await held.release();
    released = true;
    const done = await other.done;
    t.is(done.code, 0, done.stderr);
    const result = JSON.parse(done.stdout);
    t.false('skipped' in result);
    t.deepEqual(Object.keys(result).sort(), ['compaction', 'retention', 'sweep']);
  } finally {
    if (!released) await held.release();
  }
  t.is(await holders(), 0, 'the lock is released when the run ends');
  const later = await admin(dataDir, ['maintenance']);
  t.truthy(later.retention, JSON.stringify(later));
});

test.serial('a run killed with SIGKILL while holding the lock does not block the next one', async (t) => {
  const held = await holdSpaces();
  try {
    const run = spawnAdmin(dataDir, ['--json', 'maintenance'], env);
    t.true(await until(async () => (await holders()) === 1, 20_000), 'the run took the maintenance lock');
    // Meanwhile another run skips.
    t.deepEqual(await admin(dataDir, ['maintenance']), SKIPPED);
    run.proc.kill('SIGKILL');
    t.is((await run.done).signal, 'SIGKILL');
  } finally {
    await held.release();
  }
  // Its lock connection was idle: the database sees it close and ends the session at once.
  t.true(await until(async () => (await holders()) === 0, 5000), 'the killed run\'s lock is gone');
  const next = await admin(dataDir, ['maintenance']);
  t.truthy(next.retention, JSON.stringify(next));
});
