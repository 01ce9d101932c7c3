// Spaces, members, key rotation, batch commits with parent checks, the change log, history, trash and events.
import test from 'ava';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, call, memberIdentity, newColleague, newOrg, newSpace, removeBody, roleBody, spaceLog, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';

let srv: RunningServer;
test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
});
test.after.always(async () => {
  await srv?.stop();
});

const commit = (u: User, spaceId: string, versions: unknown[]) => call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: u.token, json: { versions } });

async function addMember(manager: User, spaceId: string, pair: k.SpaceKeyPair, member: User, role: string) {
  return call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/members`, { token: manager.token, json: await addMemberBody(srv.url, manager, spaceId, pair, member, role) });
}

test('space: the creator is manager, lists it, and opens their own signed wrap', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const { spaceId, pair, res } = await newSpace(srv.url, a, 'Sociale dienst', 'social-personal');
  t.is(res.status, 201);
  const list = await call(srv.url, 'GET', '/api/v1/spaces', { token: a.token });
  t.deepEqual(list.body.spaces.map((s: { spaceId: string; role: string; classification: string }) => [s.spaceId, s.role, s.classification]), [[spaceId, 'manager', 'social-personal']]);
  const got = await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}`, { token: a.token });
  const trusted = (signer: string) => got.body.members.some((m: { signPublicKey: string; role: string }) => m.signPublicKey === signer && m.role === 'manager');
  const opened = k.openSpaceKeyWrap(got.body.myWraps[0], { spaceId, keyEpoch: 1 }, a.keys, trusted);
  t.deepEqual(opened.secretKey, pair.secretKey);
});

test('space: creation refuses a wrap for another key, a forged wrap, a forged or foreign log entry and a duplicate id', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const b = await newColleague(srv.url, a);
  const spaceId = k.newId();
  const pair = k.generateSpaceKeyPair();
  const publicKey = k.toBase64Url(pair.publicKey);
  const entry = k.signMembershipEntry({ spaceId, seq: 1, prev: k.MEMBERSHIP_GENESIS, op: 'create', ts: Date.now(), user: memberIdentity(a), role: 'manager', keyEpoch: 1, spacePublicKey: publicKey }, a.keys);
  const other = k.generateAccountKeys();
  const toOther = k.wrapSpaceKey(pair, { spaceId, keyEpoch: 1, recipient: k.toBase64Url(other.encPublicKey) }, a.keys);
  const create = (json: Record<string, unknown>) => call(srv.url, 'POST', '/api/v1/spaces', { token: a.token, json: { id: spaceId, name: 'x', publicKey, ...json } });
  const r1 = await create({ wrap: toOther, entry });
  t.is(r1.status, 400);
  const good = k.wrapSpaceKey(pair, { spaceId, keyEpoch: 1, recipient: a.identity.encPublicKey }, a.keys);
  const forged = { ...good, keyEpoch: 1, sig: k.toBase64Url(new Uint8Array(64)) };
  const r2 = await create({ wrap: forged, entry });
  t.is(r2.status, 400);
  t.is(r2.body.error.code, 'bad_signature');
  t.is((await create({ wrap: good })).status, 400, 'the log entry is required');
  const forgedEntry = { ...entry, sig: k.toBase64Url(new Uint8Array(64)) };
  const r3 = await create({ wrap: good, entry: forgedEntry });
  t.is(r3.body.error.code, 'bad_signature', JSON.stringify(r3.body));
  // An entry that makes someone else the creator (signed by them) is not the caller's.
  const byB = k.signMembershipEntry({ spaceId, seq: 1, prev: k.MEMBERSHIP_GENESIS, op: 'create', ts: Date.now(), user: memberIdentity(b), role: 'manager', keyEpoch: 1, spacePublicKey: publicKey }, b.keys);
  const r4 = await create({ wrap: good, entry: byB });
  t.is(r4.status, 400);
  t.is(r4.body.error.code, 'bad_membership');
  const otherKey = k.signMembershipEntry({ spaceId, seq: 1, prev: k.MEMBERSHIP_GENESIS, op: 'create', ts: Date.now(), user: memberIdentity(a), role: 'manager', keyEpoch: 1, spacePublicKey: k.toBase64Url(k.generateSpaceKeyPair().publicKey) }, a.keys);
  t.is((await create({ wrap: good, entry: otherKey })).body.error.code, 'bad_membership', 'the entry must record the space key sent');
  const ok = await create({ wrap: good, entry });
  t.is(ok.status, 201);
  t.is((await create({ wrap: good, entry })).status, 409);
  const view = await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}`, { token: a.token });
  t.is(k.verifyMembershipLog(view.body.log, spaceId).members.get(a.userId)?.role, 'manager');
});

test('membership log on the server: entries must extend its head, name the directory\'s keys and match the request', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const [b, c] = [await newColleague(srv.url, a), await newColleague(srv.url, a)];
  const { spaceId, pair } = await newSpace(srv.url, a);
  const members = (json: unknown) => call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/members`, { token: a.token, json });
  const forB = await addMemberBody(srv.url, a, spaceId, pair, b, 'editor');
  const forC = await addMemberBody(srv.url, a, spaceId, pair, c, 'viewer'); // made at the same head as forB
  t.is((await members({ ...forB, role: 'manager' })).body.error.code, 'bad_membership', 'the entry records another role');
  t.is((await members({ ...forB, userId: c.userId, wrap: forC.wrap })).body.error.code, 'bad_membership', 'the entry names another member');
  const strangerKeys = k.generateAccountKeys();
  const impostor = { ...memberIdentity(b), encPublicKey: k.toBase64Url(strangerKeys.encPublicKey), signPublicKey: k.toBase64Url(strangerKeys.signPublicKey), identitySig: k.signIdentity(strangerKeys, b.email) };
  const state = await spaceLog(srv.url, a, spaceId);
  const swapped = k.signMembershipEntry(k.nextMembershipFields(state, 'add', { user: impostor, role: 'editor' }), a.keys);
  t.is((await members({ ...forB, entry: swapped })).body.error.code, 'bad_membership', 'keys other than the directory\'s');
  t.is((await members(forB)).status, 201);
  const stale = await members(forC);
  t.is(stale.status, 409, 'another manager appended first');
  t.is(stale.body.logHead, 2);
  t.is((await members(await addMemberBody(srv.url, a, spaceId, pair, c, 'viewer'))).status, 201);
  const log = await spaceLog(srv.url, a, spaceId);
  t.is(log.seq, 3);
  t.deepEqual([...log.members.values()].map((m) => m.role).sort(), ['editor', 'manager', 'viewer']);
  // A role change must be one: setting the same role again is refused by the log's rules.
  const same = await call(srv.url, 'PATCH', `/api/v1/spaces/${spaceId}/members/${b.userId}`, { token: a.token, json: await roleBody(srv.url, a, spaceId, b, 'editor') });
  t.is(same.status, 400);
  t.is(same.body.error.code, 'bad_membership');
});

test('members: a manager adds a colleague who opens the key; viewers cannot add; outsiders see nothing', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const { admin: stranger } = await newOrg(srv.url, srv.dataDir, 'Ander OCMW');
  const b = await newColleague(srv.url, a);
  const c = await newColleague(srv.url, a);
  const { spaceId, pair } = await newSpace(srv.url, a);
  t.is((await addMember(a, spaceId, pair, b, 'viewer')).status, 201);
  const seen = await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}`, { token: b.token });
  t.is(seen.status, 200);
  const trusted = (signer: string) => signer === a.identity.signPublicKey;
  t.deepEqual(k.openSpaceKeyWrap(seen.body.myWraps[0], { spaceId, keyEpoch: 1 }, b.keys, trusted).secretKey, pair.secretKey);
  t.is((await addMember(b, spaceId, pair, c, 'viewer')).status, 403, 'a viewer cannot add members');
  t.is((await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}`, { token: c.token })).status, 404, 'a non-member of the same organisation');
  t.is((await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}`, { token: stranger.token })).status, 404, 'another organisation');
  const external = await addMember(a, spaceId, pair, stranger, 'viewer');
  t.is(external.status, 403, 'people of another organisation are not allowed in internal spaces (docs/api.md "Policy")');
  t.is(external.body.error.code, 'policy_refused');
  t.is((await addMember(a, spaceId, pair, b, 'editor')).status, 409, 'already a member');
});

test('removing a member rotates the space key: the rest get epoch 2, the leaver loses access, old-epoch commits are refused', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const b = await newColleague(srv.url, a);
  const c = await newColleague(srv.url, a);
  const { spaceId, pair } = await newSpace(srv.url, a);
  await addMember(a, spaceId, pair, b, 'editor');
  await addMember(a, spaceId, pair, c, 'editor');
  const { next, body: partial } = await removeBody(srv.url, a, spaceId, pair, c, [a]);
  const incomplete = await call(srv.url, 'DELETE', `/api/v1/spaces/${spaceId}/members/${c.userId}`, { token: a.token, json: partial });
  t.is(incomplete.status, 400, 'every remaining member needs a wrap');
  const { body: full } = await removeBody(srv.url, a, spaceId, pair, c, [a, b], next);
  const removed = await call(srv.url, 'DELETE', `/api/v1/spaces/${spaceId}/members/${c.userId}`, { token: a.token, json: full });
  t.is(removed.status, 204);
  t.is((await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}`, { token: c.token })).status, 404);
  const bView = await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}`, { token: b.token });
  t.is(bView.body.keyEpoch, 2);
  const epoch2 = bView.body.myWraps.find((w: { keyEpoch: number }) => w.keyEpoch === 2);
  t.deepEqual(k.openSpaceKeyWrap(epoch2, { spaceId, keyEpoch: 2 }, b.keys, (s) => s === a.identity.signPublicKey).secretKey, next.secretKey);
  const f = newFile();
  const old = await commit(b, spaceId, [version(b, spaceId, pair, 1, f, { parent: null }).entry]);
  t.is(old.status, 409, 'a version under the old key epoch');
  const fresh = await commit(b, spaceId, [version(b, spaceId, next, 2, f, { parent: null }).entry]);
  t.is(fresh.status, 201);
  t.is((await commit(c, spaceId, [version(c, spaceId, next, 2, newFile(), { parent: null }).entry])).status, 404, 'the leaver cannot commit');
});

test('commits: a batch gets consecutive seqs; changes page through them and the manifests open with the wrapped file key', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const { spaceId, pair } = await newSpace(srv.url, a);
  const files = Array.from({ length: 250 }, () => newFile());
  const versions = files.map((f, i) => version(a, spaceId, pair, 1, f, { parent: null, path: `Map ${i % 10}/bestand ${i}.txt` }));
  const res = await commit(a, spaceId, versions.map((v) => v.entry));
  t.is(res.status, 201);
  t.is(res.body.seq, 250);
  t.deepEqual(res.body.versions.map((v: { seq: number }) => v.seq), Array.from({ length: 250 }, (_, i) => i + 1));
  const page1 = await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=0&limit=100`, { token: a.token });
  t.is(page1.body.changes.length, 100);
  t.true(page1.body.more);
  const page3 = await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=200&limit=100`, { token: a.token });
  t.is(page3.body.changes.length, 50);
  t.false(page3.body.more);
  const c = page3.body.changes[7];
  const wrap = page3.body.fileKeyWraps[c.fileId][0];
  const trusted = (s: string) => s === a.identity.signPublicKey;
  const fileKey = k.openFileKeyWrap(wrap, { spaceId, keyEpoch: 1, fileId: c.fileId }, pair, trusted);
  const { manifest } = k.openManifest(k.fromBase64Url(c.manifest), k.deriveFileSubkeys(fileKey), { fileId: c.fileId, versionId: c.versionId }, trusted);
  t.is(manifest.path, versions[207]!.manifest.path);
  const bad = await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=-1`, { token: a.token });
  t.is(bad.status, 400);
});

test('commits: a stale parent answers 409 with the head; a replayed commit is refused; nothing of a refused batch is stored', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const { spaceId, pair } = await newSpace(srv.url, a);
  const f = newFile();
  const v1 = version(a, spaceId, pair, 1, f, { parent: null });
  t.is((await commit(a, spaceId, [v1.entry])).status, 201);
  const v2 = version(a, spaceId, pair, 1, f, { parent: v1.versionId });
  t.is((await commit(a, spaceId, [v2.entry])).status, 201);
  const stale = version(a, spaceId, pair, 1, f, { parent: v1.versionId });
  const other = version(a, spaceId, pair, 1, newFile(), { parent: null });
  const r = await commit(a, spaceId, [other.entry, stale.entry]);
  t.is(r.status, 409);
  t.is(r.body.error.code, 'conflict');
  t.deepEqual(r.body.conflicts, [{ fileId: f.fileId, versionId: stale.versionId, reason: 'parent_not_head', head: v2.versionId }]);
  const replay = await commit(a, spaceId, [v2.entry]);
  t.is(replay.status, 409);
  t.is(replay.body.conflicts[0].reason, 'already_committed');
  t.is(replay.body.conflicts[0].seq, 2);
  const changes = await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=0`, { token: a.token });
  t.is(changes.body.head, 2, 'the refused batch (with a good version in it) stored nothing');
  t.is(changes.body.changes.length, 2);
});

test('commits: a missing file key wrap, an unknown chunk and a viewer are refused', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const viewer = await newColleague(srv.url, a);
  const { spaceId, pair } = await newSpace(srv.url, a);
  await addMember(a, spaceId, pair, viewer, 'viewer');
  const f = newFile();
  const noWrap = version(a, spaceId, pair, 1, f, { parent: null, withWrap: false });
  t.is((await commit(a, spaceId, [noWrap.entry])).status, 400);
  const ghost = version(a, spaceId, pair, 1, newFile(), { parent: null, chunks: [['ab'.repeat(32), 10]] });
  const r = await commit(a, spaceId, [ghost.entry]);
  t.is(r.status, 409);
  t.is(r.body.error.code, 'missing_chunks');
  t.deepEqual(r.body.missing, ['ab'.repeat(32)]);
  t.is((await commit(viewer, spaceId, [version(viewer, spaceId, pair, 1, newFile(), { parent: null }).entry])).status, 403);
});

test('history, trash and deletions: a deleted file is in the trash with its history kept', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const { spaceId, pair } = await newSpace(srv.url, a);
  const f = newFile();
  const v1 = version(a, spaceId, pair, 1, f, { parent: null });
  const v2 = version(a, spaceId, pair, 1, f, { parent: v1.versionId, deleted: true });
  t.is((await commit(a, spaceId, [v1.entry, v2.entry])).status, 201);
  const history = await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/files/${f.fileId}/versions`, { token: a.token });
  t.deepEqual(history.body.versions.map((v: { versionId: string; deleted: boolean }) => [v.versionId, v.deleted]), [[v2.versionId, true], [v1.versionId, false]]);
  const trash = await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/trash`, { token: a.token });
  t.deepEqual(trash.body.deleted.map((v: { fileId: string }) => v.fileId), [f.fileId]);
  // Restoring is a new version on top of the deletion.
  const v3 = version(a, spaceId, pair, 1, f, { parent: v2.versionId });
  t.is((await commit(a, spaceId, [v3.entry])).status, 201);
  t.is((await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/trash`, { token: a.token })).body.deleted.length, 0);
});

test('events: a connected device is told {spaceId, seq} of each commit in its spaces, and nothing of other spaces', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const b = await newColleague(srv.url, a);
  const mine = await newSpace(srv.url, a);
  const theirs = await newSpace(srv.url, b);
  const controller = new AbortController();
  const res = await fetch(`${srv.url}/api/v1/events`, { headers: { authorization: `Bearer ${a.token}` }, signal: controller.signal });
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /text\/event-stream/);
  const reader = res.body!.getReader();
  let text = '';
  const until = async (pattern: RegExp) => {
    const deadline = Date.now() + 5000;
    while (!pattern.test(text) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    return pattern.test(text);
  };
  t.true(await until(/event: hello/));
  t.is((await commit(b, theirs.spaceId, [version(b, theirs.spaceId, theirs.pair, 1, newFile(), { parent: null }).entry])).status, 201);
  t.is((await commit(a, mine.spaceId, [version(a, mine.spaceId, mine.pair, 1, newFile(), { parent: null }).entry])).status, 201);
  t.true(await until(new RegExp(`event: change\\ndata: \\{"spaceId":"${mine.spaceId}","seq":1\\}`)));
  t.false(text.includes(theirs.spaceId), 'no events of spaces the device is not in');
  controller.abort();
});
