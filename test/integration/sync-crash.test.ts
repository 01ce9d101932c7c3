// kill -9 of `kluis sync --once` at randomised moments (seeded PRNG; the seed is in the test log and
// KLUIS_CRASH_SEED repeats a run): during uploads of many small files and a few MiB-sized ones, during downloads
// that create and overwrite files, and during runs that commit renames, moves and deletions. After each kill the
// folder may hold no file under its real name whose content was never written there (partial downloads must stay
// in `.kluis-tmp-*`); at the end every file is present exactly once with the right content, on disk and on the
// server, with no conflict copies (nobody edited concurrently) and no temp files left.
import test, { type ExecutionContext } from 'ava';
import { mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  TEMP_PREFIX, bytes, clientEnv, conflictCopies, converge, prng, remoteHistory, remoteState, sleep, spawnSyncOnce, startSyncEnv, syncOnce, tree, treeDiff, write,
  type SyncClient, type SyncEnv,
} from '../helpers/sync-env.js';

const MiB = 1024 * 1024;
// The MiB-sized files are hashed by their upload on the hash worker (desktop/src/sync/hash-later.ts), as files of
// 32 MiB and more are by default: that path too is killed and cut off here.
clientEnv.KLUIS_SYNC_HASH_LATER_MIN ??= String(2 * MiB);
const seed = Number(process.env.KLUIS_CRASH_SEED ?? (Date.now() % 2 ** 31));
const rng = prng(seed);
const randInt = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));

let env: SyncEnv;
let a: SyncClient;
let b: SyncClient;
/** What A's folder must hold (files only): path -> sha256. */
const model = new Map<string, string>();
/** Every content ever written at a path: what a file under that name may hold at any moment. */
const history = new Map<string, Set<string>>();
/** Kills that hit a running process, per phase. */
const landed: Record<string, number> = {};
/** What the test did, in order (file operations on A, kills): a failure logs the lines about the paths that differ. */
const ops: string[] = [];

test.before(async () => {
  env = await startSyncEnv({ accounts: ['A', 'B'] });
  [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await env?.close();
});

function remember(rel: string, h: string): void {
  const set = history.get(rel) ?? new Set<string>();
  set.add(h);
  history.set(rel, set);
}

function put(rel: string, size: number): void {
  const h = write(a.dir, rel, bytes(randInt(0, 2 ** 31), size));
  ops.push(`${model.has(rel) ? 'edit' : 'new'} ${rel}`);
  model.set(rel, h);
  remember(rel, h);
}

function remove(rel: string): void {
  rmSync(path.join(a.dir, rel));
  ops.push(`delete ${rel}`);
  model.delete(rel);
}

function move(from: string, to: string): void {
  mkdirSync(path.dirname(path.join(a.dir, to)), { recursive: true });
  renameSync(path.join(a.dir, from), path.join(a.dir, to));
  ops.push(`move ${from} -> ${to}`);
  const h = model.get(from)!;
  model.delete(from);
  model.set(to, h);
  remember(to, h);
}

const pick = <T>(items: T[]): T => items[Math.floor(rng() * items.length)]!;
const smallFiles = () => [...model.keys()].filter((p) => p.includes('/f'));
const bigFiles = () => [...model.keys()].filter((p) => p.includes('/groot'));

/** A batch of new work on A: new small files, a few edits, now and then a MiB-sized file. */
function batch(tag: string, n: number, withBig: boolean): void {
  for (let j = 0; j < n; j++) put(`${tag}/f${j}.bin`, randInt(0, 40_000));
  const existing = smallFiles().filter((p) => !p.startsWith(`${tag}/`));
  for (let j = 0; j < 3 && existing.length; j++) put(pick(existing), randInt(1, 30_000));
  if (withBig) put(`${tag}/groot.bin`, randInt(2 * MiB, 4 * MiB));
}

/** Fails the test when a file under its real name holds content that was never written at that path. */
function assertNoPartial(t: ExecutionContext, c: SyncClient, when: string): void {
  const tr = tree(c.dir);
  for (const [p, h] of Object.entries(tr)) {
    if (h === 'dir') continue;
    if (!history.get(p)?.has(h)) t.fail(`${c.label} ${when}: ${p} holds content never written at that path (partial or misplaced)`);
  }
  t.deepEqual(conflictCopies(tr), [], `${c.label} ${when}: no conflict copies`);
}

function temps(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith(TEMP_PREFIX)) out.push(path.join(d, e.name));
      else if (e.isDirectory()) walk(path.join(d, e.name));
    }
  };
  walk(dir);
  return out;
}

/** Starts --once on c and SIGKILLs it after `delayMs`; true when the kill hit a running process. */
async function killAfter(t: ExecutionContext, c: SyncClient, delayMs: number): Promise<boolean> {
  const { proc, done } = spawnSyncOnce(c);
  const first = await Promise.race([done.then(() => 'exited' as const), sleep(delayMs).then(() => 'timer' as const)]);
  if (first === 'exited') {
    const r = await done;
    ops.push(`* ${c.label} ran to its end (kill at ${delayMs} ms)`);
    if (r.code !== 0) t.fail(`${c.label}: --once failed on its own (exit ${r.code}): ${r.stderr}`);
    return false;
  }
  proc.kill('SIGKILL');
  const r = await done;
  ops.push(`* ${c.label} ${r.signal === 'SIGKILL' ? 'killed' : 'exited before its kill'} at ${delayMs} ms`);
  return r.signal === 'SIGKILL';
}

/**
 * Per attempt, `prepare` makes new work and names the client to kill; it is killed at a random moment, until `target`
 * kills have landed (hit a running process). The delay window adapts: a run that finishes before its kill
 * shrinks it, so kills spread over start-up, scan, transfer and commit.
 */
async function killLoop(t: ExecutionContext, phase: string, target: number, prepare: (attempt: number) => Promise<SyncClient>): Promise<void> {
  let count = 0;
  let window = 2500;
  const delays: string[] = [];
  const hit = async (victim: SyncClient, delay: number, what: string) => {
    if (!(await killAfter(t, victim, delay))) return false;
    count++;
    delays.push(`${victim.label} ${delay}`);
    assertNoPartial(t, victim, `after a kill at ${delay} ms (${what})`);
    return true;
  };
  for (let attempt = 0; count < target; attempt++) {
    if (attempt >= target * 3) {
      t.fail(`${phase}: only ${count} of ${target} kills landed in ${attempt} attempts`);
      break;
    }
    ops.push(`* ${phase} #${attempt}`);
    const victim = await prepare(attempt);
    if (await hit(victim, 150 + Math.floor(rng() * window), `${phase} #${attempt}`)) {
      // Sometimes kill the restart too, while it recovers from the journal.
      if (rng() < 0.3 && count < target) await hit(victim, 100 + Math.floor(rng() * window * 0.5), `${phase} #${attempt}, during recovery`);
    } else {
      window = Math.max(300, Math.floor(window * 0.7));
    }
  }
  landed[phase] = count;
  t.log(`${phase}: ${count} kills at ${delays.join(', ')} ms`);
}

/**
 * Logs what differs (`summary`), then, for each differing path (at most 5), the test's operations and kills that
 * named it or its folder, and its files' versions on the server: a CI log that cuts the long assertions still says
 * how it came about.
 */
async function explain(t: ExecutionContext, summary: string, actual: Record<string, string>, expected: Record<string, string>): Promise<void> {
  t.log(summary);
  const paths = [...new Set([...Object.keys(actual), ...Object.keys(expected)])].filter((p) => actual[p] !== expected[p]).slice(0, 5);
  for (const p of paths) {
    const versions = await remoteHistory(a, [p]).catch((err: unknown) => `(server history failed: ${String(err)})`);
    const lines = typeof versions === 'string' ? [versions] : versions.map((v) => `seq ${v.seq} file ${v.fileId} version ${v.versionId} parent ${v.parent} ${v.path}${v.deleted ? ' DELETED' : ''} by device ${v.device}`);
    t.log(`${p} on the server: ${lines.join('; ') || 'never'}`);
    // The test's operations on this path, on the paths its file had, and on their folders; kills and passes for context.
    const names = new Set([p, ...(typeof versions === 'string' ? [] : versions.map((v) => v.path))]);
    const folders = new Set([...names].map((n) => `${n.split('/')[0]!}/`));
    const related = ops.filter((o) => o.startsWith('* ') || [...names].some((n) => o.includes(n)) || [...folders].some((f) => o.includes(` ${f} `) || o.endsWith(` ${f}`)));
    t.log(`${p}: ${related.slice(-80).join('; ')}`);
  }
}

/** Finishes without kills and checks disk, server and the other client against the model. */
async function settleAndCheck(t: ExecutionContext, when: string): Promise<void> {
  const c = await converge([a, b]);
  for (const r of c.reports) t.deepEqual([r.conflicts, r.refused], [[], []], `${when}: ${JSON.stringify(r)}`);
  const files = Object.fromEntries(Object.entries(c.tree).filter(([, h]) => h !== 'dir'));
  const expected = Object.fromEntries([...model].sort(([x], [y]) => (x < y ? -1 : 1)));
  // The short form first: a CI log that cuts the long assertions below still says what differs.
  const diff = treeDiff(files, expected);
  if (diff !== 'equal') await explain(t, `${when}: the folders against the model: ${diff}`, files, expected);
  t.deepEqual(Object.keys(files).sort(), Object.keys(expected).sort(), `${when}: every file exactly once: ${treeDiff(files, expected)}`);
  t.deepEqual(files, expected, `${when}: right content`);
  t.deepEqual(temps(a.dir), [], 'no temp files left on A');
  t.deepEqual(temps(b.dir), [], 'no temp files left on B');
  const remote = await remoteState(a);
  const remoteFiles = [...remote.byPath].filter(([, list]) => list.some((f) => f.kind === 'file'));
  t.deepEqual([...remote.byPath].filter(([, list]) => list.length > 1).map(([p]) => p), [], `${when}: no path has two live files on the server`);
  const remoteTree = Object.fromEntries(remoteFiles.map(([p]) => [p, 'file']));
  const modelFiles = Object.fromEntries(Object.keys(expected).map((p) => [p, 'file']));
  const remoteDiff = treeDiff(remoteTree, modelFiles);
  if (remoteDiff !== 'equal') await explain(t, `${when}: the server's live files against the model: ${remoteDiff}`, remoteTree, modelFiles);
  t.deepEqual(remoteFiles.map(([p]) => p).sort(), Object.keys(expected).sort(), `${when}: the server's live files are the model`);
  for (const [p, list] of remoteFiles) t.is(list[0]!.size, statSync(path.join(a.dir, p)).size, `${when}: size of ${p} on the server`);
}

test.serial('kill -9 during uploads (many small files, a few MiB-sized ones); restart; nothing lost or doubled', async (t) => {
  t.log(`seed ${seed} (KLUIS_CRASH_SEED=${seed} repeats the schedule)`);
  batch('start', 150, false);
  put('start/groot-1.bin', 3 * MiB);
  put('start/groot-2.bin', 5 * MiB + 123);
  await killLoop(t, 'upload', 12, async (attempt) => {
    if (attempt > 0) batch(`up-${attempt}`, randInt(10, 40), attempt % 4 === 1);
    return a;
  });
  const r = await syncOnce(a);
  t.deepEqual(r.conflicts, []);
  assertNoPartial(t, a, 'after the final run');
  await settleAndCheck(t, 'after upload kills');
});

test.serial('kill -9 during downloads that create and overwrite files; restart; every file complete', async (t) => {
  await killLoop(t, 'download', 10, async (attempt) => {
    batch(`down-${attempt}`, randInt(10, 30), attempt % 3 === 0);
    // Overwrite a MiB-sized file now and then, so a download replaces an existing file.
    if (attempt % 2 === 1 && bigFiles().length) put(pick(bigFiles()), randInt(2 * MiB, 4 * MiB));
    for (let j = 0; j < 2; j++) remove(pick(smallFiles()));
    await syncOnce(a);
    return b;
  });
  await settleAndCheck(t, 'after download kills');
});

test.serial('kill -9 while committing renames, moves and deletions (either client); restart; one file per path, no conflict copies', async (t) => {
  if (smallFiles().length < 10) {
    // Run alone (ava --match): the tests before it made the files it moves; make some, synced on both clients.
    batch('alone', 40, false);
    await converge([a, b]);
  }
  await killLoop(t, 'commit', 10, async (attempt) => {
    const tag = `mix-${attempt}`;
    const smalls = smallFiles();
    for (let j = 0; j < 3; j++) {
      const from = pick(smalls.filter((p) => model.has(p)));
      move(from, `${tag}/verplaatst-${j}-${path.basename(from)}`);
    }
    // A whole folder renamed.
    const folders = [...new Set([...model.keys()].map((p) => p.split('/')[0]!))].filter((f) => !f.startsWith(tag));
    const folder = pick(folders);
    for (const p of [...model.keys()].filter((x) => x.startsWith(`${folder}/`))) {
      const to = `${tag}-map/${p.slice(folder.length + 1)}`;
      const h = model.get(p)!;
      model.delete(p);
      model.set(to, h);
      remember(to, h);
    }
    renameSync(path.join(a.dir, folder), path.join(a.dir, `${tag}-map`));
    ops.push(`move folder ${folder}/ -> ${tag}-map/`);
    for (let j = 0; j < 2; j++) remove(pick(smallFiles()));
    for (let j = 0; j < 2; j++) put(pick(smallFiles()), randInt(1, 20_000));
    batch(tag, 8, false);
    if (attempt % 2 === 0) return a;
    await syncOnce(a);
    ops.push('* A synced');
    return b;
  });
  await settleAndCheck(t, 'after commit kills');
  const total = Object.values(landed).reduce((x, y) => x + y, 0);
  t.true(total >= 10 * Object.keys(landed).length, `kills that landed: ${JSON.stringify(landed)}`);
});
