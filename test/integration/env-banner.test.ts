// The environment banner (issue 18 item 4) in headless Chromium: a non-production server marks its pages and
// web/common/env-banner.ts names the environment above them, in the page's language; production pages have none.
// Screenshot (KLUIS_SCREENSHOTS=1): docs/screenshots/link-acceptance-banner-nl.png, the link page on a phone.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import type { Browser } from 'playwright-core';
import { repoRoot, startServer, type RunningServer } from '../helpers/server.js';
import { call, newOrg, newSpace } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';
import { launchChromium, openPage, waitForState } from '../helpers/browser.js';

let browser: Browser;
const servers: RunningServer[] = [];
const secrets = mkdtempSync(path.join(tmpdir(), 'kluis-banner-'));

test.before(async () => {
  await k.initCrypto();
  browser = await launchChromium();
});
test.after.always(async () => {
  await browser?.close();
  for (const s of servers) await s.stop();
  rmSync(secrets, { recursive: true, force: true });
});

/** A link to a small file, made through the API as `kluis share link` does. */
async function makeLink(srv: RunningServer): Promise<string> {
  const owner = (await newOrg(srv.url, srv.dataDir, 'OCMW Brugge')).admin;
  const space = await newSpace(srv.url, owner, 'Dossiers');
  const f = newFile();
  const content = new TextEncoder().encode('Verslag van de raad, 12 november.\n');
  const chunk = { size: content.length, ...k.encryptChunk(f.sub, content) };
  const up = await fetch(`${srv.url}/api/v1/spaces/${space.spaceId}/chunks/upload`, { method: 'POST', headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/octet-stream' }, body: k.encodeFrames([chunk]) });
  if (up.status !== 201) throw new Error(`upload: ${up.status}`);
  const v = version(owner, space.spaceId, space.pair, 1, f, { parent: null, path: 'verslag-raad.txt', chunks: [[chunk.id, chunk.size]], hash: k.contentHash(content) });
  const commit = await call(srv.url, 'POST', `/api/v1/spaces/${space.spaceId}/commits`, { token: owner.token, json: { versions: [v.entry] } });
  if (commit.status !== 201) throw new Error(`commit: ${JSON.stringify(commit.body)}`);
  const linkId = k.newId();
  const secret = k.newLinkSecret();
  const keys = k.deriveLinkKeys(secret, null);
  const res = await call(srv.url, 'POST', `/api/v1/spaces/${space.spaceId}/links`, {
    token: owner.token,
    json: { linkId, fileId: f.fileId, versionId: v.versionId, kdf: null, authHash: k.linkAuthHash(keys.linkAuth), wrapped: k.toBase64Url(k.wrapFileKeyForLink(f.fileKey, linkId, keys)), expiresAt: Date.now() + 7 * 86_400_000, maxDownloads: null, purpose: 'Verslag voor de raad' },
  });
  if (res.status !== 201) throw new Error(`link: ${JSON.stringify(res.body)}`);
  return `${srv.url}/s/${linkId}#${secret}`;
}

test.serial('acceptance: the link page names the environment in a banner, in the page language, on a phone', async (t) => {
  // The test helpers sign up with the smallest KDF limits: this acceptance server is told to accept them.
  const srv = await startServer({ KLUIS_ENV: 'acceptance', KLUIS_KDF_OPS_LIMIT: String(k.KDF_MIN.opsLimit), KLUIS_KDF_MEM_LIMIT: String(k.KDF_MIN.memLimit) });
  servers.push(srv);
  const html = await (await fetch(`${srv.url}/s/${k.newId()}`)).text();
  t.regex(html, /^<!doctype html>\s*<html data-kluis-env="acceptance" lang="nl">/i, 'marked in the page itself: no extra request');
  const url = await makeLink(srv);
  const tp = await openPage(browser, { locale: 'nl-BE', viewport: { width: 390, height: 844 } });
  try {
    await tp.page.goto(url);
    await waitForState(tp.page, 'locked');
    const banner = tp.page.locator('#env-banner');
    t.is(await banner.innerText(), 'Acceptatieomgeving · Niet de echte dienst: alleen om te testen.');
    t.is(await banner.getAttribute('role'), 'note');
    const box = (await banner.boundingBox())!;
    t.true(box.y === 0 && box.width === 390 && box.height >= 20, `on top, full width: ${JSON.stringify(box)}`);
    const shot = await tp.page.screenshot({ fullPage: true });
    if (process.env.KLUIS_SCREENSHOTS === '1') writeFileSync(path.join(repoRoot, 'docs/screenshots/link-acceptance-banner-nl.png'), shot);
    // The language switch changes the banner with the page.
    await tp.page.click('button[lang="fr"]');
    t.is(await banner.innerText(), "Environnement d'acceptation · Pas le service réel : uniquement pour des essais.");
    await tp.page.click('button[lang="en"]');
    t.is(await banner.innerText(), 'Acceptance environment · Not the live service: for testing only.');
    t.is(await tp.page.locator('.env-banner').count(), 1, 'one banner, however often the page renders');
  } finally {
    await tp.context.close();
  }
});

test.serial('production: the link page carries no mark and shows no banner', async (t) => {
  const keyFile = path.join(secrets, 'server.key');
  writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
  const srv = await startServer({
    KLUIS_ENV: 'production', KLUIS_PUBLIC_URL: 'https://kluis.example.be', KLUIS_SERVER_KEY_FILE: keyFile, KLUIS_ALLOW_EMBEDDED_STORE: '1',
    KLUIS_METRICS_TOKEN: 'a-metrics-token-of-forty-characters-0000',
  });
  servers.push(srv);
  const html = await (await fetch(`${srv.url}/s/${k.newId()}`)).text();
  t.false(html.includes('data-kluis-env'));
  const tp = await openPage(browser, { locale: 'nl-BE', viewport: { width: 390, height: 844 } });
  try {
    await tp.page.goto(`${srv.url}/s/${k.newId()}#${k.newLinkSecret()}`);
    t.is(await waitForState(tp.page, 'error-unknown'), 'Deze link bestaat niet');
    t.is(await tp.page.locator('#env-banner').count(), 0);
    t.is(await tp.page.evaluate('document.documentElement.dataset.kluisEnv ?? null'), null);
  } finally {
    await tp.context.close();
  }
});
