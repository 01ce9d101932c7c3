// Device administration and remote wipe over the HTTP API (docs/api.md "Device administration and remote wipe"):
// who may list and revoke an organisation's devices, that a revocation ends the device's event streams at once, that
// a wipe order reaches only the device's own token, and that only that device's key can report the wipe. A real
// server, real SSE connections, kluis-admin as the operator uses it.
import test from 'ava';
import type { Knex } from 'knex';
import * as k from '@kluis/shared';
import { openServerDb, startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, admin, call, login, newColleague, newOrg, newSpace, type User } from '../helpers/api.js';
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

const revoke = (by: User, orgId: string, deviceId: string, json: unknown) => call(srv.url, 'POST', `/api/v1/orgs/${orgId}/devices/${deviceId}/revoke`, { token: by.token, json });
const list = (by: User, orgId = by.orgId) => call(srv.url, 'GET', `/api/v1/orgs/${orgId}/devices`, { token: by.token });
const check = (token: string) => call(srv.url, 'POST', '/api/v1/device-wipe/check', { token });

/** A second session of `u` (a laptop), with a device key registered the way the client does it. */
async function device(u: User, name = 'laptop'): Promise<User & { device: k.DeviceKeys }> {
  const res = await login(srv.url, u.email, u.password, name);
  if (res.status !== 200) throw new Error(`login failed: ${JSON.stringify(res.body)}`);
  const keys = k.deviceKeysFromSeed(k.newDeviceSeed());
  const put = await call(srv.url, 'PUT', '/api/v1/devices/current/key', { token: res.body.token, json: { publicKey: keys.publicKey } });
  if (put.status !== 204) throw new Error(`device key: ${JSON.stringify(put.body)}`);
  return { ...u, token: res.body.token, deviceId: res.body.deviceId, device: keys };
}

function report(d: User, orderId: string, extra: Partial<k.WipeReport> = {}): k.WipeReport {
  return {
    v: 1, orderId, deviceId: d.deviceId, userId: d.userId, wipedAt: Date.now(), folders: [{ spaceId: k.newId(), filesRemoved: 3, bytesRemoved: 300, unsynced: 1, leftInPlace: 0, failed: 0 }],
    filesRemoved: 3, bytesRemoved: 300, unsynced: 1, failed: 0, state: ['keys', 'session', 'index', 'device-key'], sealedUnsyncedPaths: k.sealWipePaths(['x/notes.txt'], k.toBase64Url(d.keys.encPublicKey)), ...extra,
  };
}

async function auditActions(orgId: string, targetId: string): Promise<string[]> {
  return (await db('audit_log').where({ org_id: orgId, target_id: targetId }).orderBy('seq').select('action', 'outcome')).map((r: { action: string; outcome: string }) => `${r.action}:${r.outcome}`);
}

test('an admin revokes a device with a wipe: its stream ends at once, the order reaches only its token, its signed report is recorded', async (t) => {
  const { orgId, admin: a } = await newOrg(srv.url, srv.dataDir);
  const u = await newColleague(srv.url, a);
  const laptop = await device(u);
  const phone = await device(u, 'phone');
  const stream = await openEvents(srv.url, laptop.token);
  open.push(stream);
  t.true(await stream.waitFor(/event: hello/), 'stream open');

  const listed = await list(a);
  t.is(listed.status, 200);
  const row = listed.body.devices.find((d: k.OrgDevice) => d.deviceId === laptop.deviceId);
  t.like(row, { ownerEmail: u.email, name: 'laptop', status: 'active', wipe: null, userId: u.userId });
  t.true(k.OrgDeviceList.safeParse(listed.body).success, 'the answer matches the shared schema');

  const r = await revoke(a, orgId, laptop.deviceId, { wipe: true });
  t.is(r.status, 200);
  t.like(r.body, { deviceId: laptop.deviceId, status: 'wipe-ordered', wipe: { orderedByEmail: a.email, deliveredAt: null, reportedAt: null } });
  t.true(await stream.waitEnd(), 'the revoked device\'s event stream ended at once');
  t.is((await call(srv.url, 'GET', '/api/v1/spaces', { token: laptop.token })).status, 401, 'its token no longer works for anything else');

  // The other device of the same user is not told to wipe, and keeps working.
  t.deepEqual((await check(phone.token)).body, { wipe: false });
  t.is((await call(srv.url, 'GET', '/api/v1/spaces', { token: phone.token })).status, 200);

  const order = await check(laptop.token);
  t.is(order.status, 200);
  t.true(order.body.wipe);
  t.is(typeof order.body.orderId, 'string');
  const delivered = (await list(a)).body.devices.find((d: k.OrgDevice) => d.deviceId === laptop.deviceId);
  t.is(typeof delivered.wipe.deliveredAt, 'number', 'the delivery is recorded');

  // Another user's token, or the same user's other device, cannot report this device's wipe.
  const body = report(laptop, order.body.orderId);
  const signature = k.signWipeReport(body, laptop.device);
  t.is((await call(srv.url, 'POST', '/api/v1/device-wipe/report', { token: phone.token, json: { report: body, signature } })).status, 404);
  t.is((await call(srv.url, 'POST', '/api/v1/device-wipe/report', { token: a.token, json: { report: body, signature } })).status, 404);
  // The device's token with a signature of another key, or over other numbers, is refused.
  const forged = k.signWipeReport(body, phone.device);
  const wrongKey = await call(srv.url, 'POST', '/api/v1/device-wipe/report', { token: laptop.token, json: { report: body, signature: forged } });
  t.is(wrongKey.status, 400);
  t.is(wrongKey.body.error.code, 'bad_signature');
  const altered = await call(srv.url, 'POST', '/api/v1/device-wipe/report', { token: laptop.token, json: { report: { ...body, filesRemoved: 0 }, signature } });
  t.is(altered.status, 400);
  t.is((await list(a)).body.devices.find((d: k.OrgDevice) => d.deviceId === laptop.deviceId).status, 'wipe-ordered', 'no refused report counts');

  const ok = await call(srv.url, 'POST', '/api/v1/device-wipe/report', { token: laptop.token, json: { report: body, signature } });
  t.is(ok.status, 200);
  t.is(typeof ok.body.reportedAt, 'number');
  t.is((await call(srv.url, 'POST', '/api/v1/device-wipe/report', { token: laptop.token, json: { report: body, signature } })).status, 409, 'a report is recorded once');
  t.deepEqual((await check(laptop.token)).body, { wipe: false }, 'a reported wipe is not ordered again');

  const after = (await list(a)).body.devices.find((d: k.OrgDevice) => d.deviceId === laptop.deviceId);
  t.like(after, { status: 'wiped', wipe: { filesRemoved: 3, bytesRemoved: 300, unsynced: 1, folders: 1, failed: 0 } });
  t.is((await revoke(a, orgId, laptop.deviceId, { wipe: true })).status, 409, 'a wiped device cannot be ordered again');

  // The record: the owner (from another device) opens the sealed paths; anyone can check the device's signature.
  const record = await call(srv.url, 'GET', `/api/v1/devices/${laptop.deviceId}/wipe-report`, { token: phone.token });
  t.is(record.status, 200);
  t.notThrows(() => k.verifyWipeReport(record.body.report, record.body.signature, record.body.devicePublicKey));
  t.deepEqual(k.openWipePaths(record.body.report.sealedUnsyncedPaths, u.keys), ['x/notes.txt']);
  t.is((await call(srv.url, 'GET', `/api/v1/devices/${laptop.deviceId}/wipe-report`, { token: a.token })).status, 200, 'the admin reads the record');
  t.throws(() => k.openWipePaths(record.body.report.sealedUnsyncedPaths, a.keys), { message: /do not open/ }, 'but not the sealed paths');
  const stranger = await newColleague(srv.url, a);
  t.is((await call(srv.url, 'GET', `/api/v1/devices/${laptop.deviceId}/wipe-report`, { token: stranger.token })).status, 404, 'a colleague does not');

  // Every act on the device is in its trail (refused reports with a bad signature count as failed, as a 4xx does).
  t.deepEqual(await auditActions(orgId, laptop.deviceId), [
    'device.key.register:success', 'events.subscribe:success', 'device.admin.revoke:success', 'device.wipe.order:success', 'device.wipe.deliver:success',
    'device.wipe.report:failed', 'device.wipe.report:failed', 'device.wipe.report:success', 'device.wipe.report:failed', 'device.wipe.check:success',
    'device.admin.revoke:failed', 'device.wipe.read:success', 'device.wipe.read:success', 'device.wipe.read:denied',
  ]);
});

test('a revoke without wipe signs the device out and orders nothing; a user\'s own revoke never wipes', async (t) => {
  const { orgId, admin: a } = await newOrg(srv.url, srv.dataDir);
  const u = await newColleague(srv.url, a);
  const laptop = await device(u);
  const desktop = await device(u, 'desktop');
  const stream = await openEvents(srv.url, laptop.token);
  open.push(stream);
  t.true(await stream.waitFor(/event: hello/));
  const r = await revoke(a, orgId, laptop.deviceId, { wipe: false });
  t.is(r.status, 200);
  t.like(r.body, { status: 'revoked', wipe: null });
  t.true(await stream.waitEnd(), 'its stream ended at once');
  t.deepEqual((await check(laptop.token)).body, { wipe: false });
  // Self-revoke through the existing route.
  t.is((await call(srv.url, 'DELETE', `/api/v1/devices/${desktop.deviceId}`, { token: u.token })).status, 204);
  t.deepEqual((await check(desktop.token)).body, { wipe: false });
  // An already revoked device can still be ordered to wipe (the user signed it out, then reported it stolen).
  const later = await revoke(a, orgId, desktop.deviceId, { wipe: true });
  t.is(later.status, 200);
  t.is(later.body.status, 'wipe-ordered');
  t.true((await check(desktop.token)).body.wipe);
});

test('a device whose session expired while it was away still receives the order', async (t) => {
  const { orgId, admin: a } = await newOrg(srv.url, srv.dataDir);
  const u = await newColleague(srv.url, a);
  const laptop = await device(u);
  await db('sessions').where({ id: laptop.deviceId }).update({ expires_at: Date.now() - 1000 });
  const listed = (await list(a)).body.devices.find((d: k.OrgDevice) => d.deviceId === laptop.deviceId);
  t.is(listed.status, 'expired');
  t.is((await revoke(a, orgId, laptop.deviceId, { wipe: true })).status, 200);
  const order = await check(laptop.token);
  t.true(order.body.wipe, 'the expired token still names its device');
  const body = report(laptop, order.body.orderId);
  t.is((await call(srv.url, 'POST', '/api/v1/device-wipe/report', { token: laptop.token, json: { report: body, signature: k.signWipeReport(body, laptop.device) } })).status, 200);
});

test('who may list and revoke: main and backup admins yes; members and auditors 403; another organisation 404', async (t) => {
  const { orgId, admin: a } = await newOrg(srv.url, srv.dataDir);
  const backup = await newColleague(srv.url, a, 'backup_admin');
  const auditor = await newColleague(srv.url, a, 'auditor');
  const member = await newColleague(srv.url, a);
  const target = await device(member);
  const other = (await newOrg(srv.url, srv.dataDir, 'Andere Gemeente')).admin;

  t.is((await list(backup)).status, 200);
  for (const who of [auditor, member]) {
    const l = await list(who);
    t.is(l.status, 403);
    t.is(l.body.error.code, 'forbidden');
    t.is((await revoke(who, orgId, target.deviceId, { wipe: true })).status, 403);
  }
  // Another organisation's admin: neither this organisation nor its device exists for them.
  t.is((await list(other, orgId)).status, 404);
  t.is((await revoke(other, orgId, target.deviceId, { wipe: true })).status, 404);
  t.is((await revoke(other, other.orgId, target.deviceId, { wipe: true })).status, 404);
  t.deepEqual((await check(target.token)).body, { wipe: false }, 'none of the refused attempts ordered a wipe');
  const denied = await db('audit_log').where({ org_id: orgId, action: 'device.admin.revoke', outcome: 'denied' }).count({ n: '*' }).first();
  t.is(Number(denied?.n), 2, 'each refusal in this organisation is audited');
  // The backup admin may revoke.
  t.is((await revoke(backup, orgId, target.deviceId, { wipe: false })).status, 200);
});

test('a domain admin sees and revokes only devices of members of its domains\' spaces, never an admin\'s', async (t) => {
  const { orgId, admin: a } = await newOrg(srv.url, srv.dataDir);
  const domainAdmin = await newColleague(srv.url, a, 'domain_admin');
  const inside = await newColleague(srv.url, a);
  const outside = await newColleague(srv.url, a);
  const insideLaptop = await device(inside);
  const outsideLaptop = await device(outside);
  const space = await newSpace(srv.url, a, 'Financiën');
  const added = await call(srv.url, 'POST', `/api/v1/spaces/${space.spaceId}/members`, { token: a.token, json: await addMemberBody(srv.url, a, space.spaceId, space.pair, inside, 'editor') });
  t.is(added.status, 201);
  // Domains have no API on this branch yet: the rows a domain administration would write.
  const domainId = k.newId();
  await db('domains').insert({ id: domainId, org_id: orgId, name: 'Financiën' });
  await db('domain_admins').insert({ domain_id: domainId, user_id: domainAdmin.userId });
  await db('spaces').where({ id: space.spaceId }).update({ domain_id: domainId });

  const seen = (await list(domainAdmin)).body.devices.map((d: k.OrgDevice) => d.deviceId);
  t.true(seen.includes(insideLaptop.deviceId));
  t.false(seen.includes(outsideLaptop.deviceId));
  t.false(seen.includes(a.deviceId), 'the main admin (a member of the space) is out of reach');
  t.is((await revoke(domainAdmin, orgId, outsideLaptop.deviceId, { wipe: true })).status, 404);
  t.is((await revoke(domainAdmin, orgId, a.deviceId, { wipe: true })).status, 404);
  t.is((await revoke(domainAdmin, orgId, insideLaptop.deviceId, { wipe: true })).status, 200);
});

test('kluis-admin device list and revoke --wipe', async (t) => {
  const { orgId, admin: a } = await newOrg(srv.url, srv.dataDir);
  const u = await newColleague(srv.url, a);
  const laptop = await device(u);
  const listed = await admin(srv.dataDir, ['device', 'list', '--org', orgId]);
  t.true(listed.devices.some((d: k.OrgDevice) => d.deviceId === laptop.deviceId && d.status === 'active'));
  const revoked = await admin(srv.dataDir, ['device', 'revoke', laptop.deviceId, '--org', orgId, '--wipe']);
  t.like(revoked, { deviceId: laptop.deviceId, status: 'wipe-ordered', wipe: { orderedByEmail: null } });
  t.is((await call(srv.url, 'GET', '/api/v1/spaces', { token: laptop.token })).status, 401);
  t.true((await check(laptop.token)).body.wipe);
  const otherOrg = (await newOrg(srv.url, srv.dataDir, 'Elders')).orgId;
  const wrong = await t.throwsAsync(admin(srv.dataDir, ['device', 'revoke', u.deviceId, '--org', otherOrg]));
  t.is(JSON.parse((wrong as unknown as { stdout: string }).stdout).error.code, 'not_found', 'a device of another organisation is not found');
  t.deepEqual(await auditActions(orgId, laptop.deviceId), ['device.key.register:success', 'device.admin.revoke:success', 'device.wipe.order:success', 'device.wipe.deliver:success']);
});

test('bad input is a 400 (or 401), never a 500', async (t) => {
  const { orgId, admin: a } = await newOrg(srv.url, srv.dataDir);
  const u = await newColleague(srv.url, a);
  const laptop = await device(u);
  for (const json of [{}, { wipe: 'yes' }, { wipe: true, extra: 1 }, [], null, { wipe: null }]) {
    const r = await revoke(a, orgId, laptop.deviceId, json);
    t.is(r.status, 400, JSON.stringify(json));
    t.true(['validation_failed', 'bad_request'].includes(r.body.error.code));
  }
  const raw = await call(srv.url, 'POST', `/api/v1/orgs/${orgId}/devices/${laptop.deviceId}/revoke`, { token: a.token, raw: '{"wipe":', contentType: 'application/json' });
  t.is(raw.status, 400);
  for (const id of ['nope', 'x'.repeat(300), '%00']) t.is((await revoke(a, orgId, id, { wipe: true })).status, 404, id);
  for (const json of [{}, { publicKey: 'short' }, { publicKey: laptop.device.publicKey, x: 1 }]) {
    t.is((await call(srv.url, 'PUT', '/api/v1/devices/current/key', { token: laptop.token, json })).status, 400);
  }
  t.is((await call(srv.url, 'PUT', '/api/v1/devices/current/key', { token: laptop.token, json: { publicKey: k.deviceKeysFromSeed(k.newDeviceSeed()).publicKey } })).status, 409, 'a device key is set once');
  t.is((await call(srv.url, 'POST', '/api/v1/device-wipe/check', {})).status, 401);
  t.is((await call(srv.url, 'POST', '/api/v1/device-wipe/check', { token: 'A'.repeat(43) })).status, 401);
  const order = await revoke(a, orgId, laptop.deviceId, { wipe: true });
  t.is(order.status, 200);
  const orderId = (await check(laptop.token)).body.orderId;
  const good = report(laptop, orderId);
  for (const json of [{}, { report: good }, { report: { ...good, v: 2 }, signature: k.signWipeReport(good, laptop.device) }, { report: { ...good, filesRemoved: -1 }, signature: 'A'.repeat(86) }, { report: good, signature: 'short' }]) {
    const r = await call(srv.url, 'POST', '/api/v1/device-wipe/report', { token: laptop.token, json });
    t.is(r.status, 400, JSON.stringify(json).slice(0, 80));
  }
  t.is((await call(srv.url, 'POST', '/api/v1/device-wipe/report', { json: { report: good, signature: k.signWipeReport(good, laptop.device) } })).status, 401);
  t.is((await call(srv.url, 'GET', '/api/v1/devices/nope/wipe-report', { token: a.token })).status, 404);
});
