// The remote-wipe order honoured by the desktop app (desktop/src/electron/main/core.ts over account/wipe.ts): an
// administrator revokes the app's device with a wipe; the app's watching engine is refused (401), the app asks,
// wipes the synced files, keys and session, tells the renderer with a `wiped` event and shows one notification.
import test from 'ava';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { initCrypto } from '@kluis/shared';
import { call } from '../helpers/api.js';
import { sessionOf, startSyncEnv, syncOnce, write, type SyncEnv } from '../helpers/sync-env.js';
import { startTestApp, until, type TestApp } from '../helpers/desktop-app.js';

let env: SyncEnv;
let app: TestApp;

test.before(async () => {
  await initCrypto();
  env = await startSyncEnv({ accounts: ['A', 'B'], storage: 'fs' });
});
test.after.always(async () => {
  await app?.close();
  await env?.close();
});

test.serial('a wipe order: the app removes the synced files and its keys, sends the wiped event and notifies', async (t) => {
  const space = await env.newSpace();
  const a = space.clients[0]!;
  write(a.dir, 'dossier/1.txt', 'een');
  write(a.dir, 'dossier/2.txt', 'twee');
  await syncOnce(a);
  const b = env.accounts[1]!;
  app = await startTestApp(env.root, 'wiped');
  await app.ok('account:login', { server: env.url, email: b.email, password: b.password, deviceName: 'Verloren laptop' });
  const dir = path.join(env.root, 'app-wiped-folder');
  const { folderId } = await app.ok('folders:add', { path: dir, space: { spaceId: space.spaceId } });
  await until('the files', async () => existsSync(path.join(dir, 'dossier/2.txt')) && (await app.ok('app:status', {})).folders[0]?.lastSyncedAt);
  const deviceId = (await app.ok('devices:list', {})).devices.find((d) => d.current)!.deviceId;
  write(dir, 'nota-vanmiddag.txt', 'nog niet gesynchroniseerd');
  await app.ok('folders:pause', { folderId });

  const r = await call(env.url, 'POST', `/api/v1/orgs/${env.orgId}/devices/${deviceId}/revoke`, { token: sessionOf(env.accounts[0]!.home).token, json: { wipe: true } });
  t.is(r.status, 200, JSON.stringify(r.body));
  // The app's next contact with the server: here a request of the renderer.
  t.like(await app.call('spaces:list', {}), { ok: false, error: { code: 'unauthenticated' } });
  const wiped = await until('the wiped event', () => app.events.find((e) => e.type === 'wiped'));
  t.like(wiped, { type: 'wiped', removed: { folders: 1 } });
  if (wiped.type !== 'wiped') return;
  t.true(wiped.removed.files >= 3);
  t.deepEqual(wiped.removed.unsynced, [path.join(dir, 'nota-vanmiddag.txt')], 'the unsynced edit is named locally');
  t.false(existsSync(path.join(dir, 'dossier/1.txt')));
  t.false(existsSync(path.join(dir, 'nota-vanmiddag.txt')));
  t.false(readdirSync(app.home).includes('keys.json'));
  t.false(readdirSync(app.home).includes('session.json'));
  t.like(await app.call('app:status', {}), { ok: true, value: { account: null, folders: [] } });
  t.true(app.shown.some((n) => /wiped/.test(n.title) && /revoked this device/.test(n.body)), JSON.stringify(app.shown));
  // The signed report reached the server.
  const report = await call(env.url, 'GET', `/api/v1/devices/${deviceId}/wipe-report`, { token: sessionOf(b.home).token });
  t.is(report.status, 200, JSON.stringify(report.body));
  t.is(report.body.report.unsynced, 1);
  t.truthy(report.body.report.sealedUnsyncedPaths, 'the paths were sealed to the account (the public key is in clear in the sealed keys.json)');
});
