// The unchanged re-run (issue 22; docs/architecture.md §4 "An unchanged folder"): `kluis sync --once` on a folder
// where nothing changed on either side asks the server only what it must (the space list, which also names a
// manager's pending removals, and one page of the change log): no device list, no look at the space, no keys. Counted by the
// server's own request counters (GET /metrics, by route template). And what was made lazy still
// happens when needed: a conflict copy carries this device's name as the server knows it, and a re-run after a
// colleague's change opens the space's keys and downloads.
import test from 'ava';
import { converge, read, sha256, startSyncEnv, syncOnce, write, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';

let env: SyncEnv;

test.before(async () => {
  env = await startSyncEnv({ accounts: ['A', 'B'], storage: 'fs' });
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await env?.close();
});

/** The server's request counters by "METHOD route template" (the scrape itself left out). */
async function requestCounts(): Promise<Map<string, number>> {
  const text = await (await fetch(`${env.srv.url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^kluis_http_requests_total\{(.*)\} (\S+)/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (labels.route === '/metrics') continue;
    const key = `${labels.method} ${labels.route}`;
    out.set(key, (out.get(key) ?? 0) + Number(m[2]));
  }
  return out;
}

/** Runs `fn` and returns the requests the server answered meanwhile, by "METHOD route", sorted. */
async function requestsDuring(fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = await requestCounts();
  await fn();
  const after = await requestCounts();
  const diff: Record<string, number> = {};
  for (const [k, n] of [...after].sort(([a], [b]) => a.localeCompare(b))) {
    const d = n - (before.get(k) ?? 0);
    if (d > 0) diff[k] = d;
  }
  return diff;
}

const NO_OP = { uploaded: 0, downloaded: 0, deletedLocal: 0, deletedRemote: 0, moved: 0 };
const work = (r: Record<string, unknown>) => ({ uploaded: r.uploaded, downloaded: r.downloaded, deletedLocal: r.deletedLocal, deletedRemote: r.deletedRemote, moved: r.moved });
// The two requests of an unchanged re-run (route templates as the server's router names them).
const UNCHANGED = { 'GET /api/v1/spaces': 1, 'GET /api/v1/spaces/:spaceId/changes': 1 };

test.serial('an unchanged re-run asks the server two things (space list, one page of changes) on the manager\'s and the editor\'s client', async (t) => {
  const [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  for (let i = 0; i < 40; i++) write(a.dir, `map ${i % 4}/nota ${i}.txt`, `inhoud ${i}`);
  t.is((await syncOnce(a)).uploaded, 44);
  t.is((await syncOnce(b)).downloaded, 44);

  for (const c of [a, b]) {
    let report: Record<string, unknown> = {};
    const asked = await requestsDuring(async () => {
      report = await syncOnce(c) as unknown as Record<string, unknown>;
    });
    t.deepEqual(work(report), NO_OP, `${c.label}: nothing to do`);
    t.deepEqual(report.errors, []);
    t.deepEqual(asked, UNCHANGED, `${c.label} (${c === a ? 'manager' : 'editor'})`);
  }
});

test.serial('a first sync does not pull its own versions back: one pass, one page of changes, then a colleague\'s change is still seen', async (t) => {
  const [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  // 1,200 files: three commit batches, and more than one page (1,000) of the change log if they were pulled back.
  for (let i = 0; i < 1200; i++) write(a.dir, `stukken/${i}.txt`, `stuk ${i}`);
  let report: Record<string, unknown> = {};
  const asked = await requestsDuring(async () => {
    report = await syncOnce(a) as unknown as Record<string, unknown>;
  });
  t.is(report.uploaded, 1201);
  // One pass (it committed everything, nobody else did meanwhile: act.ts `again`) and one page of changes, before the
  // uploads; the re-run's page is empty of A's own versions.
  t.is(asked['GET /api/v1/spaces/:spaceId/changes'], 1, JSON.stringify(asked));
  t.deepEqual(await requestsDuring(() => syncOnce(a)), UNCHANGED);

  // The position A moved to is the server's: B's commit after it reaches A, A's later commits reach B.
  t.is((await syncOnce(b)).downloaded, 1201);
  write(b.dir, 'stukken/van-b.txt', 'van B');
  await syncOnce(b);
  write(a.dir, 'stukken/van-a.txt', 'van A');
  const next = await syncOnce(a);
  t.is(next.downloaded, 1);
  t.is(next.uploaded, 1);
  t.is(read(a.dir, 'stukken/van-b.txt').toString(), 'van B');
  t.is((await syncOnce(b)).downloaded, 1);
  t.is(read(b.dir, 'stukken/van-a.txt').toString(), 'van A');
  await converge([a, b]);
});

test.serial('after a colleague\'s change the re-run opens the keys and downloads; then it is back to two requests', async (t) => {
  const [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  write(a.dir, 'brief.txt', 'eerste versie');
  await syncOnce(a);
  await syncOnce(b);
  write(a.dir, 'brief.txt', 'tweede versie, langer');
  await syncOnce(a);
  const got = await syncOnce(b);
  t.is(got.downloaded, 1);
  t.is(read(b.dir, 'brief.txt').toString(), 'tweede versie, langer');
  const asked = await requestsDuring(() => syncOnce(b));
  t.deepEqual(asked, UNCHANGED);
  await converge([a, b]);
});

test.serial('a conflict copy carries this device\'s name as the server knows it, asked for once in that run', async (t) => {
  const [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  write(a.dir, 'plan.txt', 'gedeeld');
  await syncOnce(a);
  await syncOnce(b);
  write(a.dir, 'plan.txt', 'versie van A');
  await syncOnce(a);
  write(b.dir, 'plan.txt', 'versie van B');
  let conflicts: string[] = [];
  const asked = await requestsDuring(async () => {
    conflicts = (await syncOnce(b)).conflicts;
  });
  t.is(conflicts.length, 1);
  t.regex(conflicts[0]!, /^plan \(conflict B \d{4}-\d{2}-\d{2} \d{4}\)\.txt$/, 'the device was signed up as "B"');
  t.is(sha256(read(b.dir, conflicts[0]!)), sha256('versie van B'));
  t.is(read(b.dir, 'plan.txt').toString(), 'versie van A');
  t.is(asked['GET /api/v1/devices'], 1, JSON.stringify(asked));
  await converge([a, b]);
});
