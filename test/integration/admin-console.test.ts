// The admin console /admin/ in headless Chromium against the real server (issue 18 item 3): sign-in with the password
// proof made in the browser and a TOTP code computed here with the server's library, a wrong and a replayed code
// refused, enrolment of a new admin, the views (people, spaces, links with a revocation, the audit trail filtered,
// paged and exported to CSV that matches the API), an auditor who sees the audit trail only, a member who cannot get
// in, the password in no request, strict CSP and nothing from another origin. Screenshots with KLUIS_SCREENSHOTS=1.
import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import * as k from '@kluis/shared';
import type { Browser, Page } from 'playwright-core';
import { startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, call, newColleague, newOrg, newSpace, signup, totpCode, type User } from '../helpers/api.js';
import { quickLink } from '../helpers/links.js';
import { foreignRequests, launchChromium, openPage, screenshot } from '../helpers/browser.js';

const PASSWORD = 'correct horse battery staple';
let srv: RunningServer;
let browser: Browser;
let admin: User;
let member: User;
let auditor: User;
let linkId: string;
/** What the pages' console said about the CSP: a page that tries eval (zod's compiled parsers) shows up here. */
const cspReports: string[] = [];
/** Every request of every page: URL and body, to look for the password. */
const sent: string[] = [];

test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
  admin = (await newOrg(srv.url, srv.dataDir, 'OCMW Gent')).admin;
  member = await newColleague(srv.url, admin, 'member');
  auditor = await newColleague(srv.url, admin, 'auditor');
  const backup = await newColleague(srv.url, admin, 'backup_admin');
  const social = await newSpace(srv.url, member, 'Sociale dienst');
  const finance = await newSpace(srv.url, backup, 'Financiën');
  const add = await addMemberBody(srv.url, member, social.spaceId, social.pair, backup, 'editor');
  await call(srv.url, 'POST', `/api/v1/spaces/${social.spaceId}/members`, { token: member.token, json: add });
  linkId = await quickLink(srv.url, member, social, { purpose: 'Advies voor de rechtbank', maxDownloads: 5 });
  await quickLink(srv.url, backup, finance, { purpose: 'Begroting 2027 voor de raad', days: 30 });
  // A denial, for the outcome filter.
  await call(srv.url, 'GET', `/api/v1/orgs/${admin.orgId}/audit`, { token: member.token });
  browser = await launchChromium();
});
test.afterEach.always((t) => {
  if (!t.passed) t.log(`server log:\n${srv.output().slice(-3000)}`);
});
test.after.always(async () => {
  await browser?.close();
  await srv?.stop();
});

async function open(options: { locale?: string; viewport?: { width: number; height: number } } = {}) {
  const tp = await openPage(browser, { viewport: { width: 1280, height: 860 }, ...options });
  tp.context.on('request', (r) => sent.push(`${r.url()} ${r.postData() ?? ''} ${JSON.stringify(r.headers())}`));
  tp.page.on('dialog', (d) => void d.accept());
  tp.page.on('console', (m) => { if (/Content Security Policy|unsafe-eval/i.test(m.text())) cspReports.push(m.text()); });
  await tp.page.goto(`${srv.url}/admin/`);
  await state(tp.page, 'login');
  return tp;
}

async function state(page: Page, s: string): Promise<void> {
  await page.locator(`#main[data-state="${s}"]`).waitFor({ timeout: 60_000 });
}

async function signIn(page: Page, email: string, password = PASSWORD): Promise<void> {
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('#signin');
}

async function enterCode(page: Page, code: string): Promise<void> {
  await page.fill('#code', code);
  await page.click('#verify');
}

const shot = screenshot;

function sameOrigin(t: ExecutionContext, requests: string[]): void {
  t.deepEqual(foreignRequests(srv.url, requests), []);
  t.true(requests.length > 0);
}

/** Signs in as an admin-role user whose authenticator was enrolled by the helper (its step is spent): next step's code. */
async function signInWithCode(page: Page, user: User, view = 'view-people'): Promise<void> {
  await signIn(page, user.email);
  await state(page, 'totp');
  await enterCode(page, totpCode(user.totpSecret!, Date.now() + 30_000));
  await state(page, view);
}

test.serial('the console is served with the strict CSP; assets by exact name only', async (t) => {
  const res = await fetch(`${srv.url}/admin/`);
  t.is(res.status, 200);
  t.is(res.headers.get('content-security-policy'), "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
  t.is(res.headers.get('referrer-policy'), 'no-referrer');
  t.is((await fetch(`${srv.url}/admin/assets/main.js`)).status, 200);
  t.is((await fetch(`${srv.url}/admin/assets/..%2F..%2Fkluis.sqlite3`)).status, 404);
  t.is((await fetch(`${srv.url}/admin`, { redirect: 'manual' })).headers.get('location'), '/admin/');
});

test.serial('an admin signs in with a TOTP code: a wrong code and a replayed one are refused; the views show names, not ids', async (t) => {
  const { page, context, requests } = await open();
  await shot(page, 'admin-login.png');
  await signIn(page, admin.email);
  await state(page, 'totp');
  await enterCode(page, '000000' === totpCode(admin.totpSecret!) ? '111111' : '000000');
  await page.locator('#problem:not(:empty)').waitFor();
  t.regex(await page.locator('#problem').textContent() ?? '', /not right/);
  t.is(await page.locator('#code').getAttribute('aria-invalid'), 'true');
  await shot(page, 'admin-totp.png');
  // The newest step's code: the enrolment (this step) used the current one.
  const code = totpCode(admin.totpSecret!, Date.now() + 30_000);
  await enterCode(page, code);
  await state(page, 'view-people');
  t.is(await page.locator('#user').textContent(), admin.email);
  await page.locator('#people').waitFor();
  const people = await page.locator('#people tbody tr').allTextContents();
  t.true(people.some((r) => r.includes(member.email) && r.includes('Member')));
  t.true(people.some((r) => r.includes(auditor.email) && r.includes('Auditor') && r.includes('Set up')));
  t.false(people.join(' ').includes(member.userId));
  await shot(page, 'admin-people.png');

  await page.click('#nav-spaces');
  await state(page, 'view-spaces');
  await page.locator('#spaces').waitFor();
  const spaces = await page.locator('#spaces tbody tr').allTextContents();
  const social = spaces.find((r) => r.includes('Sociale dienst'))!;
  t.truthy(social);
  t.true(social.includes(`${member.email} (manager)`));
  t.true(social.includes('internal'));
  await shot(page, 'admin-spaces.png');

  // The same code from another browser: already used.
  const other = await open();
  await signIn(other.page, admin.email);
  await state(other.page, 'totp');
  await enterCode(other.page, code);
  await other.page.locator('#problem:not(:empty)').waitFor();
  t.regex(await other.page.locator('#problem').textContent() ?? '', /already used/);
  t.is(await other.page.locator('#main').getAttribute('data-state'), 'totp');
  await other.context.close();

  await page.click('#nav-devices');
  await state(page, 'view-devices');
  await page.locator('#devices').waitFor();
  const devices = await page.locator('#devices tbody tr').allTextContents();
  t.true(devices.some((r) => r.includes(member.email) && r.includes('active')));
  t.false(devices.join(' ').includes(member.deviceId));
  sameOrigin(t, requests);
  await context.close();
});

test.serial('links: every link of the organisation with its maker; an admin revokes one', async (t) => {
  const { page, context } = await open();
  const backup = await newColleague(srv.url, admin, 'backup_admin');
  await signInWithCode(page, backup);
  await page.click('#nav-links');
  await state(page, 'view-links');
  await page.locator('#links').waitFor();
  const row = page.locator('#links tbody tr', { hasText: 'Advies voor de rechtbank' });
  t.regex(await row.textContent() ?? '', new RegExp(`${member.email.replace(/[.]/g, '\\.')}.*0 of 5.*active`));
  await shot(page, 'admin-links.png');
  await page.click(`#revoke-${linkId}`);
  await page.locator('#links tbody tr', { hasText: 'Advies voor de rechtbank' }).filter({ hasText: 'revoked' }).waitFor();
  t.regex(await page.locator('#status').textContent() ?? '', /was revoked/);
  t.is((await fetch(`${srv.url}/api/v1/public/links/${linkId}`)).status, 410);
  const trail = await call(srv.url, 'GET', `/api/v1/orgs/${admin.orgId}/audit?target=${linkId}&action=link.revoke`, { token: admin.token });
  t.is(trail.body.entries[0].actorUserId, backup.userId);
  await context.close();
});

test.serial('the audit trail: filtered by who, what and outcome, paged, exported to CSV rows that match the API', async (t) => {
  const { page, context } = await open({ locale: 'en-GB' });
  await signInWithCode(page, await newColleague(srv.url, admin, 'backup_admin'));
  await page.click('#nav-audit');
  await state(page, 'view-audit');
  await page.locator('#audit').waitFor();
  await page.locator('#chain[data-ok="true"]').waitFor();
  t.regex(await page.locator('#chain').textContent() ?? '', /Chain intact/);
  // Page 1 is full (25 rows) and there is an older page.
  t.is(await page.locator('#audit tbody tr').count(), 25);
  await page.click('#older');
  await page.locator('#newer:not([disabled])').waitFor();
  t.true(await page.locator('#audit tbody tr').count() > 0);
  await page.click('#newer');
  await page.locator('#newer[disabled]').waitFor();
  await shot(page, 'admin-audit.png');

  await page.selectOption('#f-actor', member.userId);
  await page.fill('#f-action', 'link.create');
  await page.click('#apply');
  await page.locator('#audit tbody tr').first().filter({ hasText: 'link.create' }).waitFor();
  const rows = await page.locator('#audit tbody tr').allTextContents();
  const api = await call(srv.url, 'GET', `/api/v1/orgs/${admin.orgId}/audit?actor=${member.userId}&action=link.create`, { token: admin.token });
  t.is(rows.length, api.body.entries.length);
  t.true(rows.length >= 1);
  t.true(rows.every((r) => r.includes(member.email) && r.includes('link.create')));

  await page.fill('#f-action', '');
  await page.selectOption('#f-outcome', 'denied');
  await page.click('#apply');
  await page.locator('#audit tbody tr', { hasText: 'audit.search' }).waitFor();
  const denied = await page.locator('#audit tbody tr').allTextContents();
  t.true(denied.length >= 1);
  t.true(denied.every((r) => r.includes('denied') && r.includes(member.email)));

  // Export what the filters match; the file equals the API's export of the same filters.
  await page.selectOption('#f-outcome', '');
  await page.fill('#f-target', 'Sociale dienst');
  await page.click('#apply');
  await page.locator('#audit tbody tr').first().waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const csv = readFileSync((await download.path())!, 'utf8');
  t.regex(download.suggestedFilename(), /\.csv$/);
  const space = (await call(srv.url, 'GET', `/api/v1/orgs/${admin.orgId}/admin/spaces`, { token: admin.token })).body.spaces.find((s: { name: string }) => s.name === 'Sociale dienst');
  const fromApi = await fetch(`${srv.url}/api/v1/orgs/${admin.orgId}/audit/export?format=csv&actor=${member.userId}&target=${space.spaceId}`, { headers: { authorization: `Bearer ${admin.token}` } });
  t.is(csv, await fromApi.text());
  const lines = csv.trim().split('\r\n');
  const search = await call(srv.url, 'GET', `/api/v1/orgs/${admin.orgId}/audit?actor=${member.userId}&target=${space.spaceId}`, { token: admin.token });
  t.is(lines.length - 1, search.body.entries.length);
  t.true(lines.length > 1);
  t.regex(await page.locator('#status').textContent() ?? '', /Exported/);
  await shot(page, 'admin-audit-filtered.png');
  await context.close();
});

test.serial('an auditor sees the audit trail and incidents, nothing else', async (t) => {
  const { page, context } = await open({ locale: 'nl-BE' });
  t.is(await page.locator('h1').textContent(), 'Aanmelden bij het beheer');
  await signInWithCode(page, auditor, 'view-audit');
  t.deepEqual(await page.locator('#nav button').allTextContents(), ['Audittrail', 'Incidenten']);
  await page.locator('#audit').waitFor();
  t.regex(await page.locator('#chain').textContent() ?? '', /Keten intact|De auditketen/);
  await page.click('button[lang="fr"]');
  t.is(await page.locator('#nav button').first().textContent(), 'Journal d’audit');
  await page.locator('#audit caption', { hasText: 'Journal d’audit' }).waitFor();
  await page.locator('#chain[data-ok="true"]').waitFor();
  await shot(page, 'admin-auditor-fr.png');
  await context.close();
});

test.serial('a new admin enrols an authenticator in the console; a member cannot get in', async (t) => {
  const email = `new-admin-${Math.random().toString(36).slice(2)}@example.be`;
  const inv = await call(srv.url, 'POST', `/api/v1/orgs/${admin.orgId}/invites`, { token: admin.token, json: { email, role: 'backup_admin' } });
  await signup(srv.url, inv.body.token, email);
  const { page, context } = await open({ viewport: { width: 390, height: 844 } });
  await signIn(page, email);
  await state(page, 'enrol');
  const secret = (await page.locator('#totp-secret').textContent())!.replace(/\s+/g, '');
  t.regex(secret, /^[A-Z2-7]{32}$/);
  t.true((await page.locator('#totp-uri').getAttribute('href'))!.startsWith('otpauth://totp/Kluis:'));
  await shot(page, 'admin-enrol-phone.png');
  await enterCode(page, totpCode(secret));
  await state(page, 'view-people');
  await page.click('#nav-audit');
  await page.locator('#audit').waitFor();
  await shot(page, 'admin-audit-phone.png', false);
  await context.close();

  const m = await open();
  await signIn(m.page, member.email);
  await m.page.locator('#problem:not(:empty)').waitFor();
  t.regex(await m.page.locator('#problem').textContent() ?? '', /administrators|access admins/);
  t.is(await m.page.locator('#main').getAttribute('data-state'), 'login');
  t.is(await m.page.locator('#nav').isHidden(), true);
  await m.context.close();
});

test.serial('no page ran into its own CSP (zod runs jitless: web/common/zod-config.ts)', (t) => {
  t.deepEqual(cspReports, []);
});

test.serial('the password never left the browser: no request carried it', (t) => {
  t.true(sent.length > 20);
  for (const text of [PASSWORD, encodeURIComponent(PASSWORD), Buffer.from(PASSWORD).toString('base64')]) {
    t.false(sent.some((s) => s.includes(text)), text);
  }
  // The session token travels in the Authorization header only, never in a URL.
  t.false(sent.some((s) => /[?&](token|access_token)=/.test(s.split(' ')[0]!)));
});
