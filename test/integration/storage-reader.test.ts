// docs/storage.md is enough to leave Kluis (issue 20 §4, "No lock-in"): an independent reader written from it and
// docs/crypto.md alone (test/storage-reader/, no Kluis code) rebuilds a space's tree from a copy of the server's
// sqlite database and fs object store with one member's password, and gets exactly what the real clients synced:
// after edits, a deletion, a rename, empty folders and files, packed and standalone chunks, and a key rotation (the
// reader is a member added after it, who reaches the first epoch's files only through the epoch chain), and a file
// dropped through a file request (signed by the request key under a writer's grant).
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import knexFactory from 'knex';
import * as k from '@kluis/shared';
import { call, type User } from '../helpers/api.js';
import { commitUpload, createRequest, prepareUpload, requestBody } from '../helpers/requests.js';
import { bytes, converge, keysOf, kluis, okJson, sessionOf, syncOnce, tree, write, startSyncEnv, type Account, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';
import { readSpace, readVersion, storageName, versionIds } from '../storage-reader/reader.js';

let env: SyncEnv;
test.before(async () => {
  // Chunks of 512 KiB and more as objects of their own (KLUIS_PACK_THRESHOLD; the default packs every chunk of a
  // batch), so that the reader meets both kinds.
  env = await startSyncEnv({ accounts: ['A', 'B', 'C'], storage: 'fs', serverEnv: { KLUIS_PACK_THRESHOLD: String(512 * 1024) } });
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await env?.close();
});

test('an independent reader rebuilds from the database and the object store exactly the tree the clients synced', async (t) => {
  const [A, B, C] = env.accounts as [Account, Account, Account];
  const space = await env.newSpace([A, B]);
  const [a, b] = space.clients as [SyncClient, SyncClient];
  write(a.dir, 'Dossiers/groot.bin', bytes(21, 4_000_000));
  write(a.dir, 'Dossiers/klein.txt', 'versie 1');
  write(a.dir, 'weg.txt', 'gaat weg');
  write(a.dir, 'oud/naam.txt', 'verhuist');
  write(a.dir, 'Één café/leeg.txt', '');
  mkdirSync(path.join(a.dir, 'lege map'));
  for (let i = 0; i < 30; i++) write(a.dir, `veel/bestand-${i}.txt`, `inhoud ${i} `.repeat(i * 40));
  await syncOnce(a);
  await syncOnce(b);
  // B leaves: the space key rotates to epoch 2; what is written next is sealed to epoch 2 only.
  okJson(await kluis(A.home, ['--json', 'space', 'remove-member', space.name, B.email]), 'remove-member');
  write(a.dir, 'Dossiers/klein.txt', 'versie 2, na de rotatie');
  write(a.dir, 'Dossiers/groot.bin', Buffer.concat([bytes(21, 4_000_000).subarray(0, 2_000_000), bytes(22, 300_000)]));
  rmSync(path.join(a.dir, 'weg.txt'));
  renameSync(path.join(a.dir, 'oud'), path.join(a.dir, 'nieuw'));
  await syncOnce(a);
  // C joins after the rotation: it holds a wrap of epoch 2 only.
  okJson(await kluis(A.home, ['--json', 'space', 'add-member', space.name, C.email, '--role', 'viewer']), 'add-member');
  // Someone without an account drops a file through a file request: signed by the request key under A's grant.
  await k.initCrypto();
  const creator = { keys: keysOf(A.home), token: sessionOf(A.home).token } as unknown as User;
  const details = (await call(env.url, 'GET', `/api/v1/spaces/${space.spaceId}`, { token: creator.token })).body;
  const wrap = (details.myWraps as k.SpaceKeyWrap[]).find((w) => w.keyEpoch === 2)!;
  const pair = k.openSpaceKeyWrap(wrap, { spaceId: space.spaceId, keyEpoch: 2 }, creator.keys, () => true);
  const request = await requestBody(env.url, creator, space.spaceId, pair, { folder: 'Dossiers' });
  t.is((await createRequest(env.url, creator, space.spaceId, request)).status, 201);
  const upload = await prepareUpload(env.url, request, 'Dossiers/bewijsstuk.pdf', bytes(23, 200_000));
  t.is((await commitUpload(env.url, request, upload.commit)).status, 201);
  const c: SyncClient = { ...a, label: 'C', account: C, home: C.home, dir: path.join(env.root, `reader-c-${space.spaceId}`) };
  mkdirSync(c.dir);
  await converge([a, c]);

  // Both kinds of object are there (docs/storage.md §2.2), and epoch 1 still holds current files.
  const db = knexFactory({ client: 'sqlite3', connection: { filename: path.join(env.dataDir, 'kluis.sqlite3') }, useNullAsDefault: true });
  try {
    const kinds = await db('chunks').where({ space_id: space.spaceId }).select(db.raw('pack_id IS NULL AS standalone')).count({ n: '*' }).groupBy('standalone');
    t.is(kinds.length, 2, 'packed and standalone chunks');
    const epochs = await db('versions').where({ space_id: space.spaceId }).distinct('key_epoch').orderBy('key_epoch');
    t.deepEqual(epochs.map((e) => Number(e.key_epoch)), [1, 2]);
  } finally {
    await db.destroy();
  }

  // The organisation's directory is where docs/storage.md §2.1 says (its id is base64url: the h- form).
  t.true(existsSync(path.join(env.dataDir, 'blobs', storageName(env.orgId), 'spaces', space.spaceId)));
  t.regex(storageName(env.orgId), /^h-[0-9a-f]{40}$/);
  t.is(storageName('gemeente-gent'), 'o-gemeente-gent');

  // A consistent copy: the server stopped (docs/storage.md §4).
  await env.stopServer('SIGTERM');
  try {
    const out = mkdtempSync(path.join(env.root, 'reader-out-'));
    const opts = { dbFile: path.join(env.dataDir, 'kluis.sqlite3'), blobRoot: path.join(env.dataDir, 'blobs'), email: C.email, password: C.password, spaceId: space.spaceId, outDir: out };
    const r = await readSpace(opts);
    t.deepEqual(tree(out), tree(a.dir));
    t.deepEqual(tree(out), tree(c.dir));
    t.is(r.files, 35);
    t.true(existsSync(path.join(out, 'Dossiers', 'bewijsstuk.pdf')), 'the file request\'s upload');
    t.is(readFileSync(path.join(out, 'Dossiers', 'klein.txt'), 'utf8'), 'versie 2, na de rotatie');
    // History: the first version, written under epoch 1 (reached through the epoch chain), and a renamed file's paths.
    const history = await versionIds(opts, r.fileIds.get('Dossiers/klein.txt')!);
    t.is(history.length, 2);
    const first = await readVersion(opts, history[0]!);
    t.is(Buffer.from(first.content!).toString('utf8'), 'versie 1');
    const renamed = await versionIds(opts, r.fileIds.get('nieuw/naam.txt')!);
    t.deepEqual((await Promise.all(renamed.map((id) => readVersion(opts, id)))).map((v) => v.path), ['oud/naam.txt', 'nieuw/naam.txt']);
    // The wrong password opens nothing.
    await t.throwsAsync(readSpace({ dbFile: path.join(env.dataDir, 'kluis.sqlite3'), blobRoot: path.join(env.dataDir, 'blobs'), email: C.email, password: 'fout', spaceId: space.spaceId, outDir: mkdtempSync(path.join(env.root, 'reader-bad-')) }));
    // B left before the rotation: the reader finds no key of the space for B that reaches today's files.
    await t.throwsAsync(readSpace({ dbFile: path.join(env.dataDir, 'kluis.sqlite3'), blobRoot: path.join(env.dataDir, 'blobs'), email: B.email, password: B.password, spaceId: space.spaceId, outDir: mkdtempSync(path.join(env.root, 'reader-b-')) }), { message: /no space key of epoch 2/ });
  } finally {
    await env.startServerAgain();
  }
});
