// Sharing policy by class (docs/api.md "Policy"): documented defaults, changed per organisation by its main or backup
// admins only, read by every member; a space's class is raised by a manager and never lowered; each act audited.
import test from 'ava';
import { rmSync } from 'node:fs';
import path from 'node:path';
import knexFactory from 'knex';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, admin, call, newColleague, newOrg, newSpace } from '../helpers/api.js';
import { cliHome, kluis } from '../helpers/cli.js';
import { newFile, version } from '../helpers/files.js';

let srv: RunningServer;
test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
});
test.after.always(async () => {
  await srv?.stop();
});

async function auditRows(action: string): Promise<{ outcome: string; details: string | null; actor_user_id: string | null }[]> {
  const db = knexFactory({ client: 'sqlite3', connection: { filename: path.join(srv.dataDir, 'kluis.sqlite3') }, useNullAsDefault: true });
  try {
    return await db('audit_log').where({ action }).orderBy('seq').select('outcome', 'details', 'actor_user_id');
  } finally {
    await db.destroy();
  }
}

test('policy: the documented defaults for every member; admins change a class and set it back; others may not', async (t) => {
  const { admin, orgId } = await newOrg(srv.url, srv.dataDir);
  const member = await newColleague(srv.url, admin);
  const { admin: stranger } = await newOrg(srv.url, srv.dataDir, 'Ander OCMW');
  const read = await call(srv.url, 'GET', `/api/v1/orgs/${orgId}/policy`, { token: member.token });
  t.is(read.status, 200);
  for (const c of k.CLASS_ORDER) t.deepEqual(read.body.policies[c], { ...k.DEFAULT_CLASS_POLICY[c], isDefault: true }, c);
  t.false(read.body.policies.medical.linksAllowed, 'medical data is never shared by link');

  const stricter = { linksAllowed: true, maxLinkDays: 3, passwordRequired: true, maxDownloads: 2, externalMembers: false };
  const put = (token: string, cls: string, json: unknown, org = orgId) => call(srv.url, 'PUT', `/api/v1/orgs/${org}/policy/${cls}`, { token, json });
  t.is((await put(member.token, 'internal', stricter)).status, 403, 'a member');
  t.is((await put(stranger.token, 'internal', stricter)).status, 404, 'another organisation\'s admin');
  const bad = await put(admin.token, 'internal', { ...stricter, maxLinkDays: 365 });
  t.is(bad.status, 400);
  t.regex(bad.body.error.message, /maxLinkDays/);
  t.is((await put(admin.token, 'secret', stricter)).status, 400, 'an unknown class');
  const changed = await put(admin.token, 'internal', stricter);
  t.is(changed.status, 200, JSON.stringify(changed.body));
  t.deepEqual(changed.body.policy, { ...stricter, isDefault: false });
  t.deepEqual((await call(srv.url, 'GET', `/api/v1/orgs/${orgId}/policy`, { token: member.token })).body.policies.internal, { ...stricter, isDefault: false });
  t.deepEqual((await call(srv.url, 'GET', `/api/v1/orgs/${stranger.orgId}/policy`, { token: stranger.token })).body.policies.internal.isDefault, true, 'other organisations keep theirs');
  t.is((await put(admin.token, 'internal', { default: true })).body.policy.isDefault, true);
  const audited = await auditRows('policy.change');
  t.true(audited.some((r) => r.outcome === 'success' && r.actor_user_id === admin.userId && r.details?.includes('"maxLinkDays":3')));
  t.true(audited.some((r) => r.outcome === 'denied' && r.actor_user_id === member.userId));
});

test('space class: a manager raises it, nobody lowers it, a viewer cannot change it; audited', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const viewer = await newColleague(srv.url, a);
  const { spaceId, pair } = await newSpace(srv.url, a, 'Dossiers', 'internal');
  t.is((await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/members`, { token: a.token, json: await addMemberBody(srv.url, a, spaceId, pair, viewer, 'viewer') })).status, 201);
  const patch = (token: string, classification: string) => call(srv.url, 'PATCH', `/api/v1/spaces/${spaceId}`, { token, json: { classification } });
  t.is((await patch(viewer.token, 'personal')).status, 403);
  t.is((await patch(a.token, 'personal')).status, 200);
  const lower = await patch(a.token, 'internal');
  t.is(lower.status, 409);
  t.regex(lower.body.error.message, /never lowered/);
  t.is((await patch(a.token, 'nonsense')).status, 400);
  t.is((await call(srv.url, 'GET', '/api/v1/spaces', { token: a.token })).body.spaces.find((s: { spaceId: string }) => s.spaceId === spaceId).classification, 'personal');
  const rows = await auditRows('space.class.change');
  t.true(rows.some((r) => r.outcome === 'success' && r.details?.includes('"from":"internal"') && r.details.includes('"to":"personal"')));
  t.true(rows.some((r) => r.outcome === 'denied' && r.details?.includes('409')), 'the refused lowering is in the trail');
});

test('kluis policy and kluis space set-class', async (t) => {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  const home = await cliHome(srv.url, admin, 'kluis-policy-');
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  const shown = await kluis(home, ['policy', '--json']);
  t.is(shown.code, 0, shown.stderr);
  t.false(JSON.parse(shown.stdout).policies.medical.linksAllowed);
  t.regex((await kluis(home, ['policy'])).stdout, /^CLASS\s+LINKS\s+MAX DAYS/);
  t.is((await kluis(home, ['space', 'create', 'Zorgdossiers'])).code, 0);
  const raised = await kluis(home, ['space', 'set-class', 'Zorgdossiers', 'medical']);
  t.is(raised.code, 0, raised.stderr);
  t.regex(raised.stdout, /is now medical \(was internal\)/);
  const lowered = await kluis(home, ['space', 'set-class', 'Zorgdossiers', 'public']);
  t.not(lowered.code, 0);
  t.regex(lowered.stderr, /never lowered/);
});

test('links × classes: every class allows or refuses each kind of link as its default policy says; refusals audited', async (t) => {
  const { admin: a, orgId } = await newOrg(srv.url, srv.dataDir);
  const day = 86_400_000;
  // The kinds of link a user asks for: how long, with or without a password, how many downloads.
  const asks = [
    { name: 'open, 1 day, unlimited', days: 1, password: false, maxDownloads: null },
    { name: 'password, 1 day, 1 download', days: 1, password: true, maxDownloads: 1 },
    { name: 'password, 8 days, 1 download', days: 8, password: true, maxDownloads: 1 },
    { name: 'password, 20 days, 1 download', days: 20, password: true, maxDownloads: 1 },
    { name: 'password, 1 day, 6 downloads', days: 1, password: true, maxDownloads: 6 },
    { name: 'password, 60 days, 20 downloads', days: 60, password: true, maxDownloads: 20 },
  ];
  let refusals = 0;
  for (const cls of k.CLASS_ORDER) {
    const { spaceId, pair } = await newSpace(srv.url, a, `Ruimte ${cls}`, cls);
    const f = newFile();
    const v = version(a, spaceId, pair, 1, f, { parent: null, memberSeq: 1 });
    t.is((await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, json: { versions: [v.entry] } })).status, 201);
    for (const ask of asks) {
      const now = Date.now();
      const json = {
        linkId: k.newId(), fileId: f.fileId, versionId: v.versionId,
        kdf: ask.password ? { salt: k.newSalt(), opsLimit: 2, memLimit: 67_108_864 } : null,
        authHash: 'ab'.repeat(32), wrapped: k.toBase64Url(k.hazmat.randomBytes(73)),
        expiresAt: now + ask.days * day - 60_000, maxDownloads: ask.maxDownloads, purpose: 'Beleidstest',
      };
      const expected = k.linkPolicyProblem(cls, k.DEFAULT_CLASS_POLICY[cls], { expiresAt: json.expiresAt, password: ask.password, maxDownloads: ask.maxDownloads }, now);
      const res = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/links`, { token: a.token, json });
      if (expected === null) {
        t.is(res.status, 201, `${cls} / ${ask.name}: ${JSON.stringify(res.body)}`);
      } else {
        refusals++;
        t.is(res.status, 403, `${cls} / ${ask.name}`);
        t.is(res.body.error.code, 'policy_refused');
        t.is(res.body.error.message, expected, `${cls} / ${ask.name}`);
      }
    }
  }
  // The table the defaults document (docs/api.md "Policy"): spot checks beyond the shared function.
  t.true(refusals >= 6 * 1 + 5, 'medical refuses every link, the personal classes most');
  const denied = (await auditRows('link.create')).filter((r) => r.outcome === 'denied' && r.actor_user_id === a.userId);
  t.is(denied.length, refusals, 'every refusal is in the audit trail');
  // An organisation's own policy applies at once: links in internal spaces now need a password.
  await call(srv.url, 'PUT', `/api/v1/orgs/${orgId}/policy/internal`, { token: a.token, json: { ...k.DEFAULT_CLASS_POLICY.internal, passwordRequired: true } });
  const { spaceId, pair } = await newSpace(srv.url, a, 'Intern', 'internal');
  const f = newFile();
  const v = version(a, spaceId, pair, 1, f, { parent: null, memberSeq: 1 });
  await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, json: { versions: [v.entry] } });
  const open = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/links`, { token: a.token, json: {
    linkId: k.newId(), fileId: f.fileId, versionId: v.versionId, kdf: null, authHash: 'cd'.repeat(32), wrapped: k.toBase64Url(k.hazmat.randomBytes(73)),
    expiresAt: Date.now() + day, maxDownloads: null, purpose: 'Beleidstest',
  } });
  t.is(open.status, 403);
  t.is(open.body.error.message, 'links of internal spaces need a password');
});

test('kluis-admin policy show and set: the operator changes a class for an organisation; bad values are refused', async (t) => {
  const { admin: a, orgId } = await newOrg(srv.url, srv.dataDir);
  const shown = await admin(srv.dataDir, ['policy', 'show', '--org', orgId]);
  t.is(shown.orgId, orgId);
  t.true(shown.policies.confidential.isDefault);
  const set = await admin(srv.dataDir, ['policy', 'set', '--org', orgId, '--class', 'confidential', '--max-days', '3', '--max-downloads', 'any', '--links', 'yes', '--external', 'yes']);
  t.like(set.policy, { linksAllowed: true, maxLinkDays: 3, maxDownloads: null, passwordRequired: true, externalMembers: true, isDefault: false });
  const seen = await call(srv.url, 'GET', `/api/v1/orgs/${orgId}/policy`, { token: a.token });
  t.deepEqual(seen.body.policies.confidential, set.policy, 'the API serves what the operator set');
  const bad = await admin(srv.dataDir, ['policy', 'set', '--org', orgId, '--class', 'confidential', '--max-days', '365']).catch((e: { stdout?: string; stderr?: string }) => e);
  t.regex(`${bad.stdout ?? ''}${bad.stderr ?? ''}`, /maxLinkDays/);
  t.true((await admin(srv.dataDir, ['policy', 'set', '--org', orgId, '--class', 'confidential', '--default'])).policy.isDefault);
  t.true((await auditRows('policy.change')).some((r) => r.actor_user_id === null && r.details?.includes('"maxLinkDays":3')), 'audited as the operator');
});
