// Parts of the desktop app's main process that need no server: what protects the keys (keystore.ts), the
// coalescing of notifications (notifications.ts) and of status events (events.ts), recovery-key words
// (account-handlers.ts) and conflict-copy names (conflicts.ts).
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { keyProtection } from '../../desktop/dist/electron/main/keystore.js';
import { Notifier, noticeText } from '../../desktop/dist/electron/main/notifications.js';
import { StatusRelay } from '../../desktop/dist/electron/main/events.js';
import { checkRecoveryWords } from '../../desktop/dist/electron/main/account-handlers.js';
import { parseConflictCopy } from '../../desktop/dist/electron/main/conflicts.js';
import { bandwidthOf } from '../../desktop/dist/electron/main/core.js';
import { folderState } from '../../desktop/dist/electron/main/folders.js';
import { Throughput } from '../../desktop/dist/electron/main/rate.js';
import type { AppEvent } from '../../desktop/dist/electron/ipc/contract.js';
import { keychain } from '../helpers/desktop-app.js';

test('keys: the OS keychain where safeStorage has one; a 0600 file on Linux without a keyring (basic_text) or without encryption', (t) => {
  t.is(keyProtection(keychain(true), 'linux').mode, 'os-keychain');
  t.is(keyProtection(keychain(true, 'kwallet5'), 'linux').mode, 'os-keychain');
  const weak = keyProtection(keychain(true, 'basic_text'), 'linux');
  t.is(weak.mode, 'file-only');
  t.is(weak.sealer, undefined);
  t.is(keyProtection(keychain(false), 'win32').mode, 'file-only');
  t.is(keyProtection(keychain(true, 'basic_text'), 'win32').mode, 'os-keychain', 'the backend question is Linux\'s only');
  const p = keyProtection(keychain(true), 'darwin');
  t.is(p.opener.open(p.sealer!.seal('geheim')), 'geheim');
});

test('notifications: one per kind and space however many notices, nothing when switched off', (t) => {
  const shown: { title: string; body: string }[] = [];
  const N = class {
    static isSupported = () => true;
    constructor(private readonly n: { title: string; body: string }) {}
    show() {
      shown.push(this.n);
    }
  };
  let enabled = true;
  const n = new Notifier(N, { windowMs: 10_000, enabled: () => enabled });
  for (let i = 0; i < 500; i++) n.add({ kind: 'conflict', scope: 'Dossiers', path: `f${i}.txt` });
  n.add({ kind: 'conflict', scope: 'Personeel', path: 'loon.xlsx' });
  n.add({ kind: 'shared-with-me', scope: 'b@example.be' });
  n.add({ kind: 'shared-with-me', scope: 'b@example.be' });
  n.flush();
  t.deepEqual(shown.map((s) => s.body), [
    '500 files in Dossiers were changed on two devices; both copies are kept.',
    'loon.xlsx in Personeel was changed on two devices; both copies are kept.',
    'b@example.be shared 2 files with you.',
  ]);
  enabled = false;
  n.add({ kind: 'error', scope: 'Dossiers', detail: 'schijf vol' });
  t.deepEqual(n.flush(), []);
  t.is(shown.length, 3);
  t.deepEqual(noticeText([{ kind: 'refused', scope: 'Dossiers', path: 'a.txt', detail: 'bad signature' }]), { title: 'Kluis: refused', body: 'a.txt in Dossiers was refused: bad signature.' });
});

test('status events: at most one per interval, always the latest state', async (t) => {
  const sent: AppEvent[] = [];
  let n = 0;
  const relay = new StatusRelay(async () => [{ n: ++n } as never], (e) => sent.push(e), 100);
  const start = Date.now();
  while (Date.now() - start < 1000) {
    relay.changed();
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  const elapsed = Date.now() - start;
  await new Promise((resolve) => setTimeout(resolve, 300));
  relay.stop();
  t.true(sent.length >= 2, `${sent.length} events`);
  t.true(sent.length <= Math.ceil(elapsed / 100) + 1, `${sent.length} events in ${elapsed} ms`);
  t.deepEqual(sent.at(-1), { type: 'status', folders: [{ n }] }, 'the last event carries the latest state');
});

test('recovery key words: case and look-alikes tolerated, a wrong or missing group refused', (t) => {
  const key = 'ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567-ABCD-EFGH-IJKL-MNOP-QRST-UVWX';
  t.notThrows(() => checkRecoveryWords(key, [{ index: 0, word: 'abcd' }, { index: 2, word: '1JKL' }]));
  t.throws(() => checkRecoveryWords(key, [{ index: 0, word: 'ABCD' }, { index: 1, word: 'EFGI' }]), { message: /group 2 does not match/ });
  t.throws(() => checkRecoveryWords(key, [{ index: 0, word: 'ABCD' }, { index: 0, word: 'ABCD' }]), { message: /asked twice/ });
  t.throws(() => checkRecoveryWords(key, [{ index: 14, word: 'ABCD' }, { index: 0, word: 'ABCD' }]), { message: /no group 15/ });
});

test('conflict copies: the original and the time read back from the name', (t) => {
  t.deepEqual(parseConflictCopy('map/nota (conflict Werkpost 2026-11-29 1605).txt'), { path: 'map/nota.txt', copyPath: 'map/nota (conflict Werkpost 2026-11-29 1605).txt', at: Date.UTC(2026, 10, 29, 16, 5) });
  t.like(parseConflictCopy('Makefile (conflict pc 2 2026-01-02 0304 2)'), { path: 'Makefile' });
  t.is(parseConflictCopy('nota (kopie).txt'), null);
  t.is(bandwidthOf({ uploadLimit: null, downloadLimit: null }), 0);
  t.is(bandwidthOf({ uploadLimit: 1_000_000, downloadLimit: 200_000 }), 200_000);
});

test('packaging: electron-builder.yml names the built entry point, icons that exist, and keeps sqlite3 out of the asar', (t) => {
  const root = path.resolve(fileURLToPath(import.meta.url), '../../..');
  const yml = readFileSync(path.join(root, 'electron-builder.yml'), 'utf8');
  const main = /^\s+main: (\S+)$/m.exec(yml)?.[1];
  t.is(main, 'dist/electron/main/index.js');
  t.true(existsSync(path.join(root, 'desktop', main!)), 'built by tsc -b');
  for (const icon of yml.match(/icon: (\S+)/g)!.map((l) => l.slice('icon: '.length))) {
    const png = readFileSync(path.join(root, icon));
    t.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], `${icon} is a PNG`);
    t.is(png.readUInt32BE(16), 512, `${icon} is 512 px wide`);
  }
  t.regex(yml, /asarUnpack:\n\s+- "\*\*\/node_modules\/sqlite3\/\*\*"/);
  t.regex(yml, /target: \[AppImage, deb\]/);
  t.regex(yml, /target: \[nsis\]/);
  t.regex(yml, /appId: be\.kluis\.desktop/);
  t.true(existsSync(path.join(root, 'desktop/assets/tray.png')));
});

test('folder state: a folder that was up to date stays so while the engine only looks; moving files is syncing', (t) => {
  t.is(folderState('scanning', false, true), 'up-to-date', 'a poll of an up-to-date folder does not flash "syncing"');
  t.is(folderState('scanning', false, false), 'syncing', 'the first look of a new folder is syncing');
  t.is(folderState('uploading', false, true), 'syncing');
  t.is(folderState('downloading', false, true), 'syncing');
  t.is(folderState('idle', false), 'up-to-date');
  t.is(folderState('paused', true, true), 'paused');
  t.is(folderState('scanning', true, true), 'error');
  t.is(folderState('stopped', false), 'offline');
});

test('live progress: the rate over the last 5 s of the engine\'s reports, the time left at it, falling when nothing moves', (t) => {
  const m = new Throughput(5000, 1000);
  t.is(m.rate(0), null, 'nothing known');
  m.add('uploading', 0, 0);
  m.add('uploading', 300_000, 400);
  t.is(m.rate(500), null, 'half a second says nothing about the speed');
  // 1 MB/s for 10 s, reported every 100 ms in bursts
  for (let at = 500; at <= 10_000; at += 100) m.add('uploading', at * 1000, at);
  t.is(m.rate(10_000), 1_000_000);
  t.is(m.eta(25_000_000, 10_000), 25);
  // a burst of small files reported in the same millisecond moves the rate a little, not by orders of magnitude
  m.add('uploading', 10_000_000 + 200_000, 10_000);
  t.true(m.rate(10_001)! < 1_100_000, String(m.rate(10_001)));
  // nothing moves for 3 s: the rate falls and the time left grows; after the window, 0 and no time left
  t.true(m.rate(13_000)! < 700_000);
  t.is(m.rate(16_000), 0);
  t.is(m.eta(1000, 16_000), null);
  // a new phase (downloading) or a new pass (fewer bytes done) starts over
  m.add('downloading', 5000, 16_100);
  t.is(m.rate(16_500), null);
  m.add('downloading', 2_005_000, 18_100);
  t.is(m.rate(18_100), 1_000_000);
  m.add('downloading', 10, 18_200);
  t.is(m.rate(18_300), null);
  m.reset();
  t.is(m.rate(30_000), null);
  t.is(m.eta(100, 30_000), null);
});

test('live progress: the rate counts from the first bytes moved, not the pass\'s start, on a machine slow to begin', (t) => {
  const m = new Throughput(5000, 1000);
  const MiB = 1024 * 1024;
  // the pass starts (nothing done), files are done before any batch (same bytes), the first batch goes 6 s later
  m.add('uploading', 0, 0);
  m.add('uploading', 0, 3000);
  m.add('uploading', 2 * MiB, 6000);
  t.is(m.rate(6500), null, 'one movement says how much, not how fast');
  // then a 2 MiB batch every 2 s: 1 MiB/s, not 4 MiB over the 8 s since the start
  m.add('uploading', 4 * MiB, 8000);
  t.is(m.rate(8000), MiB);
  m.add('uploading', 4 * MiB, 9000); // a file done, no byte moved
  m.add('uploading', 6 * MiB, 10_000);
  t.is(m.rate(10_000), MiB);
  t.is(m.eta(18 * MiB, 10_000), 18);
  // steps at the limit read between 0.6 and 1 of it, never above
  for (let at = 12_000; at <= 30_000; at += 2000) m.add('uploading', (at / 2000) * 2 * MiB, at);
  for (let now = 30_000; now < 32_000; now += 100) {
    const r = m.rate(now)!;
    t.true(r <= MiB && r > 0.6 * MiB, `${r} at ${now}`);
  }
});
