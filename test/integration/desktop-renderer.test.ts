// The desktop app's renderer (web/desktop/) in headless Chromium, driven end to end where main's handlers exist:
// the page talks through the real preload bundle and registerIpc to the real handlers of
// desktop/src/electron/main/folders.ts (app:status, folders:pause/resume, versions:list/restore), with a real engine
// watching a real folder against a real server (test/helpers/desktop-bridge.ts). Served with the app's own CSP.
// Only folders.ts's handlers are given here, so a channel outside them shows how the page says "cannot do that yet".
// Every other screen is driven against the full appHandlers in desktop-renderer-flows.test.ts.
import test from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { initCrypto } from '@kluis/shared';
import type { Browser } from 'playwright-core';
import { loadAccount } from '../../desktop/dist/account/state.js';
import { FolderHost, folderHandlers } from '../../desktop/dist/electron/main/folders.js';
import { CSP } from '../../desktop/dist/electron/main/window.js';
import { launchChromium, screenshot } from '../helpers/browser.js';
import { RENDERER_DIR, openRenderer, serveRenderer, statusForwarder, type RendererPage, type RendererServer } from '../helpers/desktop-bridge.js';
import { read, sleep, startSyncEnv, syncOnce, textOf, until, write, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';

let env: SyncEnv;
let browser: Browser;
let renderer: RendererServer;

test.before(async () => {
  await initCrypto();
  env = await startSyncEnv({ accounts: ['A', 'B'], storage: 'fs' });
  browser = await launchChromium();
  renderer = await serveRenderer();
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-3000)}`);
});
test.after.always(async () => {
  await browser?.close();
  await renderer?.close();
  await env?.close();
});

test('the renderer\'s HTML has no inline script or style, and every file is served with the app\'s CSP', async (t) => {
  const html = readFileSync(path.join(RENDERER_DIR, 'index.html'), 'utf8');
  t.notRegex(html, /<style/i, 'no <style> element');
  t.notRegex(html, /\sstyle=/i, 'no style attribute');
  t.notRegex(html, /\son[a-z]+=/i, 'no event handler attribute');
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  t.true(scripts.length > 0);
  for (const [, attrs, body] of scripts) {
    t.regex(attrs!, /\ssrc="assets\/[a-z]+\.js"/, 'every script is a file of the app');
    t.is(body!.trim(), '', 'no inline script');
  }
  for (const file of ['', 'index.html', 'assets/main.js', 'assets/style.css']) {
    const res = await fetch(`${renderer.url}${file}`);
    t.is(res.status, 200, file);
    t.is(res.headers.get('content-security-policy'), CSP, file);
  }
  // The bundle never sets a style attribute or writes HTML (text nodes only).
  const js = readFileSync(path.join(RENDERER_DIR, 'assets/main.js'), 'utf8');
  t.notRegex(js, /\.innerHTML\s*=|setAttribute\("style"|insertAdjacentHTML/);
});

test.serial('folders: real status from a syncing FolderHost, pause and resume, versions and restore, under the CSP', async (t) => {
  const [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  write(b.dir, 'nota.txt', 'eerste nota\n');
  await syncOnce(b);
  write(b.dir, 'nota.txt', 'tweede nota, langer\n');
  await syncOnce(b);

  let r: RendererPage | undefined;
  const host: FolderHost = new FolderHost({ home: a.home, account: loadAccount(a.home), version: '0.1.0-test', keysProtected: 'file-only', recoveryKeyConfirmed: () => true, settleMs: 100, onChange: statusForwarder(() => host, () => r) });
  try {
    const added = await host.add(a.dir, a.spaceId, a.spaceName, { pollMs: 1000 });
    const id = added.folderId;
    r = await openRenderer(browser, folderHandlers(host));
    const { page } = r;
    await page.goto(renderer.url);
    await page.locator('#main[data-state="view-folders"]').waitFor();
    const card = page.locator(`#folder-${id}`);
    await card.waitFor();
    t.is(await page.locator(`#folder-${id}-name`).textContent(), path.basename(a.dir));
    t.regex((await page.locator(`#folder-${id}-path`).textContent())!, new RegExp(a.spaceName));
    // the first pass brings B's file down; the card follows the engine through status events
    await until('the first pass on disk', () => textOf(a.dir, 'nota.txt') === 'tweede nota, langer\n');
    // read the card when it shows up to date, in one go (its state, badge and line together)
    const shown = () => card.evaluate((c) => ({ state: c.getAttribute('data-state'), badge: c.querySelector('.badge')?.textContent, line: c.querySelector('.line')?.textContent }));
    let seen = await shown();
    await until('the card up to date', async () => (seen = await shown()).state === 'up-to-date');
    t.is(seen.badge, 'Up to date');
    t.regex(seen.line!, /^Last synced /);
    const fp = (await page.locator('#who-fingerprint').textContent())!;
    t.regex(fp, /^Your key: .*\d/);
    t.is(await page.locator('#nav-folders').getAttribute('aria-current'), 'page');
    await screenshot(page, 'desktop-folders.png');

    // pause by keyboard: focus the button, press Enter
    const toggle = page.locator(`#folder-${id}-toggle`);
    t.is(await toggle.textContent(), 'Pause');
    await toggle.focus();
    await page.keyboard.press('Enter');
    await page.locator(`#folder-${id}[data-state="paused"]`).waitFor();
    t.is(await toggle.textContent(), 'Resume');
    t.is(await page.locator('#status').textContent(), `${path.basename(a.dir)} is paused.`);
    t.true(await toggle.evaluate((e) => e === (globalThis as any).document.activeElement), 'focus stays on the button'); // eslint-disable-line @typescript-eslint/no-explicit-any
    await sleep(1500); // a pass already running when pause came finishes first
    write(b.dir, 'nieuw.txt', 'terwijl gepauzeerd\n');
    await syncOnce(b);
    await sleep(2500);
    t.is(textOf(a.dir, 'nieuw.txt'), null, 'not synced while paused');
    t.is(await card.getAttribute('data-state'), 'paused', 'still shown paused');
    await screenshot(page, 'desktop-folders-paused.png');
    await toggle.click();
    await until('the change after resume', () => textOf(a.dir, 'nieuw.txt') === 'terwijl gepauzeerd\n');
    await page.locator(`#folder-${id}[data-state="up-to-date"]`).waitFor({ timeout: 60_000 });
    t.is(await toggle.textContent(), 'Pause');

    // versions: bad input is refused in the page before any request; an unknown file is main's not_found
    await page.locator(`#folder-${id}-versions`).click();
    const dialog = page.locator('dialog#versions');
    await dialog.waitFor();
    const before = r.calls.length;
    await page.locator('#versions-submit').click();
    t.regex((await page.locator('#versions-path-problem').textContent())!, /Check this field/);
    t.is(await page.locator('#versions-path').getAttribute('aria-invalid'), 'true');
    t.is(r.calls.length, before, 'nothing sent for an empty path');
    await page.locator('#versions-path').fill('bestaat-niet.txt');
    await page.locator('#versions-submit').click();
    await page.locator('#versions-problem:not(:empty)').waitFor();
    t.like(r.calls.at(-1), { channel: 'versions:list', answer: { ok: false, error: { code: 'not_found' } } });
    await page.locator('#versions-path').fill('nota.txt');
    await page.locator('#versions-path').press('Enter');
    await page.locator('#versions-list li.item').nth(1).waitFor();
    t.is(await page.locator('#versions-list li.item').count(), 2);
    t.is(await page.locator('#version-0 .badge').textContent(), 'Current');
    t.regex((await page.locator('#version-0 .meta').textContent())!, new RegExp(b.account.email.replace(/[.+]/g, '\\$&')));
    await screenshot(page, 'desktop-versions.png', false);
    await page.locator('#version-1-restore').click();
    await page.locator('#versions-done').waitFor();
    await until('the restored content on disk', () => textOf(a.dir, 'nota.txt') === 'eerste nota\n');
    await page.locator('#versions-list li.item').nth(2).waitFor();
    t.is(await page.locator('#versions-list li.item').count(), 3, 'the restore is a new version');
    await syncOnce(b);
    t.is(read(b.dir, 'nota.txt').toString(), 'eerste nota\n');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    t.is(await page.evaluate(() => (globalThis as any).document.activeElement?.id), `folder-${id}-versions`, 'focus returns to the opener'); // eslint-disable-line @typescript-eslint/no-explicit-any

    // a channel main does not serve yet is said plainly, not hidden
    await page.locator(`#folder-${id}-open`).click();
    await until('the answer', async () => (await page.locator('#status').textContent()) === 'This version of Kluis cannot do that yet.');

    // a screen whose handlers main does not have yet says so, in place of its content
    await page.locator('#nav-devices').click();
    t.is(await page.locator('#devices-problem').textContent(), 'This version of Kluis cannot do that yet.');
    t.like(r.calls.at(-1), { channel: 'devices:list', answer: { ok: false, error: { code: 'unknown_channel' } } });
    await page.locator('#nav-folders').click();
    await card.waitFor();

    // the language switch: French, kept for the next start
    await page.locator('#langs button[lang="fr"]').click();
    t.is(await page.locator('#nav-folders').textContent(), 'Dossiers');
    await until('the card up to date', async () => (seen = await shown()).state === 'up-to-date');
    t.is(seen.badge, 'À jour');
    await page.reload();
    await page.locator(`#folder-${id}`).waitFor();
    t.is(await page.locator('html').getAttribute('lang'), 'fr');
    await page.locator('#langs button[lang="en"]').click();

    t.deepEqual(await r.violations(), [], 'no CSP violation');
    t.deepEqual(r.requests.filter((u) => !u.startsWith(renderer.url) && !u.startsWith('data:')), [], 'no request off the app');
    t.deepEqual(r.problems, []);
    t.true(r.calls.every((c) => ['app:status', 'spaces:list', 'folders:pause', 'folders:resume', 'folders:open', 'devices:list', 'versions:list', 'versions:restore'].includes(c.channel)), r.calls.map((c) => c.channel).join());
    await r.close();

    // 200 % zoom of the window's default size (1040×720): 520×360 CSS pixels at twice the density
    const zoomed = await openRenderer(browser, folderHandlers(host), { viewport: { width: 520, height: 360 }, deviceScaleFactor: 2 });
    await zoomed.page.goto(renderer.url);
    await zoomed.page.locator(`#folder-${id}`).waitFor();
    const overflow = await zoomed.page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth - (globalThis as any).innerWidth); // eslint-disable-line @typescript-eslint/no-explicit-any
    t.true(overflow <= 0, `no horizontal scrolling at 200 % (${overflow} px too wide)`);
    await screenshot(zoomed.page, 'desktop-folders-200.png');
    await zoomed.close();
  } finally {
    await r?.close().catch(() => undefined);
    await host.close();
  }
});
