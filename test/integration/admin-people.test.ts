// People and admins (issue 18; docs/admin.md): blocking ends every session and event stream at once and refuses login,
// unblocking restores login; the main access admin is replaced only by a two-step act (a backup admin proposes, a
// second admin confirms, before it expires), or by the operator in an emergency; the database itself keeps one main
// admin per organisation; every new endpoint refuses bad input with 400/404/409, never a 500.
import test from 'ava';
import type { Knex } from 'knex';
import * as k from '@kluis/shared';
import { openServerDb, startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, admin as kluisAdmin, call, login, newColleague, newOrg, newSpace, removeBody, type Res, type User, enrolTotp } from '../helpers/api.js';
import { openEvents, type EventStream } from '../helpers/sse.js';

let srv: RunningServer;
let db: Knex;
const open: EventStream[] = [];

test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
  db = await openServerDb(srv.dataDir);
});
test.after.always(async () => {
  for (const s of open) s.close();
  await db?.destroy();
  await srv?.stop();
});

const as = (u: User, method: string, url: string, json?: unknown): Promise<Res> => call(srv.url, method, url, { token: u.token, ...(json !== undefined ? { json } : {}) });
const role = async (u: User) => (await db('users').where({ id: u.userId }).first('role')).role as string;

async function audited(actor: User, action: string, outcome: string): Promise<boolean> {
  return Boolean(await db('audit_log').where({ actor_user_id: actor.userId, action, outcome }).first('seq'));
}

test('blocking ends every session and event stream at once and refuses login; unblocking restores login', async (t) => {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  const person = await newColleague(srv.url, admin);
  const second = await login(srv.url, person.email, person.password, 'second laptop');
  const streams = [await openEvents(srv.url, person.token), await openEvents(srv.url, second.body.token)];
  open.push(...streams);
  for (const s of streams) t.true(await s.waitFor(/event: hello/));

  const blocked = await as(admin, 'POST', `/api/v1/orgs/${admin.orgId}/people/${person.userId}/block`);
  t.is(blocked.status, 200);
  t.like(blocked.body, { status: 'blocked', sessionsEnded: 2 });
  for (const s of streams) t.true(await s.waitEnd(), 'the stream ended at once');
  t.is((await call(srv.url, 'GET', '/api/v1/me', { token: person.token })).status, 401);
  t.is((await login(srv.url, person.email, person.password)).status, 401);
  t.is((await as(admin, 'POST', `/api/v1/orgs/${admin.orgId}/people/${person.userId}/block`)).status, 409, 'already blocked');
  const listed = (await as(admin, 'GET', `/api/v1/orgs/${admin.orgId}/people`)).body.people.find((p: { userId: string }) => p.userId === person.userId);
  t.like(listed, { status: 'blocked', devices: 0, role: 'member', domains: [] });
  t.true(typeof listed.lastSeenAt === 'number');

  t.is((await as(admin, 'POST', `/api/v1/orgs/${admin.orgId}/people/${person.userId}/unblock`)).status, 200);
  const again = await login(srv.url, person.email, person.password);
  t.is(again.status, 200);
  t.is((await call(srv.url, 'GET', '/api/v1/me', { token: second.body.token })).status, 401, 'old sessions stay ended');
  t.true(await audited(admin, 'person.block', 'success'));
  t.true(await audited(admin, 'person.unblock', 'success'));

  // Offboarded is final: no unblock (invite them again instead).
  t.is((await as(admin, 'POST', `/api/v1/orgs/${admin.orgId}/people/${person.userId}/offboard`)).status, 200);
  t.is((await as(admin, 'POST', `/api/v1/orgs/${admin.orgId}/people/${person.userId}/unblock`)).status, 409);
  t.is((await login(srv.url, person.email, person.password)).status, 401);
  t.is((await as(admin, 'GET', `/api/v1/directory?userId=${person.userId}`)).status, 404, 'no longer in the directory');
});

test('replacing the main admin: a backup proposes, a second admin confirms, the roles swap; both steps audited', async (t) => {
  const { admin: main, orgId } = await newOrg(srv.url, srv.dataDir);
  const backup1 = await newColleague(srv.url, main, 'backup_admin');
  const backup2 = await newColleague(srv.url, main, 'backup_admin');
  const auditor = await newColleague(srv.url, main, 'auditor');
  const successor = await newColleague(srv.url, main);
  const foreign = (await newOrg(srv.url, srv.dataDir, 'Elders')).admin;
  const base = `/api/v1/orgs/${orgId}/succession`;

  t.is((await as(main, 'POST', base, { successorUserId: successor.userId })).status, 403, 'the main admin does not propose');
  const proposed = await as(backup1, 'POST', base, { successorUserId: successor.userId });
  t.is(proposed.status, 201);
  t.like(proposed.body, { successorUserId: successor.userId, proposedBy: backup1.userId, state: 'open' });
  t.is(proposed.body.expiresAt - proposed.body.proposedAt, k.SUCCESSION_TTL_MS);
  t.is((await as(backup2, 'POST', base, { successorUserId: backup2.userId })).status, 409, 'one open proposal at a time');
  const confirm = `${base}/${proposed.body.proposalId}/confirm`;
  t.is((await as(backup1, 'POST', confirm)).status, 403, 'not by the proposer');
  t.is((await as(auditor, 'POST', confirm)).status, 403);
  t.is((await as(successor, 'POST', confirm)).status, 403);
  t.is((await as(foreign, 'POST', confirm)).status, 404);
  t.is(await role(main), 'main_admin', 'nothing changed yet');

  const done = await as(backup2, 'POST', confirm);
  t.is(done.status, 200);
  t.deepEqual(done.body, { mainAdmin: successor.userId, formerMainAdmin: main.userId });
  t.is(await role(successor), 'main_admin');
  t.is(await role(main), 'backup_admin');
  t.deepEqual(await db('users').where({ org_id: orgId, role: 'main_admin' }).pluck('id'), [successor.userId]);
  t.is((await as(backup2, 'POST', confirm)).status, 409, 'confirmed once');
  t.true(await audited(backup1, 'admin.succession.propose', 'success'));
  t.true(await audited(backup2, 'admin.succession.confirm', 'success'));
  t.true(await audited(backup1, 'admin.succession.confirm', 'denied'));

  // The new main admin acts as an admin only once their session passed 2-step verification (enrolled here).
  t.is((await as(successor, 'GET', `${base}`)).body.error?.code, 'totp_required');
  await enrolTotp(srv.url, successor);
  // A proposal expires: confirming it after its time is refused.
  const late = await as(backup1, 'POST', base, { successorUserId: backup2.userId });
  t.is(late.status, 201);
  await db('admin_successions').where({ id: late.body.proposalId }).update({ expires_at: Date.now() - 1 });
  const expired = await as(successor, 'POST', `${base}/${late.body.proposalId}/confirm`);
  t.is(expired.status, 409);
  t.regex(expired.body.error.message, /expired/);
  // Cancelled proposals cannot be confirmed either.
  const third = await as(backup1, 'POST', base, { successorUserId: backup2.userId });
  t.is((await as(successor, 'DELETE', `${base}/${third.body.proposalId}`)).status, 204);
  t.is((await as(backup2, 'POST', `${base}/${third.body.proposalId}/confirm`)).status, 409);
  t.is(await role(successor), 'main_admin');
});

test('the database keeps one main admin per organisation; kluis-admin shows the admins and replaces the main admin (audited)', async (t) => {
  const { admin: main, orgId } = await newOrg(srv.url, srv.dataDir);
  const backup = await newColleague(srv.url, main, 'backup_admin');
  await t.throwsAsync(db('users').where({ id: backup.userId }).update({ role: 'main_admin' }), undefined, 'a second main admin is refused by the database');
  const invite = await kluisAdmin(srv.dataDir, ['invite', '--org', orgId, '--email', 'tweede@example.be', '--role', 'main_admin']).catch((err: { stdout?: string }) => JSON.parse(String(err.stdout)));
  t.like(invite, { error: { code: 'conflict' } });

  const listed = await kluisAdmin(srv.dataDir, ['org', 'admins', '--org', orgId]);
  t.deepEqual(listed.admins.map((a: { email: string; role: string }) => [a.role, a.email]).sort(), [['backup_admin', backup.email], ['main_admin', main.email]].sort());
  const replaced = await kluisAdmin(srv.dataDir, ['org', 'replace-main-admin', '--org', orgId, '--email', backup.email]);
  t.deepEqual(replaced, { orgId, mainAdmin: backup.userId, formerMainAdmin: main.userId });
  t.is(await role(backup), 'main_admin');
  t.is(await role(main), 'backup_admin');
  const entry = await db('audit_log').where({ org_id: orgId, action: 'admin.main.replace' }).first('actor_user_id', 'client', 'target_id', 'outcome');
  t.like(entry, { actor_user_id: null, client: 'kluis-admin/0.1.0', target_id: backup.userId, outcome: 'success' });
  t.truthy(await db('audit_log').where({ org_id: orgId, action: 'admin.list', client: 'kluis-admin/0.1.0' }).first('seq'));
});

test('bad input to the administration endpoints: 400 naming the field, 404 for unknown ids, 409 for impossible acts', async (t) => {
  const { admin, orgId } = await newOrg(srv.url, srv.dataDir);
  const member = await newColleague(srv.url, admin);
  const org = (rest: string) => `/api/v1/orgs/${orgId}${rest}`;
  const unknown = k.newId();
  const domain = (await as(admin, 'POST', org('/domains'), { name: 'Financien' })).body.domainId;
  const cases: [string, string, unknown, number, string?][] = [
    ['POST', org('/domains'), {}, 400, 'name'],
    ['POST', org('/domains'), { name: '' }, 400, 'name'],
    ['POST', org('/domains'), { name: 'a\u202Eb' }, 400, 'name'],
    ['POST', org('/domains'), { name: 'x', extra: 1 }, 400],
    ['POST', org('/domains'), { name: 'Financien' }, 409],
    ['PATCH', org(`/domains/${domain}`), { name: 42 }, 400, 'name'],
    ['PATCH', org(`/domains/${unknown}`), { name: 'Nieuw' }, 404],
    ['DELETE', org(`/domains/${unknown}`), undefined, 404],
    ['POST', org(`/domains/${domain}/admins`), { userId: 'short' }, 400, 'userId'],
    ['POST', org(`/domains/${domain}/admins`), { userId: unknown }, 404],
    ['POST', org(`/domains/${domain}/admins`), { userId: admin.userId }, 409],
    ['DELETE', org(`/domains/${domain}/admins/${member.userId}`), undefined, 404],
    ['PUT', org(`/spaces/${unknown}/domain`), { domainId: domain }, 404],
    ['GET', org(`/spaces?domainId=${unknown}`), undefined, 404],
    ['GET', org(`/spaces/${unknown}/members`), undefined, 404],
    ['POST', org(`/spaces/${unknown}/removals`), { userId: member.userId }, 404],
    ['GET', org(`/people/${unknown}`), undefined, 404],
    ['POST', org(`/people/${unknown}/block`), undefined, 404],
    ['POST', org(`/people/${member.userId}/unblock`), undefined, 409],
    ['POST', org(`/people/${admin.userId}/offboard`), undefined, 409],
    ['POST', org('/succession'), { successorUserId: 'x' }, 403],
    ['POST', org(`/succession/${unknown}/confirm`), undefined, 404],
    ['DELETE', org(`/succession/${unknown}`), undefined, 404],
    ['GET', `/api/v1/orgs/${unknown}/people`, undefined, 404],
    ['GET', `/api/v1/orgs/${orgId}\u0000/people`, undefined, 404],
  ];
  for (const [method, url, json, status, field] of cases) {
    const r = await as(admin, method, url, json);
    t.is(r.status, status, `${method} ${url} ${JSON.stringify(json)}: ${JSON.stringify(r.body)}`);
    t.is(typeof r.body.error?.code, 'string');
    if (field) t.true(r.body.error.message.startsWith(`${field}:`), r.body.error.message);
  }
  const backup = await newColleague(srv.url, admin, 'backup_admin');
  for (const json of [{}, { successorUserId: 'x' }, { successorUserId: unknown, more: true }]) t.is((await as(backup, 'POST', org('/succession'), json)).status, 400);
  t.is((await as(backup, 'POST', org('/succession'), { successorUserId: unknown })).status, 404);
  t.is((await as(backup, 'POST', org('/succession'), { successorUserId: admin.userId })).status, 409, 'already the main admin');
  const malformed = await call(srv.url, 'POST', org('/domains'), { token: admin.token, raw: '{"name":', contentType: 'application/json' });
  t.is(malformed.status, 400);
});

test('an admin asks for a member\'s removal: the member is refused the space at once; a manager completes it with a rotation', async (t) => {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  const manager = await newColleague(srv.url, admin);
  const leaving = await newColleague(srv.url, admin);
  const blocked = await newColleague(srv.url, admin);
  const { spaceId, pair } = await newSpace(srv.url, manager, 'Personeel');
  for (const u of [leaving, blocked]) {
    t.is((await as(manager, 'POST', `/api/v1/spaces/${spaceId}/members`, await addMemberBody(srv.url, manager, spaceId, pair, u, 'viewer'))).status, 201);
  }
  const theirs = await openEvents(srv.url, leaving.token);
  open.push(theirs);
  t.true(await theirs.waitFor(/event: hello/));
  // A blocked member stays in the directory, so that the manager's rotation can still give them the new key.
  t.is((await as(admin, 'POST', `/api/v1/orgs/${admin.orgId}/people/${blocked.userId}/block`)).status, 200);
  t.is((await as(manager, 'GET', `/api/v1/directory?userId=${blocked.userId}`)).status, 200);

  const asked = await as(admin, 'POST', `/api/v1/orgs/${admin.orgId}/spaces/${spaceId}/removals`, { userId: leaving.userId });
  t.is(asked.status, 202);
  t.deepEqual(asked.body, { spaceId, userId: leaving.userId, managers: 1 });
  t.true(await theirs.waitEnd(), 'their event stream ended');
  t.is((await as(leaving, 'GET', `/api/v1/spaces/${spaceId}`)).status, 404, 'refused at once');
  t.false((await as(leaving, 'GET', '/api/v1/spaces')).body.spaces.some((s: { spaceId: string }) => s.spaceId === spaceId));
  const members = (await as(admin, 'GET', `/api/v1/orgs/${admin.orgId}/spaces/${spaceId}/members`)).body.members;
  t.like(members.find((m: { userId: string }) => m.userId === leaving.userId), { removalPending: true, status: 'active' });
  t.like(members.find((m: { userId: string }) => m.userId === blocked.userId), { removalPending: false, status: 'blocked' });
  t.deepEqual((await as(manager, 'GET', `/api/v1/spaces/${spaceId}`)).body.pendingRemovals, [leaving.userId]);

  const { body } = await removeBody(srv.url, manager, spaceId, pair, leaving, [manager, blocked]);
  t.is((await as(manager, 'DELETE', `/api/v1/spaces/${spaceId}/members/${leaving.userId}`, body)).status, 204);
  t.deepEqual((await as(manager, 'GET', `/api/v1/spaces/${spaceId}`)).body.pendingRemovals, []);
  t.deepEqual(await db('space_key_wraps').where({ space_id: spaceId, key_epoch: 2 }).orderBy('user_id').pluck('user_id'), [manager.userId, blocked.userId].sort());
  t.true(await audited(admin, 'space.removal.request', 'success'));
});
