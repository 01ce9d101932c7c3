// Folder links in headless Chromium (issue 17 items 3 and 4): `kluis share link FOLDER` on a real synced folder, the
// page lists the snapshot (names, sizes, folder structure), saves one file and all of them as a ZIP (the picker, and
// the service-worker stream), byte for byte against the synced files (the ZIP checked with Info-ZIP's unzip);
// with a password; a changed listing on the server is refused as tampering; no request leaves the origin.
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import type { Browser, Page } from 'playwright-core';
import { openServerDb, repoRoot } from '../helpers/server.js';
import { bytes, kluis, startSyncEnv, syncOnce, write, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';
import { launchChromium, openPage, readSaved, savedFiles, sinkKind, waitForState, type PageOptions } from '../helpers/browser.js';

const SHOTS = path.join(repoRoot, 'docs/screenshots');
const PURPOSE = 'Dossier 2024/117: stukken voor de advocaat';
let env: SyncEnv;
let a: SyncClient;
let browser: Browser;
/** The files under the linked folder "Dossier 117", by path inside it. */
const FILES: Record<string, Buffer> = {
  'advies.pdf': bytes(1, 2_600_000),
  'Bijlagen/scan één.tiff': bytes(2, 700_000),
  'Bijlagen/Foto’s/gevel.jpg': bytes(3, 150_000),
  'notities.txt': Buffer.from('Te bespreken op 12 december.\n'),
  'leeg.txt': Buffer.alloc(0),
};

test.before(async () => {
  env = await startSyncEnv({ accounts: ['A'], storage: 'fs' });
  a = (await env.newSpace([env.accounts[0]!])).clients[0]!;
  for (const [rel, data] of Object.entries(FILES)) write(a.dir, `Dossier 117/${rel}`, data);
  write(a.dir, 'Ander dossier/geheim.txt', 'niet in de link');
  await syncOnce(a);
  browser = await launchChromium();
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-3000)}`);
});
test.after.always(async () => {
  await browser?.close();
  await env?.close();
});

/** `kluis share link` on the folder; the page URL on this test's server port. */
async function folderLink(t: ExecutionContext, args: string[] = [], stdin = ''): Promise<{ url: string; linkId: string }> {
  const r = await kluis(a.home, ['share', 'link', path.join(a.dir, 'Dossier 117'), '--purpose', PURPOSE, ...args], { stdin });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /5 file\(s\)/);
  const m = /\/s\/([A-Za-z0-9_-]{22})#([A-Za-z0-9_-]{43})$/.exec(r.stdout.trim());
  if (!m) throw new Error(`not a link: ${r.stdout}`);
  return { url: `${env.url}/s/${m[1]}#${m[2]}`, linkId: m[1]! };
}

function sameOrigin(t: ExecutionContext, requests: string[]): void {
  const origin = new URL(env.url).origin;
  t.deepEqual(requests.filter((u) => !u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin), [], 'no request leaves the server origin');
}

async function shot(page: Page, name: string): Promise<void> {
  const image = await page.screenshot({ fullPage: true });
  if (image.length === 0) throw new Error(`empty screenshot ${name}`);
  if (process.env.KLUIS_SCREENSHOTS === '1') writeFileSync(path.join(SHOTS, name), image);
}

async function openFolder(url: string, options: PageOptions = {}) {
  const tp = await openPage(browser, options);
  await tp.page.goto(url);
  await waitForState(tp.page, 'locked');
  await tp.page.click('#open');
  await waitForState(tp.page, 'ready');
  return tp;
}

/** Unpacks a ZIP with Info-ZIP (which checks every CRC) and compares each file with FILES. */
function checkZip(t: ExecutionContext, zip: Buffer): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'kluis-zip-'));
  try {
    writeFileSync(path.join(dir, 'all.zip'), zip);
    // Info-ZIP turns the UTF-8 names (flag bit 11) into the locale's charset: a UTF-8 locale keeps them.
    const utf8 = { cwd: dir, env: { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' } };
    execFileSync('unzip', ['-tq', 'all.zip'], utf8);
    execFileSync('unzip', ['-q', 'all.zip', '-d', 'out'], utf8);
    const listed = execFileSync('zipinfo', ['-1', 'all.zip'], { ...utf8, encoding: 'utf8' }).trim().split('\n').sort();
    t.deepEqual(listed, Object.keys(FILES).map((p) => `Dossier 117/${p}`).sort());
    for (const [rel, data] of Object.entries(FILES)) t.true(readFileSync(path.join(dir, 'out', 'Dossier 117', ...rel.split('/'))).equals(data), rel);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test.serial('the page lists the folder made by the CLI, saves one file and all of them as a ZIP, byte for byte', async (t) => {
  const link = await folderLink(t, ['--max-downloads', '3']);
  const tp = await openFolder(link.url, { locale: 'nl-BE' });
  const { page } = tp;
  t.is(await page.locator('#title').textContent(), 'Dossier 117');
  const rows = await page.locator('li.file').evaluateAll((lis) => lis.map((li) => [li.querySelector('.name')!.textContent, li.querySelector('button')!.getAttribute('data-path')]));
  t.deepEqual(rows.map((r) => r[1]).sort(), Object.keys(FILES).sort());
  t.deepEqual(await page.locator('li.dir > .dirname').allTextContents(), ['Bijlagen/', 'Foto’s/']);
  t.false((await page.content()).includes('geheim.txt'), 'a file outside the folder is not in the snapshot');
  await shot(page, 'link-folder-nl.png');

  await page.click('button[data-path="Bijlagen/scan één.tiff"]');
  await waitForState(page, 'done');
  await page.click('#download-all');
  // The card is still "done" from the first file: wait for the ZIP's own note.
  await page.locator('#card[data-state="done"] p.ok', { hasText: 'Dossier 117.zip' }).waitFor({ timeout: 120_000 });
  const saved = await savedFiles(page);
  t.deepEqual(saved.map((s) => s.name), ['scan één.tiff', 'Dossier 117.zip']);
  t.true((await readSaved(page, saved[0]!.file)).equals(FILES['Bijlagen/scan één.tiff']!), 'one file byte for byte');
  checkZip(t, await readSaved(page, saved[1]!.file));
  t.is(await sinkKind(page), 'fs-access');
  sameOrigin(t, tp.requests);
  await tp.context.close();

  // One opening of the link is one download, whatever it saved.
  const list = JSON.parse((await kluis(a.home, ['--json', 'share', 'list'])).stdout) as { links: (k.LinkInfo & { path: string })[] };
  const mine = list.links.find((l) => l.linkId === link.linkId)!;
  t.like(mine, { kind: 'folder', downloads: 1, maxDownloads: 3, path: 'Dossier 117' });
});

test.serial('on a phone, without the file picker: the service-worker stream saves the ZIP; screenshots', async (t) => {
  const link = await folderLink(t);
  const tp = await openFolder(link.url, { save: 'worker', viewport: { width: 390, height: 844 }, locale: 'en-GB' });
  await shot(tp.page, 'link-folder-phone-en.png');
  const [download] = await Promise.all([tp.page.waitForEvent('download', { timeout: 60_000 }), tp.page.click('#download-all')]);
  t.is(download.suggestedFilename(), 'Dossier 117.zip');
  checkZip(t, readFileSync(await download.path()));
  await waitForState(tp.page, 'done');
  t.is(await sinkKind(tp.page), 'service-worker');
  await shot(tp.page, 'link-folder-done-phone-en.png');
  await tp.context.close();
});

test.serial('a password folder link: a wrong password is refused, the right one lists and saves', async (t) => {
  const link = await folderLink(t, ['--password-stdin'], 'Zomer in Gent\n');
  const tp = await openPage(browser, { locale: 'fr-BE' });
  await tp.page.goto(link.url);
  t.is(await waitForState(tp.page, 'locked'), 'Un dossier a été partagé avec vous');
  await tp.page.fill('#password', 'zomer in gent');
  await tp.page.click('button[type="submit"]');
  await tp.page.locator('#pw-problem:not(:empty)').waitFor({ timeout: 60_000 });
  await tp.page.fill('#password', 'Zomer in Gent');
  await tp.page.click('button[type="submit"]');
  await waitForState(tp.page, 'ready', 60_000);
  await tp.page.click('button[data-path="notities.txt"]');
  await waitForState(tp.page, 'done');
  const saved = await savedFiles(tp.page);
  t.true((await readSaved(tp.page, saved[0]!.file)).equals(FILES['notities.txt']!));
  await tp.context.close();
});

test.serial('a listing changed on the server is refused as tampering; a revoked folder link says so', async (t) => {
  const link = await folderLink(t);
  const db = await openServerDb(env.dataDir);
  try {
    const row = await db('links').where({ id: link.linkId }).first('listing');
    const sealed = k.fromBase64Url(row.listing);
    sealed[60]! ^= 1;
    await db('links').where({ id: link.linkId }).update({ listing: k.toBase64Url(sealed) });
  } finally {
    await db.destroy();
  }
  const tp = await openPage(browser, { locale: 'en-GB' });
  await tp.page.goto(link.url);
  await waitForState(tp.page, 'locked');
  await tp.page.click('#open');
  t.is(await waitForState(tp.page, 'error-tampered'), 'The file was tampered with');
  await tp.context.close();

  const revoked = await folderLink(t);
  t.is((await kluis(a.home, ['share', 'revoke', revoked.linkId])).code, 0);
  const tp2 = await openPage(browser, { locale: 'nl-BE' });
  await tp2.page.goto(revoked.url);
  t.is(await waitForState(tp2.page, 'error-revoked'), 'Deze link werd ingetrokken');
  await tp2.context.close();
});

test.serial('a connection lost in the middle of "download all" offers a retry that completes the same ZIP', async (t) => {
  const link = await folderLink(t);
  const tp = await openFolder(link.url, { locale: 'en-GB' });
  // The second chunk request (the second file, its ZIP header already written) fails as if the network went away.
  let requests = 0;
  await tp.page.route('**/chunks', (route) => (++requests === 2 ? route.abort('internetdisconnected') : route.continue()));
  await tp.page.click('#download-all');
  t.is(await waitForState(tp.page, 'error-network'), 'The connection was lost');
  await tp.page.getByRole('button', { name: 'Try again' }).click();
  await tp.page.locator('#card[data-state="done"] p.ok', { hasText: 'Dossier 117.zip' }).waitFor({ timeout: 120_000 });
  const saved = await savedFiles(tp.page);
  t.is(saved.length, 1, 'the same save continued, no second file');
  checkZip(t, await readSaved(tp.page, saved[0]!.file));
  await tp.context.close();
});
