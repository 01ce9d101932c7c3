// 2-step verification and the admin console's read endpoints over HTTP (docs/api.md "Two-step verification", "Admin
// views"): enrolment, step-up of a second session, a wrong and a replayed code refused (also two at once), throttling,
// another admin's reset, the organisation's policy, the sealed secret, bad input; who reads spaces, links and the
// chain status, and an admin's revocation of a colleague's link. Every act is audited.
import test from 'ava';
import * as k from '@kluis/shared';
import { openServerDb, startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, admin as kluisAdmin, call, enrolTotp, login, newColleague, newOrg, newSpace, signup, totpCode, type User } from '../helpers/api.js';
import { quickLink } from '../helpers/links.js';

let srv: RunningServer;

test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
});
test.afterEach.always((t) => {
  if (!t.passed) t.log(`server log:\n${srv.output().slice(-3000)}`);
});
test.after.always(async () => {
  await srv?.stop();
});

const NEXT_STEP = 30_000;
const get = (u: { token: string }, url: string) => call(srv.url, 'GET', url, { token: u.token });
const post = (u: { token: string }, url: string, json: unknown) => call(srv.url, 'POST', url, { token: u.token, json });

/** An admin-role colleague signed up without the helper's enrolment: a fresh, unverified account. */
async function bareColleague(inviter: User, role: string): Promise<User> {
  const email = `bare-${Math.random().toString(36).slice(2)}@example.be`;
  const inv = await post(inviter, `/api/v1/orgs/${inviter.orgId}/invites`, { email, role });
  if (inv.status !== 201) throw new Error(JSON.stringify(inv.body));
  return signup(srv.url, inv.body.token, email);
}

async function auditActions(admin: User, target: string): Promise<{ action: string; outcome: string }[]> {
  const res = await get(admin, `/api/v1/orgs/${admin.orgId}/audit?target=${target}&limit=1000`);
  if (res.status !== 200) throw new Error(JSON.stringify(res.body));
  return res.body.entries.map((e: { action: string; outcome: string }) => ({ action: e.action, outcome: e.outcome }));
}

test('an admin enrols, confirms, and a new session needs a code before admin acts; a wrong and a replayed code are refused', async (t) => {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  t.deepEqual((await get(admin, '/api/v1/auth/totp')).body, { enrolled: true, required: true, verified: true });
  const second = await login(srv.url, admin.email, admin.password);
  t.is(second.status, 200);
  const s2 = { token: second.body.token as string };
  t.deepEqual((await get(s2, '/api/v1/auth/totp')).body, { enrolled: true, required: true, verified: false });
  const refused = await get(s2, `/api/v1/orgs/${admin.orgId}/users`);
  t.is(refused.status, 403);
  t.is(refused.body.error.code, 'totp_required');
  t.is(refused.body.reason, 'verify');
  // Non-admin acts need no second step: the kluis client of an admin syncs as before.
  t.is((await get(s2, '/api/v1/me')).status, 200);

  const wrong = await post(s2, '/api/v1/auth/totp/verify', { code: totpCode(admin.totpSecret!, Date.now() - 10 * 60_000) });
  t.is(wrong.status, 401);
  t.is(wrong.body.reason, 'wrong');
  // The code the enrolment used is spent (its step, not "now": a step may have ended since): the next step's passes, once.
  const replayOfEnrolment = await post(s2, '/api/v1/auth/totp/verify', { code: totpCode(admin.totpSecret!, admin.totpConfirmedAt) });
  t.is(replayOfEnrolment.status, 401);
  t.is(replayOfEnrolment.body.reason, 'replayed');
  const code = totpCode(admin.totpSecret!, Date.now() + NEXT_STEP);
  const ok = await post(s2, '/api/v1/auth/totp/verify', { code });
  t.is(ok.status, 200, JSON.stringify(ok.body));
  t.deepEqual(ok.body, { enrolled: true, required: true, verified: true });
  t.is((await get(s2, `/api/v1/orgs/${admin.orgId}/users`)).status, 200);

  const third = await login(srv.url, admin.email, admin.password);
  const replay = await post({ token: third.body.token }, '/api/v1/auth/totp/verify', { code });
  t.is(replay.status, 401);
  t.is(replay.body.reason, 'replayed');
  const trail = await auditActions(admin, admin.userId);
  t.true(trail.some((e) => e.action === 'totp.enrol.confirm' && e.outcome === 'success'));
  t.true(trail.some((e) => e.action === 'totp.verify' && e.outcome === 'success'));
  t.is(trail.filter((e) => e.action === 'totp.verify' && e.outcome === 'failed').length, 3);
});

test('one code sent by two sessions at once passes once', async (t) => {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  const a = await login(srv.url, admin.email, admin.password);
  const b = await login(srv.url, admin.email, admin.password);
  const code = totpCode(admin.totpSecret!, Date.now() + NEXT_STEP);
  const answers = await Promise.all([a, b].map((s) => post({ token: s.body.token }, '/api/v1/auth/totp/verify', { code })));
  t.deepEqual(answers.map((r) => r.status).sort(), [200, 401]);
});

test('an admin without an authenticator must enrol; enrolment restarts until confirmed, then is fixed', async (t) => {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  const backup = await bareColleague(admin, 'backup_admin');
  const refused = await get(backup, `/api/v1/orgs/${admin.orgId}/audit`);
  t.is(refused.status, 403);
  t.is(refused.body.reason, 'enrol');
  t.is((await post(backup, '/api/v1/auth/totp/verify', { code: '123456' })).status, 409);
  const first = await post(backup, '/api/v1/auth/totp/enrol', {});
  t.is(first.status, 201);
  k.TotpEnrolment.parse(first.body);
  t.true(first.body.uri.includes(`secret=${first.body.secret}`));
  t.true(first.body.uri.includes('issuer=Kluis'));
  const again = await post(backup, '/api/v1/auth/totp/enrol', {});
  t.is(again.status, 201);
  t.not(again.body.secret, first.body.secret);
  // The first secret was replaced: its codes no longer confirm.
  t.is((await post(backup, '/api/v1/auth/totp/confirm', { code: totpCode(first.body.secret) })).status, 401);
  t.is((await post(backup, '/api/v1/auth/totp/confirm', { code: totpCode(again.body.secret) })).status, 200);
  t.is((await get(backup, `/api/v1/orgs/${admin.orgId}/audit`)).status, 200);
  t.is((await post(backup, '/api/v1/auth/totp/enrol', {})).status, 409);
  t.is((await post(backup, '/api/v1/auth/totp/confirm', { code: totpCode(again.body.secret, Date.now() + NEXT_STEP) })).status, 409);
});

test('wrong codes are throttled per user: after five, even a right code waits', async (t) => {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  const s = await login(srv.url, admin.email, admin.password);
  const session = { token: s.body.token as string };
  const right = totpCode(admin.totpSecret!, Date.now() + NEXT_STEP);
  const bad = right === '000000' ? '111111' : '000000';
  for (let i = 0; i < 5; i++) t.is((await post(session, '/api/v1/auth/totp/verify', { code: bad })).status, 401);
  const locked = await post(session, '/api/v1/auth/totp/verify', { code: right });
  t.is(locked.status, 429);
  t.is(locked.body.error.code, 'rate_limited');
  t.true(Number(locked.headers.get('retry-after')) > 0);
});

test('another admin resets a lost authenticator (audited); the user enrols again; nobody resets their own', async (t) => {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  const backup = await newColleague(srv.url, admin, 'backup_admin');
  const member = await newColleague(srv.url, admin, 'member');
  const other = (await newOrg(srv.url, srv.dataDir)).admin;
  t.is((await call(srv.url, 'DELETE', `/api/v1/orgs/${admin.orgId}/users/${admin.userId}/totp`, { token: admin.token })).status, 403);
  t.is((await call(srv.url, 'DELETE', `/api/v1/orgs/${admin.orgId}/users/${backup.userId}/totp`, { token: member.token })).status, 403);
  t.is((await call(srv.url, 'DELETE', `/api/v1/orgs/${admin.orgId}/users/${backup.userId}/totp`, { token: other.token })).status, 404);
  t.is((await call(srv.url, 'DELETE', `/api/v1/orgs/${other.orgId}/users/${backup.userId}/totp`, { token: other.token })).status, 404);
  t.is((await call(srv.url, 'DELETE', `/api/v1/orgs/${admin.orgId}/users/not-an-id/totp`, { token: admin.token })).status, 400);
  t.is((await call(srv.url, 'DELETE', `/api/v1/orgs/${admin.orgId}/users/${backup.userId}/totp`, { token: admin.token })).status, 204);
  const after = await get(backup, `/api/v1/orgs/${admin.orgId}/users`);
  t.is(after.status, 403);
  t.is(after.body.reason, 'enrol');
  await enrolTotp(srv.url, backup);
  t.is((await get(backup, `/api/v1/orgs/${admin.orgId}/users`)).status, 200);
  const trail = await auditActions(admin, backup.userId);
  t.true(trail.some((e) => e.action === 'totp.reset' && e.outcome === 'success'));
  t.true(trail.some((e) => e.action === 'totp.reset' && e.outcome === 'denied'));
});

test('the policy: on by default, the main admin turns it off (then an unverified session acts), nobody else may', async (t) => {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  const backup = await newColleague(srv.url, admin, 'backup_admin');
  const auditor = await newColleague(srv.url, admin, 'auditor');
  const member = await newColleague(srv.url, admin, 'member');
  const url = `/api/v1/orgs/${admin.orgId}/security`;
  const read = await get(admin, url);
  t.is(read.status, 200);
  t.true(read.body.totpRequiredForAdmins);
  // In the order they were confirmed (ava compares Sets in insertion order, so compare sorted ids for membership).
  const authenticators = read.body.authenticators as { userId: string; since: number }[];
  t.deepEqual(authenticators.map((a) => a.userId).sort(), [admin.userId, backup.userId, auditor.userId].sort());
  t.deepEqual(authenticators.map((a) => a.since), authenticators.map((a) => a.since).sort((x, y) => x - y));
  t.is((await get(member, url)).status, 403);
  t.is((await call(srv.url, 'PUT', url, { token: backup.token, json: { totpRequiredForAdmins: false } })).status, 403);
  for (const bad of [{}, { totpRequiredForAdmins: 'no' }, { totpRequiredForAdmins: false, extra: 1 }]) {
    const res = await call(srv.url, 'PUT', url, { token: admin.token, json: bad });
    t.is(res.status, 400, JSON.stringify(bad));
    t.is(res.body.error.code, 'validation_failed');
  }
  t.deepEqual((await call(srv.url, 'PUT', url, { token: admin.token, json: { totpRequiredForAdmins: false } })).body, { totpRequiredForAdmins: false });
  const s = await login(srv.url, admin.email, admin.password);
  t.is((await get({ token: s.body.token }, `/api/v1/orgs/${admin.orgId}/users`)).status, 200);
  t.deepEqual((await get({ token: s.body.token }, '/api/v1/auth/totp')).body, { enrolled: true, required: false, verified: false });
  t.true((await auditActions(admin, admin.orgId)).some((e) => e.action === 'security.change' && e.outcome === 'success'));
});

test('bad input to the 2-step endpoints answers 400 (or 401 without a session)', async (t) => {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  for (const bad of [{}, { code: '12345' }, { code: '1234567' }, { code: 'abcdef' }, { code: 123456 }, { code: '123456', extra: true }]) {
    const res = await post(admin, '/api/v1/auth/totp/verify', bad);
    t.is(res.status, 400, JSON.stringify(bad));
    t.is(res.body.error.code, 'validation_failed');
  }
  t.is((await call(srv.url, 'POST', '/api/v1/auth/totp/verify', { raw: '{"code":', contentType: 'application/json', token: admin.token })).status, 400);
  t.is((await post(admin, '/api/v1/auth/totp/enrol', { secret: 'JBSWY3DPEHPK3PXP' })).status, 400);
  t.is((await call(srv.url, 'POST', '/api/v1/auth/totp/verify', { json: { code: '123456' } })).status, 401);
  t.is((await call(srv.url, 'GET', '/api/v1/auth/totp')).status, 401);
});

test('the secret is stored sealed: the database holds neither its base32 nor its bytes', async (t) => {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  const db = await openServerDb(srv.dataDir);
  try {
    const row = await db('totp_secrets').where({ user_id: admin.userId }).first();
    const raw = k.fromBase64Url(row.sealed);
    const secret = base32Bytes(admin.totpSecret!);
    t.false(row.sealed.includes(admin.totpSecret!));
    t.false(Buffer.from(raw).includes(Buffer.from(secret)));
    t.is(raw.length, 41 + 20);
  } finally {
    await db.destroy();
  }
});

function base32Bytes(s: string): Uint8Array {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of s) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  return Uint8Array.from(bits.match(/.{8}/g)!.map((b) => parseInt(b, 2)));
}

test('admin views: spaces with members, every link with its maker, an admin revokes a colleague\'s link; auditors see the chain status only', async (t) => {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  const backup = await newColleague(srv.url, admin, 'backup_admin');
  const auditor = await newColleague(srv.url, admin, 'auditor');
  const member = await newColleague(srv.url, admin, 'member');
  const space = await newSpace(srv.url, member, 'Sociale dienst', 'internal');
  const add = await addMemberBody(srv.url, member, space.spaceId, space.pair, admin, 'viewer');
  t.is((await post(member, `/api/v1/spaces/${space.spaceId}/members`, add)).status, 201);
  const linkId = await quickLink(srv.url, member, space, { purpose: 'Advies voor de rechtbank', maxDownloads: 3 });
  const base = `/api/v1/orgs/${admin.orgId}`;

  const spaces = await get(backup, `${base}/admin/spaces`);
  t.is(spaces.status, 200, JSON.stringify(spaces.body));
  const s = k.AdminSpace.array().parse(spaces.body.spaces).find((x) => x.spaceId === space.spaceId)!;
  t.is(s.name, 'Sociale dienst');
  t.is(s.classification, 'internal');
  t.is(s.createdBy, member.email);
  t.deepEqual(s.members.map((m) => [m.email, m.role]).sort(), [[admin.email, 'viewer'], [member.email, 'manager']].sort());

  const links = await get(admin, `${base}/admin/links`);
  t.is(links.status, 200);
  const l = k.AdminLink.array().parse(links.body.links).find((x) => x.linkId === linkId)!;
  t.is(l.createdByEmail, member.email);
  t.is(l.spaceName, 'Sociale dienst');
  t.is(l.maxDownloads, 3);
  t.is(l.state, 'active');

  for (const u of [auditor, member]) {
    t.is((await get(u, `${base}/admin/spaces`)).status, 403);
    t.is((await get(u, `${base}/admin/links`)).status, 403);
    t.is((await call(srv.url, 'DELETE', `${base}/admin/links/${linkId}`, { token: u.token })).status, 403);
  }
  t.is((await call(srv.url, 'DELETE', `${base}/admin/links/nope`, { token: admin.token })).status, 404);
  t.is((await call(srv.url, 'DELETE', `${base}/admin/links/${k.newId()}`, { token: admin.token })).status, 404);
  t.is((await call(srv.url, 'DELETE', `${base}/admin/links/${linkId}`, { token: backup.token })).status, 204);
  t.is((await get(member, `/api/v1/public/links/${linkId}`)).status, 410);
  const trail = await get(admin, `${base}/audit?target=${linkId}&action=link.revoke`);
  t.is(trail.body.entries.length, 1);
  t.is(trail.body.entries[0].actorUserId, backup.userId);
  t.true(trail.body.entries[0].details.asAdmin);

  const status = await get(auditor, `${base}/audit/status`);
  t.is(status.status, 200, JSON.stringify(status.body));
  const chain = k.AuditChainStatus.parse(status.body);
  t.true(chain.ok);
  t.true(chain.entries > 0);
  t.is((await get(member, `${base}/audit/status`)).status, 403);
  t.is((await get(admin, `${base}/audit/status?x=1`)).status, 400);
  const other = (await newOrg(srv.url, srv.dataDir)).admin;
  t.is((await get(other, `${base}/admin/links`)).status, 404);
  t.is((await get(other, `${base}/audit/status`)).status, 404);
});

test('the operator resets the authenticator of an organisation\'s only admin with kluis-admin (audited)', async (t) => {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  const r = await kluisAdmin(srv.dataDir, ['totp', 'reset', '--email', admin.email.toUpperCase()]);
  t.deepEqual(r, { userId: admin.userId, email: admin.email, hadAuthenticator: true });
  const refused = await get(admin, `/api/v1/orgs/${admin.orgId}/users`);
  t.is(refused.status, 403);
  t.is(refused.body.reason, 'enrol');
  await enrolTotp(srv.url, admin);
  const trail = await get(admin, `/api/v1/orgs/${admin.orgId}/audit?action=totp.reset`);
  t.is(trail.body.entries.length, 1);
  t.is(trail.body.entries[0].client, 'kluis-admin/0.1.0');
  await t.throwsAsync(kluisAdmin(srv.dataDir, ['totp', 'reset', '--email', 'nobody@example.be']));
});
