// Delta download, the pieces (desktop/src/sync/transfer.ts fileContent with a local source; index-db.ts base_chunks):
// chunks the local copy holds are read from it and verified by their keyed id, everything else is fetched; a local
// copy changed or gone only means more is fetched, never a wrong byte. The end-to-end figures are in
// test/integration/sync-delta.test.ts.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { IndexDb } from '../../desktop/dist/sync/index-db.js';
import { fileContent, type LocalChunks } from '../../desktop/dist/sync/transfer.js';
import type { ApiClient } from '../../desktop/dist/api/client.js';
import type { BaseEntry } from '../../desktop/dist/sync/types.js';
import { detBytes } from '../helpers/det-bytes.js';

const MiB = 1024 * 1024;

test.before(async () => {
  await k.initCrypto();
});

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kluis-delta-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Cuts `content` with FastCDC and encrypts it: the manifest's chunk list and the ciphertexts by id. */
function encrypt(keys: k.FileSubkeys, content: Uint8Array): { chunks: [string, number][]; store: Map<string, Uint8Array> } {
  const chunks: [string, number][] = [];
  const store = new Map<string, Uint8Array>();
  let pos = 0;
  for (const n of k.chunkBoundaries(content)) {
    const { id, ciphertext } = k.encryptChunk(keys, content.slice(pos, pos + n));
    chunks.push([id, n]);
    store.set(id, ciphertext);
    pos += n;
  }
  return { chunks, store };
}

/** A server that holds `store` and records every id asked for. */
function fakeServer(store: Map<string, Uint8Array>): { client: ApiClient; asked: string[] } {
  const asked: string[] = [];
  const client = {
    async *downloadChunks(_spaceId: string, ids: string[]) {
      for (const id of ids) {
        asked.push(id);
        yield { id, ciphertext: store.get(id)! };
      }
    },
  } as unknown as ApiClient;
  return { client, asked };
}

/** Where each chunk of `previous` that `next` also lists is (as download.ts builds it). */
function localChunks(absPath: string, previous: [string, number][], next: [string, number][]): LocalChunks {
  const wanted = new Set(next.map(([id]) => id));
  const at = new Map<string, { offset: number; size: number }>();
  let offset = 0;
  for (const [id, size] of previous) {
    if (wanted.has(id) && !at.has(id)) at.set(id, { offset, size });
    offset += size;
  }
  return { absPath, at };
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of source) parts.push(p);
  return Buffer.concat(parts);
}

/** A 12 MiB file and a new version of it with 1 MiB overwritten at 6 MiB, both under one file key. */
function versions() {
  const keys = k.deriveFileSubkeys(k.generateFileKey());
  const old = detBytes(1, 12 * MiB);
  const next = old.slice();
  next.set(detBytes(2, MiB), 6 * MiB);
  const v1 = encrypt(keys, old);
  const v2 = encrypt(keys, next);
  const store = new Map([...v1.store, ...v2.store]);
  return { keys, old, next, v1, v2, store };
}

const ciphertextBytes = (store: Map<string, Uint8Array>, ids: string[]) => ids.reduce((n, id) => n + store.get(id)!.length, 0);

test('a local copy of the previous version: only the chunks it lacks are fetched; the content is the new version', async (t) => {
  const { keys, old, next, v1, v2, store } = versions();
  const file = path.join(await tempDir(t), 'groot.bin');
  await writeFile(file, old);
  const { client, asked } = fakeServer(store);
  const counts = { bytesDownloaded: 0, bytesReused: 0 };
  // Small windows: several windows, each prepared while the one before is consumed.
  const got = await collect(fileContent(client, 'space', v2.chunks, keys, undefined, 2 * MiB, { local: localChunks(file, v1.chunks, v2.chunks), counts }));
  t.true(got.equals(Buffer.from(next)));
  const v1Ids = new Set(v1.chunks.map(([id]) => id));
  const fresh = v2.chunks.filter(([id]) => !v1Ids.has(id)).map(([id]) => id);
  t.deepEqual(asked.sort(), [...new Set(fresh)].sort(), 'exactly the chunks the old version lacks are fetched');
  t.true(fresh.length < v2.chunks.length / 2, `most chunks are shared (${fresh.length} of ${v2.chunks.length} new)`);
  t.is(counts.bytesDownloaded, ciphertextBytes(store, asked));
  t.is(counts.bytesReused + fresh.reduce((n, id) => n + v2.chunks.find(([x]) => x === id)![1], 0), next.length);
});

test('a local copy changed since (same size): chunks whose bytes no longer match their keyed id are fetched', async (t) => {
  const { keys, old, next, v1, v2, store } = versions();
  const file = path.join(await tempDir(t), 'groot.bin');
  const changed = old.slice();
  changed.set(detBytes(3, 2 * MiB), MiB); // far from the edit: chunks the new version shares with the old one
  await writeFile(file, changed);
  const { client, asked } = fakeServer(store);
  const counts = { bytesDownloaded: 0, bytesReused: 0 };
  const got = await collect(fileContent(client, 'space', v2.chunks, keys, undefined, 2 * MiB, { local: localChunks(file, v1.chunks, v2.chunks), counts }));
  t.true(got.equals(Buffer.from(next)), 'never a wrong byte');
  // Every shared chunk overlapping the changed range must have been fetched.
  let offset = 0;
  const overlapping: string[] = [];
  for (const [id, size] of v1.chunks) {
    if (offset < 3 * MiB && offset + size > MiB) overlapping.push(id);
    offset += size;
  }
  t.true(overlapping.length > 0);
  for (const id of overlapping) t.true(asked.includes(id), `chunk ${id.slice(0, 8)} of the changed range was fetched`);
  t.true(counts.bytesReused > 0 && counts.bytesReused <= 12 * MiB - 2 * MiB, `bytesReused ${counts.bytesReused}`);
});

test('a local copy that is gone, or shorter now: everything it cannot give is fetched', async (t) => {
  const { keys, old, next, v1, v2, store } = versions();
  const dir = await tempDir(t);
  const gone = fakeServer(store);
  const counts = { bytesDownloaded: 0, bytesReused: 0 };
  const got = await collect(fileContent(gone.client, 'space', v2.chunks, keys, undefined, 2 * MiB, { local: localChunks(path.join(dir, 'weg.bin'), v1.chunks, v2.chunks), counts }));
  t.true(got.equals(Buffer.from(next)));
  t.is(counts.bytesReused, 0);
  t.is(new Set(gone.asked).size, new Set(v2.chunks.map(([id]) => id)).size);

  const short = path.join(dir, 'kort.bin');
  await writeFile(short, old.subarray(0, 4 * MiB));
  const cut = fakeServer(store);
  const counts2 = { bytesDownloaded: 0, bytesReused: 0 };
  const got2 = await collect(fileContent(cut.client, 'space', v2.chunks, keys, undefined, 2 * MiB, { local: localChunks(short, v1.chunks, v2.chunks), counts: counts2 }));
  t.true(got2.equals(Buffer.from(next)));
  t.true(counts2.bytesReused > 0 && counts2.bytesReused <= 4 * MiB, `bytesReused ${counts2.bytesReused}`);
});

test('chunks of another file key never match: a local copy under the old key gives nothing', async (t) => {
  const { old, next } = versions();
  const oldKeys = k.deriveFileSubkeys(k.generateFileKey());
  const newKeys = k.deriveFileSubkeys(k.generateFileKey());
  const v1 = encrypt(oldKeys, old);
  const v2 = encrypt(newKeys, next);
  const file = path.join(await tempDir(t), 'groot.bin');
  await writeFile(file, old);
  const local = localChunks(file, v1.chunks, v2.chunks);
  t.is(local.at.size, 0, 'no id in common');
  // Even a wrong offset list (every chunk of the new version pointed one byte off in the local file) yields only
  // verified bytes: none match, everything is fetched, the content is right.
  let offset = 1;
  const forged: LocalChunks = { absPath: file, at: new Map(v2.chunks.map(([id, size]) => [id, { offset: (offset += size) - size, size }])) };
  const { client } = fakeServer(v2.store);
  const counts = { bytesDownloaded: 0, bytesReused: 0 };
  const got = await collect(fileContent(client, 'space', v2.chunks, newKeys, undefined, 2 * MiB, { local: forged, counts }));
  t.true(got.equals(Buffer.from(next)));
  t.is(counts.bytesReused, 0);
});

test('index: base_chunks keeps the chunk list of a base row written with one, for that version only', async (t) => {
  const home = await tempDir(t);
  const db = await IndexDb.open(home);
  t.teardown(() => db.close().catch(() => undefined));
  const f = await db.folder('space1', path.join(home, 'sync'));
  const list: [string, number][] = [['aa'.repeat(32), 3 * MiB], ['bb'.repeat(32), 2 * MiB]];
  const row: BaseEntry = {
    path: 'map/groot.bin', kind: 'file', fileId: 'file1', versionId: 'ver1', hash: 'cc'.repeat(32), size: 5 * MiB, mtimeMs: 1_790_000_000_000,
    localSize: 5 * MiB, localMtimeMs: 1_790_000_000_000, localIno: 42,
  };
  await db.apply(f.id, { putBase: [{ ...row, chunks: list }] });
  t.deepEqual(await db.baseChunks(f.id, row.path, 'ver1'), list);
  t.is(await db.baseChunks(f.id, row.path, 'ver0'), null, 'another version: not this list');
  t.false('chunks' in (await db.baseAll(f.id)).get(row.path)!, 'baseAll does not load chunk lists');
  // A row rewritten without a list (local facts refreshed) keeps it; a new version without one makes it stale.
  await db.apply(f.id, { putBase: [{ ...row, localIno: 43 }] });
  t.deepEqual(await db.baseChunks(f.id, row.path, 'ver1'), list);
  await db.apply(f.id, { putBase: [{ ...row, versionId: 'ver2' }] });
  t.is(await db.baseChunks(f.id, row.path, 'ver2'), null);
  // A move: the old path's list goes with its row, the new path gets its own.
  await db.apply(f.id, { putBase: [{ ...row, versionId: 'ver3', chunks: list }] });
  await db.apply(f.id, { deleteBase: [row.path], putBase: [{ ...row, path: 'elders.bin', versionId: 'ver3', chunks: list }] });
  t.is(await db.baseChunks(f.id, row.path, 'ver3'), null);
  t.deepEqual(await db.baseChunks(f.id, 'elders.bin', 'ver3'), list);
});
