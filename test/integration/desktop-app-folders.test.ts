// The desktop app's folder, conflict and share handlers (desktop/src/electron/main/folder-channels.ts, conflicts.ts,
// share-handlers.ts) and its events and notifications (events.ts, notifications.ts), through dispatch, with the real
// engine watching real folders against a real server; colleagues are real `kluis` CLI clients. Electron's own
// objects are stand-ins that record (test/helpers/desktop-app.ts).
import test from 'ava';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { initCrypto } from '@kluis/shared';
import { kluis, okJson, sleep, startSyncEnv, syncOnce, write, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';
import { startTestApp, until, type TestApp } from '../helpers/desktop-app.js';

let env: SyncEnv;
let app: TestApp;

test.before(async () => {
  await initCrypto();
  env = await startSyncEnv({ accounts: ['A', 'B'], storage: 'fs' });
  app = await startTestApp(env.root, 'A');
  const a = env.accounts[0]!;
  await app.ok('account:login', { server: env.url, email: a.email, password: a.password, deviceName: 'Werkpost' });
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-3000)}`);
});
test.after.always(async () => {
  await app?.close();
  await env?.close();
});

const text = (dir: string, rel: string) => (existsSync(path.join(dir, rel)) ? readFileSync(path.join(dir, rel), 'utf8') : null);
/** The folder finished a pass and has nothing left to do. */
const upToDate = async (folderId: string) => {
  const f = (await app.ok('app:status', {})).folders.find((x) => x.folderId === folderId);
  return f?.state === 'up-to-date' && f.lastSyncedAt !== null;
};

/** A folder of the app for the space of `colleague`'s client, in step with the server. */
async function appFolder(space: { spaceId: string }, name: string): Promise<{ dir: string; folderId: string }> {
  const dir = path.join(env.root, `app-folder-${name}`);
  const s = await app.ok('folders:add', { path: dir, space: { spaceId: space.spaceId } });
  await until('the first pass', () => upToDate(s.folderId));
  return { dir, folderId: s.folderId };
}

test.serial('folders: choose, add to a space or a new one, open, remove; status events at most 10 a second', async (t) => {
  t.deepEqual(await app.ok('folders:choose', {}), { path: null }, 'the dialog was cancelled');
  app.chooser.answer = { canceled: false, filePaths: [path.join(env.root, 'gekozen')] };
  t.deepEqual(await app.ok('folders:choose', {}), { path: path.join(env.root, 'gekozen') });

  const space = await env.newSpace();
  const b = space.clients[1]!;
  write(b.dir, 'verslag.txt', 'verslag van B\n');
  await syncOnce(b);
  t.like(await app.call('folders:add', { path: 'relatief', space: { spaceId: space.spaceId } }), { ok: false, error: { code: 'bad_request' } });
  t.like(await app.call('folders:add', { path: path.join(env.root, 'x'), space: { spaceId: 'AAAAAAAAAAAAAAAAAAAAAA' } }), { ok: false, error: { code: 'not_found' } });
  t.like(await app.call('folders:add', { path: path.join(env.root, 'x'), space: { newSpaceName: 'y', classification: 'geheim' } }), { ok: false, error: { code: 'bad_request' } });
  const f = await appFolder(space, 'add');
  t.is(text(f.dir, 'verslag.txt'), 'verslag van B\n');
  t.like(await app.call('folders:add', { path: f.dir, space: { spaceId: space.spaceId } }), { ok: false, error: { code: 'conflict' } }, 'already synced here');

  // A new space, made by the app, and 300 files through it: progress comes as coalesced status events.
  const newDir = path.join(env.root, 'app-folder-new');
  mkdirSync(newDir);
  for (let i = 0; i < 300; i++) write(newDir, `stukken/${i}.txt`, `stuk ${i}\n`);
  const before = app.events.length;
  const started = Date.now();
  const created = await app.ok('folders:add', { path: newDir, space: { newSpaceName: `Nieuw ${Date.now()}`, classification: 'internal' } });
  await until('the upload', () => upToDate(created.folderId), 120_000);
  // Events are pushed, app:status is asked: the last status event (coalesced, at most one per 100 ms) and the pass's
  // `uploaded` activity may still be on their way when the polled state already says up to date.
  const uploadedActivity = () => app.events.some((e) => e.type === 'activity' && e.kind === 'uploaded' && e.folderId === created.folderId);
  await until('the pass\'s events', async () => uploadedActivity() && app.events.slice(before).some((e) => e.type === 'status'), 10_000);
  const statusEvents = app.events.slice(before).filter((e) => e.type === 'status');
  const seconds = (Date.now() - started) / 1000;
  t.true(statusEvents.length > 0);
  t.true(statusEvents.length <= Math.ceil(seconds * 10) + 1, `${statusEvents.length} status events in ${seconds} s`);
  t.true(uploadedActivity());
  t.true((await app.ok('spaces:list', {})).spaces.some((s) => s.spaceId === created.spaceId && s.role === 'manager'));

  t.like(await app.call('folders:open', { folderId: f.folderId }), { ok: true });
  t.like(await app.call('folders:open', { folderId: f.folderId, path: 'verslag.txt' }), { ok: true });
  t.deepEqual(app.opened.slice(-2), [f.dir, path.join(f.dir, 'verslag.txt')]);
  t.like(await app.call('folders:open', { folderId: f.folderId, path: '../../etc/passwd' }), { ok: false, error: { code: 'bad_request' } });
  t.like(await app.call('folders:open', { folderId: f.folderId, path: 'missing.txt' }), { ok: false, error: { code: 'not_found' } });
  t.like(await app.call('folders:open', { folderId: '424242' }), { ok: false, error: { code: 'not_found' } });

  t.like(await app.call('folders:remove', { folderId: created.folderId }), { ok: true });
  t.false((await app.ok('app:status', {})).folders.some((x) => x.folderId === created.folderId));
  t.is(text(newDir, 'stukken/7.txt'), 'stuk 7\n', 'the files stay');
  t.like(await app.call('folders:remove', { folderId: created.folderId }), { ok: false, error: { code: 'not_found' } });
  const saved = JSON.parse(readFileSync(path.join(app.home, 'app.json'), 'utf8'));
  const roots = Object.values(saved.folders as Record<string, { root: string }[]>).flat().map((x) => x.root);
  t.true(roots.includes(f.dir));
  t.false(roots.includes(newDir));
});

test.serial('conflicts: listed with the colleague as the other author; keep mine, keep theirs, keep both', async (t) => {
  const space = await env.newSpace();
  const b = space.clients[1]!;
  for (const n of ['een', 'twee', 'drie']) write(b.dir, `${n}.txt`, `${n} basis\n`);
  await syncOnce(b);
  const f = await appFolder(space, 'conflicts');
  await app.ok('folders:pause', { folderId: f.folderId });
  await sleep(1500);
  for (const n of ['een', 'twee', 'drie']) write(b.dir, `${n}.txt`, `${n} van B\n`);
  await syncOnce(b);
  for (const n of ['een', 'twee', 'drie']) write(f.dir, `${n}.txt`, `${n} van mij\n`);
  await sleep(300);
  const shownBefore = app.shown.length;
  await app.ok('folders:resume', { folderId: f.folderId });
  const listed = await until('three conflicts', async () => {
    const r = await app.ok('conflicts:list', { folderId: f.folderId });
    return r.conflicts.length === 3 && (await upToDate(f.folderId)) && r;
  });
  for (const c of listed.conflicts) {
    t.regex(c.copyPath, / \(conflict Werkpost \d{4}-\d\d-\d\d \d{4}\)\.txt$/);
    t.is(c.otherAuthor, b.account.email);
    t.is(text(f.dir, c.path), `${c.path.replace('.txt', '')} van B\n`);
    t.is(text(f.dir, c.copyPath), `${c.path.replace('.txt', '')} van mij\n`);
  }
  await until('one coalesced notification', () => app.shown.length > shownBefore);
  const notes = app.shown.slice(shownBefore).filter((n) => /conflict/.test(n.title));
  t.is(notes.length, 1, JSON.stringify(notes));
  t.regex(notes[0]!.body, /^3 files in .* were changed on two devices/);
  t.true(app.events.filter((e) => e.type === 'activity' && e.kind === 'conflict').length >= 3);

  t.like(await app.call('conflicts:resolve', { folderId: f.folderId, path: 'vier.txt', keep: 'mine' }), { ok: false, error: { code: 'not_found' } });
  t.like(await app.call('conflicts:resolve', { folderId: f.folderId, path: 'een.txt', keep: 'allebei' }), { ok: false, error: { code: 'bad_request' } });
  const copyOf = (p: string) => listed.conflicts.find((c) => c.path === p)!.copyPath;
  t.like(await app.call('conflicts:resolve', { folderId: f.folderId, path: 'een.txt', keep: 'mine' }), { ok: true });
  t.like(await app.call('conflicts:resolve', { folderId: f.folderId, path: 'twee.txt', keep: 'theirs' }), { ok: true });
  t.like(await app.call('conflicts:resolve', { folderId: f.folderId, path: 'drie.txt', keep: 'both', copyPath: copyOf('drie.txt') }), { ok: true });
  t.is(text(f.dir, 'een.txt'), 'een van mij\n');
  t.is(text(f.dir, 'twee.txt'), 'twee van B\n');
  t.is(text(f.dir, 'drie (copy).txt'), 'drie van mij\n');
  t.like((await app.ok('app:status', {})).folders.find((x) => x.folderId === f.folderId), { conflicts: 0 }, 'the count follows the resolutions');
  t.deepEqual((await app.ok('conflicts:list', { folderId: f.folderId })).conflicts, []);
  // The colleague gets the result; what gave way stays in the version history.
  await until('the resolution on the server', async () => {
    await syncOnce(b);
    return text(b.dir, 'een.txt') === 'een van mij\n' && text(b.dir, 'drie (copy).txt') === 'drie van mij\n' && text(b.dir, copyOf('twee.txt')) === null;
  });
  const v = await app.ok('versions:list', { folderId: f.folderId, path: 'een.txt' });
  t.true(v.versions.some((x) => x.author === b.account.email && !x.current), 'B\'s version is in the history');
});

test.serial('share: a link (the CLI\'s policy refusals), a colleague\'s fingerprint, a file shared; viewers refused; a share received is notified without its name', async (t) => {
  const space = await env.newSpace();
  const b = space.clients[1]!;
  write(b.dir, 'begroting.txt', 'begroting 2027\n');
  await syncOnce(b);
  const f = await appFolder(space, 'share');
  const link = await app.ok('share:link', { folderId: f.folderId, path: 'begroting.txt', expiresDays: 7, maxDownloads: 3, password: null, purpose: 'voor de gemeenteraad' });
  // The server listens on a port the system chose (KLUIS_PORT=0) and has no KLUIS_PUBLIC_URL: the link names that port.
  t.true(link.link.startsWith(`${env.url}/s/`), link.link);
  t.regex(link.link, /^http:\/\/127\.0\.0\.1:[1-9]\d*\/s\/[A-Za-z0-9_-]{22}#[A-Za-z0-9_-]+$/);
  t.is(link.maxDownloads, 3);
  t.true(link.expiresAt > Date.now() + 6 * 86400_000);
  const listed = okJson(await kluis(env.accounts[0]!.home, ['--json', 'share', 'list', '--space', space.spaceId]), 'share list');
  t.true(listed.links.some((l: { linkId: string; purpose: string }) => l.linkId === link.linkId && l.purpose === 'voor de gemeenteraad'));
  const tooLong = await app.call('share:link', { folderId: f.folderId, path: 'begroting.txt', expiresDays: 60, maxDownloads: null, password: null, purpose: 'voor de gemeenteraad' });
  t.like(tooLong, { ok: false, error: { code: 'policy_refused' } }, 'internal: at most 30 days, as the CLI is told');
  t.like(await app.call('share:link', { folderId: f.folderId, path: 'begroting.txt', expiresDays: 7, maxDownloads: null, password: null, purpose: 'x' }), { ok: false, error: { code: 'bad_request' } });
  t.like(await app.call('share:link', { folderId: f.folderId, path: 'weg.txt', expiresDays: 7, maxDownloads: null, password: null, purpose: 'voor niemand' }), { ok: false, error: { code: 'not_found' } });

  const fp = await app.ok('share:colleague', { email: b.account.email });
  t.like(fp, { email: b.account.email });
  t.regex(fp.fingerprint, /\d/);
  t.like(await app.call('share:colleague', { email: 'niemand@example.be' }), { ok: false, error: { code: 'not_found' } });
  t.like(await app.call('share:colleague', { email: 'geen adres' }), { ok: false, error: { code: 'bad_request' } });

  write(f.dir, 'memo.txt', 'memo van A\n');
  await until('memo uploaded', async () => (await upToDate(f.folderId)) && (await app.ok('versions:list', { folderId: f.folderId, path: 'memo.txt' }).catch(() => null)));
  const shared = await app.ok('share:file', { folderId: f.folderId, path: 'memo.txt', email: b.account.email, role: 'viewer' });
  t.is(shared.fingerprint, fp.fingerprint);
  const bShared = okJson(await kluis(b.home, ['--json', 'shared']), 'shared');
  t.true(bShared.shared.some((s: { shareId: string; name: string }) => s.shareId === shared.shareId && s.name === 'memo.txt'));
  t.like(await app.call('share:file', { folderId: f.folderId, path: 'memo.txt', email: env.accounts[0]!.email, role: 'viewer' }), { ok: false, error: { code: 'validation_failed' } }, 'not with yourself');
  t.like(await app.call('share:file', { folderId: f.folderId, path: 'memo.txt', email: b.account.email, role: 'editor' }), { ok: false, error: { code: 'bad_request' } });

  // A space where A only reads: no links, no shares.
  const viewerSpace = `Alleen lezen ${Date.now()}`;
  const vs = okJson(await kluis(b.home, ['--json', 'space', 'create', viewerSpace]), 'space create');
  okJson(await kluis(b.home, ['--json', 'space', 'add-member', viewerSpace, env.accounts[0]!.email, '--role', 'viewer']), 'add-member');
  const bv: SyncClient = { ...b, dir: path.join(env.root, 'b-viewer'), spaceId: vs.spaceId, spaceName: viewerSpace };
  write(bv.dir, 'besluit.txt', 'besluit\n');
  await syncOnce(bv);
  const vf = await appFolder({ spaceId: vs.spaceId }, 'viewer');
  t.like(await app.call('share:link', { folderId: vf.folderId, path: 'besluit.txt', expiresDays: 7, maxDownloads: null, password: null, purpose: 'doorsturen' }), { ok: false, error: { code: 'forbidden' } });
  t.like(await app.call('share:file', { folderId: vf.folderId, path: 'besluit.txt', email: b.account.email, role: 'viewer' }), { ok: false, error: { code: 'forbidden' } });

  // B shares a file with A: the app tells, naming B and not the file.
  const shownBefore = app.shown.length;
  okJson(await kluis(b.home, ['--json', 'share', 'file', path.join(bv.dir, 'besluit.txt'), env.accounts[0]!.email]), 'share file');
  await until('the share noticed', () => app.events.some((e) => e.type === 'activity' && e.kind === 'shared-with-me' && e.detail === b.account.email));
  await until('its notification', () => app.shown.slice(shownBefore).some((n) => /shared with you/.test(n.title)));
  const note = app.shown.slice(shownBefore).find((n) => /shared with you/.test(n.title))!;
  t.is(note.body, `${b.account.email} shared a file with you.`);
  t.false(app.shown.some((n) => n.body.includes('besluit')), 'no file name of another person\'s share');
});
