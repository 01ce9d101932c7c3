// Authorisation matrix: every authenticated endpoint x (no token, revoked token, other user, other role,
// other organisation) is refused with 401/403/404, leaks nothing (the refusal equals that of a missing
// resource), changes nothing, and is audited as denied.
import test from 'ava';
import * as k from '@kluis/shared';
import { openServerDb, startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, call, login, newColleague, newOrg, newSpace, removeBody, roleBody, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';

let srv: RunningServer;
let owner: User; // main admin of org A, manager of the space
let viewer: User; // member of org A, viewer in the space
let outsider: User; // member of org A, not in the space
let foreign: User; // main admin of org B
let revokedToken: string;
let spaceId: string;
let pair: k.SpaceKeyPair;
let fileId: string;
let memberBodies: { add: unknown; role: unknown; remove: unknown };

interface Endpoint {
  name: string;
  method: string;
  url: () => string;
  json?: () => unknown;
  /** The lowest caller that may use it: 'any' signed-in user, 'space' member, a space role, or an org admin. */
  needs: 'any' | 'space-viewer' | 'space-editor' | 'space-manager' | 'org-admin' | 'org';
}

const endpoints: Endpoint[] = [
  { name: 'me', method: 'GET', url: () => '/api/v1/me', needs: 'any' },
  { name: 'devices', method: 'GET', url: () => '/api/v1/devices', needs: 'any' },
  { name: 'events', method: 'GET', url: () => '/api/v1/events', needs: 'any' },
  { name: 'space list', method: 'GET', url: () => '/api/v1/spaces', needs: 'any' },
  { name: 'org read', method: 'GET', url: () => `/api/v1/orgs/${owner.orgId}`, needs: 'org' },
  { name: 'org users', method: 'GET', url: () => `/api/v1/orgs/${owner.orgId}/users`, needs: 'org-admin' },
  { name: 'org invite', method: 'POST', url: () => `/api/v1/orgs/${owner.orgId}/invites`, json: () => ({ email: `x${Math.random()}@example.be` }), needs: 'org-admin' },
  { name: 'org role', method: 'PUT', url: () => `/api/v1/orgs/${owner.orgId}/users/${outsider.userId}/role`, json: () => ({ role: 'auditor' }), needs: 'org-admin' },
  { name: 'audit search', method: 'GET', url: () => `/api/v1/orgs/${owner.orgId}/audit`, needs: 'org-admin' },
  { name: 'audit export', method: 'GET', url: () => `/api/v1/orgs/${owner.orgId}/audit/export?format=csv`, needs: 'org-admin' },
  { name: 'directory', method: 'GET', url: () => `/api/v1/directory?userId=${outsider.userId}`, needs: 'org' },
  { name: 'space read', method: 'GET', url: () => `/api/v1/spaces/${spaceId}`, needs: 'space-viewer' },
  { name: 'changes', method: 'GET', url: () => `/api/v1/spaces/${spaceId}/changes?since=0`, needs: 'space-viewer' },
  { name: 'versions', method: 'GET', url: () => `/api/v1/spaces/${spaceId}/files/${fileId}/versions`, needs: 'space-viewer' },
  { name: 'trash', method: 'GET', url: () => `/api/v1/spaces/${spaceId}/trash`, needs: 'space-viewer' },
  { name: 'commit', method: 'POST', url: () => `/api/v1/spaces/${spaceId}/commits`, json: () => ({ versions: [version(owner, spaceId, pair, 1, newFile(), { parent: null }).entry] }), needs: 'space-editor' },
  { name: 'chunks missing', method: 'POST', url: () => `/api/v1/spaces/${spaceId}/chunks/missing`, json: () => ({ ids: ['ab'.repeat(32)] }), needs: 'space-editor' },
  { name: 'chunks upload', method: 'POST', url: () => `/api/v1/spaces/${spaceId}/chunks/upload`, json: () => ({}), needs: 'space-editor' },
  { name: 'chunks download', method: 'POST', url: () => `/api/v1/spaces/${spaceId}/chunks/download`, json: () => ({ ids: ['ab'.repeat(32)] }), needs: 'space-viewer' },
  { name: 'chunk put', method: 'PUT', url: () => `/api/v1/spaces/${spaceId}/chunks/${'ab'.repeat(32)}`, json: () => ({}), needs: 'space-editor' },
  { name: 'chunk get', method: 'GET', url: () => `/api/v1/spaces/${spaceId}/chunks/${'ab'.repeat(32)}`, needs: 'space-viewer' },
  // Bodies a manager's client would send (made in test.before): refusals must not depend on a malformed body.
  { name: 'member add', method: 'POST', url: () => `/api/v1/spaces/${spaceId}/members`, json: () => memberBodies.add, needs: 'space-manager' },
  { name: 'member role', method: 'PATCH', url: () => `/api/v1/spaces/${spaceId}/members/${viewer.userId}`, json: () => memberBodies.role, needs: 'space-manager' },
  { name: 'member remove', method: 'DELETE', url: () => `/api/v1/spaces/${spaceId}/members/${viewer.userId}`, json: () => memberBodies.remove, needs: 'space-manager' },
];

test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
  owner = (await newOrg(srv.url, srv.dataDir)).admin;
  foreign = (await newOrg(srv.url, srv.dataDir, 'Andere gemeente')).admin;
  viewer = await newColleague(srv.url, owner);
  outsider = await newColleague(srv.url, owner);
  ({ spaceId, pair } = await newSpace(srv.url, owner));
  await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/members`, { token: owner.token, json: await addMemberBody(srv.url, owner, spaceId, pair, viewer, 'viewer') });
  memberBodies = {
    add: await addMemberBody(srv.url, owner, spaceId, pair, outsider, 'viewer'),
    role: await roleBody(srv.url, owner, spaceId, viewer, 'editor'),
    remove: (await removeBody(srv.url, owner, spaceId, pair, viewer, [owner])).body,
  };
  const f = newFile();
  fileId = f.fileId;
  await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: owner.token, json: { versions: [version(owner, spaceId, pair, 1, f, { parent: null }).entry] } });
  const second = await login(srv.url, viewer.email, viewer.password, 'revoked device');
  revokedToken = second.body.token;
  await call(srv.url, 'POST', '/api/v1/auth/logout', { token: revokedToken });
});
test.after.always(async () => {
  await srv?.stop();
});

/** The same request with the resource ids swapped for unknown ones: what "missing" looks like. */
function missingTwin(url: string): string {
  return url.replace(spaceId, k.newId()).replace(owner.orgId, k.newId());
}

async function headSeq(): Promise<number> {
  return (await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=0`, { token: owner.token })).body.head;
}

test.serial('every endpoint refuses: no token 401, revoked token 401, other organisation 404 (like a missing one)', async (t) => {
  const before = await headSeq();
  for (const e of endpoints) {
    const noToken = await call(srv.url, e.method, e.url(), { json: e.json?.() });
    t.is(noToken.status, 401, `${e.name}: no token`);
    t.is(noToken.body.error.code, 'unauthenticated');
    const revoked = await call(srv.url, e.method, e.url(), { token: revokedToken, json: e.json?.() });
    t.is(revoked.status, 401, `${e.name}: revoked token`);
    if (e.needs !== 'any') {
      const other = await call(srv.url, e.method, e.url(), { token: foreign.token, json: e.json?.() });
      const missing = await call(srv.url, e.method, missingTwin(e.url()), { token: foreign.token, json: e.json?.() });
      t.is(other.status, 404, `${e.name}: other organisation`);
      t.deepEqual(other.body, missing.body, `${e.name}: the refusal does not reveal that it exists`);
    }
  }
  t.is(await headSeq(), before, 'no refused request changed the change log');
});

test.serial('every space endpoint: a colleague outside the space gets 404; a lower role gets 403', async (t) => {
  for (const e of endpoints) {
    if (e.needs.startsWith('space-')) {
      const res = await call(srv.url, e.method, e.url(), { token: outsider.token, json: e.json?.() });
      t.is(res.status, 404, `${e.name}: not a member`);
      if (e.needs !== 'space-viewer') {
        const low = await call(srv.url, e.method, e.url(), { token: viewer.token, json: e.json?.() });
        t.is(low.status, 403, `${e.name}: viewer`);
        t.is(low.body.error.code, 'forbidden');
      }
    }
    if (e.needs === 'org-admin') {
      const res = await call(srv.url, e.method, e.url(), { token: viewer.token, json: e.json?.() });
      t.is(res.status, 403, `${e.name}: a member is not an admin`);
    }
  }
});

test.serial('each denial is in the audit trail with its action, actor and outcome "denied"', async (t) => {
  const db = await openServerDb(srv.dataDir);
  try {
    const denied = await db('audit_log').where({ outcome: 'denied' }).select('action', 'actor_user_id', 'org_id', 'details');
    const byForeign = denied.filter((r) => r.actor_user_id === foreign.userId).map((r) => r.action);
    const byOutsider = denied.filter((r) => r.actor_user_id === outsider.userId).map((r) => r.action);
    const anonymous = denied.filter((r) => r.actor_user_id === null).map((r) => r.action);
    for (const action of ['keys.space.read', 'changes.read', 'commit.create', 'space.member.add', 'org.users.list', 'directory.read']) {
      t.true(byForeign.includes(action), `foreign ${action}`);
    }
    for (const action of ['keys.space.read', 'changes.read', 'commit.create']) t.true(byOutsider.includes(action), `outsider ${action}`);
    for (const action of ['keys.bundle.read', 'commit.create', 'events.subscribe']) t.true(anonymous.includes(action), `no token ${action}`);
    // Denials by a known user are filed under that user's organisation (for its auditors), never another's.
    t.true(denied.filter((r) => r.actor_user_id === foreign.userId).every((r) => r.org_id === foreign.orgId));
  } finally {
    await db.destroy();
  }
});
