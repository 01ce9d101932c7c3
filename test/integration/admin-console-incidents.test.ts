// The admin console's Incidents view in headless Chromium against a real server (issue 20 §1; docs/admin.md
// "Incidents"): a security advisor (auditor) signs in with TOTP, finds the incident the rules opened with its severity,
// opens it (facts, timeline of audit entries with people named by e-mail), acknowledges it, adds a note, marks it a
// suspected data leak (the 72-hour deadline counts down in the detail and the list) and closes it; each act is checked
// on the server. Dutch and French, a phone width, no request to another origin. Screenshots with KLUIS_SCREENSHOTS=1.
import test from 'ava';
import type { Browser, Page } from 'playwright-core';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { call, newColleague, newOrg, totpCode, type User } from '../helpers/api.js';
import { foreignRequests, launchChromium, openPage, screenshot, type TrackedPage } from '../helpers/browser.js';

let srv: RunningServer;
let browser: Browser;
let tp: TrackedPage;
let page: Page;
let main: User;
let auditor: User;
let member: User;
let incidentId: string;

test.before(async () => {
  srv = await startServer({ KLUIS_INCIDENT_INTERVAL_MS: '200', KLUIS_INCIDENT_VERIFY_MS: '0' });
  const o = await newOrg(srv.url, srv.dataDir, 'OCMW Brugge');
  main = o.admin;
  auditor = await newColleague(srv.url, main, 'auditor');
  member = await newColleague(srv.url, main);
  // An incident for the view: a member refused again and again (threshold lowered for the test).
  const org = `/api/v1/orgs/${o.orgId}`;
  if ((await call(srv.url, 'PUT', `${org}/incident-settings`, { token: main.token, json: { denials: 6 } })).status !== 200) throw new Error('settings');
  for (let n = 0; n < 6; n++) await call(srv.url, 'GET', `${org}/audit`, { token: member.token });
  for (const until = Date.now() + 30_000; !incidentId && Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
    const list = k.IncidentList.parse((await call(srv.url, 'GET', `${org}/incidents`, { token: auditor.token })).body).incidents;
    incidentId = list.find((i) => i.rule === 'repeated_denials' && i.subject === member.userId)?.incidentId ?? '';
  }
  if (!incidentId) throw new Error('no incident opened');
  browser = await launchChromium();
  tp = await openPage(browser, { viewport: { width: 1280, height: 860 } });
  page = tp.page;
  await page.goto(`${srv.url}/admin/`);
  await state('login');
  await page.fill('#email', auditor.email);
  await page.fill('#password', auditor.password);
  await page.click('#signin');
  await state('totp');
  await page.fill('#code', totpCode(auditor.totpSecret!, Date.now() + 30_000));
  await page.click('#verify');
  await state('view-audit');
});
test.afterEach.always((t) => {
  if (!t.passed) t.log(`server log:\n${srv.output().slice(-3000)}`);
});
test.after.always(async () => {
  await browser?.close();
  await srv?.stop();
});

async function state(s: string): Promise<void> {
  await page.locator(`#main[data-state="${s}"]`).waitFor({ timeout: 60_000 });
}
const server = async () => k.IncidentDetail.parse((await call(srv.url, 'GET', `/api/v1/orgs/${main.orgId}/incidents/${incidentId}`, { token: auditor.token })).body);

test.serial('a security advisor finds the incident with its severity, opens its timeline, acknowledges it and adds a note', async (t) => {
  await page.click('#nav-incidents');
  await state('view-incidents');
  const row = page.locator('#incidents tbody tr', { hasText: 'One account was refused many times' });
  await row.waitFor();
  t.regex(await row.textContent() ?? '', /Low.*open/);
  await screenshot(page, 'admin-incidents.png');
  await page.click(`#open-${incidentId}`);
  await page.locator('#incident').waitFor();
  t.is(await page.locator(':focus').getAttribute('id'), 'incident-title', 'the heading takes the focus');
  const timeline = await page.locator('#timeline tbody tr').allTextContents();
  t.is(timeline.length, 6);
  t.true(timeline.every((r) => r.includes('audit.search') && r.includes(member.email) && r.includes('denied')), timeline[0]);
  t.regex(await page.locator('#incident').textContent() ?? '', new RegExp(`About: ${member.email.replace(/[.]/g, '\\.')}`));

  await page.click('#incident-ack');
  await page.locator('#incident', { hasText: 'acknowledged' }).waitFor();
  t.regex(await page.locator('#incident').textContent() ?? '', new RegExp(`Handled by ${auditor.email.replace(/[.]/g, '\\.')}`));
  await page.fill('#note-text', 'Medewerker gebeld: verkeerde snelkoppeling naar het beheer.');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter'); // the button, by keyboard
  await page.locator('#notes li', { hasText: 'verkeerde snelkoppeling' }).waitFor();
  const s = await server();
  t.is(s.incident.status, 'acknowledged');
  t.is(s.incident.ownerUserId, auditor.userId);
  t.is(s.notes[0]!.text, 'Medewerker gebeld: verkeerde snelkoppeling naar het beheer.');
});

test.serial('marked a suspected data leak, the incident shows the 72-hour deadline counting down, in the detail and the list', async (t) => {
  await page.click('#incident-leak');
  const dialog = page.locator('dialog#confirm');
  await dialog.waitFor();
  t.regex(await dialog.textContent() ?? '', /72 hours/);
  t.is(await page.locator(':focus').getAttribute('id'), 'confirm-cancel', 'the safe choice has the focus');
  await page.click('#confirm-ok');
  await page.locator('#leak-deadline').waitFor();
  const leak = await page.locator('#leak-deadline').textContent() ?? '';
  t.regex(leak, /Suspected data leak: report it by .*7[01] h \d+ min left/);
  const s = await server();
  t.is(s.incident.deadlineAt, s.incident.leakAt! + 72 * 3_600_000);
  t.is(s.incident.severity, 'high', 'a suspected leak is at least high');
  await screenshot(page, 'admin-incident-leak.png');
  await page.click('#incidents-back');
  const row = page.locator('#incidents tbody tr', { hasText: 'One account was refused many times' });
  await row.waitFor();
  t.regex(await row.textContent() ?? '', /High.*acknowledged.*7[01] h \d+ min left/);
});

test.serial('in Dutch and French, and at a phone\'s width; closing it leaves the list', async (t) => {
  await page.click('button[lang="nl"]');
  await page.locator('#incidents caption', { hasText: 'Incidenten van OCMW Brugge' }).waitFor();
  t.regex(await page.locator('#incidents tbody tr').first().textContent() ?? '', /Hoog.*bevestigd.*nog 7[01] u/);
  await page.click(`#open-${incidentId}`);
  await page.locator('#leak-deadline').waitFor();
  t.regex(await page.locator('#leak-deadline').textContent() ?? '', /Vermoedelijk datalek: meld het tegen/);
  await page.setViewportSize({ width: 390, height: 844 });
  await screenshot(page, 'admin-incident-phone-nl.png');
  await page.setViewportSize({ width: 1280, height: 860 });
  await page.click('button[lang="fr"]');
  await page.click('#nav-incidents');
  await page.locator('#incidents caption', { hasText: 'Incidents de OCMW Brugge' }).waitFor();
  await page.click(`#open-${incidentId}`);
  await page.locator('#incident-close').waitFor();
  t.regex(await page.locator('#incident').textContent() ?? '', /Fuite de données présumée : notifiez-la avant le/);
  await page.click('#incident-close');
  await page.locator('dialog#confirm').waitFor();
  await page.click('#confirm-ok');
  await page.locator('#incident', { hasText: 'clôturé' }).waitFor();
  t.is((await server()).incident.status, 'closed');
  await page.click('#incidents-back');
  await page.locator('#incidents').waitFor();
  t.is(await page.locator(`#open-${incidentId}`).count(), 0, 'closed incidents leave the list');
  await page.click('#toggle-closed');
  await page.locator(`#open-${incidentId}`).waitFor();
  await page.click('button[lang="en"]');
  t.deepEqual(foreignRequests(srv.url, tp.requests), []);
});
