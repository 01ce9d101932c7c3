// Open event streams end at once when their session ends (device revoked, logout, password reset) and when their
// user is removed from a space; streams of other sessions carry on. A real server, real SSE connections.
import test from 'ava';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, call, login, newColleague, newOrg, newSpace, removeBody, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';
import { openEvents, type EventStream } from '../helpers/sse.js';

let srv: RunningServer;
const open: EventStream[] = [];
test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
});
test.after.always(async () => {
  for (const s of open) s.close();
  await srv?.stop();
});

/** Opens a stream and waits for its hello (so that it is registered before the test acts). */
async function stream(t: { is: (a: unknown, b: unknown, m?: string) => void; true: (v: boolean, m?: string) => void }, token: string): Promise<EventStream> {
  const s = await openEvents(srv.url, token);
  open.push(s);
  t.is(s.status, 200);
  t.true(await s.waitFor(/event: hello/), 'hello');
  return s;
}

const commit = (u: User, spaceId: string, pair: k.SpaceKeyPair, epoch = 1) =>
  call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: u.token, json: { versions: [version(u, spaceId, pair, epoch, newFile(), { parent: null }).entry] } });

/** A second session of `u`, as a User (same keys). */
async function secondSession(u: User, name: string): Promise<User> {
  const res = await login(srv.url, u.email, u.password, name);
  if (res.status !== 200) throw new Error(`login failed: ${JSON.stringify(res.body)}`);
  return { ...u, token: res.body.token, deviceId: res.body.deviceId };
}

test('revoking a device ends every open stream of that device at once; the other devices\' streams go on', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const phone = await secondSession(a, 'phone');
  const space = await newSpace(srv.url, a);
  // Two streams on the revoked device's token, one on the device that stays.
  const [p1, p2, stays] = [await stream(t, phone.token), await stream(t, phone.token), await stream(t, a.token)];
  t.is((await call(srv.url, 'DELETE', `/api/v1/devices/${phone.deviceId}`, { token: a.token })).status, 204);
  t.true(await p1.waitEnd(), 'first stream of the revoked device ended');
  t.true(await p2.waitEnd(), 'second stream of the revoked device ended');
  t.is((await commit(a, space.spaceId, space.pair)).status, 201);
  t.true(await stays.waitFor(new RegExp(`event: change\\ndata: \\{"spaceId":"${space.spaceId}","seq":1\\}`)), 'the other device still hears commits');
  t.false(stays.ended());
  t.false(p1.text().includes('event: change'), 'nothing reached the revoked device');
  // Reconnecting with the revoked token is refused.
  t.is((await call(srv.url, 'GET', '/api/v1/events', { token: phone.token })).status, 401);
});

test('logout ends the device\'s open streams at once', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const laptop = await secondSession(a, 'laptop');
  const [mine, other] = [await stream(t, laptop.token), await stream(t, a.token)];
  t.is((await call(srv.url, 'POST', '/api/v1/auth/logout', { token: laptop.token })).status, 204);
  t.true(await mine.waitEnd(), 'the logged-out device\'s stream ended');
  t.false(await other.waitEnd(500), 'another device of the same user stays connected');
});

test('a password reset ends the streams of every session of the account', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const u = await newColleague(srv.url, a);
  const second = await secondSession(u, 'tablet');
  const [s1, s2, colleague] = [await stream(t, u.token), await stream(t, second.token), await stream(t, a.token)];
  // A reset as the client makes it: signed by the account's own key (docs/crypto.md §13).
  const start = await call(srv.url, 'POST', '/api/v1/auth/recovery/start', { json: { email: u.email } });
  t.is(start.status, 200);
  const salt = k.newSalt();
  const { masterKey, authKey } = k.derivePasswordKeys('a new passphrase for the test', salt, k.KDF_MIN);
  const keyBundle = k.sealKeyBundle(u.keys, masterKey, k.generateRecoveryKey());
  const kdf = { salt, ...k.KDF_MIN };
  const signature = k.signRecoveryReset({ email: u.email, challenge: start.body.challenge, kdf, authVerifier: k.authKeyVerifier(authKey), keyBundle }, u.keys);
  const finish = await call(srv.url, 'POST', '/api/v1/auth/recovery/finish', {
    json: { email: u.email, challenge: start.body.challenge, kdf, authKey: k.toBase64Url(authKey), keyBundle, signature, deviceName: 'reset' },
  });
  t.is(finish.status, 200, JSON.stringify(finish.body));
  t.true(await s1.waitEnd(), 'first session\'s stream ended');
  t.true(await s2.waitEnd(), 'second session\'s stream ended');
  t.false(await colleague.waitEnd(500), 'another user\'s stream stays');
  // The session the reset opened gets a stream of its own.
  const fresh = await stream(t, finish.body.token);
  t.false(fresh.ended());
});

test('a member removed from a space stops hearing of it at once; the remaining members still do', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const b = await newColleague(srv.url, a);
  const c = await newColleague(srv.url, a);
  const space = await newSpace(srv.url, a);
  for (const m of [b, c]) {
    t.is((await call(srv.url, 'POST', `/api/v1/spaces/${space.spaceId}/members`, { token: a.token, json: await addMemberBody(srv.url, a, space.spaceId, space.pair, m, 'editor') })).status, 201);
  }
  const [leaver, stays] = [await stream(t, c.token), await stream(t, b.token)];
  t.true(leaver.text().includes(space.spaceId), 'the member\'s hello lists the space');
  const { next, body } = await removeBody(srv.url, a, space.spaceId, space.pair, c, [a, b]);
  const removed = await call(srv.url, 'DELETE', `/api/v1/spaces/${space.spaceId}/members/${c.userId}`, { token: a.token, json: body });
  t.is(removed.status, 204);
  t.is((await commit(a, space.spaceId, next, 2)).status, 201);
  t.true(await stays.waitFor(new RegExp(`event: change\\ndata: \\{"spaceId":"${space.spaceId}","seq":1\\}`)), 'a remaining member hears the commit');
  t.true(await leaver.waitEnd(), 'the removed member\'s stream ended (the client reconnects with fresh memberships)');
  t.false(leaver.text().includes('event: change'), 'the removed member heard nothing of the commit');
  // Reconnected, the removed member's hello no longer lists the space, and later commits do not reach them.
  const again = await stream(t, c.token);
  t.false(again.text().includes(space.spaceId));
  t.is((await commit(a, space.spaceId, next, 2)).status, 201);
  t.true(await stays.waitFor(/"seq":2/));
  t.false(await again.waitFor(/event: change/, 500));
});
