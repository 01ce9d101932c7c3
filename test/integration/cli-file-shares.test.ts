// `kluis share file`, `kluis shared`, `kluis shared get` and `kluis share revoke` for direct shares (docs/cli.md
// "Direct shares") on a real server with real sync clients: A shares a synced file with C (a colleague who is not a
// member of the space); C lists it and downloads it byte for byte, and a later version too; after a member removal
// rotates the space key and B (another writer, not the sharer) writes the file again, B's sync engine seals the
// fresh key to C (sync/share-wraps.ts), so C reads the new version; a forged wrap is refused by C's client; a viewer
// cannot share, nor can anyone share with another organisation's address; revoking stops C at once; all audited.
import test from 'ava';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as k from '@kluis/shared';
import { admin, call, enterpriseNumber, signup } from '../helpers/api.js';
import { openServerDb } from '../helpers/server.js';
import { bytes, kluis, okJson, sessionOf, startSyncEnv, syncOnce, write, type Account, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';

let env: SyncEnv;
let a: SyncClient;
let b: SyncClient;
let d: SyncClient;
let c: Account;
let spaceName: string;
const REL = 'Rapport/advies 2024.pdf';
const v1 = bytes(51, 900_000);

test.before(async () => {
  env = await startSyncEnv({ accounts: ['A', 'B', 'C', 'D'], storage: 'fs' });
  const [A, B, C, D] = env.accounts as [Account, Account, Account, Account];
  const space = await env.newSpace([A, B]);
  spaceName = space.name;
  [a, b] = space.clients as [SyncClient, SyncClient];
  okJson(await kluis(A.home, ['--json', 'space', 'add-member', spaceName, D.email, '--role', 'viewer']), 'add viewer');
  d = { ...a, label: 'D', account: D, home: D.home, dir: path.join(env.root, 'viewer-folder') };
  c = C;
  write(a.dir, REL, v1);
  await syncOnce(a);
  await syncOnce(b);
  await syncOnce(d);
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await env?.close();
});

const file = (cl: SyncClient) => path.join(cl.dir, ...REL.split('/'));

function fresh(name: string): string {
  const dir = path.join(env.root, `downloads-${name}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function sharedList(): Promise<{ shareId: string; name: string | null; size: number | null; sharedBy: string; newerNotShared: boolean; refused: string | null; versionId: string | null }[]> {
  return okJson(await kluis(c.home, ['--json', 'shared']), 'shared').shared;
}

async function get(shareId: string, name: string): Promise<Buffer> {
  const dir = fresh(name);
  const r = okJson(await kluis(c.home, ['--json', 'shared', 'get', shareId, dir]), `shared get ${name}`);
  return readFileSync(r.path);
}

async function auditOf(targetId: string) {
  const res = await call(env.url, 'GET', `/api/v1/orgs/${env.orgId}/audit?target=${targetId}&limit=1000`, { token: sessionOf(a.home).token });
  if (res.status !== 200) throw new Error(`audit: ${JSON.stringify(res.body)}`);
  return res.body.entries as { action: string; outcome: string; actorUserId: string | null; details: Record<string, unknown> }[];
}

let shareId = '';

test.serial('share file → the colleague lists it and downloads it byte for byte; re-running is idempotent; a later version of the same epoch is readable', async (t) => {
  const made = okJson(await kluis(a.home, ['--json', 'share', 'file', file(a), c.email]), 'share file');
  t.deepEqual([made.created, made.keyEpochs, made.recipientEmail, made.role], [true, [1], c.email, 'viewer']);
  shareId = made.shareId;
  const human = await kluis(a.home, ['share', 'file', file(a), c.email]);
  t.is(human.code, 0, human.stderr);
  t.regex(human.stdout, new RegExp(`Already shared: Rapport/advies 2024.pdf with ${c.email.replace('.', '\\.')} \\(share ${shareId}`));

  const [item] = await sharedList();
  t.like(item, { shareId, name: 'advies 2024.pdf', size: v1.length, sharedBy: a.account.email, newerNotShared: false, refused: null });
  t.deepEqual(await get(shareId, 'first'), v1);
  // The file exists there now: never overwritten.
  const again = await kluis(c.home, ['shared', 'get', shareId, path.join(env.root, 'downloads-first')]);
  t.not(again.code, 0);
  t.regex(again.stderr, /exists/);

  const v2 = bytes(52, 300_000);
  write(a.dir, REL, v2);
  await syncOnce(a);
  t.deepEqual(await get(shareId, 'second'), v2, 'same key epoch: the share covers the new version at once');
});

test.serial('a viewer cannot share; another organisation\'s address is refused like an unknown colleague', async (t) => {
  const viewer = await kluis(d.home, ['--json', 'share', 'file', file(d), c.email]);
  t.not(viewer.code, 0);
  t.regex(viewer.stderr, /forbidden|editors and managers/);
  const elders = `elders-${Date.now()}@example.be`;
  const created = await admin(env.dataDir, ['org', 'create', '--name', 'OCMW Elders', '--enterprise-number', enterpriseNumber(), '--admin-email', elders]);
  const outsider = await signup(env.url, created.inviteToken, elders);
  t.is(outsider.res.status, 201);
  // In an internal space the policy refuses looking outside the organisation (docs/api.md "Policy"), before the address
  // is looked up: the same words for an address of another organisation and one nobody has.
  for (const email of [outsider.email, 'nobody@example.be']) {
    const r = await kluis(a.home, ['--json', 'share', 'file', file(a), email]);
    t.not(r.code, 0, email);
    t.regex(r.stderr, /no colleague of your organisation has this address, and internal spaces do not allow people of other organisations/, email);
  }
});

test.serial('after a removal rotates the key, a version written by another writer stays shared: that writer\'s sync engine added the epoch-2 wrap', async (t) => {
  okJson(await kluis(a.home, ['--json', 'space', 'remove-member', spaceName, d.account.email]), 'remove-member');
  await syncOnce(b);
  const v3 = bytes(53, 700_000);
  write(b.dir, REL, v3);
  await syncOnce(b); // B (editor, not the sharer) commits the file's fresh epoch-2 key and seals it to C
  const [item] = await sharedList();
  t.like(item, { shareId, newerNotShared: false, refused: null, size: v3.length });
  t.deepEqual(await get(shareId, 'third'), v3);
  // The sharer's command finds nothing left to add.
  await syncOnce(a);
  const r = okJson(await kluis(a.home, ['--json', 'share', 'file', file(a), c.email]), 'share file again');
  t.deepEqual([r.created, r.added, r.keyEpochs], [false, [], [1, 2]]);
});

test.serial('a forged wrap (signed with another key than the sharer\'s) is refused by the recipient\'s client', async (t) => {
  const db = await openServerDb(env.dataDir);
  try {
    const row = await db('file_share_wraps').where({ share_id: shareId, key_epoch: 2 }).first();
    const wrap = JSON.parse(row.wrap) as k.FileKeyWrap;
    // Same fields and signer, with the signature of a wrap made by another key (an account the server invented).
    const other = k.wrapFileKey(k.generateFileKey(), { spaceId: wrap.spaceId, keyEpoch: wrap.keyEpoch, fileId: wrap.fileId, recipient: wrap.recipient }, k.generateAccountKeys());
    const forged = { ...wrap, sig: other.sig };
    await db('file_share_wraps').where({ share_id: shareId, key_epoch: 2 }).update({ wrap: JSON.stringify(forged) });
    try {
      const [item] = await sharedList();
      t.truthy(item!.refused);
      t.regex(item!.refused!, /signature/);
      const r = await kluis(c.home, ['shared', 'get', shareId, fresh('forged')]);
      t.not(r.code, 0);
      t.regex(r.stderr, /refused/);
    } finally {
      await db('file_share_wraps').where({ share_id: shareId, key_epoch: 2 }).update({ wrap: row.wrap });
    }
  } finally {
    await db.destroy();
  }
  t.is((await sharedList())[0]!.refused, null);
});

test.serial('share revoke stops listing and downloading at once; every share, list, download and revoke is audited', async (t) => {
  const r = okJson(await kluis(a.home, ['--json', 'share', 'revoke', shareId]), 'revoke');
  t.deepEqual(r, { revoked: shareId, kind: 'share' });
  t.deepEqual(await sharedList(), []);
  const after = await kluis(c.home, ['shared', 'get', shareId, fresh('revoked')]);
  t.not(after.code, 0);
  // The server refuses the chunks too (the client above stopped at the listing).
  const res = await call(env.url, 'POST', `/api/v1/shared/${shareId}/chunks/download`, { token: sessionOf(c.home).token, json: { ids: ['0'.repeat(64)] } });
  t.is(res.status, 404);

  const trail = await auditOf(shareId);
  const seen = new Set(trail.map((e) => `${e.action}:${e.outcome}`));
  for (const want of ['share.create:success', 'shared.chunks:success', 'share.revoke:success', 'shared.chunks:denied']) t.true(seen.has(want), `${want} in ${[...seen].join(', ')}`);
  t.true(trail.some((e) => e.action === 'share.create' && e.actorUserId === b.account.userId && (e.details.added as number[]).includes(2)), 'the engine\'s wrap is audited under B');
  const listings = (await auditOf(c.userId)).filter((e) => e.action === 'shared.list');
  t.true(listings.some((e) => (e.details.shareIds as string[]).includes(shareId)));
  // A link id still goes to the links: an unknown id is refused.
  t.not((await kluis(a.home, ['share', 'revoke', k.newId()])).code, 0);
});
