// The desktop renderer's screens with SAMPLE answers (checked by the bridge against the contract's response schemas),
// in headless Chromium under the app's CSP, through the real preload bundle and registerIpc
// (test/helpers/desktop-bridge.ts): what is easier to show with fixed answers than with a live server — validation in
// the page before any request, the exact requests sent, a colleague whose key changed, sign-in without invitation and
// Dutch from the system language, cancelling a revoke, settings, live progress numbers. These tests say nothing
// about the real handlers: the same screens driven end to end against them (onboarding, adding a folder and its sync,
// a link opened on the link page, conflicts, versions, devices) are test/integration/desktop-renderer-flows.test.ts;
// the folders screen over a bare FolderHost is test/integration/desktop-renderer.test.ts.
import test from 'ava';
import type { Browser } from 'playwright-core';
import type { FolderStatus, Settings } from '../../desktop/dist/electron/ipc/contract.js';
import type { Handlers } from '../../desktop/dist/electron/main/ipc.js';
import { launchChromium, screenshot } from '../helpers/browser.js';
import { openRenderer, serveRenderer, type RendererPage, type RendererServer } from '../helpers/desktop-bridge.js';

let browser: Browser;
let renderer: RendererServer;

test.before(async () => {
  browser = await launchChromium();
  renderer = await serveRenderer();
});
test.after.always(async () => {
  await browser?.close();
  await renderer?.close();
});

const ID = (n: number) => `${'A'.repeat(21)}${n}`; // 22 base64url characters: 16 bytes
const ACCOUNT = { server: 'https://kluis.leuven.be', email: 'an.peeters@leuven.be', fingerprint: '4821 0937 5512 8834 0216 7741', recoveryKeyConfirmed: true };
const FOLDER: FolderStatus = {
  folderId: '1', path: '/home/an/Kluis/Dossiers', spaceId: ID(1), spaceName: 'Dossiers sociale dienst', state: 'up-to-date',
  pendingFiles: 0, pendingBytes: 0, rate: null, etaSeconds: null, conflicts: 1, lastSyncedAt: Date.parse('2026-11-29T09:41:00Z'), error: null,
};
const RECOVERY = 'anker bever citroen duin egel fjord gitaar haven iglo jasmijn kompas lantaarn';

/** Sample answers for the channels main does not serve yet; each call's request is recorded by the bridge. */
function sample(signedIn: boolean): Partial<Handlers> {
  let account = signedIn ? ACCOUNT : null;
  let conflicts = [{ path: 'verslag.docx', copyPath: 'verslag (conflict Jan 2026-11-29).docx', at: Date.parse('2026-11-29T09:12:00Z'), otherAuthor: 'jan.claes@leuven.be' }];
  const devices = [
    { deviceId: ID(2), name: 'Laptop An', lastSeenAt: Date.parse('2026-11-29T09:40:00Z'), current: true, revoked: false },
    { deviceId: ID(3), name: 'Pc bureau 2.14', lastSeenAt: Date.parse('2026-11-20T15:03:00Z'), current: false, revoked: false },
    { deviceId: ID(4), name: 'Oude laptop', lastSeenAt: Date.parse('2026-06-02T11:00:00Z'), current: false, revoked: true },
  ];
  let settings: Settings = { language: 'en', startAtLogin: true, uploadLimit: null, downloadLimit: 2048 * 1024, notifications: true };
  return {
    'app:status': async () => ({ version: '0.1.0', account, folders: account ? [FOLDER] : [], keysProtected: 'os-keychain' }),
    'account:signup': async ({ server, email }) => ((account = { ...ACCOUNT, server, email, recoveryKeyConfirmed: false }), { account, recoveryKey: RECOVERY }),
    'account:login': async ({ server, email }) => ((account = { ...ACCOUNT, server, email }), { account }),
    'account:confirmRecovery': async () => ({ ok: true }),
    'account:logout': async () => ((account = null), { ok: true }),
    'spaces:list': async () => ({ spaces: [{ spaceId: ID(1), name: 'Dossiers sociale dienst', role: 'editor', classification: 'social-personal' }] }),
    'folders:choose': async () => ({ path: '/home/an/Kluis/Vergaderingen' }),
    'folders:add': async ({ path }) => ({ ...FOLDER, folderId: '2', path, state: 'syncing', conflicts: 0, lastSyncedAt: null }),
    'folders:open': async () => ({ ok: true }),
    'conflicts:list': async () => ({ conflicts }),
    'conflicts:resolve': async () => ((conflicts = []), { ok: true }),
    'share:link': async ({ expiresDays, maxDownloads }) => ({ link: `https://kluis.leuven.be/s/${ID(5)}#k3Jd8sLq0Pz7Yx2Vb9Nm4Rt6Wc1Ue5Ha8Gf3Ki0Oj`, linkId: ID(5), expiresAt: Date.parse('2026-11-29T10:00:00Z') + expiresDays * 86_400_000, maxDownloads }),
    'share:colleague': async ({ email }) => ({ email, fingerprint: '7730 1184 2296 5501 9943 0127', pinned: 'changed' }),
    'share:file': async () => ({ shareId: ID(6), fingerprint: '7730 1184 2296 5501 9943 0127' }),
    'devices:list': async () => ({ devices }),
    'devices:revoke': async ({ deviceId }) => ((devices.find((d) => d.deviceId === deviceId)!.revoked = true), { ok: true }),
    'settings:get': async () => settings,
    'settings:set': async (change) => (settings = { ...settings, ...change }),
  };
}

async function open(signedIn: boolean, locale = 'en-GB'): Promise<RendererPage> {
  const r = await openRenderer(browser, sample(signedIn), { locale });
  await r.page.goto(renderer.url);
  await r.page.locator(signedIn ? '#main[data-state="view-folders"]' : '#main[data-state="welcome"]').waitFor();
  return r;
}

const sent = (r: RendererPage, channel: string) => r.calls.filter((c) => c.channel === channel).map((c) => c.request);

async function clean(t: { deepEqual: (a: unknown, b: unknown, m?: string) => void }, r: RendererPage): Promise<void> {
  t.deepEqual(await r.violations(), [], 'no CSP violation');
  t.deepEqual(r.problems, [], 'every answer inside its schema');
  t.deepEqual(r.requests.filter((u) => !u.startsWith(renderer.url) && !u.startsWith('data:')), [], 'no request off the app');
  await r.close();
}

test('onboarding: server, sign-up with an invitation, the recovery key checked, the fingerprint (sample answers)', async (t) => {
  const r = await open(false);
  const { page } = r;
  t.is(await page.locator('#title').textContent(), 'Welcome to Kluis');
  t.true(await page.locator('#nav').isHidden(), 'no navigation before an account exists');
  // validation in the page: nothing reaches main until the request would parse
  await page.locator('#welcome-submit').click();
  t.is(await page.locator('#server-problem').textContent(), 'Type the whole address, starting with https://');
  t.true(await page.locator('#server').evaluate((e) => e === (globalThis as any).document.activeElement)); // eslint-disable-line @typescript-eslint/no-explicit-any
  await page.locator('#server').fill('https://kluis.leuven.be');
  await page.locator('#email').fill('an.peeters@');
  await page.locator('#invite').fill('INV-7731-2290');
  await page.locator('#password').fill('kort');
  await page.locator('#password').press('Enter');
  t.is(await page.locator('#password-problem').textContent(), 'The password needs at least 12 characters.');
  await page.locator('#password').fill('een lange zin als wachtwoord');
  await page.locator('#welcome-submit').click();
  t.regex((await page.locator('#email-problem').textContent())!, /^Check this field: /);
  t.is(await page.locator('#email').getAttribute('aria-invalid'), 'true');
  t.deepEqual(sent(r, 'account:signup'), []);
  await page.locator('#email').fill('an.peeters@leuven.be');
  await page.locator('#welcome-submit').click();
  await page.locator('#main[data-state="recovery"]').waitFor();
  t.deepEqual(sent(r, 'account:signup'), [{ server: 'https://kluis.leuven.be', email: 'an.peeters@leuven.be', invite: 'INV-7731-2290', password: 'een lange zin als wachtwoord', deviceName: 'Linux-pc' }]);
  t.is(await page.locator('#password').count(), 0, 'the password field is gone');

  // the recovery key, shown once; two of its words typed back
  t.deepEqual(await page.locator('#recovery-key li').allTextContents(), RECOVERY.split(' '));
  const n = async (id: string) => Number(/(\d+)$/.exec((await page.locator(`label[for="${id}"]`).textContent())!)![1]) - 1;
  const [a, b] = [await n('word-a'), await n('word-b')];
  t.true(a < b && b < 12);
  await page.locator('#word-a').fill('fout');
  await page.locator('#word-b').fill(RECOVERY.split(' ')[b]!);
  await page.locator('#recovery-submit').click();
  t.is(await page.locator('#recovery-problem').textContent(), 'Those words do not match. Look at your paper again.');
  t.deepEqual(sent(r, 'account:confirmRecovery'), []);
  await page.locator('#word-a').fill(RECOVERY.split(' ')[a]!.toUpperCase());
  await page.locator('#recovery-submit').click();
  await page.locator('#main[data-state="fingerprint"]').waitFor();
  t.deepEqual(sent(r, 'account:confirmRecovery'), [{ words: [{ index: a, word: RECOVERY.split(' ')[a]!.toUpperCase() }, { index: b, word: RECOVERY.split(' ')[b]! }] }]);
  t.is(await page.locator('#fingerprint').textContent(), ACCOUNT.fingerprint);
  await page.locator('#fingerprint-continue').click();
  await page.locator('#main[data-state="view-folders"]').waitFor();
  t.is(await page.locator('#nav-folders').getAttribute('aria-current'), 'page');
  await clean(t, r);
});

test('onboarding: sign-in has no invitation field; Dutch from the system language (sample answers)', async (t) => {
  const r = await open(false, 'nl-BE');
  const { page } = r;
  t.is(await page.locator('#title').textContent(), 'Welkom bij Kluis');
  await page.locator('#mode-login').click();
  t.is(await page.locator('#mode-login').getAttribute('aria-pressed'), 'true');
  t.is(await page.locator('#invite').count(), 0);
  t.is(await page.locator('#welcome-submit').textContent(), 'Aanmelden');
  await page.locator('#server').fill('https://kluis.leuven.be');
  await page.locator('#email').fill('an.peeters@leuven.be');
  await page.locator('#password').fill('x');
  await page.locator('#welcome-submit').click();
  await page.locator('#main[data-state="fingerprint"]').waitFor();
  t.deepEqual(sent(r, 'account:login'), [{ server: 'https://kluis.leuven.be', email: 'an.peeters@leuven.be', password: 'x', deviceName: 'Linux-pc' }]);
  t.is(await page.locator('#title').textContent(), 'De vingerafdruk van uw sleutel');
  await clean(t, r);
});

test('folders: add a folder (choose, new space), live progress and the activity feed from events (sample answers)', async (t) => {
  const r = await open(true);
  const { page } = r;
  await page.locator('#add-space option[value="' + ID(1) + '"]').waitFor({ state: 'attached' });
  t.false(await page.locator('#add-submit').isVisible(), 'folded while there are folders');
  await page.locator('#add-toggle').focus();
  await page.keyboard.press('Enter');
  await page.locator('#add-submit').click();
  t.is(await page.locator('#add-path-problem').textContent(), 'Choose a folder first.');
  await page.locator('#add-choose').click();
  await page.waitForFunction(() => ((globalThis as any).document.getElementById('add-path') as { value: string }).value !== ''); // eslint-disable-line @typescript-eslint/no-explicit-any
  await page.locator('#add-new-space').fill('Vergaderingen OCMW-raad');
  await page.locator('#add-class').selectOption('confidential');
  await page.locator('#add-submit').click();
  await page.waitForFunction(() => (globalThis as any).document.getElementById('add-path').value === ''); // eslint-disable-line @typescript-eslint/no-explicit-any
  t.deepEqual(sent(r, 'folders:add'), [{ path: '/home/an/Kluis/Vergaderingen', space: { newSpaceName: 'Vergaderingen OCMW-raad', classification: 'confidential' } }]);

  // main's events: a status with progress, and activity
  await r.emit({ type: 'status', folders: [{ ...FOLDER, state: 'syncing', pendingFiles: 3, pendingBytes: 1.5 * 1024 * 1024, rate: 512 * 1024, etaSeconds: 3 }, { ...FOLDER, folderId: '2', path: '/home/an/Kluis/Vergaderingen', spaceName: 'Vergaderingen OCMW-raad', conflicts: 0, state: 'paused' }] });
  await page.locator('#folder-2').waitFor();
  t.is(await page.locator('#folder-1-line').textContent(), '3 files, 1.5 MiB to go · 512 KiB/s · about 3 s left');
  t.true(await page.locator('#folder-1-progress').isVisible());
  t.is(await page.locator('#folder-1-conflicts').textContent(), '1 conflict');
  t.is(await page.locator('#nav-conflicts-count').textContent(), '1');
  t.is(await page.locator('#folder-2-toggle').textContent(), 'Resume');
  const at = Date.parse('2026-11-29T09:40:00Z');
  await r.emit({ type: 'activity', at, folderId: '1', kind: 'downloaded', path: 'Dossier 117/verslag.pdf', detail: null });
  await r.emit({ type: 'activity', at: at + 5000, folderId: '1', kind: 'conflict', path: 'verslag.docx', detail: 'jan.claes@leuven.be' });
  await r.emit({ type: 'activity', at: at + 9000, folderId: '1', kind: 'uploaded', path: 'Dossier 117/brief.odt', detail: null });
  t.deepEqual(await page.locator('#activity .kind').allTextContents(), ['Uploaded', 'Conflict', 'Downloaded'], 'newest first');
  t.regex((await page.locator('#activity li').nth(1).textContent())!, /Dossiers · verslag\.docx · jan\.claes@leuven\.be/);
  await r.emit({ type: 'wiped', removed: { folders: 2, files: 1280, unsynced: [] } });
  t.is(await page.locator('#status').textContent(), 'Your organisation removed Kluis\'s data from this computer: 2 folders, 1,280 files.');
  await clean(t, r);
});

test('share dialog: a link with expiry, limit, password and purpose, copied; a colleague with a changed key (sample answers)', async (t) => {
  const r = await open(true);
  const { page } = r;
  await page.locator('#folder-1-share').click();
  await page.locator('dialog#share').waitFor();
  await page.locator('#share-path').fill('Dossier 117/verslag.pdf');
  await page.locator('#share-days').fill('0');
  await page.locator('#share-purpose').fill('ab');
  await page.locator('#share-create').click();
  t.is(await page.locator('#share-days-problem').textContent(), 'Between 1 and 90 days.');
  await page.locator('#share-days').fill('14');
  await page.locator('#share-limit').fill('0');
  await page.locator('#share-create').click();
  t.is(await page.locator('#share-limit-problem').textContent(), 'Between 1 and 10,000, or empty for no limit.');
  t.is(await page.locator('#share-days-problem').textContent(), '');
  await page.locator('#share-limit').fill('3');
  await page.locator('#share-create').click();
  t.is(await page.locator('#share-purpose-problem').textContent(), 'Say in a few words why (at least 3 characters).');
  t.deepEqual(sent(r, 'share:link'), []);
  await page.locator('#share-password').fill('Lente-2026!');
  await page.locator('#share-purpose').fill('Dossier 117 voor de advocaat');
  await page.locator('#share-create').click();
  await page.locator('#share-link').waitFor();
  t.deepEqual(sent(r, 'share:link'), [{ folderId: '1', path: 'Dossier 117/verslag.pdf', expiresDays: 14, maxDownloads: 3, password: 'Lente-2026!', purpose: 'Dossier 117 voor de advocaat' }]);
  t.regex(await page.locator('#share-link').inputValue(), /^https:\/\/kluis\.leuven\.be\/s\/A+5#/);
  t.is(await page.locator('#share-password').inputValue(), '', 'the password is not kept in the form');
  await page.locator('#share-copy').click();
  await page.locator('#share-copied', { hasText: 'Copied.' }).waitFor();

  await page.locator('#share-tab-colleague').click();
  t.is(await page.locator('#share-tab-colleague').getAttribute('aria-selected'), 'true');
  await page.locator('#share-email').fill('jan.claes');
  await page.locator('#share-lookup').click();
  t.regex((await page.locator('#share-email-problem').textContent())!, /^Check this field: /);
  await page.locator('#share-email').fill('jan.claes@leuven.be');
  await page.locator('#share-email').press('Enter');
  await page.locator('#share-fingerprint').waitFor();
  t.is(await page.locator('#share-fingerprint').textContent(), '7730 1184 2296 5501 9943 0127');
  t.regex((await page.locator('#share-pinned').textContent())!, /changed since last time/);
  t.is(await page.locator('#share-pinned').getAttribute('class'), 'problem');
  await page.locator('#share-send').click();
  await page.locator('#share-sent:not(:empty)').waitFor();
  t.is(await page.locator('#share-sent').textContent(), 'Shared with jan.claes@leuven.be.');
  t.deepEqual(sent(r, 'share:file'), [{ folderId: '1', path: 'Dossier 117/verslag.pdf', email: 'jan.claes@leuven.be', role: 'viewer' }]);
  await screenshot(page, 'desktop-share-key-changed.png', false);
  await clean(t, r);
});

test('devices: revoke asks first, cancel sends nothing (sample answers)', async (t) => {
  const r = await open(true);
  const { page } = r;
  await page.locator('#nav-devices').click();
  await page.locator(`#device-${ID(3)}`).waitFor();
  t.is(await page.locator(`#device-${ID(2)} .badge`).textContent(), 'This computer');
  t.is(await page.locator(`#device-${ID(4)} .badge`).textContent(), 'Revoked');
  t.is(await page.locator(`#device-${ID(2)} button`).count(), 0, 'this computer cannot be revoked from here');
  await page.locator(`#device-${ID(3)}-revoke`).click();
  await page.locator('dialog#revoke').waitFor();
  await page.keyboard.press('Escape');
  await page.locator('dialog#revoke').waitFor({ state: 'detached' });
  t.deepEqual(sent(r, 'devices:revoke'), []);
  await page.locator(`#device-${ID(3)}-revoke`).click();
  await page.locator('#revoke-ok').click();
  await page.locator(`#device-${ID(3)} .badge`).waitFor();
  t.deepEqual(sent(r, 'devices:revoke'), [{ deviceId: ID(3) }]);
  t.is(await page.locator(`#device-${ID(3)} .badge`).textContent(), 'Revoked');
  await clean(t, r);
});

test('settings: bandwidth limits, start at login, language (sample answers)', async (t) => {
  const r = await open(true);
  const { page } = r;
  await page.locator('#nav-settings').click();
  await page.locator('#settings-form').waitFor();
  t.is(await page.locator('#set-download').inputValue(), '2048');
  t.is(await page.locator('#set-upload').inputValue(), '');
  t.true(await page.locator('#set-login').isChecked());
  t.is(await page.locator('#settings-fingerprint').textContent(), ACCOUNT.fingerprint);
  t.regex((await page.locator('#settings-keys').textContent())!, /keychain/);
  await page.locator('#set-upload').fill('8');
  await page.locator('#settings-save').click();
  t.is(await page.locator('#set-upload-problem').textContent(), 'A number of at least 16, or empty.');
  t.deepEqual(sent(r, 'settings:set'), []);
  await page.locator('#set-upload').fill('512');
  await page.locator('#set-login').uncheck();
  await page.locator('#set-language').selectOption('fr');
  await page.locator('#settings-save').click();
  await page.locator('#nav-settings[aria-current="page"]', { hasText: 'Paramètres' }).waitFor();
  t.deepEqual(sent(r, 'settings:set'), [{ uploadLimit: 512 * 1024, downloadLimit: 2048 * 1024, startAtLogin: false, notifications: true, language: 'fr' }]);
  t.is(await page.locator('html').getAttribute('lang'), 'fr');
  await clean(t, r);
});
