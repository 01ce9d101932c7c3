// The desktop renderer (web/desktop/) in headless Chromium driving the REAL main process (every handler appHandlers
// builds over a real AppCore, a real server; test/helpers/desktop-bridge.ts, test/helpers/desktop-app.ts), for what
// desktop-renderer-flows does not drive: live progress (speed and time left computed by main from a pass held at a
// bandwidth limit), a conflict resolved with "keep theirs", sharing with a colleague (this file, then the whole
// space with a role; the colleague's fingerprint compared with their own CLI's), the start-at-login and language
// settings, and a folder removed (its engine stopped, its files kept). One account (A, signed in through main) with
// a second device (A's `kluis` CLI) and a colleague (B's CLI).
import test from 'ava';
import path from 'node:path';
import { initCrypto } from '@kluis/shared';
import type { Browser } from 'playwright-core';
import { launchChromium, screenshot } from '../helpers/browser.js';
import { startTestApp, until, type TestApp } from '../helpers/desktop-app.js';
import { assertClean, openRenderer, serveRenderer, type RendererPage, type RendererServer } from '../helpers/desktop-bridge.js';
import { bytes, kluis, okJson, read, sleep, startSyncEnv, syncOnce, textOf, write, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';
import type { FolderStatus } from '../../desktop/dist/electron/ipc/contract.js';

// the server, Chromium, the page's files, main (its handlers and events), the page
let env: SyncEnv, browser: Browser, renderer: RendererServer, app: TestApp, r: RendererPage;
/** A's second device: the CLI of the same person, syncing the same space */
let cli: SyncClient;
const me = { folderId: '', spaceId: '', spaceName: `Beleid ${Date.now()}`, dir: '' };
const MIB = 1024 * 1024;

test.before(async () => {
  await initCrypto();
  env = await startSyncEnv({ accounts: ['A', 'B'], storage: 'fs' });
  browser = await launchChromium();
  renderer = await serveRenderer();
  // an event sent while the page reloads is lost, as webContents.send to a reloading page is; anything else is a problem
  const lost = (err: unknown) => /Execution context was destroyed/.test(String(err));
  app = await startTestApp(env.root, 'manage', { onEvent: (e) => void r?.emit(e).catch((err: unknown) => lost(err) || r.problems.push(`event: ${String(err)}`)) });
  const a = env.accounts[0]!;
  await app.ok('account:login', { server: env.url, email: a.email, password: a.password, deviceName: 'Laptop A' });
  r = await openRenderer(browser, app.handlers);
});
test.afterEach.always((t) => void (!t.passed && env && t.log(`server log:\n${env.srv.output().slice(-3000)}`)));
test.after.always(async () => {
  await r?.close().catch(() => undefined);
  for (const part of [app, browser, renderer, env]) await part?.close();
});
const status = () => app.ok('app:status', {});
const clean = (t: Parameters<typeof assertClean>[0]) => assertClean(t, r, renderer);

test.serial('live progress: speed and time left from main while a pass is held at 1 MiB/s', async (t) => {
  const { page } = r;
  me.dir = path.join(env.root, 'Beleid A');
  write(me.dir, 'nota.txt', 'eerste nota\n');
  // more than the uploader holds in flight (4 batches of 2 MiB): the rest goes at the limit
  for (let i = 0; i < 4; i++) write(me.dir, `plannen/plan-${i}.bin`, bytes(40 + i, 6 * MIB));
  await app.ok('settings:set', { uploadLimit: MIB });
  await page.goto(renderer.url);
  await page.locator('#main[data-state="view-folders"]').waitFor();
  await page.locator('#add-path').fill(me.dir);
  await page.locator('#add-new-space').fill(me.spaceName);
  const startedAt = Date.now();
  await page.locator('#add-submit').click();
  const added = await until('folders:add answered', () => r.calls.find((c) => c.channel === 'folders:add'));
  t.like(added, { answer: { ok: true } });
  ({ folderId: me.folderId, spaceId: me.spaceId } = (added.answer as { value: FolderStatus }).value);
  const line = page.locator(`#folder-${me.folderId}-line`);
  // main's status events carry a rate once the reports span a second, and the page shows it with the time left
  await until('speed and time left on the card', async () => /\/s · about .+ left$/.test((await line.textContent()) ?? ''), 120_000);
  const shown = (await line.textContent())!;
  // numbers in the page's locale: a rate right at the limit reads "1,001 KiB/s" (1,001 KiB is still under 1 MiB)
  t.regex(shown, /^((\d+ files|1 file), )?[\d.]+ MiB to go · [\d.,]+ (KiB|MiB)\/s · about .+ left$/, shown);
  // once the first burst (what the uploader holds in flight) is out of main's 5 s window, the rate is the limit's
  const steady = await until('a steady rate', () => {
    const e = app.events.filter((x) => x.type === 'status').at(-1);
    const f = e?.type === 'status' ? e.folders.find((x) => x.folderId === me.folderId) : undefined;
    return f && f.rate !== null && f.rate < 1.3 * MIB && f.pendingBytes > 2 * MIB ? f : null;
  }, 120_000);
  t.true(steady.rate! > 0.3 * MIB, `about the limit: ${steady.rate}`);
  // bytes count as done when sent, not when read: at 1 MiB/s, no more than the bucket (1 MiB), one batch in debt
  // (2 MiB) and a second a second can be gone (it showed "1 MiB to go" for 24 MiB at once, "0 B" while still sending)
  const seconds = (Date.now() - startedAt) / 1000;
  t.true(steady.pendingBytes >= 24 * MIB - (3 + seconds) * MIB, `${steady.pendingBytes} B to go after ${seconds} s`);
  await screenshot(page, 'desktop-folders-progress.png');
  t.truthy(steady.etaSeconds);
  t.true(Math.abs(steady.etaSeconds! - steady.pendingBytes / steady.rate!) <= 1, 'the time left is what is left at that rate');
  const events = app.events.filter((x) => x.type === 'status');
  t.true(events.every((e) => e.type === 'status' && e.folders.every((f) => (f.rate === null) === (f.etaSeconds === null) || f.rate === 0)));
  await app.ok('settings:set', { uploadLimit: null });
  await page.locator(`#folder-${me.folderId}[data-state="up-to-date"]`).waitFor({ timeout: 120_000 });
  t.regex((await line.textContent())!, /^Last synced /, 'no speed once up to date');
  t.like((await status()).folders, [{ folderId: me.folderId, rate: null, etaSeconds: null, pendingFiles: 0 }]);
  await clean(t);
});

test.serial('conflicts: "keep theirs" keeps the other device\'s version and drops this computer\'s copy', async (t) => {
  const { page } = r;
  const id = me.folderId;
  const a = env.accounts[0]!;
  cli = { label: 'A-cli', account: a, home: a.home, dir: path.join(env.root, 'a-cli'), spaceId: me.spaceId, spaceName: me.spaceName };
  await syncOnce(cli);
  t.is(textOf(cli.dir, 'nota.txt'), 'eerste nota\n');
  await page.locator(`#folder-${id}-toggle`).click();
  await page.locator(`#folder-${id}[data-state="paused"]`).waitFor();
  await sleep(1500); // a pass already running when pause came finishes first
  write(cli.dir, 'nota.txt', 'nota van de CLI\n');
  await syncOnce(cli);
  write(me.dir, 'nota.txt', 'nota van de app\n');
  await sleep(300);
  await page.locator(`#folder-${id}-toggle`).click();
  await until('a conflict in the navigation', async () => (await page.locator('#nav-conflicts-count').textContent()) === '1', 120_000);
  await page.locator('#nav-conflicts').click();
  await page.locator(`#conflict-${id}-0`).waitFor();
  t.regex((await page.locator(`#conflict-${id}-0`).textContent())!, /^nota\.txt/);
  const [c] = (await app.ok('conflicts:list', { folderId: id })).conflicts;
  t.is(textOf(me.dir, c!.copyPath), 'nota van de app\n', 'this computer\'s version is the copy');
  await page.locator(`#conflict-${id}-0-theirs`).focus();
  await page.keyboard.press('Enter');
  await page.locator('#conflicts-none').waitFor();
  t.like(r.calls.filter((x) => x.channel === 'conflicts:resolve'), [{ request: { folderId: id, path: 'nota.txt', keep: 'theirs', copyPath: c!.copyPath }, answer: { ok: true } }]);
  t.is(textOf(me.dir, 'nota.txt'), 'nota van de CLI\n');
  t.is(textOf(me.dir, c!.copyPath), null, 'the copy is gone');
  await until('no conflict left in the navigation', async () => (await page.locator('#nav-conflicts-count').textContent()) === '');
  // the copy's removal reaches the other device too; its nota.txt stays its own
  await until('the copy gone on the second device', async () => {
    await syncOnce(cli);
    return textOf(cli.dir, c!.copyPath) === null;
  });
  t.is(textOf(cli.dir, 'nota.txt'), 'nota van de CLI\n');
  await clean(t);
});

test.serial('share dialog: a colleague\'s fingerprint as their own CLI shows it, this file shared, then the space with a role', async (t) => {
  const { page } = r;
  const b = env.accounts[1]!;
  const own = okJson(await kluis(b.home, ['--json', 'whoami']), 'whoami').fingerprint as string;
  await page.locator('#nav-folders').click();
  await page.locator(`#folder-${me.folderId}-share`).click();
  await page.locator('dialog#share').waitFor();
  await page.locator('#share-path').fill('nota.txt');
  await page.locator('#share-tab-colleague').click();
  await page.locator('#share-email').fill(b.email);
  await page.locator('#share-email').press('Enter');
  await page.locator('#share-fingerprint').waitFor();
  t.is(await page.locator('#share-fingerprint').textContent(), own, 'the fingerprint B reads out from their own computer');
  t.is(await page.locator('#share-pinned').textContent(), 'First time you share with this colleague.');
  t.deepEqual(await page.locator('#share-role option').allTextContents(), [
    'Can view this file', `Member of ${me.spaceName}: can view every file`, `Member of ${me.spaceName}: can view and edit`, `Member of ${me.spaceName}: manages the space`,
  ]);
  // this file only, read-only
  await page.locator('#share-send').click();
  await page.locator('#share-sent', { hasText: `Shared with ${b.email}.` }).waitFor();
  t.like(r.calls.filter((x) => x.channel === 'share:file'), [{ request: { folderId: me.folderId, path: 'nota.txt', email: b.email, role: 'viewer' }, answer: { ok: true, value: { fingerprint: own } } }]);
  const shared = okJson(await kluis(b.home, ['--json', 'shared']), 'shared');
  t.true(JSON.stringify(shared).includes('nota.txt'), JSON.stringify(shared));
  // the whole space, as an editor: B's CLI then syncs it and may write
  await page.locator('#share-role').selectOption('editor');
  await page.locator('#share-send').click();
  await page.locator('#share-sent', { hasText: `${b.email} is now a member of ${me.spaceName}.` }).waitFor();
  t.like(r.calls.filter((x) => x.channel === 'share:member'), [{ request: { folderId: me.folderId, email: b.email, role: 'editor' }, answer: { ok: true, value: { spaceName: me.spaceName, role: 'editor', fingerprint: own } } }]);
  await page.locator('#share-sent').scrollIntoViewIfNeeded();
  await screenshot(page, 'desktop-share-colleague.png', false);
  const spaces = okJson(await kluis(b.home, ['--json', 'space', 'list']), 'space list');
  t.like((spaces.spaces as { spaceId: string }[]).find((s) => s.spaceId === me.spaceId), { role: 'editor' });
  const cb: SyncClient = { label: 'B', account: b, home: b.home, dir: path.join(env.root, 'b-beleid'), spaceId: me.spaceId, spaceName: me.spaceName };
  await syncOnce(cb);
  t.true(read(cb.dir, 'plannen/plan-3.bin').equals(bytes(43, 6 * MIB)));
  // twice is refused, and said in the dialog; the key is now pinned
  await page.locator('#share-send').click();
  await page.locator('#share-sent', { hasText: 'already a member' }).waitFor();
  t.like(r.calls.filter((x) => x.channel === 'share:member').at(-1), { answer: { ok: false, error: { code: 'conflict' } } });
  await page.locator('#share-lookup').click();
  await page.locator('#share-pinned', { hasText: 'Same key as before.' }).waitFor();
  await page.keyboard.press('Escape');
  await page.locator('dialog#share').waitFor({ state: 'detached' });
  await clean(t);
});

test.serial('settings: start at login through Electron\'s app, the language applied to the window at once and kept', async (t) => {
  const { page } = r;
  await page.locator('#nav-settings').click();
  await page.locator('#settings-form').waitFor();
  t.false(await page.locator('#set-login').isChecked());
  await page.locator('#set-login').check();
  await screenshot(page, 'desktop-settings.png');
  await page.locator('#settings-save').click();
  await page.locator('#settings-saved:not(:empty)').waitFor();
  t.deepEqual(app.loginItems, [{ openAtLogin: true }], 'app.setLoginItemSettings asked once');
  t.like(await app.ok('settings:get', {}), { startAtLogin: true });
  // French, by keyboard: the window changes before anything else is asked
  await page.locator('#set-language').focus();
  await page.keyboard.press('Home'); // Nederlands, Français, English
  await page.keyboard.press('ArrowDown');
  t.is(await page.locator('#set-language').inputValue(), 'fr');
  await page.locator('#settings-save').focus();
  await page.keyboard.press('Enter');
  await page.locator('#nav-settings[aria-current="page"]', { hasText: 'Paramètres' }).waitFor();
  t.is(await page.locator('html').getAttribute('lang'), 'fr');
  t.is(await page.locator('#nav-folders').textContent(), 'Dossiers');
  t.like(await app.ok('settings:get', {}), { language: 'fr', startAtLogin: true });
  t.deepEqual(app.loginItems, [{ openAtLogin: true }], 'start at login unchanged: not asked again');
  await screenshot(page, 'desktop-settings-fr.png');
  // kept: a new window (a reload) opens in French, with the settings as main holds them
  await page.reload();
  await page.locator('#main[data-state="view-folders"]').waitFor();
  t.is(await page.locator('html').getAttribute('lang'), 'fr');
  await page.locator('#nav-settings').click();
  t.true(await page.locator('#set-login').isChecked());
  t.is(await page.locator('#set-language').inputValue(), 'fr');
  // off again, and back to English
  await page.locator('#set-login').uncheck();
  await page.locator('#set-language').selectOption('en');
  await page.locator('#settings-save').click();
  await page.locator('#nav-settings[aria-current="page"]', { hasText: 'Settings' }).waitFor();
  t.deepEqual(app.loginItems, [{ openAtLogin: true }, { openAtLogin: false }]);
  t.like(await app.ok('settings:get', {}), { language: 'en', startAtLogin: false });
  await clean(t);
});

test.serial('removing a folder stops its engine, keeps its files, and says where they are', async (t) => {
  const { page } = r;
  const id = me.folderId;
  await page.locator('#nav-folders').click();
  await page.locator(`#folder-${id}-remove`).click();
  await page.locator('dialog#remove').waitFor();
  t.regex((await page.locator('dialog#remove').textContent())!, /The files stay on this computer/);
  await page.locator('#remove-ok').click();
  // main's status event may empty the list before the answer comes: the sentence follows the answer
  await page.locator('#status', { hasText: `Kluis no longer syncs Beleid A. Its files stay in ${me.dir}.` }).waitFor();
  await page.locator('#folders-empty').waitFor();
  t.like(r.calls.filter((x) => x.channel === 'folders:remove'), [{ request: { folderId: id }, answer: { ok: true } }]);
  t.deepEqual((await status()).folders, []);
  t.is(textOf(me.dir, 'nota.txt'), 'nota van de CLI\n', 'the files stay');
  t.true(read(me.dir, 'plannen/plan-0.bin').equals(bytes(40, 6 * MIB)));
  // the engine is stopped: a new file is not synced (the app polled every second and settled in 100 ms before)
  write(me.dir, 'na-verwijderen.txt', 'niet meer gesynchroniseerd\n');
  await sleep(4000);
  await syncOnce(cli);
  t.is(textOf(cli.dir, 'na-verwijderen.txt'), null);
  // and unlocked: it can be added again (to its space), and then it syncs
  t.like(await app.ok('folders:add', { path: me.dir, space: { spaceId: me.spaceId } }), { folderId: id });
  await until('the new file on the other device', async () => {
    await syncOnce(cli);
    return textOf(cli.dir, 'na-verwijderen.txt') !== null;
  }, 60_000);
  await clean(t);
});
