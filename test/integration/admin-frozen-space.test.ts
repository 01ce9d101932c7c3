// A space whose only manager is offboarded (docs/admin.md "Offboarding", "A space without a manager"): nobody left may
// sign its removal or renew its key, so the server freezes it. New versions, chunk uploads, shares, links and file
// requests are refused with 409 `space_frozen` (audited as denied), so nothing new is written under the key the
// offboarded person holds; its members still read and download. The `kluis` client reports local changes in such a
// folder as refused, keeps them on disk, and does not crash or loop.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { openServerDb, startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, call, newColleague, newOrg, newSpace, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';
import { requestBody } from '../helpers/requests.js';
import { cliHome, kluis } from '../helpers/cli.js';

let server: RunningServer;
const temps: string[] = [];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test.before(async () => {
  await k.initCrypto();
  server = await startServer();
});
test.after.always(async () => {
  await server?.stop();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

function tmp(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  temps.push(d);
  return d;
}

async function upload(user: User, spaceId: string, chunk: { id: string; ciphertext: Uint8Array }): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(`${server.url}/api/v1/spaces/${spaceId}/chunks/upload`, { method: 'POST', headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/octet-stream' }, body: k.encodeFrames([chunk]) });
  return { status: res.status, body: await res.json() };
}

async function offboard(admin: User, who: User): Promise<{ spaceId: string; managers: number }[]> {
  const off = await call(server.url, 'POST', `/api/v1/orgs/${admin.orgId}/people/${who.userId}/offboard`, { token: admin.token });
  if (off.status !== 200) throw new Error(JSON.stringify(off.body));
  return off.body.spaces;
}

test('the server refuses new versions, uploads, shares, links and requests in a space with no manager left, audits each refusal, and still serves reads', async (t) => {
  const { admin } = await newOrg(server.url, server.dataDir);
  const manager = await newColleague(server.url, admin);
  const editor = await newColleague(server.url, admin);
  const colleague = await newColleague(server.url, admin);
  const { spaceId, pair } = await newSpace(server.url, manager, 'Archief');
  t.is((await call(server.url, 'POST', `/api/v1/spaces/${spaceId}/members`, { token: manager.token, json: await addMemberBody(server.url, manager, spaceId, pair, editor, 'editor') })).status, 201);
  // A second space where the editor is also a manager: offboarding the first manager leaves it one, so it is not frozen.
  const other = await newSpace(server.url, editor, 'Lopend');
  t.is((await call(server.url, 'POST', `/api/v1/spaces/${other.spaceId}/members`, { token: editor.token, json: await addMemberBody(server.url, editor, other.spaceId, other.pair, manager, 'manager') })).status, 201);

  // One file, committed by the editor before the offboarding.
  const f = newFile();
  const content = new TextEncoder().encode('notulen van de raad');
  const chunk = k.encryptChunk(f.sub, content);
  t.is((await upload(editor, spaceId, chunk)).status, 201);
  const v1 = version(editor, spaceId, pair, 1, f, { parent: null, path: 'notulen.txt', chunks: [[chunk.id, content.length]], hash: k.contentHash(content) });
  t.is((await call(server.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: editor.token, json: { versions: [v1.entry] } })).status, 201);
  t.falsy((await call(server.url, 'GET', `/api/v1/spaces/${spaceId}`, { token: editor.token })).body.frozen);

  const spaces = await offboard(admin, manager);
  t.deepEqual(spaces.find((s) => s.spaceId === spaceId), { spaceId, managers: 0 });
  t.deepEqual(spaces.find((s) => s.spaceId === other.spaceId), { spaceId: other.spaceId, managers: 1 });
  const offboardedAt = Date.now();
  t.true((await call(server.url, 'GET', `/api/v1/spaces/${spaceId}`, { token: editor.token })).body.frozen);
  t.falsy((await call(server.url, 'GET', `/api/v1/spaces/${other.spaceId}`, { token: editor.token })).body.frozen);

  const frozen = (res: { status: number; body: any }, what: string) => { // eslint-disable-line @typescript-eslint/no-explicit-any
    t.is(res.status, 409, `${what}: ${JSON.stringify(res.body)}`);
    t.is(res.body.error.code, 'space_frozen', what);
    t.regex(res.body.error.message, /no manager left/, what);
  };
  // A chunk upload and a commit (a new version of the file, under the old epoch: the only one there is).
  const content2 = new TextEncoder().encode('notulen van de raad, aangevuld');
  const chunk2 = k.encryptChunk(f.sub, content2);
  frozen(await upload(editor, spaceId, chunk2), 'chunk upload');
  const v2 = version(editor, spaceId, pair, 1, f, { parent: v1.versionId, path: 'notulen.txt', chunks: [[chunk.id, content.length]], hash: k.contentHash(content) });
  frozen(await call(server.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: editor.token, json: { versions: [v2.entry] } }), 'commit');
  // A share link, a direct share and a file request: each would hand out something under the old key.
  const linkId = k.newId();
  const linkKeys = k.deriveLinkKeys(k.newLinkSecret(), null);
  frozen(await call(server.url, 'POST', `/api/v1/spaces/${spaceId}/links`, {
    token: editor.token,
    json: {
      linkId, fileId: f.fileId, versionId: v1.versionId, kdf: null, authHash: k.linkAuthHash(linkKeys.linkAuth),
      wrapped: k.toBase64Url(k.wrapFileKeyForLink(f.fileKey, linkId, linkKeys)), expiresAt: Date.now() + 86_400_000, maxDownloads: null, purpose: 'notulen',
    },
  }), 'link');
  const wrap = k.wrapFileKey(f.fileKey, { spaceId, keyEpoch: 1, fileId: f.fileId, recipient: colleague.identity.encPublicKey }, editor.keys);
  frozen(await call(server.url, 'POST', `/api/v1/spaces/${spaceId}/files/${f.fileId}/shares`, { token: editor.token, json: { recipientUserId: colleague.userId, wraps: [wrap] } }), 'share');
  const made = await requestBody(server.url, editor, spaceId, pair);
  frozen(await call(server.url, 'POST', `/api/v1/spaces/${spaceId}/requests`, { token: editor.token, json: made.body }), 'file request');

  // Reading goes on: the changes and the file's chunk.
  const changes = await call(server.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=0`, { token: editor.token });
  t.is(changes.status, 200);
  t.deepEqual(changes.body.changes.map((c: { versionId: string }) => c.versionId), [v1.versionId], 'nothing was committed after the offboarding');
  const down = await fetch(`${server.url}/api/v1/spaces/${spaceId}/chunks/download`, { method: 'POST', headers: { authorization: `Bearer ${editor.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ ids: [chunk.id] }) });
  t.is(down.status, 200);
  t.true((await down.arrayBuffer()).byteLength > content.length);
  // The space with a manager left takes new versions as before.
  const g = newFile();
  const vo = version(editor, other.spaceId, other.pair, 1, g, { parent: null, path: 'lopend.txt' });
  t.is((await call(server.url, 'POST', `/api/v1/spaces/${other.spaceId}/commits`, { token: editor.token, json: { versions: [vo.entry] } })).status, 201);

  const db = await openServerDb(server.dataDir);
  try {
    const refusals = (await db('audit_log').where({ org_id: admin.orgId, actor_user_id: editor.userId, outcome: 'denied' }).where('ts', '>=', offboardedAt - 1000).select('action', 'details'))
      .map((r) => ({ action: r.action as string, details: JSON.parse(r.details as string) as { code: string; status: number; reason: string } }));
    t.deepEqual(refusals.map((r) => r.action).sort(), ['chunks.upload', 'commit.create', 'filerequest.create', 'link.create', 'share.create']);
    t.true(refusals.every((r) => r.details.code === 'space_frozen' && r.details.status === 409 && r.details.reason === 'no_manager'));
  } finally {
    await db.destroy();
  }
});

test('kluis sync in a frozen space: local edits are refused and kept, reported per file; downloads go on', async (t) => {
  const { admin } = await newOrg(server.url, server.dataDir);
  const manager = await newColleague(server.url, admin);
  const editor = await newColleague(server.url, admin);
  const [mHome, eHome] = await Promise.all([cliHome(server.url, manager), cliHome(server.url, editor)]);
  temps.push(mHome, eHome);
  const ok = async (home: string, args: string[]) => {
    const r = await kluis(home, ['--json', ...args]);
    t.is(r.code, 0, `kluis ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  };
  const spaceId = (await ok(mHome, ['space', 'create', 'Personeel'])).spaceId as string;
  await ok(mHome, ['space', 'add-member', spaceId, editor.email, '--role', 'editor']);
  const mDir = tmp('kluis-frozen-m-');
  writeFileSync(path.join(mDir, 'rooster.txt'), 'rooster week 1');
  await ok(mHome, ['sync', mDir, '--space', spaceId, '--once']);
  const eDir = tmp('kluis-frozen-e-');
  t.is((await ok(eHome, ['sync', eDir, '--space', spaceId, '--once'])).downloaded, 1);

  t.deepEqual((await offboard(admin, manager)).map((s) => s.managers), [0]);

  await sleep(1100); // a later mtime than the synced copy
  writeFileSync(path.join(eDir, 'rooster.txt'), 'rooster week 2 (lokaal)');
  writeFileSync(path.join(eDir, 'nieuw.txt'), 'nieuw bestand');
  for (let run = 0; run < 2; run++) {
    const report = await ok(eHome, ['sync', eDir, '--space', spaceId, '--once']);
    t.is(report.uploaded, 0);
    t.deepEqual(report.errors, []);
    t.deepEqual(report.refused.map((r: { path: string }) => r.path).sort(), ['nieuw.txt', 'rooster.txt'], `run ${run + 1}`);
    t.true(report.refused.every((r: { reason: string }) => /no manager left/.test(r.reason) && /stays here/.test(r.reason)));
  }
  // The human summary names the refusal too.
  const plain = await kluis(eHome, ['sync', eDir, '--space', spaceId, '--once']);
  t.is(plain.code, 0, plain.stderr);
  t.regex(plain.stdout, /refused: rooster\.txt: this space has no manager left/);
  t.is(readFileSync(path.join(eDir, 'rooster.txt'), 'utf8'), 'rooster week 2 (lokaal)', 'the local edit is kept');
  t.is(readFileSync(path.join(eDir, 'nieuw.txt'), 'utf8'), 'nieuw bestand');
  // A fresh folder still downloads what the space holds.
  const copy = tmp('kluis-frozen-copy-');
  t.is((await ok(eHome, ['sync', copy, '--space', spaceId, '--once'])).downloaded, 1);
  t.is(readFileSync(path.join(copy, 'rooster.txt'), 'utf8'), 'rooster week 1');
  const changes = await call(server.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=0`, { token: editor.token });
  t.is(changes.body.changes.length, 1, 'nothing new reached the server');
});
