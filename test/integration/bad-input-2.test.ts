// Bad input, continued (bad-input.test.ts has the body and shape cases): what another organisation's admin learns
// from ids and addresses that exist there, uploads the client cuts off, and who may read the data directory.
import test from 'ava';
import http from 'node:http';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { call, newColleague, newOrg, newSpace, spaceBody, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';
import { encryptAll } from '../helpers/chunks.js';
import { startLocalS3, type LocalS3 } from '../helpers/s3.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const servers: RunningServer[] = [];
const dirs: string[] = [];
let s3: LocalS3 | undefined;
test.before(async () => {
  await k.initCrypto();
});
test.after.always(async () => {
  for (const s of servers) await s.stop();
  await s3?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function start(env: Record<string, string> = {}): Promise<RunningServer> {
  const srv = await startServer(env);
  servers.push(srv);
  return srv;
}

test('another organisation\'s address, space, file and version ids are answered as an id of nobody\'s would be', async (t) => {
  const srv = await start();
  const a = (await newOrg(srv.url, srv.dataDir, 'OCMW A')).admin;
  const b = (await newOrg(srv.url, srv.dataDir, 'OCMW B')).admin;
  const bColleague = await newColleague(srv.url, b);
  const spaceA = await newSpace(srv.url, a);
  const fileA = newFile();
  const vA = version(a, spaceA.spaceId, spaceA.pair, 1, fileA, { parent: null });
  t.is((await call(srv.url, 'POST', `/api/v1/spaces/${spaceA.spaceId}/commits`, { token: a.token, json: { versions: [vA.entry] } })).status, 201);
  // B's own comparison material: a space of B's that b is not in, with a committed file.
  const spaceB = await newSpace(srv.url, b);
  const hiddenB = await newSpace(srv.url, bColleague);
  const fileB = newFile();
  const vB = version(bColleague, hiddenB.spaceId, hiddenB.pair, 1, fileB, { parent: null });
  t.is((await call(srv.url, 'POST', `/api/v1/spaces/${hiddenB.spaceId}/commits`, { token: bColleague.token, json: { versions: [vB.entry] } })).status, 201);

  // Invites: an address with an account in A is invited exactly like an unknown one (same status and members).
  const invite = (email: string) => call(srv.url, 'POST', `/api/v1/orgs/${b.orgId}/invites`, { token: b.token, json: { email } });
  const foreignAddress = await invite(a.email);
  const unknownAddress = await invite(`nobody-${Math.random().toString(36).slice(2)}@example.be`);
  t.is(foreignAddress.status, unknownAddress.status, JSON.stringify(foreignAddress.body));
  t.deepEqual(Object.keys(foreignAddress.body).sort(), Object.keys(unknownAddress.body).sort());
  t.is(foreignAddress.body.email, a.email);
  t.is(foreignAddress.body.role, 'member');
  // An account of B itself is visible to B's admin anyway: still a conflict.
  t.is((await invite(bColleague.email)).status, 409);

  // Paths naming A's file from B's own space: as for a file that does not exist.
  const foreignFile = await call(srv.url, 'GET', `/api/v1/spaces/${spaceB.spaceId}/files/${fileA.fileId}/versions`, { token: b.token });
  const noFile = await call(srv.url, 'GET', `/api/v1/spaces/${spaceB.spaceId}/files/${k.newId()}/versions`, { token: b.token });
  t.is(foreignFile.status, 404);
  t.deepEqual(foreignFile.body, noFile.body);

  // Ids are global, so an id taken anywhere is refused; the refusal is the same whether A or B holds it and says
  // nothing about the holder (no seq, no head, no name).
  const createWithId = (id: string) => {
    return call(srv.url, 'POST', '/api/v1/spaces', { token: b.token, json: spaceBody(b, id, k.generateSpaceKeyPair(), { name: 'Probe' }) });
  };
  const foreignSpace = await createWithId(spaceA.spaceId);
  const ownHiddenSpace = await createWithId(hiddenB.spaceId);
  t.is(foreignSpace.status, 409);
  t.deepEqual(foreignSpace.body, ownHiddenSpace.body);
  t.notRegex(JSON.stringify(foreignSpace.body), new RegExp(`${spaceA.spaceId}|Dossiers`));

  const commit = (entry: unknown) => call(srv.url, 'POST', `/api/v1/spaces/${spaceB.spaceId}/commits`, { token: b.token, json: { versions: [entry] } });
  const strip = (body: { conflicts: { fileId: string; versionId: string }[] }) => body.conflicts.map(({ fileId: _f, versionId: _v, ...rest }) => rest);
  // A's file id, committed as a new file in B's space.
  const foreignFileId = await commit(version(b, spaceB.spaceId, spaceB.pair, 1, { ...newFile(), fileId: fileA.fileId }, { parent: null }).entry);
  const ownFileId = await commit(version(b, spaceB.spaceId, spaceB.pair, 1, { ...newFile(), fileId: fileB.fileId }, { parent: null }).entry);
  t.is(foreignFileId.status, 409);
  t.deepEqual(strip(foreignFileId.body), strip(ownFileId.body));
  t.deepEqual(strip(foreignFileId.body), [{ reason: 'file_in_other_space', head: null }]);
  // A's version id on a new file of B's: once answered `already_committed` with A's seq.
  const withVersionId = (versionId: string) => ({ ...version(b, spaceB.spaceId, spaceB.pair, 1, newFile(), { parent: null }).entry, versionId });
  const foreignVersion = await commit(withVersionId(vA.versionId));
  const ownVersion = await commit(withVersionId(vB.versionId));
  t.is(foreignVersion.status, 409);
  t.deepEqual(strip(foreignVersion.body), strip(ownVersion.body));
  t.deepEqual(strip(foreignVersion.body), [{ reason: 'version_in_other_space', head: null }]);
  t.false('seq' in foreignVersion.body.conflicts[0], 'no seq of another space');
  t.is((await call(srv.url, 'GET', `/api/v1/spaces/${spaceB.spaceId}/changes?since=0`, { token: b.token })).body.head, 0, 'nothing was committed');
  // A replay in one's own space still gets its seq (the sync engine relies on it).
  const replay = await call(srv.url, 'POST', `/api/v1/spaces/${spaceA.spaceId}/commits`, { token: a.token, json: { versions: [vA.entry] } });
  t.like(replay.body.conflicts[0], { reason: 'already_committed', seq: 1 });
});

/** Sends the headers and `sendBytes` of a body announced as `total` bytes, then hangs up. */
function abortMidBody(url: string, method: string, headers: Record<string, string>, total: number, first: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    const req = http.request(url, { method, headers: { ...headers, 'content-length': String(total) } });
    req.on('error', () => resolve());
    req.on('response', () => resolve()); // not expected: the test then fails on the audit entry
    req.write(first);
    setTimeout(() => {
      req.destroy();
      resolve();
    }, 400);
  });
}

for (const store of ['fs', 'minio'] as const) test.serial(`${store}: an upload the client cuts off is logged and audited as a client abort, not as the store being unavailable`, async (t) => {
  let env: Record<string, string> = {};
  if (store === 'minio') {
    s3 ??= await startLocalS3();
    env = { KLUIS_STORAGE: 'minio', KLUIS_S3_ENDPOINT: s3.endpoint, KLUIS_S3_ACCESS_KEY: s3.accessKey, KLUIS_S3_SECRET_KEY: s3.secretKey };
  }
  const srv = await start({ KLUIS_LOG_LEVEL: 'info', ...env });
  const a: User = (await newOrg(srv.url, srv.dataDir)).admin;
  const { spaceId } = await newSpace(srv.url, a);
  const headers = { authorization: `Bearer ${a.token}`, 'content-type': 'application/octet-stream', 'x-kluis-client': 'kluis-test/0.1.0' };
  const [big] = encryptAll(k.deriveFileSubkeys(k.generateFileKey()), [new Uint8Array(600_000).fill(3)]);
  await abortMidBody(`${srv.url}/api/v1/spaces/${spaceId}/chunks/${big!.id}`, 'PUT', headers, big!.ciphertext.length, big!.ciphertext.subarray(0, 100_000));
  // A batch whose first frame announces 900,000 bytes, cut after 100,000.
  const frames = k.encodeFrames([{ id: 'ab'.repeat(32), ciphertext: new Uint8Array(900_000).fill(5) }]);
  await abortMidBody(`${srv.url}/api/v1/spaces/${spaceId}/chunks/upload`, 'POST', headers, frames.length, frames.subarray(0, 100_000));

  const db = knexFactory({ client: 'sqlite3', connection: { filename: path.join(srv.dataDir, 'kluis.sqlite3') }, useNullAsDefault: true });
  let rows: { outcome: string; details: string }[] = [];
  try {
    for (let i = 0; i < 50 && rows.length < 2; i++) {
      await sleep(100);
      rows = await db('audit_log').where({ action: 'chunks.upload', actor_user_id: a.userId }).select('outcome', 'details');
    }
  } finally {
    await db.destroy();
  }
  t.is(rows.length, 2, JSON.stringify(rows));
  for (const r of rows) {
    t.is(r.outcome, 'failed');
    t.like(JSON.parse(r.details), { code: 'client_aborted', status: 499 });
  }
  const out = srv.output();
  t.is(out.match(/client aborted the upload/g)?.length, 2, out);
  t.notRegex(out, /blob store unavailable|unhandled error|Parse Error/);
  // Nothing of either upload was stored, and the server carries on.
  const missing = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/chunks/missing`, { token: a.token, json: { ids: [big!.id, 'ab'.repeat(32)] } });
  t.is(missing.body.missing.length, 2);
});

/** Every directory and file under `root` with its permission bits. */
function modes(root: string): { path: string; dir: boolean; mode: number }[] {
  const out = [{ path: root, dir: true, mode: statSync(root).mode & 0o777 }];
  for (const e of readdirSync(root, { withFileTypes: true, recursive: true })) {
    const p = path.join(e.parentPath, e.name);
    out.push({ path: path.relative(root, p), dir: e.isDirectory(), mode: statSync(p).mode & 0o777 });
  }
  return out;
}

test('a fresh data directory is 0700 and every file in it 0600: database, its WAL, keys and blobs', async (t) => {
  const base = mkdtempSync(path.join(tmpdir(), 'kluis-modes-'));
  dirs.push(base);
  chmodSync(base, 0o755);
  const dataDir = path.join(base, 'data');
  const srv = await start({ KLUIS_DATA_DIR: dataDir });
  const a = (await newOrg(srv.url, srv.dataDir)).admin;
  const space = await newSpace(srv.url, a);
  const sub = k.deriveFileSubkeys(k.generateFileKey());
  const [small, big] = encryptAll(sub, [new Uint8Array(1000).fill(1), new Uint8Array(600_000).fill(2)]);
  const auth = { authorization: `Bearer ${a.token}`, 'content-type': 'application/octet-stream' };
  t.is((await fetch(`${srv.url}/api/v1/spaces/${space.spaceId}/chunks/upload`, { method: 'POST', headers: auth, body: k.encodeFrames([{ id: small!.id, ciphertext: small!.ciphertext }]) })).status, 201);
  t.is((await fetch(`${srv.url}/api/v1/spaces/${space.spaceId}/chunks/${big!.id}`, { method: 'PUT', headers: auth, body: big!.ciphertext })).status, 201);

  const check = (when: string, expected: string[]) => {
    const all = modes(dataDir);
    const names = all.map((m) => m.path);
    for (const name of expected) t.true(names.includes(name), `${when}: ${name} exists`);
    t.true(all.some((m) => !m.dir && m.path.startsWith('blobs')), `${when}: blobs were written`);
    for (const m of all) t.is(m.mode, m.dir ? 0o700 : 0o600, `${when}: ${m.path} is ${m.mode.toString(8)}`);
  };
  check('running', ['kluis.sqlite3', 'kluis.sqlite3-wal', 'kluis.sqlite3-shm']);
  t.notRegex(srv.output(), /open to other users|readable by other users/);
  await srv.stop();
  check('stopped', ['kluis.sqlite3']); // sqlite removes the WAL files on a clean close
});

test('an existing data directory open to others is warned about; database files readable by others are tightened', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'kluis-modes-'));
  dirs.push(dataDir);
  chmodSync(dataDir, 0o755);
  writeFileSync(path.join(dataDir, 'kluis.sqlite3'), '', { mode: 0o644 }); // an empty file is an empty database
  mkdirSync(path.join(dataDir, 'blobs'), { mode: 0o700 });
  const srv = await start({ KLUIS_DATA_DIR: dataDir });
  t.regex(srv.output(), /the data directory is open to other users/);
  t.regex(srv.output(), /database file was readable by other users/);
  t.is(statSync(dataDir).mode & 0o777, 0o755, 'the operator\'s directory is left as it is');
  t.is(statSync(path.join(dataDir, 'kluis.sqlite3')).mode & 0o777, 0o600);
  t.is(statSync(path.join(dataDir, 'kluis.sqlite3-wal')).mode & 0o777, 0o600);
  await newOrg(srv.url, srv.dataDir); // it works
  await srv.stop();
});
