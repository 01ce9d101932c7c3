// The admin console's acting views in headless Chromium against a real server and real `kluis` clients (issue 18):
// an admin signs in with TOTP and signs a device out with a wipe from the Devices view, and the kluis client of that
// device wipes itself at its next contact (folder files, keys and index gone; the report names an unsynced edit made
// before), after which the console shows the device as wiped with the report's counts. Also: a domain created and a
// space put in it, a domain admin appointed, and a person blocked then unblocked, each through the console and checked
// on the server. Screenshots with KLUIS_SCREENSHOTS=1.
import test from 'ava';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { call, newColleague, totpCode, type User } from '../helpers/api.js';
import { foreignRequests, launchChromium, openPage, screenshot, type TrackedPage } from '../helpers/browser.js';
import { kluis, sessionOf, startSyncEnv, syncOnce, write, type Space, type SyncEnv } from '../helpers/sync-env.js';

let env: SyncEnv;
let browser: Browser;
let tp: TrackedPage;
let page: Page;
let adminToken: string;
let consoleAdmin: User;
let space: Space;

test.before(async () => {
  env = await startSyncEnv({ storage: 'fs', accounts: ['A', 'B'] });
  // The first account is the main admin; its CLI session passed 2-step verification in startSyncEnv.
  adminToken = sessionOf(env.accounts[0]!.home).token;
  consoleAdmin = await newColleague(env.url, { orgId: env.orgId, token: adminToken } as User, 'backup_admin');
  space = await env.newSpace(undefined, 'Sociale dienst');
  browser = await launchChromium();
  tp = await openPage(browser, { viewport: { width: 1280, height: 860 } });
  page = tp.page;
  await page.goto(`${env.url}/admin/`);
  await state('login');
  await page.fill('#email', consoleAdmin.email);
  await page.fill('#password', consoleAdmin.password);
  await page.click('#signin');
  await state('totp');
  // The enrolment spent the current step's code: the next step's is the one an app would show next.
  await page.fill('#code', totpCode(consoleAdmin.totpSecret!, Date.now() + 30_000));
  await page.click('#verify');
  await state('view-people');
});
test.afterEach.always((t) => {
  if (!t.passed) t.log(`server log:\n${env.srv.output().slice(-3000)}`);
});
test.after.always(async () => {
  await browser?.close();
  await env?.close();
});

async function state(s: string): Promise<void> {
  await page.locator(`#main[data-state="${s}"]`).waitFor({ timeout: 60_000 });
}

async function open(view: string, table: string): Promise<void> {
  await page.click(`#nav-${view}`);
  await state(`view-${view}`);
  await page.locator(table).waitFor();
}

test.serial('an admin signs a device out with a wipe in the console; its kluis client wipes itself at its next contact and the console shows the report', async (t) => {
  const b = space.clients[1]!;
  write(b.dir, 'notes.txt', 'synced notes');
  write(b.dir, 'reports/summary.txt', 'summary');
  t.is((await syncOnce(b)).uploaded, 3);
  const deviceId = sessionOf(b.home).deviceId;
  // An edit made before the wipe and never synced.
  write(b.dir, 'notes.txt', 'notes edited offline, not yet synced');

  await open('devices', '#devices');
  const row = page.locator('#devices tbody tr', { hasText: b.account.email });
  t.regex(await row.textContent() ?? '', /active/);
  t.false((await page.locator('#devices').textContent() ?? '').includes(deviceId), 'names and e-mail addresses, not ids');
  await page.click(`#wipe-${deviceId}`);
  const dialog = page.locator('dialog#confirm');
  await dialog.waitFor();
  const said = await dialog.textContent() ?? '';
  t.regex(said, /next time it contacts the server/);
  t.regex(said, /never connects again is never wiped/);
  t.regex(said, /not synced yet are lost/);
  t.is(await page.locator(':focus').getAttribute('id'), 'confirm-cancel', 'the safe choice has the focus');
  await screenshot(page, 'admin-devices-wipe-confirm.png', false);
  await page.click('#confirm-ok');
  await row.filter({ hasText: 'wipe ordered' }).waitFor();
  t.regex(await row.textContent() ?? '', new RegExp(`Ordered .* by ${consoleAdmin.email.replace(/[.]/g, '\\.')}.*Not delivered yet`));
  t.regex(await page.locator('#status').textContent() ?? '', /was ordered/);

  // The device's next contact: kluis sync wipes and reports.
  const run = await kluis(b.home, ['sync', b.dir, '--space', b.spaceId, '--once'], { env: { KLUIS_SYNC_GIVE_UP_MS: '30000' } });
  t.is(run.code, 3, run.stderr);
  t.regex(run.stderr, /revoked by an administrator and wiped itself/);
  t.true(run.stdout.includes(`unsynced: ${path.join(b.dir, 'notes.txt')}`), run.stdout);
  t.false(existsSync(b.dir), 'the synced folder\'s files are gone');
  t.deepEqual(readdirSync(b.home).filter((f) => !f.startsWith('.')), [], 'keys, session and index are gone');

  await open('devices', '#devices');
  await row.filter({ hasText: 'wiped' }).waitFor();
  const text = await row.textContent() ?? '';
  t.regex(text, /Delivered /);
  t.regex(text, /Reported /);
  t.regex(text, /Files removed: 2 .*synced folders: 1/);
  t.regex(text, /Unsynced edits lost: 1/);
  t.is(await page.locator(`#wipe-${deviceId}`).count(), 0, 'no second wipe of a wiped device');
  await screenshot(page, 'admin-devices.png');
  await page.setViewportSize({ width: 390, height: 844 });
  await screenshot(page, 'admin-devices-phone.png');
  await page.setViewportSize({ width: 1280, height: 860 });
});

test.serial('domains: an admin creates one, puts a space in it and appoints a domain admin, through the console', async (t) => {
  const member = env.accounts[1]!;
  t.is((await call(env.url, 'POST', `/api/v1/orgs/${env.orgId}/domains`, { token: adminToken, json: { name: 'Financiën' } })).status, 201);
  await open('domains', '#domain-spaces');
  await page.locator('.domain[data-name="Financiën"]').waitFor();
  await page.click('#domain-create');
  await page.locator('dialog#confirm').waitFor();
  await page.fill('#confirm-input', 'Welzijn');
  await page.keyboard.press('Enter');
  const card = page.locator('.domain[data-name="Welzijn"]');
  await card.waitFor();
  const domains = (await call(env.url, 'GET', `/api/v1/orgs/${env.orgId}/domains`, { token: adminToken })).body.domains;
  const domain = domains.find((d: { name: string }) => d.name === 'Welzijn');
  t.truthy(domain);

  await page.selectOption(`#space-domain-${space.spaceId}`, { label: 'Welzijn' });
  await page.click(`#space-save-${space.spaceId}`);
  await card.locator('li', { hasText: 'Sociale dienst' }).waitFor();
  const spaces = (await call(env.url, 'GET', `/api/v1/orgs/${env.orgId}/spaces`, { token: adminToken })).body.spaces;
  t.is(spaces.find((s: { spaceId: string }) => s.spaceId === space.spaceId).domainId, domain.domainId);

  await page.selectOption(`#appoint-${domain.domainId}`, { label: member.email });
  await page.click(`#appoint-btn-${domain.domainId}`);
  await page.locator(`#dismiss-${domain.domainId}-${member.userId}`).waitFor();
  await page.locator('#domain-spaces').waitFor();
  const person = (await call(env.url, 'GET', `/api/v1/orgs/${env.orgId}/people/${member.userId}`, { token: adminToken })).body;
  t.is(person.role, 'domain_admin');
  t.deepEqual(person.domains.map((d: { name: string }) => d.name), ['Welzijn']);
  t.regex(await page.locator('#status').textContent() ?? '', /is now a domain admin of Welzijn/);
  await screenshot(page, 'admin-domains.png');
});

test.serial('people: an admin blocks a person and unblocks them through the console; offboarding says its window', async (t) => {
  const person = await newColleague(env.url, { orgId: env.orgId, token: adminToken } as User);
  await open('people', '#people');
  const row = page.locator('#people tbody tr', { hasText: person.email });
  t.regex(await row.textContent() ?? '', /Member.*active/);
  await page.click(`#block-${person.userId}`);
  await page.locator('dialog#confirm').waitFor();
  await page.click('#confirm-ok');
  await row.filter({ hasText: 'blocked' }).waitFor();
  t.is((await call(env.url, 'GET', `/api/v1/orgs/${env.orgId}/people/${person.userId}`, { token: adminToken })).body.status, 'blocked');
  t.is((await call(env.url, 'GET', '/api/v1/me', { token: person.token })).status, 401, 'the blocked person\'s session ended');

  await page.click(`#unblock-${person.userId}`);
  await page.locator('dialog#confirm').waitFor();
  await page.click('#confirm-ok');
  await row.filter({ hasText: 'active' }).waitFor();
  t.is((await call(env.url, 'GET', `/api/v1/orgs/${env.orgId}/people/${person.userId}`, { token: adminToken })).body.status, 'active');
  t.regex(await page.locator('#status').textContent() ?? '', /was unblocked/);

  // Offboarding is explained and can be called off: Escape closes the dialog and nothing happens.
  await page.click(`#offboard-${person.userId}`);
  const said = await page.locator('dialog#confirm').textContent() ?? '';
  t.regex(said, /renewed by the client of one of its managers/);
  t.regex(said, /Until then/);
  await screenshot(page, 'admin-offboard-confirm.png', false);
  await page.keyboard.press('Escape');
  await page.locator('dialog#confirm').waitFor({ state: 'detached' });
  t.is(await page.locator(':focus').getAttribute('id'), `offboard-${person.userId}`, 'focus returns to the button');
  t.is((await call(env.url, 'GET', `/api/v1/orgs/${env.orgId}/people/${person.userId}`, { token: adminToken })).body.status, 'active');
  await screenshot(page, 'admin-people-acts.png');
  t.deepEqual(foreignRequests(env.url, tp.requests), []);
});
