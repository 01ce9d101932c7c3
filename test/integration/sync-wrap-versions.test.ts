// Old and new file-key wraps and manifests side by side (docs/crypto.md §5, §5.2, §8, §8.1): a space whose files were
// committed with version-1 wraps and manifests signed alone (one sealed box and two signatures per file, as clients
// wrote before issue 22) still syncs and restores with today's client, which writes version-2 wraps and batch-signed
// manifests (one signature each per batch) for what it commits; both clients and an independent reader of the storage
// (test/storage-reader/, written from docs/crypto.md) get the same tree.
import test from 'ava';
import path from 'node:path';
import { mkdtempSync } from 'node:fs';
import * as k from '@kluis/shared';
import { call, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';
import { converge, keysOf, kluis, okJson, read, sessionOf, startSyncEnv, syncOnce, tree, write, type Account, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';
import { readSpace } from '../storage-reader/reader.js';

let env: SyncEnv;
test.before(async () => {
  await k.initCrypto();
  env = await startSyncEnv({ accounts: ['A', 'B'], storage: 'fs' });
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await env?.close();
});

/** Commits `content` as one chunk through the API, the way a client before version-2 wraps did (v1 wrap with the first version). */
async function oldClientCommit(user: User, spaceId: string, pair: k.SpaceKeyPair, file: ReturnType<typeof newFile>, p: { parent: string | null; path: string; content: string }) {
  const plain = new TextEncoder().encode(p.content);
  const chunk = k.encryptChunk(file.sub, plain);
  const up = await fetch(`${env.url}/api/v1/spaces/${spaceId}/chunks/upload`, { method: 'POST', headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/octet-stream' }, body: k.encodeFrames([chunk]) });
  if (up.status >= 300) throw new Error(`chunk upload: ${up.status}`);
  const v = version(user, spaceId, pair, 1, file, { parent: p.parent, path: p.path, chunks: [[chunk.id, plain.length]], hash: k.contentHash(plain), memberSeq: 2 });
  const res = await call(env.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: user.token, json: { versions: [v.entry] } });
  if (res.status !== 201) throw new Error(`commit: ${res.status} ${JSON.stringify(res.body)}`);
  return v;
}

test('a space with version-1 wraps syncs, restores and takes version-2 wraps beside them', async (t) => {
  const [A, B] = env.accounts as [Account, Account];
  const space = await env.newSpace([A, B]);
  const [a, b] = space.clients as [SyncClient, SyncClient];
  const old = { keys: keysOf(A.home), token: sessionOf(A.home).token } as unknown as User;
  const details = (await call(env.url, 'GET', `/api/v1/spaces/${space.spaceId}`, { token: old.token })).body;
  const pair = k.openSpaceKeyWrap((details.myWraps as k.SpaceKeyWrap[]).find((w) => w.keyEpoch === 1)!, { spaceId: space.spaceId, keyEpoch: 1 }, old.keys, () => true);

  const file = newFile();
  const v1 = await oldClientCommit(old, space.spaceId, pair, file, { parent: null, path: 'oud/verslag.txt', content: 'versie 1 van de oude client\n' });
  t.is((v1.entry as { fileKeyWrap?: k.FileKeyWrap }).fileKeyWrap?.v, 1);
  await oldClientCommit(old, space.spaceId, pair, file, { parent: v1.versionId, path: 'oud/verslag.txt', content: 'versie 2 van de oude client\n' });

  // Today's client reads the old file, restores its first version and adds files of its own.
  await syncOnce(b);
  t.is(read(b.dir, 'oud/verslag.txt').toString(), 'versie 2 van de oude client\n');
  const restored = okJson(await kluis(B.home, ['--json', 'restore', path.join(b.dir, 'oud/verslag.txt'), '--version', v1.versionId]), 'restore');
  t.is(restored.restoredFrom, v1.versionId);
  t.is(read(b.dir, 'oud/verslag.txt').toString(), 'versie 1 van de oude client\n');
  for (let i = 0; i < 12; i++) write(b.dir, `nieuw/bestand-${i}.txt`, `nieuw ${i}\n`);
  await syncOnce(b);
  await converge([a, b]);
  t.deepEqual(tree(a.dir), tree(b.dir));
  t.is(read(a.dir, 'oud/verslag.txt').toString(), 'versie 1 van de oude client\n');

  // The server holds the old file's v1 wrap (the restore needed no new key) and one batch of v2 wraps for the new files.
  const history = (await call(env.url, 'GET', `/api/v1/spaces/${space.spaceId}/files/${file.fileId}/versions`, { token: old.token })).body;
  t.is(history.versions.length, 3);
  t.deepEqual(history.fileKeyWraps.map((w: k.FileKeyWrap) => w.v), [1]);
  const page = (await call(env.url, 'GET', `/api/v1/spaces/${space.spaceId}/changes?since=0`, { token: old.token })).body as { fileKeyWraps: Record<string, k.FileKeyWrap[]> };
  const fresh = Object.entries(page.fileKeyWraps).filter(([id]) => id !== file.fileId).flatMap(([, ws]) => ws);
  t.true(fresh.length >= 12, `${fresh.length} new wraps`);
  t.true(fresh.every((w) => w.v === 2));
  // One signature per commit batch (the folder and its files may go in two), each batch complete: size = its members.
  const batches = new Map<string, k.FileKeyWrap[]>();
  for (const w of fresh) batches.set(w.sig, [...(batches.get(w.sig) ?? []), w]);
  t.true(batches.size <= 2, `${batches.size} batches for ${fresh.length} wraps`);
  for (const ws of batches.values()) t.true(ws.every((w) => w.v === 2 && w.size === ws.length));

  // Manifests (docs/crypto.md §8, §8.1): the old client's two versions are signed alone (byte 96 of the plaintext is the
  // body's '{'), today's client signed the restore and every new file's version in batches (0x03, a batch of `size`).
  const layoutOf = (v: { fileId: string; versionId: string; manifest: string }, sub: k.FileSubkeys) => {
    const plain = k.openEnvelope(sub.manifestKey, k.fromBase64Url(v.manifest), k.concatBytes(k.utf8('kluis/manifest/v1'), k.idBytes(v.fileId), k.idBytes(v.versionId)));
    return { mark: plain[96], sig: k.toBase64Url(plain.subarray(32, 96)), size: new DataView(plain.buffer, plain.byteOffset).getUint32(101) };
  };
  t.deepEqual(history.versions.map((v: { fileId: string; versionId: string; manifest: string }) => layoutOf(v, file.sub).mark), [0x03, 0x7b, 0x7b]); // newest first
  const newVersions = (page as unknown as { changes: { fileId: string; versionId: string; manifest: string }[] }).changes.filter((v) => v.fileId !== file.fileId);
  t.true(newVersions.length >= 12);
  const layouts = newVersions.map((v) => {
    const w = page.fileKeyWraps[v.fileId]![0]!;
    return layoutOf(v, k.deriveFileSubkeys(k.openFileKeyWrap(w, { spaceId: space.spaceId, keyEpoch: 1, fileId: v.fileId }, pair, () => true)));
  });
  t.true(layouts.every((l) => l.mark === 0x03));
  const manifestBatches = new Map<string, number[]>();
  for (const l of layouts) manifestBatches.set(l.sig, [...(manifestBatches.get(l.sig) ?? []), l.size]);
  t.true(manifestBatches.size <= 2, `${manifestBatches.size} manifest signatures for ${layouts.length} versions`);
  for (const sizes of manifestBatches.values()) t.true(sizes.every((n) => n === sizes.length));

  // An independent reader of the storage opens both kinds. It reads the sqlite file (docs/storage.md), so not when this
  // suite runs on PostgreSQL (pg-sync-wrap-versions.test.ts), where everything above runs the same.
  if (process.env.KLUIS_TEST_DB === 'postgres') return;
  await env.stopServer('SIGTERM');
  try {
    const out = mkdtempSync(path.join(env.root, 'reader-out-'));
    const r = await readSpace({ dbFile: path.join(env.dataDir, 'kluis.sqlite3'), blobRoot: path.join(env.dataDir, 'blobs'), email: B.email, password: B.password, spaceId: space.spaceId, outDir: out });
    t.deepEqual(tree(out), tree(b.dir));
    t.is(r.files, 13);
  } finally {
    await env.startServerAgain();
  }
});

test('the server refuses a version-2 wrap whose batch signature does not verify, or signed by someone else', async (t) => {
  const [A, B] = env.accounts as [Account, Account];
  const space = await env.newSpace([A, B]);
  const user = { keys: keysOf(A.home), token: sessionOf(A.home).token } as unknown as User;
  const details = (await call(env.url, 'GET', `/api/v1/spaces/${space.spaceId}`, { token: user.token })).body;
  const pair = k.openSpaceKeyWrap((details.myWraps as k.SpaceKeyWrap[]).find((w) => w.keyEpoch === 1)!, { spaceId: space.spaceId, keyEpoch: 1 }, user.keys, () => true);
  const files = [newFile(), newFile()];
  const entries = files.map((f) => version(user, space.spaceId, pair, 1, f, { parent: null, path: `x-${f.fileId}.txt`, memberSeq: 2, withWrap: false }).entry);
  const target = { spaceId: space.spaceId, keyEpoch: 1, recipient: k.toBase64Url(pair.publicKey) };
  const commit = (wraps: unknown[]) => call(env.url, 'POST', `/api/v1/spaces/${space.spaceId}/commits`, { token: user.token, json: { versions: entries.map((e, i) => ({ ...e, fileKeyWrap: wraps[i] })) } });
  const good = k.wrapFileKeysBatch(files.map((f) => ({ fileId: f.fileId, fileKey: f.fileKey })), target, user.keys);

  const swapped = [{ ...good[0]!, sealed: good[1]!.sealed }, good[1]];
  const r1 = await commit(swapped);
  t.is(r1.status, 400);
  t.is(r1.body.error.code, 'bad_signature');
  const byB = k.wrapFileKeysBatch(files.map((f) => ({ fileId: f.fileId, fileKey: f.fileKey })), target, keysOf(B.home));
  const r2 = await commit(byB);
  t.is(r2.status, 400);
  t.regex(r2.body.error.message, /signed by you/);
  const r3 = await commit([{ ...good[0]!, proof: 'nope' }, good[1]]);
  t.is(r3.status, 400);
  t.is(r3.body.error.code, 'validation_failed');
  const ok = await commit(good);
  t.is(ok.status, 201);
});
