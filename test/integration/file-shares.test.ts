// Direct shares over HTTP (docs/api.md "Direct shares", docs/crypto.md §5): a writer seals one file's key to a
// colleague; the colleague lists it, opens the wrap and the manifest with their own keys and downloads the file byte
// for byte through the share, a later version of the same epoch too; after a key rotation the share covers the new
// version only once a writer adds the new epoch's wrap (the request is idempotent); revocation stops listing and
// chunks at once. Refused: viewers sharing, recipients outside the organisation (in an internal space: policy), wraps sealed to another key or
// signed by another account, chunks of other files. Every step is in the audit trail with the share id.
import test from 'ava';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, call, newColleague, newOrg, newSpace, removeBody, type User } from '../helpers/api.js';
import { newFile, version, type FileHandle } from '../helpers/files.js';
import { encryptAll, pseudoRandom } from '../helpers/chunks.js';

let srv: RunningServer;

test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
});
test.afterEach.always((t) => {
  if (!t.passed) t.log(`server log:\n${srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await srv?.stop();
});

interface World {
  owner: User;
  editor: User;
  viewer: User;
  recipient: User;
  outsider: User;
  spaceId: string;
  pair: k.SpaceKeyPair;
  file: FileHandle;
  head: string;
  content: Uint8Array;
  other: { file: FileHandle; chunkIds: string[] };
}

async function upload(u: User, spaceId: string, chunks: { id: string; ciphertext: Uint8Array }[]): Promise<void> {
  const res = await fetch(`${srv.url}/api/v1/spaces/${spaceId}/chunks/upload`, { method: 'POST', headers: { authorization: `Bearer ${u.token}`, 'content-type': 'application/octet-stream' }, body: k.encodeFrames(chunks) });
  if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`);
}

/** Commits `pieces` as a new version of `file` (its key of `keyEpoch`), uploading the chunks first. */
async function write(u: User, spaceId: string, pair: k.SpaceKeyPair, keyEpoch: number, file: FileHandle, parent: string | null, pieces: Uint8Array[], withWrap = parent === null): Promise<string> {
  const chunks = encryptAll(file.sub, pieces);
  await upload(u, spaceId, chunks);
  const v = version(u, spaceId, pair, keyEpoch, file, { parent, withWrap, chunks: chunks.map((c) => [c.id, c.plaintext.length]), hash: k.contentHash(k.concatBytes(...pieces)), path: 'Dossiers/advies 2024.pdf' });
  const res = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: u.token, json: { versions: [v.entry] } });
  if (res.status !== 201) throw new Error(`commit: ${JSON.stringify(res.body)}`);
  return v.versionId;
}

async function world(): Promise<World> {
  const { admin: owner } = await newOrg(srv.url, srv.dataDir);
  const [editor, viewer, recipient] = [await newColleague(srv.url, owner), await newColleague(srv.url, owner), await newColleague(srv.url, owner)];
  const { admin: outsider } = await newOrg(srv.url, srv.dataDir, 'OCMW Elders');
  const { spaceId, pair } = await newSpace(srv.url, owner);
  for (const [u, role] of [[editor, 'editor'], [viewer, 'viewer']] as const) {
    const res = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/members`, { token: owner.token, json: await addMemberBody(srv.url, owner, spaceId, pair, u, role) });
    if (res.status !== 201) throw new Error(`add member: ${JSON.stringify(res.body)}`);
  }
  const file = newFile();
  const pieces = [pseudoRandom(11, 300_000), pseudoRandom(12, 4321)];
  const head = await write(owner, spaceId, pair, 1, file, null, pieces);
  const otherFile = newFile();
  const otherPieces = [pseudoRandom(13, 5000)];
  await write(owner, spaceId, pair, 1, otherFile, null, otherPieces);
  return { owner, editor, viewer, recipient, outsider, spaceId, pair, file, head, content: k.concatBytes(...pieces), other: { file: otherFile, chunkIds: encryptAll(otherFile.sub, otherPieces).map((c) => c.id) } };
}

const wrapFor = (w: World, to: User, by: User, fileKey = w.file.fileKey, keyEpoch = 1) =>
  k.wrapFileKey(fileKey, { spaceId: w.spaceId, keyEpoch, fileId: w.file.fileId, recipient: to.identity.encPublicKey }, by.keys);

const share = (w: World, by: User, body: unknown, fileId = w.file.fileId) => call(srv.url, 'POST', `/api/v1/spaces/${w.spaceId}/files/${fileId}/shares`, { token: by.token, json: body });

async function sharedChunks(u: User, shareId: string, ids: string[]) {
  const res = await fetch(`${srv.url}/api/v1/shared/${shareId}/chunks/download`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${u.token}` }, body: JSON.stringify({ ids }) });
  return { status: res.status, bytes: new Uint8Array(await res.arrayBuffer()) };
}

/** What the recipient's client does: list, open the wrap of the version's epoch with its own keys, the manifest, the chunks. */
async function openShared(u: User, shareId: string, trustedSigners: string[]): Promise<{ versionId: string; bytes: Uint8Array; newerNotShared: boolean }> {
  const list = k.SharedResponse.parse((await call(srv.url, 'GET', '/api/v1/shared', { token: u.token })).body);
  const item = list.shares.find((s) => s.shareId === shareId);
  if (!item || !item.version) throw new Error('not listed');
  const v = item.version;
  const wrap = item.wraps.find((x) => x.wrap.keyEpoch === v.keyEpoch)!.wrap as k.FileKeyWrap;
  const fileKey = k.openFileKeyWrap(wrap, { spaceId: item.spaceId, keyEpoch: v.keyEpoch, fileId: item.fileId }, u.keys, (s) => trustedSigners.includes(s));
  const sub = k.deriveFileSubkeys(fileKey);
  const { manifest } = k.openManifest(k.fromBase64Url(v.manifest), sub, { fileId: item.fileId, versionId: v.versionId }, (s: string) => trustedSigners.includes(s));
  const got = await sharedChunks(u, shareId, manifest.chunks.map(([id]) => id));
  if (got.status !== 200) throw new Error(`chunks: ${got.status}`);
  const byId = new Map(k.decodeFrames(got.bytes).map((f) => [f.id, f.ciphertext]));
  const bytes = k.concatBytes(...manifest.chunks.map(([id]) => k.decryptChunk(sub, id, byId.get(id)!)));
  if (k.contentHash(bytes) !== manifest.hash) throw new Error('hash mismatch');
  return { versionId: v.versionId, bytes, newerNotShared: item.newerNotShared };
}

async function auditOf(admin: User, targetId: string) {
  const res = await call(srv.url, 'GET', `/api/v1/orgs/${admin.orgId}/audit?target=${targetId}&limit=1000`, { token: admin.token });
  if (res.status !== 200) throw new Error(`audit: ${JSON.stringify(res.body)}`);
  return res.body.entries as { action: string; outcome: string; actorUserId: string | null; details: Record<string, unknown> }[];
}

test.serial('a shared file opens for the colleague byte for byte; a later version of the same epoch too; re-sharing is idempotent', async (t) => {
  const w = await world();
  const res = await share(w, w.owner, { recipientUserId: w.recipient.userId, wraps: [wrapFor(w, w.recipient, w.owner)] });
  t.is(res.status, 201, JSON.stringify(res.body));
  const made = k.CreateFileShareResponse.parse(res.body);
  t.deepEqual([made.created, made.keyEpochs, made.role, made.recipientEmail], [true, [1], 'viewer', w.recipient.email]);

  const first = await openShared(w.recipient, made.shareId, [w.owner.identity.signPublicKey]);
  t.deepEqual(Buffer.from(first.bytes), Buffer.from(w.content));
  t.is(first.versionId, w.head);

  const again = await share(w, w.owner, { recipientUserId: w.recipient.userId, wraps: [wrapFor(w, w.recipient, w.owner)] });
  t.is(again.status, 200);
  t.deepEqual([again.body.shareId, again.body.created, again.body.added], [made.shareId, false, []]);

  // The editor writes the next version with the same file key (same epoch): the share covers it at once.
  const later = [pseudoRandom(21, 100_000)];
  const v2 = await write(w.editor, w.spaceId, w.pair, 1, w.file, w.head, later);
  const second = await openShared(w.recipient, made.shareId, [w.owner.identity.signPublicKey, w.editor.identity.signPublicKey]);
  t.is(second.versionId, v2);
  t.deepEqual(Buffer.from(second.bytes), Buffer.from(later[0]!));

  // Writers see the space's active shares (what the sync engine reads after a rotation); viewers may not.
  const listed = await call(srv.url, 'GET', `/api/v1/spaces/${w.spaceId}/shares?fileId=${w.file.fileId}`, { token: w.editor.token });
  t.is(listed.status, 200);
  t.deepEqual(k.SpaceSharesResponse.parse(listed.body).shares.map((s) => [s.shareId, s.recipient.encPublicKey, s.keyEpochs]), [[made.shareId, w.recipient.identity.encPublicKey, [1]]]);
  t.is((await call(srv.url, 'GET', `/api/v1/spaces/${w.spaceId}/shares`, { token: w.viewer.token })).status, 403);
  t.is((await call(srv.url, 'GET', `/api/v1/spaces/${w.spaceId}/shares`, { token: w.recipient.token })).status, 404, 'the recipient is not a member');
});

test.serial('refusals: a viewer (403), another organisation\'s user (403 policy_refused in an internal space), an unknown one (404), wraps sealed to another key or signed by someone else (400)', async (t) => {
  const w = await world();
  const viewerTry = await share(w, w.viewer, { recipientUserId: w.recipient.userId, wraps: [wrapFor(w, w.recipient, w.viewer)] });
  t.is(viewerTry.status, 403);
  t.is((await share(w, w.outsider, { recipientUserId: w.recipient.userId, wraps: [wrapFor(w, w.recipient, w.outsider)] })).status, 404, 'not a member: no such space');
  const abroad = await share(w, w.owner, { recipientUserId: w.outsider.userId, wraps: [wrapFor(w, w.outsider, w.owner)] });
  t.is(abroad.status, 403, 'people of another organisation are not allowed for internal spaces (docs/api.md "Policy")');
  t.is(abroad.body.error.code, 'policy_refused');
  t.is((await share(w, w.owner, { recipientUserId: k.newId(), wraps: [wrapFor(w, w.recipient, w.owner)] })).status, 404);

  const toOther = await share(w, w.owner, { recipientUserId: w.recipient.userId, wraps: [wrapFor(w, w.editor, w.owner)] });
  t.is(toOther.status, 400);
  t.regex(toOther.body.error.message, /another key/);
  const bySomeoneElse = await share(w, w.owner, { recipientUserId: w.recipient.userId, wraps: [wrapFor(w, w.recipient, w.editor)] });
  t.is(bySomeoneElse.status, 400);
  t.regex(bySomeoneElse.body.error.message, /signed by you/);
  const good = wrapFor(w, w.recipient, w.owner);
  const forged = { ...good, sig: k.toBase64Url(k.fromBase64Url(wrapFor(w, w.recipient, w.editor).sig)) };
  t.is((await share(w, w.owner, { recipientUserId: w.recipient.userId, wraps: [forged] })).body.error.code, 'bad_signature');
  t.is((await share(w, w.owner, { recipientUserId: w.recipient.userId, wraps: [wrapFor(w, w.recipient, w.owner, w.file.fileKey, 2)] })).status, 400, 'an epoch the file has no key of');
  t.is((await share(w, w.owner, { recipientUserId: w.recipient.userId, wraps: [good], role: 'editor' })).status, 400, 'a direct share gives only the viewer role');
  t.is((await share(w, w.owner, { recipientUserId: w.owner.userId, wraps: [wrapFor(w, w.owner, w.owner)] })).status, 400, 'not to yourself');
  t.is((await share(w, w.owner, { recipientUserId: w.recipient.userId, wraps: [good] }, k.newId())).status, 404, 'an unknown file');
  // Nothing of the refused attempts was stored; the refusals are audited.
  t.deepEqual(k.SharedResponse.parse((await call(srv.url, 'GET', '/api/v1/shared', { token: w.recipient.token })).body).shares, []);
  const denied = (await auditOf(w.owner, w.file.fileId)).filter((e) => e.action === 'share.create');
  t.true(denied.some((e) => e.outcome === 'denied' && e.actorUserId === w.viewer.userId));
  t.true(denied.some((e) => e.actorUserId === w.owner.userId && e.outcome !== 'success'), 'the owner\'s refused wraps are in the trail');
});

test.serial('the recipient reads only the shared file\'s chunks, and only through their own active share', async (t) => {
  const w = await world();
  const made = (await share(w, w.owner, { recipientUserId: w.recipient.userId, wraps: [wrapFor(w, w.recipient, w.owner)] })).body as k.CreateFileShareResponse;
  t.is((await sharedChunks(w.recipient, made.shareId, w.other.chunkIds)).status, 403, 'chunks of another file of the space');
  t.is((await sharedChunks(w.editor, made.shareId, w.other.chunkIds)).status, 404, 'someone else\'s share');
  t.is((await sharedChunks(w.outsider, made.shareId, w.other.chunkIds)).status, 404);
  t.is((await call(srv.url, 'GET', `/api/v1/spaces/${w.spaceId}/changes`, { token: w.recipient.token })).status, 404, 'no access to the space itself');
  t.is((await call(srv.url, 'POST', `/api/v1/spaces/${w.spaceId}/chunks/download`, { token: w.recipient.token, json: { ids: w.other.chunkIds } })).status, 404);
  t.is((await sharedChunks(w.recipient, 'not-an-id', w.other.chunkIds)).status, 404);
});

test.serial('after a member removal rotates the key, the new version is shared once a writer adds the epoch-2 wrap (idempotent request)', async (t) => {
  const w = await world();
  const made = (await share(w, w.owner, { recipientUserId: w.recipient.userId, wraps: [wrapFor(w, w.recipient, w.owner)] })).body as k.CreateFileShareResponse;
  const { next, body } = await removeBody(srv.url, w.owner, w.spaceId, w.pair, w.viewer, [w.owner, w.editor]);
  t.is((await call(srv.url, 'DELETE', `/api/v1/spaces/${w.spaceId}/members/${w.viewer.userId}`, { token: w.owner.token, json: body })).status, 204);
  // The next version gets a fresh file key sealed to epoch 2.
  const fresh: FileHandle = { ...newFile(), fileId: w.file.fileId };
  Object.assign(fresh, { sub: k.deriveFileSubkeys(fresh.fileKey) });
  const content2 = [pseudoRandom(31, 200_000)];
  const v2 = await write(w.editor, w.spaceId, next, 2, fresh, w.head, content2, true);
  const before = await openShared(w.recipient, made.shareId, [w.owner.identity.signPublicKey]);
  t.is(before.versionId, w.head, 'still the last version the share covers');
  t.true(before.newerNotShared);
  t.deepEqual(Buffer.from(before.bytes), Buffer.from(w.content));
  // Another writer (the editor, not the sharer) adds the wrap of epoch 2: the same share grows.
  const added = await share(w, w.editor, { recipientUserId: w.recipient.userId, wraps: [wrapFor(w, w.recipient, w.editor, fresh.fileKey, 2)] });
  t.is(added.status, 200, JSON.stringify(added.body));
  t.deepEqual([added.body.shareId, added.body.added, added.body.keyEpochs], [made.shareId, [2], [1, 2]]);
  const after = await openShared(w.recipient, made.shareId, [w.owner.identity.signPublicKey, w.editor.identity.signPublicKey]);
  t.deepEqual([after.versionId, after.newerNotShared], [v2, false]);
  t.deepEqual(Buffer.from(after.bytes), Buffer.from(content2[0]!));
  // A share must always hold the newest version's key: a fresh share with only epoch 1 is refused.
  const third = await newColleague(srv.url, w.owner);
  const partial = await share(w, w.owner, { recipientUserId: third.userId, wraps: [wrapFor(w, third, w.owner)] });
  t.is(partial.status, 400);
  t.regex(partial.body.error.message, /epoch 2/);
});

test.serial('revocation stops listing and downloading at once (404 for the recipient); only the sharer or a manager revokes; all of it audited', async (t) => {
  const w = await world();
  const made = (await share(w, w.editor, { recipientUserId: w.recipient.userId, wraps: [wrapFor(w, w.recipient, w.editor)] })).body as k.CreateFileShareResponse;
  const opened = await openShared(w.recipient, made.shareId, [w.owner.identity.signPublicKey, w.editor.identity.signPublicKey]);
  t.deepEqual(Buffer.from(opened.bytes), Buffer.from(w.content));

  for (const u of [w.recipient, w.viewer, w.outsider]) t.is((await call(srv.url, 'DELETE', `/api/v1/shares/${made.shareId}`, { token: u.token })).status, 404);
  // A manager of the space (not the sharer) may revoke.
  t.is((await call(srv.url, 'DELETE', `/api/v1/shares/${made.shareId}`, { token: w.owner.token })).status, 204);
  t.deepEqual(k.SharedResponse.parse((await call(srv.url, 'GET', '/api/v1/shared', { token: w.recipient.token })).body).shares, []);
  const chunkIds = encryptAll(w.file.sub, [pseudoRandom(11, 300_000)]).map((c) => c.id);
  const after = await sharedChunks(w.recipient, made.shareId, chunkIds);
  t.is(after.status, 404);
  t.is((await call(srv.url, 'DELETE', `/api/v1/shares/${made.shareId}`, { token: w.editor.token })).status, 204, 'revoking twice is fine');
  // Sharing again makes a new share (the revoked one stays revoked).
  const again = await share(w, w.editor, { recipientUserId: w.recipient.userId, wraps: [wrapFor(w, w.recipient, w.editor)] });
  t.is(again.status, 201);
  t.not(again.body.shareId, made.shareId);

  const trail = await auditOf(w.owner, made.shareId);
  const actions = trail.map((e) => `${e.action}:${e.outcome}`);
  for (const want of ['share.create:success', 'shared.chunks:success', 'share.revoke:success', 'shared.chunks:denied']) t.true(actions.includes(want), `${want} in ${actions.join(', ')}`);
  t.is(trail.filter((e) => e.action === 'share.revoke' && e.outcome === 'success').length, 2);
  const listings = (await auditOf(w.owner, w.recipient.userId)).filter((e) => e.action === 'shared.list');
  t.true(listings.some((e) => (e.details.shareIds as string[]).includes(made.shareId)), 'the listing names the share it showed');
  t.true(trail.find((e) => e.action === 'shared.chunks' && e.outcome === 'success')!.details.fileId === w.file.fileId);
});
