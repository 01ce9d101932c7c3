// Conflicts between two CLI clients on one space (real server, blobs on a local S3): the same file edited on both
// sides, 50 rounds (concurrent --once runs, and edit-then-sync in both orders), and delete versus edit. Every round
// must end with both contents present in both trees as the file and a conflict copy, the trees equal, and every
// conflict copy of earlier rounds still there. (The 50 rounds are five serial tests of ten on one space, so no
// single test outlives ava's 2-minute idle timeout.)
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import path from 'node:path';
import {
  bytes, conflictCopies, converge, prng, remoteDuplicates, sha256, startSyncEnv, syncOnce, tree, write, type SyncClient, type SyncEnv, type SyncReport,
} from '../helpers/sync-env.js';

let env: SyncEnv;
let a: SyncClient;
let b: SyncClient;
/** sha256 of every content that lost a round: each must stay as a conflict copy until the end. */
const losers = new Set<string>();
const seed = Number(process.env.KLUIS_CONFLICT_SEED ?? (Date.now() % 2 ** 31));
const rng = prng(seed);

test.before(async () => {
  env = await startSyncEnv({ accounts: ['A', 'B'] });
  [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  for (let f = 0; f < 3; f++) write(a.dir, `map/doc-${f}.txt`, `begin ${f}\n`);
  await converge([a, b]);
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await env?.close();
});

/** `doc-N (conflict <device> <YYYY-MM-DD HHmm>).txt`, allowing a suffix that tells two copies of one minute apart. */
const COPY = /^map\/doc-\d \(conflict [^/]+ \d{4}-\d{2}-\d{2} \d{4}[^/]*\)[^/]*\.txt$/;

/** A distinct content for one side of one round (random size, sometimes large enough for several chunks). */
function content(round: number, side: string): Buffer {
  const head = Buffer.from(`ronde ${round} door ${side} ${randomBytes(8).toString('hex')}\n`);
  const big = rng() < 0.1;
  return Buffer.concat([head, bytes(round * 2 + (side === 'A' ? 0 : 1), big ? 600_000 + Math.floor(rng() * 1_500_000) : Math.floor(rng() * 5000))]);
}

async function round(t: ExecutionContext, i: number): Promise<void> {
  const file = `map/doc-${i % 3}.txt`;
  const before = tree(a.dir);
  const copiesBefore = conflictCopies(before);
  const ha = write(a.dir, file, content(i, 'A'));
  const hb = write(b.dir, file, content(i, 'B'));
  const mode = ['concurrent', 'A first', 'B first'][i % 3]!;
  let reports: SyncReport[];
  if (mode === 'concurrent') reports = await Promise.all([syncOnce(a), syncOnce(b)]);
  else if (mode === 'A first') reports = [await syncOnce(a), await syncOnce(b)];
  else reports = [await syncOnce(b), await syncOnce(a)];
  const done = await converge([a, b], { quiet: false });
  const tr = done.tree;
  const copies = conflictCopies(tr);
  const fresh = copies.filter((p) => !copiesBefore.includes(p));
  const where = `round ${i} (${mode}, ${file}): ${JSON.stringify(fresh)} reports ${JSON.stringify(reports.map((r) => r.conflicts))}`;
  t.is(fresh.length, 1, `exactly one new conflict copy; ${where}`);
  t.true(copiesBefore.every((p) => p in tr), `earlier conflict copies survive; ${where}`);
  for (const p of fresh) t.regex(p, COPY, where);
  const values = Object.values(tr);
  t.true(values.includes(ha), `A's content is in the tree; ${where}`);
  t.true(values.includes(hb), `B's content is in the tree; ${where}`);
  t.true(tr[file] === ha || tr[file] === hb, `the file holds one of the two; ${where}`);
  const loser = tr[file] === ha ? hb : ha;
  t.is(tr[fresh[0]!], loser, `the copy holds the other; ${where}`);
  losers.add(loser);
  t.true(reports.some((r) => r.conflicts.length > 0) || done.reports.some((r) => r.conflicts.length > 0), `a run reported the conflict; ${where}`);
  // Nothing else changed: the other two files and the earlier copies are as before.
  for (const [p, h] of Object.entries(before)) if (p !== file) t.is(tr[p], h, `${p} untouched; ${where}`);
}

for (let part = 0; part < 5; part++) {
  test.serial(`the same file edited on both clients, rounds ${part * 10 + 1}-${part * 10 + 10}: both contents kept, trees equal`, async (t) => {
    if (part === 0) t.log(`seed ${seed} (KLUIS_CONFLICT_SEED to repeat)`);
    for (let i = part * 10; i < part * 10 + 10; i++) await round(t, i);
    const tr = tree(a.dir);
    t.is(conflictCopies(tr).length, losers.size, 'one copy per round so far');
    const copyHashes = new Set(conflictCopies(tr).map((p) => tr[p]));
    t.true([...losers].every((h) => copyHashes.has(h)), 'every losing content is kept as a copy');
  });
}

test.serial('after 50 rounds: a quiet sync changes nothing, no duplicate files on the server', async (t) => {
  const c = await converge([a, b]);
  t.is(conflictCopies(c.tree).length, 50);
  t.deepEqual(await remoteDuplicates(a), []);
});

for (const order of ['delete synced first', 'edit synced first', 'concurrent'] as const) {
  test.serial(`delete on A vs edit on B keeps the edit (${order})`, async (t) => {
    const file = `weg-of-niet ${order}.txt`;
    write(a.dir, file, 'origineel');
    await converge([a, b]);
    unlinkSync(path.join(a.dir, file));
    const edited = write(b.dir, file, `bewerkt door B (${order})`);
    if (order === 'delete synced first') {
      await syncOnce(a);
      await syncOnce(b);
    } else if (order === 'edit synced first') {
      await syncOnce(b);
      await syncOnce(a);
    } else {
      await Promise.all([syncOnce(a), syncOnce(b)]);
    }
    const c = await converge([a, b]);
    t.is(c.tree[file], edited, 'the edit survives on both');
    t.deepEqual(conflictCopies(c.tree).filter((p) => p.startsWith('weg-of-niet')), [], 'no conflict copy needed');
    t.is(sha256(`bewerkt door B (${order})`), edited);
  });
}
