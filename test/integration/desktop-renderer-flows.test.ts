// The desktop renderer (web/desktop/) in headless Chromium driving the REAL main process end to end: every request
// goes through the real preload bundle and registerIpc (test/helpers/desktop-bridge.ts) to the handlers appHandlers
// builds over a real AppCore (test/helpers/desktop-app.ts) against a real server; main's own events (its coalesced
// `status`, its `activity`) are forwarded to the page as webContents.send would. Stand-ins exist only for Electron's
// objects (safeStorage, dialog, shell, Notification, app). One account across the flows, in order: sign-up in the
// page, a folder added to a new space and synced, a link made in the share dialog and opened on the server's link
// page, then a conflict with a second device (the `kluis` CLI logged in as the same person) resolved, a version
// restored, and that device revoked.
import test from 'ava';
import { initCrypto } from '@kluis/shared';
import type { Browser } from 'playwright-core';
import { call } from '../helpers/api.js';
import { launchChromium, screenshot } from '../helpers/browser.js';
import { startTestApp, type TestApp } from '../helpers/desktop-app.js';
import { openRenderer, serveRenderer, type RendererPage, type RendererServer } from '../helpers/desktop-bridge.js';
import { kluis, okJson, sessionOf, startSyncEnv, type SyncEnv } from '../helpers/sync-env.js';

let env: SyncEnv;
let browser: Browser;
let renderer: RendererServer;
let app: TestApp;
let r: RendererPage;
/** what the flows share: the account made in the page, its folder */
const me = { email: `flows-${Date.now()}@example.be`, password: 'een lang wachtwoord voor de app', folderId: '', spaceId: '', spaceName: `Dossiers ${Date.now()}`, dir: '' };

test.before(async () => {
  await initCrypto();
  env = await startSyncEnv({ accounts: ['A'], storage: 'fs' });
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

async function clean(t: { deepEqual: (a: unknown, b: unknown, m?: string) => void }): Promise<void> {
  t.deepEqual(await r.violations(), [], 'no CSP violation');
  t.deepEqual(r.problems, [], 'every answer and event inside the contract, no internal error');
  t.deepEqual(r.requests.filter((u) => !u.startsWith(renderer.url) && !u.startsWith('data:')), [], 'no request off the app');
}

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
