// Delta download (issue 22; docs/cli.md "Sync"): a new version of a large file is rebuilt from the chunks the local
// copy of the previous version already holds, and only the chunks it lacks are fetched. Measured twice: by the
// client's report (bytesDownloaded, bytesReused of `kluis sync --once --json`) and, independently, by the server's
// audit trail, whose `chunks.download` entries record the ciphertext bytes the server sent (the server's /metrics has
// request counts only, no byte counters). Also: a local copy changed in place behind the index's back (its reused
// chunks fail verification and are fetched), a local edit that makes a conflict, a key rotation (new file key, new
// chunk ids: everything is fetched), and kill -9 during delta downloads (the file is always one whole version).
import test, { type ExecutionContext } from 'ava';
import { closeSync, openSync, readdirSync, statSync, utimesSync, writeSync } from 'node:fs';
import path from 'node:path';
import { call } from '../helpers/api.js';
import {
  TEMP_PREFIX, backdate, bytes, conflictCopies, converge, kluis, okJson, prng, read, remoteState, sessionOf, sha256, sleep, spawnSyncOnce, startSyncEnv, syncOnce, tree,
  write, type SyncClient, type SyncEnv, type SyncReport,
} from '../helpers/sync-env.js';

const MiB = 1024 * 1024;
let env: SyncEnv;

test.before(async () => {
  env = await startSyncEnv({ accounts: ['A', 'B', 'C'] });
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await env?.close();
});

/** Overwrites `data.length` bytes of an existing file at `offset`, in place (same inode, same size). */
function overwrite(dir: string, rel: string, offset: number, data: Uint8Array): void {
  const fd = openSync(path.join(dir, rel), 'r+');
  try {
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

// The audit trail is read with the organisation admin's session (A signed up first: main admin).
const adminToken = () => sessionOf(env.accounts[0]!.home).token;

/** The newest audit seq of the organisation: entries after it belong to what happens next. */
async function auditHead(): Promise<number> {
  const r = await call(env.url, 'GET', `/api/v1/orgs/${env.orgId}/audit?order=desc&limit=1`, { token: adminToken() });
  if (r.status !== 200) throw new Error(`audit search: ${r.status} ${JSON.stringify(r.body)}`);
  return (r.body.entries as { seq: number }[])[0]?.seq ?? 0;
}

/** Ciphertext bytes the server sent to c's account from c's space since audit seq `after` (chunks.download entries). */
async function bytesSentTo(c: SyncClient, after: number): Promise<number> {
  const q = new URLSearchParams({ action: 'chunks.download', actor: c.account.userId, target: c.spaceId, afterSeq: String(after), limit: '10000' });
  const r = await call(env.url, 'GET', `/api/v1/orgs/${env.orgId}/audit?${q}`, { token: adminToken() });
  if (r.status !== 200) throw new Error(`audit search: ${r.status} ${JSON.stringify(r.body)}`);
  const entries = r.body.entries as { outcome: string; details: { bytes?: number } | null }[];
  return entries.filter((e) => e.outcome === 'success').reduce((n, e) => n + (e.details?.bytes ?? 0), 0);
}

/** Syncs c once and returns its report with the bytes the server says it sent for that run. */
async function measured(c: SyncClient): Promise<{ report: SyncReport; sent: number }> {
  const before = await auditHead();
  const report = await syncOnce(c);
  return { report, sent: await bytesSentTo(c, before) };
}

const mib = (n: number) => (n / MiB).toFixed(2);
const fileOf = (c: SyncClient, rel: string) => sha256(read(c.dir, rel));

function logRun(t: ExecutionContext, what: string, r: { report: SyncReport; sent: number }): void {
  t.log(`${what}: downloaded ${mib(r.report.bytesDownloaded)} MiB (server audit: ${mib(r.sent)} MiB sent), reused ${mib(r.report.bytesReused)} MiB`);
}

test.serial('a 1 MiB edit in the middle of a 50 MiB file: the other client downloads < 4 MiB and ends byte-identical, both ways', async (t) => {
  t.timeout(10 * 60_000);
  const [a, b] = (await env.newSpace(env.accounts.slice(0, 2))).clients as [SyncClient, SyncClient];
  write(a.dir, 'groot.bin', bytes(50, 50 * MiB));
  t.is((await syncOnce(a)).uploaded, 1);

  const first = await measured(b);
  logRun(t, 'first download of 50 MiB', first);
  t.is(first.report.downloaded, 1);
  t.is(first.report.bytesReused, 0, 'nothing local to reuse yet');
  t.true(first.report.bytesDownloaded >= 50 * MiB, `bytesDownloaded ${first.report.bytesDownloaded}`);
  t.is(first.sent, first.report.bytesDownloaded, 'the report counts exactly what the server sent');

  overwrite(a.dir, 'groot.bin', 25 * MiB, bytes(51, MiB));
  backdate(path.join(a.dir, 'groot.bin'));
  const up = await syncOnce(a);
  t.is(up.uploaded, 1);

  const got = await measured(b);
  logRun(t, 'B after the 1 MiB edit on A', got);
  t.is(got.report.downloaded, 1);
  t.deepEqual(got.report.conflicts, []);
  t.true(got.report.bytesDownloaded > 0 && got.report.bytesDownloaded < 4 * MiB, `bytesDownloaded ${got.report.bytesDownloaded}`);
  t.true(got.sent < 4 * MiB, `the server sent ${got.sent} bytes`);
  t.is(got.sent, got.report.bytesDownloaded);
  // Everything not downloaded was taken from the local copy (the report's two counters cover the file).
  t.true(got.report.bytesReused >= 46 * MiB, `bytesReused ${got.report.bytesReused}`);
  t.true(got.report.bytesReused + got.report.bytesDownloaded >= 50 * MiB);
  t.is(fileOf(b, 'groot.bin'), fileOf(a, 'groot.bin'), 'byte-identical');

  // The other way round: A's copy is the version it uploaded itself (its index learnt the chunk list at commit).
  overwrite(b.dir, 'groot.bin', 10 * MiB, bytes(52, MiB));
  backdate(path.join(b.dir, 'groot.bin'));
  t.is((await syncOnce(b)).uploaded, 1);
  const back = await measured(a);
  logRun(t, 'A after a 1 MiB edit on B', back);
  t.is(back.report.downloaded, 1);
  t.true(back.report.bytesDownloaded < 4 * MiB, `bytesDownloaded ${back.report.bytesDownloaded}`);
  t.is(back.sent, back.report.bytesDownloaded);
  t.is(fileOf(a, 'groot.bin'), fileOf(b, 'groot.bin'));

  // And again on B: the delta download itself recorded the new version's chunk list.
  overwrite(a.dir, 'groot.bin', 40 * MiB, bytes(53, MiB));
  backdate(path.join(a.dir, 'groot.bin'));
  await syncOnce(a);
  const again = await measured(b);
  logRun(t, 'B after a third edit', again);
  t.true(again.report.bytesDownloaded < 4 * MiB, `bytesDownloaded ${again.report.bytesDownloaded}`);
  t.is(fileOf(b, 'groot.bin'), fileOf(a, 'groot.bin'));
  await converge([a, b]);
});

test.serial('a local copy changed in place behind the index (same size, mtime, inode): its reused chunks fail verification, are fetched, the result is the server version', async (t) => {
  t.timeout(10 * 60_000);
  const [a, b] = (await env.newSpace(env.accounts.slice(0, 2))).clients as [SyncClient, SyncClient];
  write(a.dir, 'dossier.bin', bytes(60, 24 * MiB));
  await syncOnce(a);
  await syncOnce(b);

  overwrite(a.dir, 'dossier.bin', 12 * MiB, bytes(61, MiB));
  backdate(path.join(a.dir, 'dossier.bin'));
  t.is((await syncOnce(a)).uploaded, 1);

  // B's copy: 3 MiB far from A's edit scribbled over, with size, mtime and inode put back, so the scan still takes
  // the file for the synced version and plans a plain download over it. Chunks of that range would be reused if
  // they were not verified; a reused chunk is checked against its keyed id, fails, and is fetched instead.
  const file = path.join(b.dir, 'dossier.bin');
  const st = statSync(file);
  overwrite(b.dir, 'dossier.bin', 3 * MiB, bytes(62, 3 * MiB));
  utimesSync(file, st.atime, st.mtime);
  const after = statSync(file);
  t.deepEqual([after.size, after.mtimeMs, after.ino], [st.size, st.mtimeMs, st.ino], 'the change is invisible to size + mtime + inode');

  const got = await measured(b);
  logRun(t, 'B with 3 MiB of its copy scribbled over', got);
  t.deepEqual(got.report.conflicts, [], 'the scan saw no local change: no conflict copy');
  t.deepEqual(got.report.errors, []);
  t.is(got.report.downloaded, 1);
  t.is(fileOf(b, 'dossier.bin'), fileOf(a, 'dossier.bin'), 'byte-identical to the server version');
  // The scribbled 3 MiB cannot have been reused: they (and the edited MiB) came from the server.
  t.true(got.report.bytesDownloaded >= 4 * MiB, `bytesDownloaded ${got.report.bytesDownloaded}`);
  t.true(got.report.bytesReused <= 20 * MiB, `bytesReused ${got.report.bytesReused}`);
  t.true(got.report.bytesReused >= 12 * MiB, `the untouched rest is still reused: ${got.report.bytesReused}`);
  t.is(got.sent, got.report.bytesDownloaded);
  await converge([a, b]);
});

test.serial('a local edit while the server has a new version: conflict copy keeps the edit, the path gets the server version', async (t) => {
  t.timeout(10 * 60_000);
  const [a, b] = (await env.newSpace(env.accounts.slice(0, 2))).clients as [SyncClient, SyncClient];
  write(a.dir, 'plan.bin', bytes(70, 12 * MiB));
  await syncOnce(a);
  await syncOnce(b);

  overwrite(a.dir, 'plan.bin', 6 * MiB, bytes(71, MiB));
  backdate(path.join(a.dir, 'plan.bin'));
  await syncOnce(a);
  overwrite(b.dir, 'plan.bin', 2 * MiB, bytes(72, MiB));
  backdate(path.join(b.dir, 'plan.bin'));
  const mine = fileOf(b, 'plan.bin');

  const got = await syncOnce(b);
  t.is(got.conflicts.length, 1, JSON.stringify(got));
  t.is(fileOf(b, 'plan.bin'), fileOf(a, 'plan.bin'), 'the path holds the server version');
  const copies = conflictCopies(tree(b.dir));
  t.is(copies.length, 1);
  t.is(fileOf(b, copies[0]!), mine, 'the conflict copy holds the local edit');
  const c = await converge([a, b]);
  t.is(c.tree['plan.bin'], fileOf(a, 'plan.bin'));
});

test.serial('after a key rotation the next version has new chunk ids: the whole file is fetched, correct; then deltas resume', async (t) => {
  t.timeout(10 * 60_000);
  const [A, B, C] = env.accounts;
  const space = await env.newSpace([A!, B!, C!]);
  const [a, b] = space.clients as [SyncClient, SyncClient];
  write(a.dir, 'archief.bin', bytes(80, 16 * MiB));
  await syncOnce(a);
  await syncOnce(b);

  const removed = okJson(await kluis(A!.home, ['--json', 'space', 'remove-member', space.name, C!.email]), 'remove-member');
  t.is(removed.keyEpoch, 2);

  overwrite(a.dir, 'archief.bin', 8 * MiB, bytes(81, MiB));
  backdate(path.join(a.dir, 'archief.bin'));
  const up = await syncOnce(a);
  t.true(up.bytesUploaded > 16 * MiB, `a fresh file key: everything goes up again (${up.bytesUploaded})`);

  const got = await measured(b);
  logRun(t, 'B after the rotation', got);
  t.is(got.report.downloaded, 1);
  t.is(got.report.bytesReused, 0, 'no chunk id of the old key matches one of the new key');
  t.true(got.report.bytesDownloaded >= 16 * MiB, `bytesDownloaded ${got.report.bytesDownloaded}`);
  t.is(got.sent, got.report.bytesDownloaded);
  t.is(fileOf(b, 'archief.bin'), fileOf(a, 'archief.bin'));

  // The next edit under the new key is a delta again.
  overwrite(a.dir, 'archief.bin', 4 * MiB, bytes(82, MiB));
  backdate(path.join(a.dir, 'archief.bin'));
  await syncOnce(a);
  const next = await measured(b);
  logRun(t, 'B after the next edit', next);
  t.true(next.report.bytesDownloaded < 4 * MiB, `bytesDownloaded ${next.report.bytesDownloaded}`);
  t.is(fileOf(b, 'archief.bin'), fileOf(a, 'archief.bin'));
  await converge([a, b]);
});

test.serial('kill -9 during delta downloads: the file is always one whole version; afterwards identical, no conflict copy, and still a delta', async (t) => {
  t.timeout(10 * 60_000);
  const seed = Number(process.env.KLUIS_CRASH_SEED ?? (Date.now() % 2 ** 31));
  t.log(`seed ${seed} (KLUIS_CRASH_SEED=${seed} repeats the schedule)`);
  const rng = prng(seed);
  const [a, b] = (await env.newSpace(env.accounts.slice(0, 2))).clients as [SyncClient, SyncClient];
  const size = 40 * MiB;
  write(a.dir, 'groot.bin', bytes(90, size));
  await syncOnce(a);
  await syncOnce(b);
  const versions = new Set([fileOf(a, 'groot.bin')]);
  let landed = 0;
  let window = 2500;
  for (let attempt = 0; attempt < 12 && landed < 6; attempt++) {
    // A new version with 1 MiB changed somewhere, then B killed at a random moment of its sync.
    overwrite(a.dir, 'groot.bin', Math.floor(rng() * (size - MiB)), bytes(91 + attempt, MiB));
    backdate(path.join(a.dir, 'groot.bin'));
    await syncOnce(a);
    versions.add(fileOf(a, 'groot.bin'));
    const delay = 150 + Math.floor(rng() * window);
    const { proc, done } = spawnSyncOnce(b);
    const first = await Promise.race([done.then(() => 'exited' as const), sleep(delay).then(() => 'timer' as const)]);
    if (first === 'timer') proc.kill('SIGKILL');
    const r = await done;
    if (r.signal === 'SIGKILL') landed++;
    else {
      t.is(r.code, 0, r.stderr);
      window = Math.max(300, Math.floor(window * 0.7));
    }
    const now = tree(b.dir);
    t.true(versions.has(now['groot.bin']!), `after a kill at ${delay} ms the file is a whole version`);
    t.deepEqual(conflictCopies(now), []);
  }
  t.log(`${landed} kills landed`);
  t.true(landed >= 3, `only ${landed} kills hit a running sync`);

  const fin = await syncOnce(b);
  t.deepEqual([fin.conflicts, fin.errors], [[], []]);
  t.is(fileOf(b, 'groot.bin'), fileOf(a, 'groot.bin'));
  t.deepEqual(Object.keys(tree(b.dir)), ['groot.bin']);
  // After the kills (and the journal's recovery), the next version is still a delta: B fetches exactly the chunks
  // the new version has and the previous one lacks (from both manifests), reusing all the rest. How much that is
  // depends on where the random edits above left FastCDC's cuts near the last edit (1 MiB edited can change up to
  // about 5 MiB of chunks: seed 687649974 changes 4.26 MiB), so the bound is those chunks, not a fixed size.
  const chunksOf = async () => (await remoteState(a)).byPath.get('groot.bin')![0]!.chunks;
  const previous = new Set((await chunksOf()).map(([id]) => id));
  overwrite(a.dir, 'groot.bin', 20 * MiB, bytes(120, MiB));
  backdate(path.join(a.dir, 'groot.bin'));
  await syncOnce(a);
  const lacking = new Map((await chunksOf()).filter(([id]) => !previous.has(id)));
  const lackingBytes = [...lacking.values()].reduce((n, s) => n + s, 0);
  const next = await measured(b);
  logRun(t, `B after the kills and one more edit (the new version has ${mib(lackingBytes)} MiB of chunks the previous one lacks)`, next);
  t.true(lackingBytes >= MiB && lackingBytes < size / 4, `the edit changed ${lackingBytes} bytes of chunks`);
  // Ciphertext: each chunk's envelope adds less than 64 bytes to its plaintext.
  t.true(next.report.bytesDownloaded >= lackingBytes && next.report.bytesDownloaded <= lackingBytes + 64 * lacking.size, `bytesDownloaded ${next.report.bytesDownloaded}, lacking ${lackingBytes}`);
  t.true(next.report.bytesReused >= size - lackingBytes, `bytesReused ${next.report.bytesReused}`);
  t.is(fileOf(b, 'groot.bin'), fileOf(a, 'groot.bin'));
  const c = await converge([a, b]);
  t.deepEqual(Object.keys(c.tree), ['groot.bin']);
  t.false(readdirSync(b.dir).some((n) => n.startsWith(TEMP_PREFIX)), 'no temp files left');
});
