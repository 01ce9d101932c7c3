// The audit trail over HTTP: auditors and admins search and export their own organisation's entries only.
import test from 'ava';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { admin, call, login, newColleague, newOrg, newSpace } from '../helpers/api.js';

let srv: RunningServer;
test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
});
test.after.always(async () => {
  await srv?.stop();
});

test('an auditor finds who did what, including failed logins, and sees no other organisation', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const { admin: other } = await newOrg(srv.url, srv.dataDir, 'Ander OCMW');
  const auditor = await newColleague(srv.url, a, 'auditor');
  const member = await newColleague(srv.url, a);
  await newSpace(srv.url, member);
  await login(srv.url, member.email, 'wrong password');
  await newSpace(srv.url, other);

  const spaces = await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/audit?action=space.create`, { token: auditor.token });
  t.is(spaces.status, 200);
  t.deepEqual(spaces.body.entries.map((e: { actorUserId: string }) => e.actorUserId), [member.userId]);
  const failed = await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/audit?action=auth.login&outcome=failed`, { token: auditor.token });
  t.true(failed.body.entries.length >= 1, 'a failed login is in the trail');
  t.true(failed.body.entries.every((e: { orgId: string }) => e.orgId === a.orgId));
  const all = await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/audit?limit=10000`, { token: auditor.token });
  t.true(all.body.entries.every((e: { orgId: string }) => e.orgId === a.orgId), 'never another organisation\'s entries');
  t.is((await call(srv.url, 'GET', `/api/v1/orgs/${other.orgId}/audit`, { token: auditor.token })).status, 404);
  t.is((await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/audit`, { token: member.token })).status, 403);
  t.is((await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/audit?since=yesterday`, { token: auditor.token })).status, 400);

  const csv = await fetch(`${srv.url}/api/v1/orgs/${a.orgId}/audit/export?format=csv`, { headers: { authorization: `Bearer ${auditor.token}` } });
  t.is(csv.status, 200);
  t.regex(csv.headers.get('content-disposition') ?? '', /attachment/);
  const text = await csv.text();
  t.true(text.startsWith('seq,'));
  t.true(text.includes('space.create'));
  t.false(text.includes(other.userId));
  const json = await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/audit/export?format=json`, { token: a.token });
  t.is(json.body.serverPublicKey, (await call(srv.url, 'GET', '/api/v1/info')).body.auditPublicKey);
  // Searching is audited too.
  const searches = await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/audit?action=audit.search&actor=${auditor.userId}`, { token: a.token });
  t.true(searches.body.entries.length >= 3);
});

test('kluis-admin audit verify reports an intact chain for a running server\'s data', async (t) => {
  await newOrg(srv.url, srv.dataDir);
  const r = await admin(srv.dataDir, ['audit', 'verify']);
  t.true(r.ok);
  t.true(r.entries > 5);
});
