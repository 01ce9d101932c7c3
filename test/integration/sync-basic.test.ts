// End-to-end sync between CLI clients (`kluis sync --once`, `status`, `versions`, `restore`) on a real server with
// its blobs on a local S3 (Ceph RGW): create, edit, rename, move, delete, restore, nested and empty folders, 0-byte
// and 50 MiB files, NFC/NFD names, symlinks, refused names, delta sync and a watching client. Each test has its own
// space and folders; the server, the RGW and the accounts A, B, C are shared by the file.
import test from 'ava';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, unlinkSync, openSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  backdate, bytes, commitRawFile, conflictCopies, converge, kluis, okJson, read, remoteDuplicates, sha256, startSyncEnv, syncOnce, tree, watch, write,
  type SyncEnv, type SyncClient,
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

const json = (r: { stdout: string }) => JSON.parse(r.stdout);
const files = (t: Record<string, string>) => Object.keys(t).filter((k) => t[k] !== 'dir');
/** Raw names in a folder (no normalisation), the engine's temp files left out. */
const rawNames = (dir: string) => readdirSync(dir).filter((n) => !n.startsWith('.kluis'));

/** A new space with folders for A and B (pair) or A, B and C (trio). */
async function pair(): Promise<[SyncClient, SyncClient]> {
  return (await env.newSpace(env.accounts.slice(0, 2))).clients as [SyncClient, SyncClient];
}
async function trio(): Promise<[SyncClient, SyncClient, SyncClient]> {
  return (await env.newSpace(env.accounts.slice(0, 3))).clients as [SyncClient, SyncClient, SyncClient];
}

test.serial('two clients: nested and empty folders, 0-byte and 50 MiB files; edit, rename, move between nested folders, delete', async (t) => {
  const [a, b] = await pair();
  const big = bytes(50, 50 * MiB);
  const h = {
    verslag: write(a.dir, 'Notities/verslag.txt', 'Eerste versie van het verslag.\n'),
    budget: write(a.dir, 'Notities/2026/Q1/budget.xlsx', bytes(1, 200_000)),
    leeg: write(a.dir, 'leeg.txt', ''),
    groot: write(a.dir, 'groot.bin', big),
  };
  mkdirSync(path.join(a.dir, 'Lege map', 'Nog dieper'), { recursive: true });

  const up = await syncOnce(a);
  t.is(up.folder, a.dir);
  t.is(up.spaceId, a.spaceId);
  t.true(up.uploaded >= 4, `uploaded ${up.uploaded}`);
  t.true(up.bytesUploaded >= 50 * MiB, `bytesUploaded ${up.bytesUploaded}`);
  t.deepEqual([up.conflicts, up.refused], [[], []]);
  t.true(up.seq > 0);

  const down = await syncOnce(b);
  t.true(down.downloaded >= 4, `downloaded ${down.downloaded}`);
  t.true(down.bytesDownloaded >= 50 * MiB, `bytesDownloaded ${down.bytesDownloaded}`);
  t.is(down.seq, up.seq);
  const tb = tree(b.dir);
  t.deepEqual(tb, tree(a.dir));
  t.is(tb['groot.bin'], h.groot);
  t.is(tb['leeg.txt'], h.leeg);
  t.is(tb['Lege map/Nog dieper'], 'dir', 'an empty nested folder syncs');
  t.is(read(b.dir, 'Notities/verslag.txt').toString(), 'Eerste versie van het verslag.\n');

  // B edits, A renames + moves between nested folders and deletes; B adds into the empty folder.
  const edited = write(b.dir, 'Notities/verslag.txt', 'Tweede versie, door B.\n');
  mkdirSync(path.join(a.dir, 'Notities/2026/Q2/Def'), { recursive: true });
  renameSync(path.join(a.dir, 'Notities/2026/Q1/budget.xlsx'), path.join(a.dir, 'Notities/2026/Q2/Def/budget-v2.xlsx'));
  unlinkSync(path.join(a.dir, 'leeg.txt'));
  const nieuw = write(b.dir, 'Lege map/Nog dieper/nieuw.txt', 'niet meer leeg');
  const c1 = await converge([a, b]);
  t.deepEqual(conflictCopies(c1.tree), []);
  t.is(c1.tree['Notities/verslag.txt'], edited);
  t.is(c1.tree['Notities/2026/Q2/Def/budget-v2.xlsx'], h.budget);
  t.false('Notities/2026/Q1/budget.xlsx' in c1.tree);
  t.is(c1.tree['Notities/2026/Q1'], 'dir', 'the folder the file left stays (it was not deleted)');
  t.false('leeg.txt' in c1.tree);
  t.is(c1.tree['Lege map/Nog dieper/nieuw.txt'], nieuw);
  t.deepEqual(files(c1.tree).sort(), ['Lege map/Nog dieper/nieuw.txt', 'Notities/2026/Q2/Def/budget-v2.xlsx', 'Notities/verslag.txt', 'groot.bin']);

  // A folder deleted with everything in it, on B; a folder renamed on A.
  rmSync(path.join(b.dir, 'Notities/2026'), { recursive: true });
  renameSync(path.join(a.dir, 'Lege map'), path.join(a.dir, 'Volle map'));
  const c2 = await converge([a, b]);
  t.deepEqual(Object.keys(c2.tree).filter((p) => p.startsWith('Notities')), ['Notities', 'Notities/verslag.txt']);
  t.is(c2.tree['Volle map/Nog dieper/nieuw.txt'], nieuw);
  t.false(Object.keys(c2.tree).some((p) => p.startsWith('Lege map')));
  t.is(c2.tree['groot.bin'], h.groot);
  t.deepEqual(await remoteDuplicates(a), []);
});

test.serial('three clients: each edits, adds, renames and deletes; all converge to one tree', async (t) => {
  const [a, b, c] = await trio();
  for (let i = 0; i < 12; i++) write(a.dir, `gedeeld/bestand-${i}.txt`, `versie 1 van ${i}\n`);
  await converge([a, b, c]);

  const expected: Record<string, string> = {};
  for (let i = 0; i < 12; i++) expected[`gedeeld/bestand-${i}.txt`] = sha256(`versie 1 van ${i}\n`);
  expected['gedeeld/bestand-0.txt'] = write(a.dir, 'gedeeld/bestand-0.txt', 'A bewerkte 0');
  expected['gedeeld/bestand-1.txt'] = write(b.dir, 'gedeeld/bestand-1.txt', 'B bewerkte 1');
  expected['gedeeld/bestand-2.txt'] = write(c.dir, 'gedeeld/bestand-2.txt', 'C bewerkte 2');
  renameSync(path.join(a.dir, 'gedeeld/bestand-3.txt'), path.join(a.dir, 'gedeeld/hernoemd-door-A.txt'));
  expected['gedeeld/hernoemd-door-A.txt'] = expected['gedeeld/bestand-3.txt']!;
  delete expected['gedeeld/bestand-3.txt'];
  unlinkSync(path.join(b.dir, 'gedeeld/bestand-4.txt'));
  delete expected['gedeeld/bestand-4.txt'];
  mkdirSync(path.join(c.dir, 'van C/sub'), { recursive: true });
  renameSync(path.join(c.dir, 'gedeeld/bestand-5.txt'), path.join(c.dir, 'van C/sub/bestand-5.txt'));
  expected['van C/sub/bestand-5.txt'] = expected['gedeeld/bestand-5.txt']!;
  delete expected['gedeeld/bestand-5.txt'];
  expected['van A.txt'] = write(a.dir, 'van A.txt', 'A');
  expected['van B.txt'] = write(b.dir, 'van B.txt', 'B');
  expected['van C/c.txt'] = write(c.dir, 'van C/c.txt', 'C');

  const done = await converge([a, b, c]);
  const got = Object.fromEntries(Object.entries(done.tree).filter(([, v]) => v !== 'dir'));
  t.deepEqual(got, Object.fromEntries(Object.entries(expected).sort(([x], [y]) => (x < y ? -1 : 1))));
  t.deepEqual(await remoteDuplicates(c), []);

  // status: one entry per folder, with the seq of the last sync and no error.
  const status = okJson(await kluis(c.home, ['--json', 'status']), 'status');
  const mine = status.folders.find((f: { folder: string }) => f.folder === c.dir);
  t.truthy(mine, JSON.stringify(status));
  t.like(mine, { spaceId: c.spaceId, spaceName: c.spaceName, seq: done.reports.at(-1)!.seq, pendingJournal: 0, lastError: null });
  t.regex(String(mine.lastSyncAt), /^\d{4}-\d{2}-\d{2}T/);
});

test.serial('versions and restore: an older version, by id prefix, and a deleted file; other clients get the restored content', async (t) => {
  const [a, b] = await pair();
  const file = path.join(a.dir, 'map', 'brief.txt');
  write(a.dir, 'map/brief.txt', 'versie een\n');
  await syncOnce(a);
  write(a.dir, 'map/brief.txt', 'versie twee, langer\n');
  await syncOnce(a);
  await syncOnce(b);

  const v = okJson(await kluis(a.home, ['--json', 'versions', file]), 'versions');
  t.is(v.path, 'map/brief.txt');
  t.is(v.versions.length, 2);
  t.like(v.versions[0], { current: true, deleted: false, size: 'versie twee, langer\n'.length });
  t.like(v.versions[1], { current: false, deleted: false, size: 'versie een\n'.length });
  t.true(v.versions[0].seq > v.versions[1].seq, 'newest first');
  // Relative to the working directory gives the same answer.
  const rel = okJson(await kluis(a.home, ['--json', 'versions', 'map/brief.txt'], { cwd: a.dir }), 'versions (relative)');
  t.deepEqual(rel, v);

  const first = v.versions[1].versionId as string;
  const restored = okJson(await kluis(a.home, ['--json', 'restore', file, '--version', first.slice(0, 8)]), 'restore by prefix');
  t.is(restored.path, 'map/brief.txt');
  t.true(first.startsWith(restored.restoredFrom), `restoredFrom ${restored.restoredFrom}`);
  t.not(restored.versionId, first, 'a new version');
  t.is(read(a.dir, 'map/brief.txt').toString(), 'versie een\n', 'written locally');
  const after = okJson(await kluis(a.home, ['--json', 'versions', file]), 'versions after restore');
  t.is(after.versions.length, 3);
  t.like(after.versions[0], { versionId: restored.versionId, current: true, size: 'versie een\n'.length });
  t.is(after.fileId, v.fileId, 'same file');

  const rb = await syncOnce(b);
  t.is(rb.downloaded, 1);
  t.is(read(b.dir, 'map/brief.txt').toString(), 'versie een\n');
  const quiet = await syncOnce(a);
  t.is(quiet.uploaded, 0, 'the restore was committed by restore itself');

  // A deleted file: its path still has a history; restoring brings it back everywhere.
  unlinkSync(file);
  const del = await syncOnce(a);
  t.is(del.deletedRemote, 1);
  await syncOnce(b);
  t.false(existsSync(path.join(b.dir, 'map', 'brief.txt')));
  const gone = okJson(await kluis(a.home, ['--json', 'versions', file]), 'versions of a deleted file');
  t.like(gone.versions[0], { deleted: true, current: true });
  const back = okJson(await kluis(a.home, ['--json', 'restore', file, '--version', after.versions[1].versionId]), 'restore deleted');
  t.true(after.versions[1].versionId.startsWith(back.restoredFrom));
  t.is(read(a.dir, 'map/brief.txt').toString(), 'versie twee, langer\n');
  const rb2 = await syncOnce(b);
  t.is(rb2.downloaded, 1);
  t.is(read(b.dir, 'map/brief.txt').toString(), 'versie twee, langer\n');
  await converge([a, b]);

  // Refusals: an unknown version, and a too-short prefix.
  const unknown = await kluis(a.home, ['restore', file, '--version', 'ffffffffffff']);
  t.is(unknown.code, 2, unknown.stderr);
  t.regex(unknown.stderr, /^kluis: [^\n]+\n$/);
  const short = await kluis(a.home, ['restore', file, '--version', first.slice(0, 3)]);
  t.is(short.code, 2, short.stderr);
});

test.serial('unicode names: NFC and NFD on disk; an NFD name on A arrives once on B and stays one file on both', async (t) => {
  const [a, b] = await pair();
  const name = 'Café Ëlla ñandú.txt';
  const folder = 'Résumé';
  const nfd = name.normalize('NFD');
  t.not(nfd, name);
  mkdirSync(path.join(a.dir, folder.normalize('NFD')));
  write(a.dir, `${folder.normalize('NFD')}/${nfd}`, 'inhoud met NFD naam');
  const other = write(a.dir, 'Ωmega 日本語 ✓ — 🙂.txt', 'NFC en buiten het BMP');
  write(a.dir, `los-${nfd}`, 'NFD naam in een NFC map');

  await syncOnce(a);
  await syncOnce(b);
  const onB = rawNames(path.join(b.dir, folder));
  t.is(onB.length, 1, JSON.stringify(onB));
  t.is(onB[0]!.normalize('NFC'), name);
  t.is(read(b.dir, `${folder}/${onB[0]}`).toString(), 'inhoud met NFD naam');
  t.is(tree(b.dir)['Ωmega 日本語 ✓ — 🙂.txt'], other);
  const c = await converge([a, b]);
  t.deepEqual(Object.keys(c.tree).sort(), [folder, `${folder}/${name}`, `los-${name}`, 'Ωmega 日本語 ✓ — 🙂.txt'].sort());
  t.is(rawNames(a.dir).filter((n) => n.normalize('NFC') === `los-${name}`).length, 1, 'no NFC twin of the loose file on A');
  t.is(rawNames(a.dir).filter((n) => n.normalize('NFC') === folder).length, 1, 'no NFC twin of the folder on A');
  t.is(rawNames(path.join(a.dir, rawNames(a.dir).find((n) => n.normalize('NFC') === folder)!)).length, 1, 'no NFC twin of the file on A');

  // An edit on B lands in A's NFD-named file: still one file on each side.
  const edited = write(b.dir, `${folder}/${onB[0]}`, 'bewerkt door B');
  const editedLoose = write(b.dir, `los-${name}`, 'ook bewerkt door B');
  const c2 = await converge([a, b]);
  t.is(c2.tree[`${folder}/${name}`], edited);
  t.is(c2.tree[`los-${name}`], editedLoose);
  const aFolder = rawNames(a.dir).find((n) => n.normalize('NFC') === folder)!;
  t.is(rawNames(path.join(a.dir, aFolder)).length, 1);
  t.deepEqual(conflictCopies(c2.tree), []);
  t.deepEqual(await remoteDuplicates(a), []);
});

test.serial('a symlink is skipped with a warning and never reaches the other client', async (t) => {
  const [a, b] = await pair();
  write(a.dir, 'doel.txt', 'het doel');
  symlinkSync('doel.txt', path.join(a.dir, 'koppeling'));
  symlinkSync('/etc', path.join(a.dir, 'buiten'));
  mkdirSync(path.join(a.dir, 'map'));
  symlinkSync('../doel.txt', path.join(a.dir, 'map', 'ook-een-koppeling.txt'));
  const r = await syncOnce(a);
  const skipped = r.skipped.map((s) => s.path).sort();
  t.deepEqual(skipped, ['buiten', 'koppeling', 'map/ook-een-koppeling.txt'], JSON.stringify(r.skipped));
  for (const s of r.skipped) t.regex(s.reason, /symlink|link/i);
  const human = await kluis(a.home, ['sync', a.dir, '--space', a.spaceId, '--once']);
  t.is(human.code, 0, human.stderr);
  t.regex(human.stdout + human.stderr, /koppeling/, 'the warning names the link');
  await syncOnce(b);
  t.deepEqual(tree(b.dir, { includeLinks: true }), { 'doel.txt': sha256('het doel'), map: 'dir' });
  t.false(readdirSync(b.dir).includes('buiten'));
});

test.serial('names unsafe on this OS are refused with a reason and never written; the rest syncs', async (t) => {
  const [a, b] = await pair();
  write(a.dir, 'goed.txt', 'goed');
  write(a.dir, 'back\\slash.txt', 'backslash');
  write(a.dir, 'nieuwe\nregel.txt', 'control character');
  // The same name twice on disk (NFC and NFD): which one is "the" file is the user's call: both refused.
  write(a.dir, 'tweeling/é.txt', 'NFC');
  write(a.dir, 'tweeling/' + 'é.txt'.normalize('NFD'), 'NFD');
  const r = await syncOnce(a);
  const refused = r.refused.map((x) => x.path);
  t.true(refused.some((p) => p.includes('slash')), JSON.stringify(r.refused));
  t.true(refused.some((p) => p.includes('regel')), JSON.stringify(r.refused));
  t.true(refused.filter((p) => p.startsWith('tweeling/')).length >= 1, JSON.stringify(r.refused));
  for (const x of r.refused) t.true(x.reason.length > 5, `a reason for ${x.path}`);

  // Paths put on the server by some other client (straight through the API), reserved for Kluis itself here.
  t.is(await commitRawFile(a, '.kluis'), 201);
  t.is(await commitRawFile(a, 'sub/.kluis-tmp-evil'), 201);
  const rb = await syncOnce(b);
  const refusedB = rb.refused.map((x) => x.path);
  t.true(refusedB.includes('.kluis'), JSON.stringify(rb.refused));
  t.true(refusedB.includes('sub/.kluis-tmp-evil'), JSON.stringify(rb.refused));
  t.false(existsSync(path.join(b.dir, 'sub', '.kluis-tmp-evil')));
  t.deepEqual(files(tree(b.dir)), ['goed.txt']);

  // Remove one twin: the other is no longer ambiguous and syncs.
  unlinkSync(path.join(a.dir, 'tweeling', 'é.txt'.normalize('NFD')));
  await syncOnce(a);
  await syncOnce(b);
  t.is(read(b.dir, 'tweeling/é.txt').toString(), 'NFC');
});

test.serial('delta sync: a 1 MiB edit in the middle of a 20 MiB file uploads < 4 MiB; a rename uploads nothing', async (t) => {
  const [a, b] = await pair();
  write(a.dir, 'groot.dat', bytes(20, 20 * MiB));
  const first = await syncOnce(a);
  t.true(first.bytesUploaded >= 20 * MiB, `first upload ${first.bytesUploaded}`);
  await syncOnce(b);

  const file = path.join(a.dir, 'groot.dat');
  const fd = openSync(file, 'r+');
  writeSync(fd, bytes(21, MiB), 0, MiB, 10 * MiB);
  closeSync(fd);
  backdate(file);
  const edit = await syncOnce(a);
  t.is(edit.uploaded, 1);
  t.true(edit.bytesUploaded > 0 && edit.bytesUploaded < 4 * MiB, `bytesUploaded ${edit.bytesUploaded}`);
  t.log(`1 MiB edit in 20 MiB: ${(edit.bytesUploaded / MiB).toFixed(2)} MiB uploaded`);
  const got = await syncOnce(b);
  t.is(got.downloaded, 1);
  t.is(tree(b.dir)['groot.dat'], tree(a.dir)['groot.dat']);
  t.log(`B downloaded ${(got.bytesDownloaded / MiB).toFixed(2)} MiB for it`);

  mkdirSync(path.join(a.dir, 'archief'));
  renameSync(file, path.join(a.dir, 'archief', 'groot-hernoemd.dat'));
  const mv = await syncOnce(a);
  t.is(mv.bytesUploaded, 0, JSON.stringify(mv));
  t.true(mv.moved >= 1, JSON.stringify(mv));
  const mvB = await syncOnce(b);
  t.is(mvB.bytesDownloaded, 0, `a remote rename is a local rename: ${JSON.stringify(mvB)}`);
  t.true(mvB.moved >= 1, JSON.stringify(mvB));
  const c = await converge([a, b]);
  t.deepEqual(files(c.tree), ['archief/groot-hernoemd.dat']);
});

test.serial('a folder is bound to one space; a missing folder is created; --once right after a write still syncs the file', async (t) => {
  const [a, b, c] = await trio();
  // No backdating here: the file is brand new when --once starts.
  writeFileSync(path.join(a.dir, 'vers.txt'), 'net geschreven');
  const r = await syncOnce(a);
  t.is(r.uploaded, 1, `--once repeats until nothing is left, also a file that was still settling: ${JSON.stringify(r)}`);
  await syncOnce(b);
  t.is(read(b.dir, 'vers.txt').toString(), 'net geschreven');

  const other = await env.newSpace([env.accounts[0]!]);
  const refused = await kluis(a.home, ['sync', a.dir, '--space', other.spaceId, '--once']);
  t.is(refused.code, 2, refused.stderr);
  t.regex(refused.stderr, /^kluis: [^\n]+\n$/);
  const viaJson = await kluis(a.home, ['--json', 'sync', a.dir, '--space', other.spaceId, '--once']);
  t.is(viaJson.code, 2);
  t.truthy(json(viaJson).error?.code);
  // A missing folder is created.
  rmSync(c.dir, { recursive: true });
  const created = await syncOnce(c);
  t.is(created.folder, c.dir);
  t.is(read(c.dir, 'vers.txt').toString(), 'net geschreven');
});

test.serial('a watching client gets pushed changes and uploads its own; SIGTERM ends it with exit 0', async (t) => {
  const [a, b] = await pair();
  write(a.dir, 'start.txt', 'start');
  await syncOnce(a);
  const w = watch(b, ['--poll', '5']);
  try {
    await w.waitFor((e) => e.event === 'synced' && e.downloaded >= 1, { what: 'the initial download' });
    await w.waitFor((e) => e.event === 'state' && e.state === 'idle', { what: 'idle' });
    const mark = w.events.length;
    write(a.dir, 'later.txt', 'van A terwijl B kijkt');
    const ra = await syncOnce(a);
    const ev = await w.waitFor((e) => e.event === 'synced' && e.downloaded >= 1, { from: mark, timeoutMs: 20_000, what: 'the pushed change' });
    t.true(ev.seq >= ra.seq);
    t.is(read(b.dir, 'later.txt').toString(), 'van A terwijl B kijkt');

    const mark2 = w.events.length;
    writeFileSync(path.join(b.dir, 'van-B.txt'), 'B schreef dit terwijl de watcher liep');
    await w.waitFor((e) => e.event === 'synced' && e.uploaded >= 1, { from: mark2, timeoutMs: 30_000, what: 'the upload of a local change' });
    await syncOnce(a);
    t.is(read(a.dir, 'van-B.txt').toString(), 'B schreef dit terwijl de watcher liep');
    t.true(w.events.every((e) => typeof e.event === 'string'), 'every stdout line is a JSON event');
  } finally {
    const end = await w.stop('SIGTERM');
    t.is(end.code, 0, w.stderr());
  }
  await converge([a, b]);
});
