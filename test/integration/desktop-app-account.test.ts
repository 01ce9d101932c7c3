// The desktop app's account, devices, spaces and settings handlers (desktop/src/electron/main/account-handlers.ts,
// settings.ts, keystore.ts) through dispatch, against a real server: sign-up with the recovery key shown once and
// confirmed, keys sealed by the (stand-in) keychain or kept in a 0600 file where there is none, login, devices,
// logout; settings persisted and applied. Electron's own objects are stand-ins that record (test/helpers/desktop-app.ts).
import test from 'ava';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { initCrypto } from '@kluis/shared';
import { call } from '../helpers/api.js';
import { sessionOf, startSyncEnv, type SyncEnv } from '../helpers/sync-env.js';
import { keychain, startTestApp, type TestApp } from '../helpers/desktop-app.js';

let env: SyncEnv;
const apps: TestApp[] = [];

test.before(async () => {
  await initCrypto();
  env = await startSyncEnv({ accounts: ['A', 'B'], storage: 'fs' });
});
test.after.always(async () => {
  for (const a of apps) await a.close().catch(() => undefined);
  await env?.close();
});

async function invite(email: string): Promise<string> {
  const r = await call(env.srv.url, 'POST', `/api/v1/orgs/${env.orgId}/invites`, { token: sessionOf(env.accounts[0]!.home).token, json: { email } });
  if (r.status !== 201) throw new Error(JSON.stringify(r.body));
  return r.body.token;
}

async function app(name: string, o: Parameters<typeof startTestApp>[2] = {}): Promise<TestApp> {
  const a = await startTestApp(env.root, name, o);
  apps.push(a);
  return a;
}

const keysFile = (home: string) => JSON.parse(readFileSync(path.join(home, 'keys.json'), 'utf8'));

test.serial('sign-up: keys sealed by the keychain, the recovery key shown once and confirmed by typing words back', async (t) => {
  const chain = keychain();
  const a = await app('signup', { safeStorage: chain });
  const email = `desk-${Date.now()}@example.be`;
  t.like(await a.call('app:status', {}), { ok: true, value: { account: null, folders: [], keysProtected: 'os-keychain' } });
  t.like(await a.call('spaces:list', {}), { ok: false, error: { code: 'unauthenticated' } }, 'nothing before a login');

  const bad = await a.call('account:signup', { server: env.url, email, invite: 'short', password: 'een lang wachtwoord', deviceName: 'Laptop' });
  t.like(bad, { ok: false, error: { code: 'validation_failed' } }, 'an invite of the wrong shape');
  t.like(await a.call('account:signup', { server: 'ftp://x', email, invite: 'x', password: 'p', deviceName: 'L' }), { ok: false, error: { code: 'bad_request' } });
  t.like(await a.call('account:signup', { server: env.url, email, invite: await invite(email), password: 'kort', deviceName: 'Laptop' }), { ok: false, error: { code: 'validation_failed' } }, 'a short password');

  const r = await a.ok('account:signup', { server: env.url, email, invite: await invite(email), password: 'een lang wachtwoord', deviceName: 'Laptop' });
  t.regex(r.recoveryKey, /^([A-Z2-7]{4}-){13}[A-Z2-7]{4}$/);
  t.like(r.account, { email, server: env.url, recoveryKeyConfirmed: false });
  const stored = keysFile(a.home);
  t.truthy(stored.sealed, 'secret keys sealed');
  t.is(stored.encSecretKey, undefined);
  t.is(stored.signSeed, undefined);
  t.true(chain.sealedCalls >= 1);
  t.is(statSync(path.join(a.home, 'keys.json')).mode & 0o777, 0o600);

  const groups = r.recoveryKey.split('-');
  t.like(await a.call('account:confirmRecovery', { words: [{ index: 0, word: groups[0] }, { index: 5, word: 'AAAA' === groups[5] ? 'BBBB' : 'AAAA' }] }), { ok: false, error: { code: 'validation_failed' } });
  t.like(await a.call('account:confirmRecovery', { words: [{ index: 0, word: groups[0] }, { index: 14, word: 'AAAA' }] }), { ok: false, error: { code: 'validation_failed' } }, 'no group 15');
  t.like(await a.call('account:confirmRecovery', { words: [{ index: 0, word: groups[0] }] }), { ok: false, error: { code: 'bad_request' } }, 'at least two words');
  t.like(await a.call('app:status', {}), { ok: true, value: { account: { recoveryKeyConfirmed: false } } });
  t.like(await a.call('account:confirmRecovery', { words: [{ index: 2, word: groups[2]!.toLowerCase() }, { index: 9, word: groups[9] }] }), { ok: true });
  t.like(await a.call('app:status', {}), { ok: true, value: { account: { email, recoveryKeyConfirmed: true }, keysProtected: 'os-keychain' } });
  t.like(await a.call('account:login', { server: env.url, email, password: 'een lang wachtwoord', deviceName: 'Laptop' }), { ok: false, error: { code: 'conflict' } }, 'already logged in');

  // A restart opens the sealed keys with the same keychain; another keychain (a reset one) cannot: log in again.
  await a.close();
  const again = await app('signup-again', { safeStorage: chain, home: a.home });
  t.like(await again.call('app:status', {}), { ok: true, value: { account: { email, recoveryKeyConfirmed: true } } });
  await again.close();
  const other = await app('signup-other', { home: a.home });
  t.like(await other.call('app:status', {}), { ok: true, value: { account: null } });
  t.like(await other.call('account:login', { server: env.url, email, password: 'een lang wachtwoord', deviceName: 'Laptop' }), { ok: true }, 'a new login opens the account again');
  t.like(await other.call('app:status', {}), { ok: true, value: { account: { email, recoveryKeyConfirmed: true } } });
});

test.serial('without a keychain the keys stay in a 0600 file, the app says so, and login, devices, spaces and logout work', async (t) => {
  const acc = env.accounts[1]!;
  const a = await app('file-only', { safeStorage: keychain(false) });
  t.like(await a.call('app:status', {}), { ok: true, value: { keysProtected: 'file-only' } });
  t.like(await a.call('account:login', { server: env.url, email: acc.email, password: 'niet het wachtwoord', deviceName: 'Desktop' }), { ok: false, error: { code: 'unauthenticated' } });
  t.like(await a.call('account:login', { server: env.url, email: 'geen-adres', password: 'x', deviceName: 'Desktop' }), { ok: false, error: { code: 'bad_request' } });
  const r = await a.ok('account:login', { server: env.url, email: acc.email, password: acc.password, deviceName: 'Desktop' });
  t.is(r.account.email, acc.email);
  t.truthy(keysFile(a.home).encSecretKey, 'file-only: the same keys.json as the CLI');
  t.is(statSync(path.join(a.home, 'keys.json')).mode & 0o777, 0o600);
  await new Promise((resolve) => setTimeout(resolve, 400));
  t.true(a.shown.some((n) => /keychain/.test(n.title) && /Encrypt your disk/.test(n.body)), JSON.stringify(a.shown));
  // The account is already confirmed elsewhere? No: a login shows no recovery key, so nothing to confirm here.
  t.like(await a.call('account:confirmRecovery', { words: [{ index: 0, word: 'AAAA' }, { index: 1, word: 'BBBB' }] }), { ok: false, error: { code: 'conflict' } });

  const space = await env.newSpace([acc], `Bureau ${Date.now()}`);
  const spaces = await a.ok('spaces:list', {});
  t.true(spaces.spaces.some((s) => s.spaceId === space.spaceId && s.role === 'manager' && s.classification === 'internal'));

  const devices = await a.ok('devices:list', {});
  const me = devices.devices.find((d) => d.current)!;
  t.is(me.name, 'Desktop');
  const cli = devices.devices.find((d) => d.deviceId === acc.deviceId)!;
  t.like(cli, { current: false, revoked: false });
  t.like(await a.call('devices:revoke', { deviceId: me.deviceId }), { ok: false, error: { code: 'bad_request' } }, 'not this computer');
  t.like(await a.call('devices:revoke', { deviceId: 'x' }), { ok: false, error: { code: 'bad_request' } });
  t.like(await a.call('devices:revoke', { deviceId: 'AAAAAAAAAAAAAAAAAAAAAA' }), { ok: false, error: { code: 'not_found' } });

  // A second app session of the same account, revoked from this one.
  const b = await app('revoked', { safeStorage: keychain(false) });
  await b.ok('account:login', { server: env.url, email: acc.email, password: acc.password, deviceName: 'Oude laptop' });
  const bId = (await b.ok('devices:list', {})).devices.find((d) => d.current)!.deviceId;
  t.like(await a.call('devices:revoke', { deviceId: bId }), { ok: true });
  t.like((await a.ok('devices:list', {})).devices.find((d) => d.deviceId === bId), { revoked: true });
  t.like(await b.call('spaces:list', {}), { ok: false, error: { code: 'unauthenticated' } }, 'the revoked app is told');
  t.like(await b.call('app:status', {}), { ok: true, value: { account: null } }, 'and shows the login again');

  t.like(await a.call('account:logout', {}), { ok: true });
  t.like(await a.call('app:status', {}), { ok: true, value: { account: null } });
  t.throws(() => statSync(path.join(a.home, 'keys.json')), { code: 'ENOENT' });
  t.like(await a.call('account:logout', {}), { ok: false, error: { code: 'unauthenticated' } });
});

test.serial('settings: defaults, set and applied (start at login through Electron), persisted, bad input refused', async (t) => {
  const a = await app('settings');
  t.deepEqual(await a.ok('settings:get', {}), { language: 'nl', startAtLogin: false, uploadLimit: null, downloadLimit: null, notifications: true });
  const s = await a.ok('settings:set', { startAtLogin: true, language: 'fr', uploadLimit: 1024 * 1024 });
  t.like(s, { startAtLogin: true, language: 'fr', uploadLimit: 1024 * 1024, downloadLimit: null });
  t.deepEqual(a.loginItems, [{ openAtLogin: true }]);
  await a.ok('settings:set', { language: 'en' });
  t.deepEqual(a.loginItems, [{ openAtLogin: true }], 'told only when it changes');
  t.like(await a.call('settings:set', { uploadLimit: 10 }), { ok: false, error: { code: 'bad_request' } });
  t.like(await a.call('settings:set', { language: 'de' }), { ok: false, error: { code: 'bad_request' } });
  t.like(await a.call('settings:set', { theme: 'dark' }), { ok: false, error: { code: 'bad_request' } });
  await a.close();
  const again = await app('settings-again', { home: a.home });
  t.like(await again.ok('settings:get', {}), { language: 'en', startAtLogin: true, uploadLimit: 1024 * 1024 });
  t.is(statSync(path.join(a.home, 'app.json')).mode & 0o777, 0o600);
});
