// Crash safety of the chunk store with real SIGKILLs (docs/architecture.md §3.1: "a crash at any step leaves every live chunk
// readable"). A child process (test/helpers/chunkstore-child.ts) uploads 2,400 deterministic chunks in six
// batches, or marks chunks dead and compacts, over a real sqlite database and filesystem blob store in one temp
// dir; the parent kills it with SIGKILL, either exactly at a progress point (the child pauses there) or at a
// random moment (a random number of progress points plus a random delay, while the child keeps running). After
// every kill the parent reopens the dir, runs sweepOrphans like a server start, and checks:
//   - every chunk row reads back byte-identical to the content generated for its id;
//   - no row points at a missing object or beyond the end of a pack; standalone sizes match; pack dead_bytes
//     match their live rows; no retired pack and no unreferenced object is left after the sweep;
//   - uploads are all-or-nothing per batch and never lose what an earlier run committed;
//   - a compaction killed anywhere keeps every chunk that was stored and not marked dead, live and readable;
//     markDead is all-or-nothing.
// The state carries over from one kill to the next, like a server that crashes repeatedly.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openFsBlobStore } from '../../server/dist/blobstore/fs.js';
import { openDatabase } from '../../server/dist/db/db.js';
import { ChunkStore, type ChunkStoreEvent } from '../../server/dist/storage/chunks.js';
import { checkIndex, createSpace, type SpaceFixture } from '../helpers/chunkstore-fixture.js';
import { CRASH_BATCH, CRASH_CHUNKS, CRASH_STORE_OPTIONS, crashChunk, crashDead, crashId, type ChildArgs } from '../helpers/chunkstore-child.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const childScript = path.join(repoRoot, 'test', 'helpers', 'chunkstore-child.ts');

const indexById = new Map<string, number>();
for (let i = 0; i < CRASH_CHUNKS; i++) indexById.set(crashId(i), i);
const batchOf = (i: number) => Math.floor(i / CRASH_BATCH);

interface Kill {
  /** Pause-and-kill exactly after the n-th occurrence of this event. */
  pauseAt?: { event: ChunkStoreEvent; n: number };
  /** Kill `delayMs` after the `afterEvents`-th progress point, the child running on meanwhile. */
  random?: { afterEvents: number; delayMs: number };
}

interface ChildRun {
  killed: boolean;
  where: string;
  code: number | null;
  out: string;
  err: string;
}

const children = new Set<ReturnType<typeof spawn>>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function runChild(args: ChildArgs, kill: Kill): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import=tsx', childScript, JSON.stringify(args)], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    let pending = '';
    let events = 0;
    let last = '(none)';
    let where = '';
    const killNow = (why: string) => {
      if (where || child.exitCode !== null) return;
      where = why;
      child.kill('SIGKILL');
    };
    const guard = setTimeout(() => killNow('TIMEOUT'), 120_000);
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      pending += s;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.startsWith('EV ')) {
          events++;
          last = line.slice(3);
          if (kill.random && events === kill.random.afterEvents) {
            const at = last;
            setTimeout(() => killNow(`random: ${kill.random!.delayMs} ms after ${at}`), kill.random.delayMs);
          }
        } else if (line === 'PAUSED') {
          killNow(`paused at ${last}`);
        }
      }
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      children.delete(child);
      resolve({ killed: signal === 'SIGKILL', where: signal === 'SIGKILL' ? where : `exited ${code} after ${events} events`, code, out, err });
    });
  });
}

interface State {
  /** Chunk index -> live flag, for every chunk row. */
  rows: Map<number, boolean>;
}

/** Reopens the dir like a starting server (sweep), checks the invariants, reads every chunk back. */
async function verify(t: ExecutionContext, dir: string, fx: SpaceFixture, label: string): Promise<State> {
  const db = await openDatabase({ dataDir: path.join(dir, 'db') });
  const blobs = await openFsBlobStore({ root: path.join(dir, 'blobs') });
  try {
    const store = new ChunkStore(db, blobs, CRASH_STORE_OPTIONS);
    await store.sweepOrphans({ graceMs: 0 });
    const org = blobs.forOrg(fx.orgId);
    t.deepEqual(await checkIndex(db, org, fx.spaceId, { orphans: true }), [], `${label}: index and objects consistent after the sweep`);
    const raw = (await db('chunks').where({ space_id: fx.spaceId }).select('id', 'live')) as { id: string; live: number | boolean }[];
    const rows = new Map<number, boolean>();
    for (const r of raw) {
      const i = indexById.get(r.id);
      if (i === undefined) t.fail(`${label}: unknown chunk row ${r.id}`);
      else rows.set(i, Boolean(r.live));
    }
    let seen = 0;
    let bad = 0;
    if (raw.length > 0) {
      for await (const c of await store.getBatch(fx.orgId, fx.spaceId, raw.map((r) => r.id))) {
        seen++;
        const want = crashChunk(indexById.get(c.id)!).ciphertext;
        if (Buffer.compare(Buffer.from(c.ciphertext), want) !== 0) bad++;
      }
    }
    t.is(seen, raw.length, `${label}: every row read back`);
    t.is(bad, 0, `${label}: every chunk byte-identical`);
    return { rows };
  } finally {
    await db.destroy();
    await blobs.close();
  }
}

function pick(n: number): number {
  return Math.floor(Math.random() * n);
}

test('SIGKILL at 10+ points of uploads and compactions never loses or corrupts a chunk', async (t) => {
  t.timeout(15 * 60_000);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kluis-crash-'));
  const log: string[] = [];
  let kills = 0;
  try {
    const setupDb = await openDatabase({ dataDir: path.join(dir, 'db') });
    const fx = await createSpace(setupDb);
    await setupDb.destroy();
    const base = { dir, orgId: fx.orgId, spaceId: fx.spaceId };
    let state: State = { rows: new Map() };

    const run = async (mode: 'upload' | 'compact', kill: Kill): Promise<ChildRun> => {
      const r = await runChild({ ...base, mode, ...(kill.pauseAt ? { pauseAt: kill.pauseAt } : {}) }, kill);
      if (!r.killed && r.code !== 0) t.fail(`${mode} child failed (exit ${r.code}):\n${r.err}`);
      if (r.killed) kills++;
      log.push(`${mode.padEnd(7)} ${r.killed ? 'KILLED' : 'ran   '} ${r.where}`);
      return r;
    };

    // ---- uploads: kills at every step of a batch, then at random moments, then one run to the end.
    const uploadKills: Kill[] = [
      { pauseAt: { event: 'batch:packWritten', n: 2 } }, // objects written, nothing committed
      { pauseAt: { event: 'batch:standaloneWritten', n: 5 } },
      { pauseAt: { event: 'batch:beforeCommit', n: 1 } }, // every object of the batch written, not committed
      { pauseAt: { event: 'batch:committed', n: 2 } }, // committed, claims and discards not finished
      { random: { afterEvents: 1 + pick(30), delayMs: pick(10) } },
      { random: { afterEvents: 1 + pick(30), delayMs: pick(10) } },
      { pauseAt: { event: 'batch:packWritten', n: 3 } }, // a later batch, after random kills
      { random: { afterEvents: 1 + pick(30), delayMs: pick(10) } },
      {},
    ];
    for (const [k, kill] of uploadKills.entries()) {
      const before = state;
      const r = await run('upload', kill);
      const label = `upload #${k} (${r.where})`;
      state = await verify(t, dir, fx, label);
      for (const i of before.rows.keys()) if (!state.rows.has(i)) t.fail(`${label}: chunk ${i} was lost`);
      // All or nothing per batch.
      const perBatch = new Map<number, number>();
      for (const i of state.rows.keys()) perBatch.set(batchOf(i), (perBatch.get(batchOf(i)) ?? 0) + 1);
      for (const [b, n] of perBatch) t.is(n, Math.min(CRASH_BATCH, CRASH_CHUNKS - b * CRASH_BATCH), `${label}: batch ${b} is all or nothing`);
      if (kill.pauseAt?.event === 'batch:beforeCommit') t.is(perBatch.size, before.rows.size / CRASH_BATCH, `${label}: the uncommitted batch left no row`);
    }
    t.is(state.rows.size, CRASH_CHUNKS, 'the final upload run stored everything');

    // ---- compaction: each round first restores the chunks earlier rounds removed (an upload run to the end),
    // so that every round has work to do; then marks dead + compacts and is killed.
    const compactKills: Kill[] = [
      { pauseAt: { event: 'dead:marked', n: 1 } }, // marked dead, nothing compacted
      { pauseAt: { event: 'compact:packWritten', n: 1 } }, // new pack written, index not switched
      { pauseAt: { event: 'compact:switched', n: 1 } }, // switched, old objects still there (retired)
      { pauseAt: { event: 'compact:oldDeleted', n: 3 } }, // some old objects deleted, retired rows left
      { pauseAt: { event: 'compact:standaloneRowsDeleted', n: 1 } }, // dead rows gone, objects not yet
      { random: { afterEvents: 1 + pick(8), delayMs: pick(6) } },
      { random: { afterEvents: 1 + pick(8), delayMs: pick(6) } },
      { random: { afterEvents: 1 + pick(8), delayMs: pick(6) } },
      {},
    ];
    for (const [k, kill] of compactKills.entries()) {
      await run('upload', {});
      const before = await verify(t, dir, fx, `restore before compaction #${k}`);
      const r = await run('compact', kill);
      const label = `compaction #${k} (${r.where})`;
      state = await verify(t, dir, fx, label);
      let lost = 0;
      for (const i of before.rows.keys()) if (!crashDead(i) && state.rows.get(i) !== true) lost++;
      t.is(lost, 0, `${label}: every chunk not marked dead is still stored and live`);
      const deadFlags = new Set([...state.rows].filter(([i]) => crashDead(i)).map(([, live]) => live));
      t.true(deadFlags.size <= 1, `${label}: markDead is all or nothing`);
      if (!r.killed) {
        const deadStandalone = [...state.rows.keys()].filter((i) => crashDead(i) && crashChunk(i).ciphertext.length >= CRASH_STORE_OPTIONS.packThresholdBytes!);
        t.deepEqual(deadStandalone, [], `${label}: dead standalone chunks deleted`);
        // (3 of 4 chunks in the first three batches are dead, so nearly all their packs are rewritten; a small
        // last pack of a batch may by chance be mostly live and keep its dead rows.)
        const allSparseGone = CRASH_CHUNKS - [...Array(CRASH_CHUNKS).keys()].filter((i) => crashDead(i) && batchOf(i) < 3).length;
        t.true(state.rows.size <= allSparseGone + 40, `${label}: dead chunks of sparse packs removed (${state.rows.size} rows left, ${allSparseGone} if all)`);
        const db = await openDatabase({ dataDir: path.join(dir, 'db') });
        const sparse = await db('packs').where({ space_id: fx.spaceId, state: 'live' }).andWhere(db.raw('?? * 2 > ??', ['dead_bytes', 'size'])).count({ n: '*' }).first();
        await db.destroy();
        t.is(Number((sparse as { n: number | string }).n), 0, `${label}: no pack more than half dead is left`);
      }
    }
    t.log(`${kills} kills:\n${log.join('\n')}`);
    t.true(kills >= 10, `${kills} kills`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
