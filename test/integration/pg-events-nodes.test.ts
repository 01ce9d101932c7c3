// Change events across API nodes (server/src/events-pg.ts, issue 21 §3): two server processes on one PostgreSQL
// database. A device connected to one node hears of a commit made through the other within a second; a logout or a
// device revocation through one node ends the device's streams on the other at once; when a node loses its
// listening connection it ends its streams (their clients reconnect) and listens again.
import test, { type ExecutionContext } from 'ava';
import * as k from '@kluis/shared';
import { openServerDb, startSecondNode, startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, call, login, newColleague, newOrg, newSpace, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';
import { openEvents, type EventStream } from '../helpers/sse.js';
import { usePostgres } from '../helpers/postgres-suite.js';

let nodeA: RunningServer;
let nodeB: RunningServer;
const open: EventStream[] = [];

test.before(async () => {
  await k.initCrypto();
  nodeA = await startServer();
  nodeB = await startSecondNode(nodeA);
});
test.after.always(async () => {
  for (const s of open) s.close();
  await nodeB?.stop();
  await nodeA?.stop();
});
usePostgres(); // after the hook above: the nodes stop before the cluster does

async function stream(t: ExecutionContext, node: RunningServer, token: string): Promise<EventStream> {
  const s = await openEvents(node.url, token);
  open.push(s);
  t.is(s.status, 200);
  t.true(await s.waitFor(/event: hello/), 'hello');
  return s;
}

async function session(node: RunningServer, u: User, name: string): Promise<User> {
  const res = await login(node.url, u.email, u.password, name);
  if (res.status !== 200) throw new Error(`login failed: ${JSON.stringify(res.body)}`);
  return { ...u, token: res.body.token, deviceId: res.body.deviceId };
}

const commit = (node: RunningServer, u: User, spaceId: string, pair: k.SpaceKeyPair) =>
  call(node.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: u.token, json: { versions: [version(u, spaceId, pair, 1, newFile(), { parent: null }).entry] } });

const changeOf = (spaceId: string, seq: number) => new RegExp(`event: change\\ndata: \\{"spaceId":"${spaceId}","seq":${seq}\\}`);

test.serial('a device on one node hears of a commit made through the other within a second, both ways', async (t) => {
  const { admin: a } = await newOrg(nodeA.url, nodeA.dataDir);
  const onB = await session(nodeB, a, 'laptop on node B');
  const { spaceId, pair } = await newSpace(nodeA.url, a);
  const [hearsOnA, hearsOnB] = [await stream(t, nodeA, a.token), await stream(t, nodeB, onB.token)];
  let started = Date.now();
  t.is((await commit(nodeB, onB, spaceId, pair)).status, 201);
  t.true(await hearsOnA.waitFor(changeOf(spaceId, 1), 1000), `node A heard node B's commit within 1 s: ${hearsOnA.text()}`);
  t.log(`B → A: ${Date.now() - started} ms after the commit was sent`);
  started = Date.now();
  t.is((await commit(nodeA, a, spaceId, pair)).status, 201);
  t.true(await hearsOnB.waitFor(changeOf(spaceId, 2), 1000), 'node B heard node A\'s commit within 1 s');
  t.log(`A → B: ${Date.now() - started} ms`);
  // Each node's own streams hear each commit once (its own commits locally, not again through the relay).
  t.true(await hearsOnA.waitFor(changeOf(spaceId, 2)));
  t.true(await hearsOnB.waitFor(changeOf(spaceId, 1)));
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.is(hearsOnA.text().match(/event: change/g)?.length, 2);
  t.is(hearsOnB.text().match(/event: change/g)?.length, 2);
});

test.serial('a logout or a device revocation through one node ends the device\'s streams on the other at once', async (t) => {
  const { admin: a } = await newOrg(nodeA.url, nodeA.dataDir);
  const phone = await session(nodeA, a, 'phone');
  const laptop = await session(nodeA, a, 'laptop');
  const [phoneOnA, laptopOnA, stays] = [await stream(t, nodeA, phone.token), await stream(t, nodeA, laptop.token), await stream(t, nodeA, a.token)];
  t.is((await call(nodeB.url, 'POST', '/api/v1/auth/logout', { token: phone.token })).status, 204);
  t.true(await phoneOnA.waitEnd(1000), 'the logged-out device\'s stream on the other node ended');
  t.is((await call(nodeB.url, 'DELETE', `/api/v1/devices/${laptop.deviceId}`, { token: a.token })).status, 204);
  t.true(await laptopOnA.waitEnd(1000), 'the revoked device\'s stream on the other node ended');
  t.false(await stays.waitEnd(300), 'the other device stays connected');
});

test.serial('a node that loses its listening connection ends its streams, listens again, and events flow again', async (t) => {
  const { admin: a } = await newOrg(nodeA.url, nodeA.dataDir);
  const { spaceId, pair } = await newSpace(nodeA.url, a);
  const before = await stream(t, nodeA, a.token);
  const db = await openServerDb(nodeA.dataDir);
  try {
    // Both nodes' listening connections, ended by the database (as a restart or a network cut would).
    const ended = await db.raw("SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'kluis-events' AND pid <> pg_backend_pid()");
    t.is(ended.rows.length, 2);
  } finally {
    await db.destroy();
  }
  t.true(await before.waitEnd(2000), 'the stream ended, so its client reconnects and reads the heads afresh');
  // Once listening again (within a second or so), a new stream hears the other node's commits.
  let heard = false;
  for (let i = 0; i < 20 && !heard; i++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    // A stream opened before the node listens again is ended when it does (maybe before its hello): try again.
    const s = await openEvents(nodeA.url, a.token);
    open.push(s);
    if (!(await s.waitFor(/event: hello/, 1000))) continue;
    t.is((await commit(nodeB, a, spaceId, pair)).status, 201);
    heard = await s.waitFor(/event: change/, 1000);
    s.close();
  }
  t.true(heard);
});

// Admin acts (issue 18, docs/admin.md): blocking and offboarding through one node reach the streams on the other.
test.serial('blocking through one node ends the person\'s streams on the other at once', async (t) => {
  const { admin } = await newOrg(nodeA.url, nodeA.dataDir);
  const person = await newColleague(nodeA.url, admin);
  const theirs = await stream(t, nodeA, person.token);
  const admins = await stream(t, nodeA, admin.token);
  t.is((await call(nodeB.url, 'POST', `/api/v1/orgs/${admin.orgId}/people/${person.userId}/block`, { token: admin.token })).status, 200);
  t.true(await theirs.waitEnd(1000), 'their stream on node A ended');
  t.false(await admins.waitEnd(300), 'others stay connected');
});

test.serial('offboarding through one node sends removal-pending to the managers\' streams on the other', async (t) => {
  const { admin } = await newOrg(nodeA.url, nodeA.dataDir);
  const manager = await newColleague(nodeA.url, admin);
  const leaver = await newColleague(nodeA.url, admin);
  const { spaceId, pair } = await newSpace(nodeA.url, manager);
  const added = await call(nodeA.url, 'POST', `/api/v1/spaces/${spaceId}/members`, { token: manager.token, json: await addMemberBody(nodeA.url, manager, spaceId, pair, leaver, 'editor') });
  t.is(added.status, 201);
  const managers = await stream(t, nodeA, manager.token);
  const theirs = await stream(t, nodeA, leaver.token);
  const off = await call(nodeB.url, 'POST', `/api/v1/orgs/${admin.orgId}/people/${leaver.userId}/offboard`, { token: admin.token });
  t.is(off.status, 200);
  t.true(await managers.waitFor(new RegExp(`event: removal-pending\\ndata: \\{"spaceId":"${spaceId}"\\}`), 1000), managers.text());
  t.true(await theirs.waitEnd(1000), 'the offboarded person\'s stream ended');
});
