// Role matrix of the administration API (issue 18; docs/admin.md "Roles"): every admin act, tried by the main admin,
// a backup admin, a domain admin inside and outside the space's domain, an auditor, a member and another
// organisation's main admin, is allowed or refused (403; 404 for the other organisation, which must not learn that
// anything exists), and each attempt is in the audit trail under its action, actor and outcome.
import test from 'ava';
import type { Knex } from 'knex';
import * as k from '@kluis/shared';
import { openServerDb, startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, admin, call, enrolTotp, newColleague, newOrg, newSpace, type Res, type User } from '../helpers/api.js';

type Actor = 'main' | 'backup' | 'domainIn' | 'domainOut' | 'auditor' | 'member' | 'foreign';
const ACTORS: Actor[] = ['main', 'backup', 'domainIn', 'domainOut', 'auditor', 'member', 'foreign'];

let srv: RunningServer;
let db: Knex;
const who = {} as Record<Actor, User>;
let orgId: string;
let spaceId: string;
let domainD: string;
let domainE: string;
let spaceMember: User; // a plain member of the space in domain D
let proposer: User; // a second backup admin who proposes successors for the confirm and cancel rows

interface Act {
  name: string;
  /** the audited action */
  action: string;
  allowed: Actor[];
  run(u: User): Promise<Res>;
  /** undoes an allowed act so the next actor finds the same state */
  undo?(u: User): Promise<void>;
}

const org = (rest: string) => `/api/v1/orgs/${orgId}${rest}`;
const as = (u: User, method: string, url: string, json?: unknown) => call(srv.url, method, url, { token: u.token, ...(json !== undefined ? { json } : {}) });
const must = async (p: Promise<Res>, status: number) => {
  const r = await p;
  if (r.status !== status) throw new Error(`setup: expected ${status}, got ${r.status} ${JSON.stringify(r.body)}`);
  return r;
};
/** A fresh plain member of the organisation (a target that no earlier act changed). */
const fresh = () => newColleague(srv.url, who.main);
let spareDomain = 0;

const acts: Act[] = [
  { name: 'list people', action: 'person.list', allowed: ['main', 'backup', 'domainIn', 'domainOut'], run: (u) => as(u, 'GET', org('/people')) },
  { name: 'read a person of the domain', action: 'person.read', allowed: ['main', 'backup', 'domainIn'], run: (u) => as(u, 'GET', org(`/people/${spaceMember.userId}`)) },
  { name: 'invite', action: 'invite.create', allowed: ['main', 'backup'], run: (u) => as(u, 'POST', org('/invites'), { email: `m-${Math.random().toString(36).slice(2)}@example.be` }) },
  {
    name: 'block', action: 'person.block', allowed: ['main', 'backup'], run: (u) => as(u, 'POST', org(`/people/${spaceMember.userId}/block`)),
    undo: async () => void (await must(as(who.main, 'POST', org(`/people/${spaceMember.userId}/unblock`)), 200)),
  },
  {
    name: 'unblock', action: 'person.unblock', allowed: ['main', 'backup'],
    run: async (u) => {
      await must(as(who.main, 'POST', org(`/people/${spaceMember.userId}/block`)), 200);
      const r = await as(u, 'POST', org(`/people/${spaceMember.userId}/unblock`));
      if (r.status !== 200) await must(as(who.main, 'POST', org(`/people/${spaceMember.userId}/unblock`)), 200);
      return r;
    },
  },
  { name: 'offboard', action: 'person.offboard', allowed: ['main', 'backup'], run: async (u) => as(u, 'POST', org(`/people/${(await fresh()).userId}/offboard`)) },
  {
    name: 'appoint a backup admin', action: 'org.role.change', allowed: ['main'], run: async (u) => as(u, 'PUT', org(`/users/${(await fresh()).userId}/role`), { role: 'backup_admin' }),
  },
  {
    name: 'remove a backup admin', action: 'org.role.change', allowed: ['main'],
    run: async (u) => {
      const b = await fresh();
      await must(as(who.main, 'PUT', org(`/users/${b.userId}/role`), { role: 'backup_admin' }), 200);
      return as(u, 'PUT', org(`/users/${b.userId}/role`), { role: 'member' });
    },
  },
  { name: 'list admins', action: 'admin.list', allowed: ['main', 'backup'], run: (u) => as(u, 'GET', org('/admins')) },
  { name: 'list domains', action: 'domain.list', allowed: ['main', 'backup', 'domainIn', 'domainOut'], run: (u) => as(u, 'GET', org('/domains')) },
  { name: 'create a domain', action: 'domain.create', allowed: ['main', 'backup'], run: (u) => as(u, 'POST', org('/domains'), { name: `Dienst ${++spareDomain}` }) },
  { name: 'rename a domain', action: 'domain.rename', allowed: ['main', 'backup'], run: (u) => as(u, 'PATCH', org(`/domains/${domainD}`), { name: `Financien ${++spareDomain}` }) },
  {
    name: 'delete a domain', action: 'domain.delete', allowed: ['main', 'backup'],
    run: async (u) => as(u, 'DELETE', org(`/domains/${(await must(as(who.main, 'POST', org('/domains'), { name: `Weg ${++spareDomain}` }), 201)).body.domainId}`)),
  },
  { name: 'appoint a domain admin', action: 'domain.admin.appoint', allowed: ['main', 'backup'], run: async (u) => as(u, 'POST', org(`/domains/${domainD}/admins`), { userId: (await fresh()).userId }) },
  {
    name: 'remove a domain admin', action: 'domain.admin.remove', allowed: ['main', 'backup'],
    run: async (u) => {
      const d = await fresh();
      await must(as(who.main, 'POST', org(`/domains/${domainD}/admins`), { userId: d.userId }), 201);
      return as(u, 'DELETE', org(`/domains/${domainD}/admins/${d.userId}`));
    },
  },
  { name: 'put a space in a domain', action: 'space.domain.set', allowed: ['main', 'backup'], run: (u) => as(u, 'PUT', org(`/spaces/${spaceId}/domain`), { domainId: domainD }) },
  { name: "list a domain's spaces", action: 'admin.space.list', allowed: ['main', 'backup', 'domainIn'], run: (u) => as(u, 'GET', org(`/spaces?domainId=${domainD}`)) },
  { name: "see a space's members", action: 'admin.space.members', allowed: ['main', 'backup', 'domainIn'], run: (u) => as(u, 'GET', org(`/spaces/${spaceId}/members`)) },
  { name: 'ask for a member\'s removal', action: 'space.removal.request', allowed: ['main', 'backup', 'domainIn'], run: (u) => as(u, 'POST', org(`/spaces/${spaceId}/removals`), { userId: spaceMember.userId }) },
  {
    name: 'propose a new main admin', action: 'admin.succession.propose', allowed: ['backup'],
    run: async (u) => as(u, 'POST', org('/succession'), { successorUserId: spaceMember.userId }),
    undo: async () => {
      const open = (await must(as(who.main, 'GET', org('/succession')), 200)).body.proposal;
      await must(as(who.main, 'DELETE', org(`/succession/${open.proposalId}`)), 204);
    },
  },
  {
    name: 'confirm a new main admin', action: 'admin.succession.confirm', allowed: ['main', 'backup'],
    run: async (u) => {
      const proposal = (await must(as(proposer, 'POST', org('/succession'), { successorUserId: (await fresh()).userId }), 201)).body;
      const r = await as(u, 'POST', org(`/succession/${proposal.proposalId}/confirm`));
      if (r.status !== 200) await must(as(who.main, 'DELETE', org(`/succession/${proposal.proposalId}`)), 204);
      return r;
    },
    // The operator puts the main admin back (kluis-admin's emergency replacement), so the next actors find the same roles.
    undo: async () => void (await admin(srv.dataDir, ['org', 'replace-main-admin', '--org', orgId, '--email', who.main.email])),
  },
  {
    name: 'cancel a proposal', action: 'admin.succession.cancel', allowed: ['main', 'backup'],
    run: async (u) => {
      const proposal = (await must(as(proposer, 'POST', org('/succession'), { successorUserId: spaceMember.userId }), 201)).body;
      const r = await as(u, 'DELETE', org(`/succession/${proposal.proposalId}`));
      if (r.status !== 204) await must(as(who.main, 'DELETE', org(`/succession/${proposal.proposalId}`)), 204);
      return r;
    },
  },
  { name: 'list all users (org.users.list)', action: 'org.users.list', allowed: ['main', 'backup', 'auditor'], run: (u) => as(u, 'GET', org('/users')) },
  { name: 'read the succession', action: 'admin.succession.read', allowed: ['main', 'backup'], run: (u) => as(u, 'GET', org('/succession')) },
  { name: 'search the audit trail', action: 'audit.search', allowed: ['main', 'backup', 'auditor'], run: (u) => as(u, 'GET', org('/audit?limit=5')) },
];

test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
  db = await openServerDb(srv.dataDir);
  const a = await newOrg(srv.url, srv.dataDir);
  orgId = a.orgId;
  who.main = a.admin;
  who.foreign = (await newOrg(srv.url, srv.dataDir, 'Andere gemeente')).admin;
  who.backup = await newColleague(srv.url, who.main, 'backup_admin');
  proposer = await newColleague(srv.url, who.main, 'backup_admin');
  who.auditor = await newColleague(srv.url, who.main, 'auditor');
  who.member = await newColleague(srv.url, who.main);
  who.domainIn = await fresh();
  who.domainOut = await fresh();
  spaceMember = await fresh();
  domainD = (await must(as(who.main, 'POST', org('/domains'), { name: 'Financien' }), 201)).body.domainId;
  domainE = (await must(as(who.main, 'POST', org('/domains'), { name: 'Zorg' }), 201)).body.domainId;
  await must(as(who.main, 'POST', org(`/domains/${domainD}/admins`), { userId: who.domainIn.userId }), 201);
  await must(as(who.main, 'POST', org(`/domains/${domainE}/admins`), { userId: who.domainOut.userId }), 201);
  // Domain admins, like every admin role, act only from a session that passed 2-step verification.
  await enrolTotp(srv.url, who.domainIn);
  await enrolTotp(srv.url, who.domainOut);
  const space = await newSpace(srv.url, who.member, 'Begroting');
  spaceId = space.spaceId;
  await must(call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/members`, { token: who.member.token, json: await addMemberBody(srv.url, who.member, spaceId, space.pair, spaceMember, 'viewer') }), 201);
  await must(as(who.main, 'PUT', org(`/spaces/${spaceId}/domain`), { domainId: domainD }), 200);
});
test.after.always(async () => {
  await db?.destroy();
  await srv?.stop();
});

async function lastSeq(): Promise<number> {
  return Number((await db('audit_log').max({ n: 'seq' }).first())?.n ?? 0);
}

for (const act of acts) {
  test.serial(`${act.name}: ${act.allowed.join(', ')} allowed; everyone else refused; each attempt audited`, async (t) => {
    for (const actor of ACTORS) {
      const before = await lastSeq();
      const res = await act.run(who[actor]);
      const allowed = act.allowed.includes(actor);
      if (allowed) t.true(res.status >= 200 && res.status < 300, `${actor}: ${res.status} ${JSON.stringify(res.body)}`);
      else {
        t.is(res.status, actor === 'foreign' ? 404 : 403, `${actor}: ${JSON.stringify(res.body)}`);
        t.is(res.body.error.code, actor === 'foreign' ? 'not_found' : 'forbidden');
      }
      const rows = await db('audit_log').where('seq', '>', before).andWhere({ actor_user_id: who[actor].userId, action: act.action }).select('outcome', 'org_id');
      t.true(rows.some((r) => r.outcome === (allowed ? 'success' : 'denied')), `${actor}: audited as ${allowed ? 'success' : 'denied'}`);
      t.true(rows.every((r) => r.org_id === who[actor].orgId), `${actor}: filed under their own organisation`);
      if (allowed && act.undo) await act.undo(who[actor]);
    }
  });
}

test.serial('a domain admin sees only the people and spaces of its own domains', async (t) => {
  const inside = (await as(who.domainIn, 'GET', org('/people'))).body.people.map((p: { userId: string }) => p.userId);
  const outside = (await as(who.domainOut, 'GET', org('/people'))).body.people.map((p: { userId: string }) => p.userId);
  t.true(inside.includes(spaceMember.userId));
  t.false(outside.includes(spaceMember.userId));
  t.deepEqual((await as(who.domainIn, 'GET', org('/spaces'))).body.spaces.map((s: { spaceId: string }) => s.spaceId), [spaceId]);
  t.deepEqual((await as(who.domainOut, 'GET', org('/spaces'))).body.spaces, []);
  t.deepEqual((await as(who.domainOut, 'GET', org('/domains'))).body.domains.map((d: { domainId: string }) => d.domainId), [domainE]);
  // Delegating never takes anything from the main admin: it still sees every space and domain.
  t.true((await as(who.main, 'GET', org('/spaces'))).body.spaces.some((s: { spaceId: string }) => s.spaceId === spaceId));
  t.is((await as(who.main, 'GET', org(`/spaces/${spaceId}/members`))).status, 200);
});

test.serial('nobody blocks or offboards the main admin or themselves; a backup admin does not act on another backup admin', async (t) => {
  t.is((await as(who.backup, 'POST', org(`/people/${who.main.userId}/block`))).status, 403);
  t.is((await as(who.backup, 'POST', org(`/people/${who.main.userId}/offboard`))).status, 403);
  t.is((await as(who.main, 'POST', org(`/people/${who.main.userId}/block`))).status, 409);
  const other = await fresh();
  await must(as(who.main, 'PUT', org(`/users/${other.userId}/role`), { role: 'backup_admin' }), 200);
  t.is((await as(who.backup, 'POST', org(`/people/${other.userId}/block`))).status, 403);
  t.is((await as(who.main, 'POST', org(`/people/${other.userId}/block`))).status, 200);
  t.is((await call(srv.url, 'GET', '/api/v1/me', { token: who.main.token })).body.role, 'main_admin');
});
