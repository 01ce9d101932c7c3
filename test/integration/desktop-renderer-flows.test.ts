// The desktop renderer (web/desktop/) in headless Chromium driving the REAL main process end to end: every request
// goes through the real preload bundle and registerIpc (test/helpers/desktop-bridge.ts) to the handlers appHandlers
// builds over a real AppCore (test/helpers/desktop-app.ts) against a real server; main's own events (its coalesced
// `status`, its `activity`) are forwarded to the page as webContents.send would. Stand-ins exist only for Electron's
// objects (safeStorage, dialog, shell, Notification, app). One account across the flows, in order: sign-up in the
// page, a folder added to a new space and synced, a link made in the share dialog and opened on the server's link
// page, then a conflict with a second device (the `kluis` CLI logged in as the same person) resolved, a version
// restored, and that device revoked.
import test from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { initCrypto } from '@kluis/shared';
import type { Browser } from 'playwright-core';
import { call } from '../helpers/api.js';
import { launchChromium, openPage, screenshot, waitForState } from '../helpers/browser.js';
import { startTestApp, until, type TestApp } from '../helpers/desktop-app.js';
import { assertClean, openRenderer, serveRenderer, type RendererPage, type RendererServer } from '../helpers/desktop-bridge.js';
import { bytes, kluis, okJson, read, sessionOf, sleep, startSyncEnv, syncOnce, textOf, write, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';

let env: SyncEnv;
let browser: Browser;
let renderer: RendererServer;
let app: TestApp;
let r: RendererPage;
/** the second device: the `kluis` CLI logged in as the same person (from the folders flow on) */
let cli: SyncClient;
/** what the flows share: the account made in the page, its folder */
const me = { email: `flows-${Date.now()}@example.be`, password: 'een lang wachtwoord voor de app', folderId: '', spaceId: '', spaceName: `Dossiers ${Date.now()}`, dir: '' };

test.before(async () => {
  await initCrypto();
  env = await startSyncEnv({ accounts: ['A'], storage: 'fs', fixedPort: true });
  browser = await launchChromium();
  renderer = await serveRenderer();
  // main's events reach the page as they are sent (an event outside AppEvent is a problem the tests report)
  app = await startTestApp(env.root, 'flows', { onEvent: (e) => void r?.emit(e).catch((err: unknown) => r.problems.push(`event: ${String(err)}`)) });
  r = await openRenderer(browser, app.handlers);
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-3000)}`);
});
test.after.always(async () => {
  await r?.close().catch(() => undefined);
  await app?.close();
  await browser?.close();
  await renderer?.close();
  await env?.close();
});

const status = () => app.ok('app:status', {});

const clean = (t: Parameters<typeof assertClean>[0]) => assertClean(t, r, renderer);

test.serial('onboarding: sign-up with an invitation in the page, the recovery key typed back, the fingerprint', async (t) => {
  const { page } = r;
  const admin = sessionOf(env.accounts[0]!.home);
  const inv = await call(env.srv.url, 'POST', `/api/v1/orgs/${env.orgId}/invites`, { token: admin.token, json: { email: me.email } });
  t.is(inv.status, 201);
  await page.goto(renderer.url);
  await page.locator('#main[data-state="welcome"]').waitFor();
  await page.locator('#server').fill(env.url);
  await page.locator('#email').fill(me.email);
  await page.locator('#invite').fill(inv.body.token);
  await page.locator('#password').fill(me.password);
  await page.locator('#device').fill('Laptop An');
  await screenshot(page, 'desktop-welcome.png');
  await page.locator('#welcome-submit').click();

  await page.locator('#main[data-state="recovery"]').waitFor({ timeout: 60_000 });
  t.like(r.calls.find((c) => c.channel === 'account:signup'), { request: { server: env.url, email: me.email, deviceName: 'Laptop An' }, answer: { ok: true } });
  const words = await page.locator('#recovery-key li').allTextContents();
  t.is(words.length, 14, 'the recovery key main made, in its 14 groups');
  t.is(words.join('-'), app.core.recoveryKey ?? 'none', 'exactly the key main holds until it is confirmed');
  t.like(await status(), { account: { email: me.email, recoveryKeyConfirmed: false } });
  await screenshot(page, 'desktop-recovery.png');
  const n = async (id: string) => Number((await page.locator(`label[for="${id}"]`).textContent())!.match(/\d+/)![0]) - 1;
  const [a, b] = [await n('word-a'), await n('word-b')];
  // a wrong word is caught in the page; nothing is sent
  await page.locator('#word-a').fill('XXXX');
  await page.locator('#word-b').fill(words[b]!);
  await page.locator('#recovery-submit').click();
  t.regex((await page.locator('#recovery-problem').textContent())!, /\S/);
  t.false(r.calls.some((c) => c.channel === 'account:confirmRecovery'));
  await page.locator('#word-a').fill(words[a]!.toLowerCase());
  await page.locator('#recovery-submit').click();

  await page.locator('#main[data-state="fingerprint"]').waitFor();
  t.like(r.calls.find((c) => c.channel === 'account:confirmRecovery'), { request: { words: [{ index: a }, { index: b }] }, answer: { ok: true } });
  const s = await status();
  t.like(s, { account: { email: me.email, recoveryKeyConfirmed: true } });
  t.is(app.core.recoveryKey, null, 'main forgets the key once confirmed');
  t.is(await page.locator('#fingerprint').textContent(), s.account!.fingerprint);
  // the same fingerprint a colleague's CLI sees for this person
  const seen = okJson(await kluis(env.accounts[0]!.home, ['--json', 'fingerprint', me.email]), 'fingerprint');
  t.is(JSON.stringify(seen).includes(s.account!.fingerprint), true, JSON.stringify(seen));
  await screenshot(page, 'desktop-fingerprint.png');
  await page.locator('#fingerprint-continue').click();
  await page.locator('#main[data-state="view-folders"]').waitFor();
  t.is(await page.locator('#folders-empty').count(), 1);
  await clean(t);
});

test.serial('folders: a folder chosen through the dialog, added to a new space, synced as main\'s own events report', async (t) => {
  const { page } = r;
  me.dir = path.join(env.root, 'Dossiers An');
  for (let i = 0; i < 200; i++) write(me.dir, `stukken/${String(i).padStart(3, '0')}.txt`, `stuk ${i}\n`);
  write(me.dir, 'begroting.pdf', bytes(19, 300_000));
  write(me.dir, 'nota.txt', 'eerste nota\n');
  app.chooser.answer = { canceled: false, filePaths: [me.dir] };
  const eventsBefore = app.events.length;
  await page.locator('#add-choose').click();
  await until('the chosen path in the field', async () => (await page.locator('#add-path').inputValue()) === me.dir);
  await page.locator('#add-new-space').fill(me.spaceName);
  await page.locator('#add-class').selectOption('internal');
  await page.locator('#add-submit').click();
  const added = await until('folders:add answered', () => r.calls.find((c) => c.channel === 'folders:add'));
  t.like(added, { request: { path: me.dir, space: { newSpaceName: me.spaceName, classification: 'internal' } }, answer: { ok: true } });
  const value = (added.answer as { value: { folderId: string; spaceId: string } }).value;
  me.folderId = value.folderId;
  me.spaceId = value.spaceId;
  const card = page.locator(`#folder-${me.folderId}`);
  await card.waitFor();
  t.is(await page.locator(`#folder-${me.folderId}-name`).textContent(), 'Dossiers An');
  t.is(await page.locator(`#folder-${me.folderId}-path`).textContent(), `${me.spaceName} · ${me.dir}`);
  // The page asks main for the status only when something it did changed it; after that, only main's status events
  // move the card: through syncing (files to go) to up to date.
  await page.locator(`#folder-${me.folderId}[data-state="syncing"]`).waitFor({ timeout: 30_000 });
  await screenshot(page, 'desktop-folders-syncing.png');
  const polls = r.calls.filter((c) => c.channel === 'app:status').length;
  await page.locator(`#folder-${me.folderId}[data-state="up-to-date"]`).waitFor({ timeout: 120_000 });
  t.is(r.calls.filter((c) => c.channel === 'app:status').length, polls, 'no request of the page brought the change');
  t.regex((await page.locator(`#folder-${me.folderId}-line`).textContent())!, /^Last synced /);
  const sent = app.events.slice(eventsBefore);
  t.true(sent.some((e) => e.type === 'status' && e.folders.some((f) => f.folderId === me.folderId && f.state === 'syncing')));
  t.true(sent.some((e) => e.type === 'status' && e.folders.some((f) => f.folderId === me.folderId && f.state === 'up-to-date')));
  await until('the activity line', async () => (await page.locator('#activity li.activity.uploaded').count()) > 0);
  // 202 files and the folder stukken/, which the engine commits as an entry of its own (and main counts as a file)
  t.is(await page.locator('#activity li.activity.uploaded .what').first().textContent(), 'Dossiers An · 203 items');
  t.true((await status()).folders.some((f) => f.folderId === me.folderId && f.spaceId === me.spaceId));
  // the new space is offered for the next folder
  await page.locator(`#add-space option[value="${me.spaceId}"]`).waitFor({ state: 'attached' });
  t.is(await page.locator(`#add-space option[value="${me.spaceId}"]`).textContent(), `${me.spaceName} (Internal)`);
  await screenshot(page, 'desktop-folders-activity.png');

  // What the page synced is on the server: a second device of the same person (the CLI) brings it down.
  const cliHome = path.join(env.root, 'cli-an');
  okJson(await kluis(cliHome, ['--json', 'login', '--server', env.url, '--email', me.email, '--password-stdin', '--device-name', 'Oude laptop'], { stdin: `${me.password}\n` }), 'login');
  cli = { label: 'Oude laptop', account: { label: 'An', email: me.email, password: me.password, home: cliHome, userId: '', deviceId: sessionOf(cliHome).deviceId }, home: cliHome, dir: path.join(env.root, 'cli-an-dir'), spaceId: me.spaceId, spaceName: me.spaceName };
  await syncOnce(cli);
  t.is(textOf(cli.dir, 'stukken/137.txt'), 'stuk 137\n');
  t.true(read(cli.dir, 'begroting.pdf').equals(bytes(19, 300_000)));
  await clean(t);
});

test.serial('share dialog: a link with expiry, limit, password and purpose, opened on the server\'s link page in the same Chromium', async (t) => {
  const { page } = r;
  await page.locator(`#folder-${me.folderId}-share`).click();
  await page.locator('dialog#share').waitFor();
  await page.locator('#share-path').fill('begroting.pdf');
  await page.locator('#share-days').fill('7');
  await page.locator('#share-limit').fill('3');
  await page.locator('#share-password').fill('Blauwe Reiger 42');
  await page.locator('#share-purpose').fill('voor de gemeenteraad');
  await page.locator('#share-create').click();
  await page.locator('#share-link').waitFor();
  const link = await page.locator('#share-link').inputValue();
  t.regex(link, new RegExp(`^${env.url.replace(/[.]/g, '\\.')}/s/[A-Za-z0-9_-]{22}#[A-Za-z0-9_-]+$`));
  t.like(r.calls.find((c) => c.channel === 'share:link'), { request: { folderId: me.folderId, path: 'begroting.pdf', expiresDays: 7, maxDownloads: 3, purpose: 'voor de gemeenteraad' }, answer: { ok: true } });
  t.is(await page.locator('#share-password').inputValue(), '', 'the password is not kept in the form');
  await page.locator('#share-copy').click();
  await page.locator('#share-copied:not(:empty)').waitFor();
  t.is(await page.locator('#share-copied').textContent(), 'Copied.');
  await screenshot(page, 'desktop-share-link.png', false);
  // the link as the server lists it (the CLI of the second device)
  const listed = okJson(await kluis(cli.home, ['--json', 'share', 'list', '--space', me.spaceId]), 'share list');
  t.true(listed.links.some((l: { purpose: string; maxDownloads: number }) => l.purpose === 'voor de gemeenteraad' && l.maxDownloads === 3), JSON.stringify(listed));
  await page.keyboard.press('Escape');
  await page.locator('dialog#share').waitFor({ state: 'detached' });

  // Whoever gets the link opens it on the server's own page, in the same browser; the bytes are the file's.
  const tp = await openPage(browser, { save: 'blob' });
  await tp.page.goto(link);
  await waitForState(tp.page, 'locked');
  await tp.page.fill('#password', 'Blauwe Reiger 42');
  await tp.page.press('#password', 'Enter');
  t.is(await waitForState(tp.page, 'ready'), 'begroting.pdf');
  t.regex(await tp.page.locator('#card').innerText(), /2 downloads left/, 'the limit set in the dialog, one opening counted');
  const [download] = await Promise.all([tp.page.waitForEvent('download', { timeout: 60_000 }), tp.page.click('#download')]);
  t.is(download.suggestedFilename(), 'begroting.pdf');
  t.true(readFileSync((await download.path())!).equals(bytes(19, 300_000)), 'the same bytes as the synced file');
  await waitForState(tp.page, 'done');
  t.deepEqual(tp.requests.filter((u) => !u.startsWith(env.url) && !u.startsWith('blob:') && !u.startsWith('data:')), [], 'the link page stays on the server');
  await tp.context.close();
  await clean(t);
});

test.serial('conflicts with the second device resolved (keep both, keep mine), a version restored, that device revoked', async (t) => {
  const { page } = r;
  const id = me.folderId;
  // pause in the page; the CLI changes two files, this computer changes the same two
  await page.locator(`#folder-${id}-toggle`).click();
  await page.locator(`#folder-${id}[data-state="paused"]`).waitFor();
  await sleep(1500); // a pass already running when pause came finishes first
  write(cli.dir, 'nota.txt', 'nota van de oude laptop\n');
  write(cli.dir, 'stukken/001.txt', 'stuk 1 van de oude laptop\n');
  await syncOnce(cli);
  write(me.dir, 'nota.txt', 'nota van de app\n');
  write(me.dir, 'stukken/001.txt', 'stuk 1 van de app\n');
  await sleep(300);
  await page.locator(`#folder-${id}-toggle`).click();
  // main's status events bring the count to the navigation and the card
  await until('two conflicts in the navigation', async () => (await page.locator('#nav-conflicts-count').textContent()) === '2', 120_000);
  await page.locator(`#folder-${id}[data-state="up-to-date"]`).waitFor({ timeout: 60_000 });
  t.is(await page.locator(`#folder-${id}-conflicts`).textContent(), '2 conflicts');
  await page.locator('#nav-conflicts').click();
  const items = page.locator('#conflicts li.conflict');
  await items.nth(1).waitFor();
  t.is(await items.count(), 2);
  const texts = await items.allTextContents();
  const nota = texts.findIndex((x) => x.startsWith('nota.txt'));
  const stuk = texts.findIndex((x) => x.startsWith('stukken/001.txt'));
  t.true(nota >= 0 && stuk >= 0, texts.join(' | '));
  for (const x of texts) t.regex(x, new RegExp(`Other version by ${me.email.replace(/[.+]/g, '\\$&')}`));
  const listed = (await app.ok('conflicts:list', { folderId: id })).conflicts;
  const copyOf = (p: string) => listed.find((c) => c.path === p)!.copyPath;
  t.is(textOf(me.dir, copyOf('nota.txt')), 'nota van de app\n', 'this computer\'s version kept as the copy');
  t.is(textOf(me.dir, 'nota.txt'), 'nota van de oude laptop\n');
  await screenshot(page, 'desktop-conflicts.png');
  // open both: main opens the file and its copy (the shell stand-in records them)
  await page.locator(`#conflict-${id}-${nota}-open`).click();
  await until('both opened', () => app.opened.length >= 2);
  t.deepEqual(app.opened.slice(-2), [path.join(me.dir, 'nota.txt'), path.join(me.dir, copyOf('nota.txt'))]);
  // keep both (by keyboard), then keep mine; the renderer names the copy each time
  await page.locator(`#conflict-${id}-${nota}-both`).focus();
  await page.keyboard.press('Enter');
  await until('the answer', async () => (await page.locator('#status').textContent()) === 'Kept both: your version of nota.txt is now a separate file beside it.');
  await page.locator('#conflicts li.conflict').nth(0).waitFor();
  t.is(await page.locator('#conflicts li.conflict').count(), 1);
  await page.locator(`#conflict-${id}-0-mine`).click();
  await page.locator('#conflicts-none').waitFor();
  t.deepEqual(r.calls.filter((c) => c.channel === 'conflicts:resolve').map((c) => [c.request, c.answer]), [
    [{ folderId: id, path: 'nota.txt', keep: 'both', copyPath: copyOf('nota.txt') }, { ok: true, value: { ok: true } }],
    [{ folderId: id, path: 'stukken/001.txt', keep: 'mine', copyPath: copyOf('stukken/001.txt') }, { ok: true, value: { ok: true } }],
  ]);
  t.is(textOf(me.dir, 'nota.txt'), 'nota van de oude laptop\n');
  t.is(textOf(me.dir, 'nota (copy).txt'), 'nota van de app\n');
  t.is(textOf(me.dir, 'stukken/001.txt'), 'stuk 1 van de app\n');
  t.is(textOf(me.dir, copyOf('stukken/001.txt')), null);
  await until('no conflict left in the navigation', async () => (await page.locator('#nav-conflicts-count').textContent()) === '');

  // versions: nota.txt as it was first, restored from the dialog; the second device gets it
  await page.locator('#nav-folders').click();
  await page.locator(`#folder-${id}-versions`).click();
  await page.locator('dialog#versions').waitFor();
  await page.locator('#versions-path').fill('nota.txt');
  await page.locator('#versions-path').press('Enter');
  await page.locator('#versions-list li.item').nth(1).waitFor();
  t.is(await page.locator('#versions-list li.item').count(), 2);
  t.is(await page.locator('#version-0 .badge').textContent(), 'Current');
  await page.locator('#version-1-restore').click();
  await page.locator('#versions-done').waitFor();
  await until('the restored content on disk', () => textOf(me.dir, 'nota.txt') === 'eerste nota\n');
  await page.keyboard.press('Escape');
  await page.locator('dialog#versions').waitFor({ state: 'detached' });
  await until('the restore and the resolutions on the second device', async () => {
    await syncOnce(cli);
    return textOf(cli.dir, 'nota.txt') === 'eerste nota\n' && textOf(cli.dir, 'stukken/001.txt') === 'stuk 1 van de app\n' && textOf(cli.dir, 'nota (copy).txt') === 'nota van de app\n';
  });

  // devices: the second device revoked from the page, after a confirmation; it can no longer reach the account
  await page.locator('#nav-devices').click();
  const other = page.locator(`#device-${cli.account.deviceId}`);
  await other.waitFor();
  t.regex((await other.textContent())!, /^Oude laptop/);
  t.regex((await page.locator('#devices li.item', { hasText: 'This computer' }).textContent())!, /^Laptop An/);
  await screenshot(page, 'desktop-devices.png');
  await page.locator(`#device-${cli.account.deviceId}-revoke`).click();
  await page.locator('dialog#revoke').waitFor();
  await page.locator('#revoke-ok').click();
  await other.locator('.badge', { hasText: 'Revoked' }).waitFor();
  t.like(r.calls.filter((c) => c.channel === 'devices:revoke'), [{ request: { deviceId: cli.account.deviceId }, answer: { ok: true } }]);
  const refused = await kluis(cli.home, ['--json', 'sync', cli.dir, '--space', cli.spaceId, '--once'], { env: { KLUIS_SYNC_GIVE_UP_MS: '20000' } });
  t.not(refused.code, 0, 'the revoked device is refused');
  t.regex(refused.stderr + refused.stdout, /unauthenticated|revoked|log in/i);
  t.like(await status(), { account: { email: me.email } }, 'this computer is still signed in');
  await clean(t);
});

test.serial('a file a colleague shares shows in the activity feed, naming the colleague and not the file', async (t) => {
  const { page } = r;
  const a = env.accounts[0]!;
  const spaceName = `Van A ${Date.now()}`;
  const space = okJson(await kluis(a.home, ['--json', 'space', 'create', spaceName]), 'space create');
  const ca: SyncClient = { label: 'A', account: a, home: a.home, dir: path.join(env.root, 'a-gedeeld'), spaceId: space.spaceId, spaceName };
  write(ca.dir, 'advies.txt', 'advies voor An\n');
  await syncOnce(ca);
  okJson(await kluis(a.home, ['--json', 'share', 'file', path.join(ca.dir, 'advies.txt'), me.email]), 'share file');
  await page.locator('#nav-folders').click();
  const line = page.locator('#activity li.activity.shared-with-me');
  await line.waitFor({ timeout: 30_000 });
  t.is(await line.locator('.kind').textContent(), 'Shared with you');
  t.is(await line.locator('.what').textContent(), a.email, 'main\'s folderId "shared-with-me" names no folder: the colleague only');
  t.false((await page.locator('#activity').textContent())!.includes('advies'), 'no name of the shared file');
  await clean(t);
});

test.serial('settings saved through main, sign-out, sign-in in the page, and the folder added again to its space', async (t) => {
  const { page } = r;
  await page.locator('#nav-settings').click();
  await page.locator('#settings-form').waitFor();
  t.is(await page.locator('#settings-fingerprint').textContent(), (await status()).account!.fingerprint);
  await page.locator('#set-download').fill('2048');
  await page.locator('#settings-save').click();
  await page.locator('#settings-saved:not(:empty)').waitFor();
  t.like(await app.ok('settings:get', {}), { downloadLimit: 2048 * 1024, uploadLimit: null });
  await page.locator('#settings-logout').click();
  await page.locator('#main[data-state="welcome"]').waitFor();
  t.like(await status(), { account: null, folders: [] });
  await page.locator('#mode-login').click();
  t.is(await page.locator('#invite').count(), 0, 'no invitation to sign in');
  await page.locator('#server').fill(env.url);
  await page.locator('#email').fill(me.email);
  await page.locator('#password').fill('niet het wachtwoord');
  await page.locator('#device').fill('Laptop An');
  await page.locator('#welcome-submit').click();
  await page.locator('#welcome-problem:not(:empty)').waitFor();
  t.like(r.calls.at(-1), { channel: 'account:login', answer: { ok: false, error: { code: 'unauthenticated' } } });
  await page.locator('#password').fill(me.password);
  await page.locator('#welcome-submit').click();
  await page.locator('#main[data-state="fingerprint"]').waitFor({ timeout: 60_000 });
  await page.locator('#fingerprint-continue').click();
  // sign-out forgot the folder (its files stay); typed back in, it is added to the existing space and syncs again
  await page.locator('#folders-empty').waitFor();
  t.is(textOf(me.dir, 'nota.txt'), 'eerste nota\n');
  await page.locator(`#add-space option[value="${me.spaceId}"]`).waitFor({ state: 'attached' });
  await page.locator('#add-path').fill(me.dir);
  await page.locator('#add-space').selectOption(me.spaceId);
  await page.locator('#add-submit').click();
  const again = await until('the second folders:add', () => r.calls.filter((c) => c.channel === 'folders:add')[1]);
  t.like(again, { request: { path: me.dir, space: { spaceId: me.spaceId } }, answer: { ok: true } });
  const id = (again.answer as { value: { folderId: string } }).value.folderId;
  await page.locator(`#folder-${id}[data-state="up-to-date"]`).waitFor({ timeout: 60_000 });
  t.like((await status()).folders, [{ folderId: id, spaceId: me.spaceId, path: me.dir }]);
  await clean(t);
});
