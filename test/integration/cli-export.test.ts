// `kluis export --space S DIR` (docs/cli.md "Export"; issue 20 §4 "No lock-in") on a real server with real sync
// clients: after edits, a deletion and a rename, an export made by another member holds exactly the synced folder,
// and its metadata file lists every version (the deleted file's too); --all-versions writes older versions' bytes; a
// version not signed by a writer is reported as refused and the file keeps its last trusted version; a file request's
// upload on a taken path gets the name a sync gives it;
// names the server should never have sent are reported, not written; bad input (unknown space, no access, a DIR that
// is not empty or not a folder) fails with one line, its code and exit 2, and changes nothing.
import test from 'ava';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openServerDb } from '../helpers/server.js';
import * as k from '@kluis/shared';
import { call, type User } from '../helpers/api.js';
import { version } from '../helpers/files.js';
import { commitUpload, createRequest, prepareUpload, requestBody } from '../helpers/requests.js';
import {
  bytes, commitRawFile, converge, keysOf, kluis, okJson, sessionOf, sha256, syncOnce, tree, write, type Account, type SyncClient, type SyncEnv, startSyncEnv,
} from '../helpers/sync-env.js';
import type { ExportMetadata, ExportReport } from '../../desktop/dist/sync/door-export.js';

let env: SyncEnv;
let a: SyncClient;
let b: SyncClient;
let outsider: Account;
let spaceName: string;
const big1 = bytes(7, 3_500_000);
const big2 = Buffer.concat([big1.subarray(0, 1_000_000), bytes(8, 600_000), big1.subarray(1_600_000)]);

test.before(async () => {
  env = await startSyncEnv({ accounts: ['A', 'B', 'C'], storage: 'fs' });
  const [A, B, C] = env.accounts as [Account, Account, Account];
  outsider = C;
  const space = await env.newSpace([A, B]);
  spaceName = space.name;
  [a, b] = space.clients as [SyncClient, SyncClient];
  write(a.dir, 'Rapport/groot.bin', big1);
  write(a.dir, 'Rapport/notities.txt', 'eerste versie');
  write(a.dir, 'weg.txt', 'wordt verwijderd');
  write(a.dir, 'oud/naam.txt', 'verhuist');
  write(a.dir, 'Één café/leeg.txt', '');
  mkdirSync(path.join(a.dir, 'lege map'));
  await syncOnce(a);
  // Edits, a deletion and a rename, then B (an editor, another machine) brings everything down.
  write(a.dir, 'Rapport/groot.bin', big2);
  write(a.dir, 'Rapport/notities.txt', 'tweede versie, langer');
  rmSync(path.join(a.dir, 'weg.txt'));
  mkdirSync(path.join(a.dir, 'nieuw'));
  renameSync(path.join(a.dir, 'oud/naam.txt'), path.join(a.dir, 'nieuw/naam.txt'));
  await syncOnce(a);
  await converge([a, b]);
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await env?.close();
});

const exportDir = (name: string) => path.join(env.root, `export-${name}`);
const withoutMetadata = (t: Record<string, string>) => Object.fromEntries(Object.entries(t).filter(([p]) => p !== '.kluis-export.json' && !p.startsWith('.kluis-versions')));
/** A member of a space of epoch 1 as the API helpers want it (keys and token), and the space's key pair. */
async function spaceKey(c: SyncClient): Promise<{ member: User; pair: k.SpaceKeyPair }> {
  await k.initCrypto();
  const member = { keys: keysOf(c.home), token: sessionOf(c.home).token } as unknown as User;
  const details = (await call(env.url, 'GET', `/api/v1/spaces/${c.spaceId}`, { token: member.token })).body;
  return { member, pair: k.openSpaceKeyWrap((details.myWraps as k.SpaceKeyWrap[])[0]!, { spaceId: c.spaceId, keyEpoch: 1 }, member.keys, () => true) };
}
const metadataOf = (dir: string) => JSON.parse(readFileSync(path.join(dir, '.kluis-export.json'), 'utf8')) as ExportMetadata;

test('export: the current tree equals the synced folder byte for byte, and the metadata lists every version', async (t) => {
  const dir = exportDir('b');
  const reads = async (action: string) => {
    const db = await openServerDb(env.dataDir);
    try {
      return Number((await db('audit_log').where({ action, actor_user_id: b.account.userId }).count({ n: '*' }))[0]!.n);
    } finally {
      await db.destroy();
    }
  };
  const [histories, pages] = [await reads('versions.read'), await reads('changes.read')];
  const r = okJson<ExportReport>(await kluis(b.home, ['--json', 'export', '--space', spaceName, dir]), 'export');
  // The history comes from the change log in pages, not one request (and audit entry) per file.
  t.is(await reads('versions.read'), histories);
  t.is(await reads('changes.read'), pages + 1);
  t.deepEqual(withoutMetadata(tree(dir)), tree(b.dir));
  t.deepEqual(tree(a.dir), tree(b.dir));
  t.deepEqual(r.skipped, []);
  t.deepEqual(r.refused, []);
  t.is(r.files, 4);
  t.is(r.bytes, big2.length + 'tweede versie, langer'.length + 'verhuist'.length);
  t.false(existsSync(path.join(dir, '.kluis-versions')), 'no older versions without --all-versions');

  const m = metadataOf(dir);
  t.is(m.format, 'kluis-export/v1');
  t.is(m.spaceName, spaceName);
  t.is(m.seq, r.seq);
  const byPath = new Map(m.files.map((f) => [f.path, f]));
  const big = byPath.get('Rapport/groot.bin')!;
  t.is(big.versions.length, 2);
  const [newest, older] = big.versions;
  t.true(newest!.current && !older!.current, 'newest first');
  t.like(newest, { size: big2.length, kind: 'file', deleted: false, content: 'Rapport/groot.bin', author: a.account.email, authorUserId: a.account.userId, deviceId: a.account.deviceId, expired: false });
  t.is(older!.size, big1.length);
  t.is(newest!.parent, older!.versionId);
  t.regex(newest!.hash!, /^[0-9a-f]{64}$/);
  t.not(newest!.hash, older!.hash);
  t.true(Date.parse(newest!.createdAt) >= Date.parse(older!.createdAt));
  // The deleted file is described (not in the tree): its content version, then its deletion.
  const gone = byPath.get('weg.txt')!;
  t.false(gone.inTree);
  t.deepEqual(gone.versions.map((v) => v.deleted), [true, false]);
  t.false(existsSync(path.join(dir, 'weg.txt')));
  // The rename is one file whose versions name both paths.
  const moved = byPath.get('nieuw/naam.txt')!;
  t.true(moved.inTree);
  t.deepEqual(moved.versions.map((v) => v.path), ['nieuw/naam.txt', 'oud/naam.txt']);
  t.is(byPath.get('lege map')!.kind, 'dir');
  t.true(m.files.every((f) => f.versions.every((v) => v.refused === undefined)));
});

test('export --all-versions: older versions are written under .kluis-versions/<versionId>/<path>, verified', async (t) => {
  const dir = exportDir('all');
  const r = okJson<ExportReport>(await kluis(a.home, ['--json', 'export', '--space', a.spaceId, dir, '--all-versions']), 'export --all-versions');
  t.deepEqual(withoutMetadata(tree(dir)), tree(a.dir));
  const m = metadataOf(dir);
  t.true(m.allVersions);
  const older = m.files.find((f) => f.path === 'Rapport/groot.bin')!.versions[1]!;
  t.is(older.content, `.kluis-versions/${older.versionId}/Rapport/groot.bin`);
  t.is(sha256(readFileSync(path.join(dir, ...older.content!.split('/')))), sha256(big1));
  const notes = m.files.find((f) => f.path === 'Rapport/notities.txt')!.versions[1]!;
  t.is(readFileSync(path.join(dir, ...notes.content!.split('/')), 'utf8'), 'eerste versie');
  const gone = m.files.find((f) => f.path === 'weg.txt')!.versions[1]!;
  t.is(readFileSync(path.join(dir, ...gone.content!.split('/')), 'utf8'), 'wordt verwijderd');
  // Only file contents that are not current: 3 edits/deletes + the rename's first version.
  t.is(r.olderVersions, 4);
});

test('export: names the space must not hold are reported and never written; the rest is exported', async (t) => {
  const space = await env.newSpace([a.account], `Vreemde namen ${Date.now()}`);
  const [c] = space.clients as [SyncClient];
  write(c.dir, 'gewoon.txt', 'gewoon');
  await syncOnce(c);
  for (const bad of ['.kluis', '.kluis-export.json', 'map/.kluis-tmp-x', 'gewoon.txt/onder']) t.is(await commitRawFile(c, bad), 201, bad);
  const dir = exportDir('odd');
  const r = okJson<ExportReport>(await kluis(c.home, ['--json', 'export', '--space', space.spaceId, dir]), 'export');
  t.deepEqual(r.skipped.map((s) => s.path).sort(), ['.kluis', '.kluis-export.json', 'gewoon.txt/onder', 'map/.kluis-tmp-x']);
  t.deepEqual(withoutMetadata(tree(dir)), { 'gewoon.txt': sha256('gewoon') });
  t.is(readdirSync(dir).sort().join(','), '.kluis-export.json,gewoon.txt');
  const m = metadataOf(dir);
  t.true(m.files.filter((f) => f.path !== 'gewoon.txt').every((f) => !f.inTree && typeof f.skipped === 'string'));
});

test('export: bad input fails with one line, its code and exit 2, and changes nothing', async (t) => {
  const unknown = await kluis(b.home, ['--json', 'export', '--space', 'Bestaat niet', exportDir('none')]);
  t.is(unknown.code, 2);
  t.is(JSON.parse(unknown.stdout).error.code, 'not_found');
  t.regex(unknown.stderr, /^kluis: no space "Bestaat niet" among yours/);
  t.false(existsSync(exportDir('none')));

  const noAccess = await kluis(outsider.home, ['--json', 'export', '--space', b.spaceId, exportDir('outsider')]);
  t.is(noAccess.code, 2);
  t.is(JSON.parse(noAccess.stdout).error.code, 'not_found');
  t.false(existsSync(exportDir('outsider')));

  const full = exportDir('full');
  mkdirSync(full);
  writeFileSync(path.join(full, 'mijn.txt'), 'van mij');
  const notEmpty = await kluis(b.home, ['--json', 'export', '--space', spaceName, full]);
  t.is(notEmpty.code, 2);
  t.is(JSON.parse(notEmpty.stdout).error.code, 'conflict');
  t.regex(notEmpty.stderr, /is not empty/);
  t.deepEqual(readdirSync(full), ['mijn.txt']);
  t.is(readFileSync(path.join(full, 'mijn.txt'), 'utf8'), 'van mij');

  const file = path.join(env.root, 'een-bestand');
  writeFileSync(file, 'x');
  const notDir = await kluis(b.home, ['export', '--space', spaceName, file]);
  t.is(notDir.code, 2);
  t.regex(notDir.stderr, /exists and is not a folder/);
  t.is(readFileSync(file, 'utf8'), 'x');

  const noSpace = await kluis(b.home, ['export', exportDir('x')]);
  t.is(noSpace.code, 2);
  t.regex(noSpace.stderr, /--space/);
});

test('export: content the store altered fails the export (exit 2) and leaves no metadata file', async (t) => {
  const space = await env.newSpace([a.account], `Beschadigd ${Date.now()}`);
  const [c] = space.clients as [SyncClient];
  write(c.dir, 'akte.bin', bytes(11, 300_000));
  await syncOnce(c);
  // Flip one byte of every object of the space in the fs store (docs/storage.md: <data>/blobs/<org>/spaces/<spaceId>/…).
  const objects: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.includes(`${path.sep}spaces${path.sep}${space.spaceId}${path.sep}`) && e.name.endsWith('@')) objects.push(p);
    }
  };
  walk(path.join(env.dataDir, 'blobs'));
  t.true(objects.length > 0);
  for (const p of objects) {
    const buf = readFileSync(p);
    buf[buf.length - 20]! ^= 0x01;
    writeFileSync(p, buf);
  }
  const dir = exportDir('damaged');
  const r = await kluis(c.home, ['--json', 'export', '--space', space.spaceId, dir]);
  t.is(r.code, 2, r.stderr);
  t.is(JSON.parse(r.stdout).error.code, 'decrypt_failed');
  t.false(existsSync(path.join(dir, '.kluis-export.json')));
  t.false(existsSync(path.join(dir, 'akte.bin')));
});

test('export: a version not signed by a writer is refused and reported; the file keeps its last trusted version', async (t) => {
  const space = await env.newSpace([a.account], `Vertrouwen ${Date.now()}`);
  const [c] = space.clients as [SyncClient];
  write(c.dir, 'brief.txt', 'echt');
  await syncOnce(c);
  // The member commits a version signed by a stranger's key: the server cannot see a manifest's signature.
  const { member, pair } = await spaceKey(c);
  const [server, token] = [env.url, member.token];
  const log = (await call(server, 'GET', `/api/v1/spaces/${space.spaceId}/changes?since=0`, { token })).body;
  const head = log.changes[0] as { fileId: string; versionId: string };
  const fileKey = k.openFileKeyWrap(log.fileKeyWraps[head.fileId][0], { spaceId: space.spaceId, keyEpoch: 1, fileId: head.fileId }, pair, () => true);
  const stranger = { keys: k.generateAccountKeys() } as unknown as User;
  const forged = version(stranger, space.spaceId, pair, 1, { fileId: head.fileId, fileKey, sub: k.deriveFileSubkeys(fileKey) }, { parent: head.versionId, path: 'brief.txt', memberSeq: 1 });
  t.is((await call(server, 'POST', `/api/v1/spaces/${space.spaceId}/commits`, { token, json: { versions: [forged.entry] } })).status, 201);

  const dir = exportDir('trust');
  const r = okJson<ExportReport>(await kluis(c.home, ['--json', 'export', '--space', space.spaceId, dir]), 'export');
  t.deepEqual(r.refused.map((x) => x.versionId), [forged.versionId]);
  t.regex(r.refused[0]!.reason, /not a writer/);
  t.is(readFileSync(path.join(dir, 'brief.txt'), 'utf8'), 'echt');
  const versions = metadataOf(dir).files.find((f) => f.fileId === head.fileId)!.versions;
  t.like(versions[0], { versionId: forged.versionId, current: false, path: null, hash: null });
  t.regex(versions[0]!.refused!, /not a writer/);
  t.like(versions[1], { versionId: head.versionId, current: true, content: 'brief.txt' });
});

test('export: a file request\'s upload that names a taken path gets the name a sync gives it', async (t) => {
  const space = await env.newSpace([a.account], `Aanvragen ${Date.now()}`);
  const [c] = space.clients as [SyncClient];
  write(c.dir, 'Inbox/brief.txt', 'van ons');
  await syncOnce(c);
  const { member: creator, pair } = await spaceKey(c);
  const request = await requestBody(env.url, creator, space.spaceId, pair, { folder: 'Inbox' });
  t.is((await createRequest(env.url, creator, space.spaceId, request)).status, 201);
  const upload = await prepareUpload(env.url, request, 'Inbox/brief.txt', Buffer.from('van buiten'));
  t.is((await commitUpload(env.url, request, upload.commit)).status, 201);
  await syncOnce(c);
  const synced = tree(c.dir);
  t.is(Object.keys(synced).filter((p) => p.startsWith('Inbox/brief (upload ')).length, 1);

  const dir = exportDir('uploads');
  const r = okJson<ExportReport>(await kluis(c.home, ['--json', 'export', '--space', space.spaceId, dir]), 'export');
  t.deepEqual(r.skipped, []);
  t.deepEqual(withoutMetadata(tree(dir)), synced);
  t.is(readFileSync(path.join(dir, 'Inbox', 'brief.txt'), 'utf8'), 'van ons');
});
