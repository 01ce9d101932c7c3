// Accounts over the real server: invites, sign-up, prelogin, login, throttling, sessions, devices, directory.
import test from 'ava';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { admin, call, enterpriseNumber, login, newColleague, newOrg, signup } from '../helpers/api.js';

let srv: RunningServer;
test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
});
test.after.always(async () => {
  await srv?.stop();
});

test('kluis-admin org create refuses a bad enterprise number and a duplicate one', async (t) => {
  const err = await admin(srv.dataDir, ['org', 'create', '--name', 'X', '--enterprise-number', '0212345667', '--admin-email', 'a@b.be']).catch((e) => e);
  t.is(err.code, 2);
  t.regex(err.stdout, /mod-97/);
  const n = enterpriseNumber();
  await admin(srv.dataDir, ['org', 'create', '--name', 'Y', '--enterprise-number', n, '--admin-email', 'y@b.be']);
  const dup = await admin(srv.dataDir, ['org', 'create', '--name', 'Z', '--enterprise-number', n, '--admin-email', 'z@b.be']).catch((e) => e);
  t.is(dup.code, 2);
  t.regex(dup.stdout, /exists/);
});

test('sign-up with an invite gives a session, the role of the invite and the stored key bundle; the invite works once', async (t) => {
  const email = 'eerste.admin@ocmw.example.be';
  const created = await admin(srv.dataDir, ['org', 'create', '--name', 'OCMW Aalst', '--enterprise-number', enterpriseNumber(), '--admin-email', email]);
  const u = await signup(srv.url, created.inviteToken, email);
  t.is(u.res.status, 201);
  t.is(u.res.body.role, 'main_admin');
  t.is(u.res.body.orgId, created.orgId);
  const me = await call(srv.url, 'GET', '/api/v1/me', { token: u.token });
  t.is(me.status, 200);
  t.is(me.body.email, email);
  t.is(me.body.encPublicKey, u.identity.encPublicKey);
  const again = await signup(srv.url, created.inviteToken, email);
  t.is(again.res.status, 403);
  t.is(again.res.body.error.code, 'forbidden');
});

test('sign-up is refused for another e-mail, a forged identity signature, mismatched bundle keys and weak KDF limits', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const invite = async (email: string) => (await call(srv.url, 'POST', `/api/v1/orgs/${a.orgId}/invites`, { token: a.token, json: { email } })).body.token as string;
  const wrongEmail = await signup(srv.url, await invite('piet@example.be'), 'jan@example.be');
  t.is(wrongEmail.res.status, 403);

  const email = 'marie@example.be';
  const token = await invite(email);
  const salt = k.newSalt();
  const { masterKey, authKey } = k.derivePasswordKeys('pw', salt, k.KDF_MIN);
  const keys = k.generateAccountKeys();
  const base = {
    inviteToken: token, email, kdf: { salt, ...k.KDF_MIN }, authKey: k.toBase64Url(authKey), ...k.publicIdentity(keys),
    identitySig: k.signIdentity(keys, email), keyBundle: k.sealKeyBundle(keys, masterKey, k.generateRecoveryKey()), deviceName: 'pc',
  };
  const forged = await call(srv.url, 'POST', '/api/v1/auth/signup', { json: { ...base, identitySig: k.signIdentity(keys, 'other@example.be') } });
  t.is(forged.status, 400);
  t.is(forged.body.error.code, 'bad_signature');
  const other = k.generateAccountKeys();
  const mismatch = await call(srv.url, 'POST', '/api/v1/auth/signup', { json: { ...base, keyBundle: k.sealKeyBundle(other, masterKey, k.generateRecoveryKey()) } });
  t.is(mismatch.status, 400);
  const weak = await call(srv.url, 'POST', '/api/v1/auth/signup', { json: { ...base, kdf: { salt, opsLimit: 1, memLimit: 8192 } } });
  t.is(weak.status, 400);
  t.is(weak.body.error.code, 'weak_kdf_params');
  // None of the refusals used up the invite.
  t.is((await call(srv.url, 'POST', '/api/v1/auth/signup', { json: base })).status, 201);
});

test('prelogin: real accounts get their parameters; unknown e-mails get stable fake ones of the same shape', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const real = await call(srv.url, 'POST', '/api/v1/auth/prelogin', { json: { email: a.email } });
  const fake1 = await call(srv.url, 'POST', '/api/v1/auth/prelogin', { json: { email: 'nobody@example.be' } });
  const fake2 = await call(srv.url, 'POST', '/api/v1/auth/prelogin', { json: { email: 'NOBODY@example.be' } });
  const fake3 = await call(srv.url, 'POST', '/api/v1/auth/prelogin', { json: { email: 'nobody2@example.be' } });
  t.is(real.status, 200);
  t.is(fake1.status, 200);
  t.deepEqual(Object.keys(fake1.body.kdf).sort(), Object.keys(real.body.kdf).sort());
  t.deepEqual(fake1.body, fake2.body, 'stable for the same address');
  t.notDeepEqual(fake1.body.kdf.salt, fake3.body.kdf.salt);
  t.is(k.fromBase64Url(fake1.body.kdf.salt).length, 16);
});

test('login on a second device opens the key bundle; a wrong password is refused without saying which part was wrong', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const ok = await login(srv.url, a.email, a.password);
  t.is(ok.status, 200);
  t.deepEqual(ok.keys!.signPublicKey, a.keys.signPublicKey);
  t.not(ok.body.deviceId, a.deviceId);
  const bad = await login(srv.url, a.email, 'wrong');
  t.is(bad.status, 401);
  const unknown = await login(srv.url, 'nobody@example.be', 'wrong');
  t.is(unknown.status, 401);
  t.deepEqual(bad.body, unknown.body, 'same answer for a wrong password and an unknown account');
});

test('login throttling: five failures lock the address for a while, with Retry-After, even for the right password', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  for (let i = 0; i < 5; i++) t.is((await login(srv.url, a.email, `wrong ${i}`)).status, 401);
  const locked = await login(srv.url, a.email, a.password);
  t.is(locked.status, 429);
  t.is(locked.body.error.code, 'rate_limited');
  t.truthy(Number(locked.headers.get('retry-after')) > 0);
});

test('logout revokes the device token; devices can be listed and revoked; other users\' devices are not found', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const second = await login(srv.url, a.email, a.password, 'phone');
  const list = await call(srv.url, 'GET', '/api/v1/devices', { token: a.token });
  t.is(list.body.devices.length, 2);
  t.true(list.body.devices.some((d: { current: boolean; deviceId: string }) => d.current && d.deviceId === a.deviceId));
  const colleague = await newColleague(srv.url, a);
  t.is((await call(srv.url, 'DELETE', `/api/v1/devices/${second.body.deviceId}`, { token: colleague.token })).status, 404);
  t.is((await call(srv.url, 'DELETE', `/api/v1/devices/${second.body.deviceId}`, { token: a.token })).status, 204);
  const revoked = await call(srv.url, 'GET', '/api/v1/me', { token: second.body.token });
  t.is(revoked.status, 401);
  t.regex(revoked.body.error.message, /signed out/);
  t.is((await call(srv.url, 'POST', '/api/v1/auth/logout', { token: a.token })).status, 204);
  t.is((await call(srv.url, 'GET', '/api/v1/me', { token: a.token })).status, 401);
});

test('directory: colleagues of the same organisation only; the identity signature verifies', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const { admin: b } = await newOrg(srv.url, srv.dataDir, 'Andere gemeente');
  const c = await newColleague(srv.url, a);
  const found = await call(srv.url, 'GET', `/api/v1/directory?email=${encodeURIComponent(c.email)}`, { token: a.token });
  t.is(found.status, 200);
  t.notThrows(() => k.verifyIdentity(found.body, c.email, found.body.identitySig));
  t.is((await call(srv.url, 'GET', `/api/v1/directory?email=${encodeURIComponent(c.email)}`, { token: b.token })).status, 404);
  t.is((await call(srv.url, 'GET', `/api/v1/directory?userId=${c.userId}`, { token: b.token })).status, 404);
});

test('organisation roles: only admins invite; only the main admin appoints backup admins; the main admin cannot be demoted', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const member = await newColleague(srv.url, a);
  const backup = await newColleague(srv.url, a, 'backup_admin');
  t.is((await call(srv.url, 'POST', `/api/v1/orgs/${a.orgId}/invites`, { token: member.token, json: { email: 'x@example.be' } })).status, 403);
  t.is((await call(srv.url, 'POST', `/api/v1/orgs/${a.orgId}/invites`, { token: backup.token, json: { email: 'x@example.be', role: 'backup_admin' } })).status, 403);
  t.is((await call(srv.url, 'POST', `/api/v1/orgs/${a.orgId}/invites`, { token: backup.token, json: { email: 'x@example.be', role: 'auditor' } })).status, 201);
  t.is((await call(srv.url, 'PUT', `/api/v1/orgs/${a.orgId}/users/${a.userId}/role`, { token: backup.token, json: { role: 'member' } })).status, 403);
  const promote = await call(srv.url, 'PUT', `/api/v1/orgs/${a.orgId}/users/${member.userId}/role`, { token: a.token, json: { role: 'domain_admin' } });
  t.is(promote.status, 200);
  const users = await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/users`, { token: backup.token });
  t.is(users.body.users.find((u: { userId: string }) => u.userId === member.userId).role, 'domain_admin');
});
