// Hash once (issue 22; desktop/src/sync/read-encrypt.ts): the upload reads a file the scan has just hashed, and with the
// scan's facts it does not hash it again: the file's inode, size and mtime before and after the read decide whether
// the scan's hash still holds. A file changed since the scan (new size, new mtime, grown, replaced) gives null, so no
// version is made of it; small files are still hashed and compared.
import test, { type ExecutionContext } from 'ava';
import { appendFile, lstat, mkdtemp, rename, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { readAndEncrypt, type ReadExpect } from '../../desktop/dist/sync/read-encrypt.js';
import { ChunkUploader } from '../../desktop/dist/sync/transfer.js';
import { ConfirmAhead } from '../../desktop/dist/sync/confirm-ahead.js';
import { PreviousChunks } from '../../desktop/dist/sync/chunk-guide.js';
import type { ApiClient } from '../../desktop/dist/api/client.js';
import { detBytes } from '../helpers/det-bytes.js';
import { HASH_LATER } from '../../desktop/dist/sync/types.js';

const MiB = 1024 * 1024;

test.before(async () => {
  await k.initCrypto();
});

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kluis-read-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** An uploader over a server stand-in that keeps every frame it is sent. */
function uploader(): { up: ChunkUploader; sent: Map<string, Uint8Array> } {
  const sent = new Map<string, Uint8Array>();
  const client = {
    async uploadFramed(_spaceId: string, body: Uint8Array) {
      // copies: the uploader reuses the body's buffer once this resolves
      for (const f of k.decodeFrames(body)) sent.set(f.id, f.ciphertext.slice());
    },
    async missingChunks(_spaceId: string, ids: string[]) {
      return ids.filter((id) => !sent.has(id));
    },
  } as unknown as ApiClient;
  return { up: new ChunkUploader(client, 'space', { batchBytes: 4 * MiB }), sent };
}

/** What a scan records for `file`: its facts and the hash of `content`. */
async function scanned(file: string, content: Uint8Array): Promise<ReadExpect> {
  const st = await lstat(file);
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, hash: k.contentHash(content) };
}

const keys = () => k.deriveFileSubkeys(k.generateFileKey());

test('unchanged since the scan: the scan hash is taken, the chunks are the file\'s, and they decrypt to it', async (t) => {
  const dir = await tempDir(t);
  for (const size of [3 * MiB, 12 * MiB]) { // the in-memory path and the streamed path
    const file = path.join(dir, `f${size}`);
    const content = detBytes(size, size);
    await writeFile(file, content);
    const fk = keys();
    const { up, sent } = uploader();
    const read = await readAndEncrypt(file, fk, up, false, { expect: await scanned(file, content) });
    await up.flush();
    t.truthy(read);
    t.is(read!.hash, k.contentHash(content));
    t.is(read!.size, size);
    const back = Buffer.concat(read!.chunks.map(([id]) => k.decryptChunk(fk, id, sent.get(id)!)));
    t.true(back.equals(Buffer.from(content)));
  }
});

test('the facts decide, not a second hash: with the scan\'s facts, the scan\'s hash is what the version names', async (t) => {
  // This is the trust the scan itself and the index place in size + mtime + inode (scan.ts hashFile).
  const dir = await tempDir(t);
  const file = path.join(dir, 'f');
  const content = detBytes(11, 6 * MiB);
  await writeFile(file, content);
  const expect = { ...(await scanned(file, content)), hash: 'a'.repeat(64) };
  const { up } = uploader();
  const read = await readAndEncrypt(file, keys(), up, false, { expect });
  t.is(read?.hash, 'a'.repeat(64));
});

test('changed since the scan (content and mtime, size, grown while read, replaced): null, nothing to commit', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'f');
  const content = detBytes(12, 6 * MiB);
  await writeFile(file, content);
  const before = await scanned(file, content);

  // same size, new content, new mtime
  const edited = detBytes(13, 6 * MiB);
  await writeFile(file, edited);
  await utimes(file, new Date(), new Date(before.mtimeMs + 5000));
  t.is(await readAndEncrypt(file, keys(), uploader().up, false, { expect: before }), null);

  // grown since the scan
  const grown = await scanned(file, edited);
  await appendFile(file, Buffer.alloc(10));
  await utimes(file, new Date(), new Date(grown.mtimeMs)); // even with the mtime put back, the size tells
  t.is(await readAndEncrypt(file, keys(), uploader().up, false, { expect: grown }), null);

  // replaced by another file (another inode) with the same size and mtime
  const other = path.join(dir, 'g');
  const last = await readFileFacts(file);
  await writeFile(other, Buffer.alloc(last.size, 7));
  await utimes(other, new Date(), new Date(last.mtimeMs));
  await rename(other, file);
  t.is(await readAndEncrypt(file, keys(), uploader().up, false, { expect: last }), null);
});

async function readFileFacts(file: string): Promise<ReadExpect> {
  const st = await lstat(file);
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, hash: 'b'.repeat(64) };
}

test('small files are still hashed: a different hash with the same facts gives null', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'small');
  const content = detBytes(14, 100 * 1024);
  await writeFile(file, content);
  const right = await scanned(file, content);
  t.is((await readAndEncrypt(file, keys(), uploader().up, false, { expect: right }))?.hash, right.hash);
  t.is(await readAndEncrypt(file, keys(), uploader().up, false, { expect: { ...right, hash: 'c'.repeat(64) } }), null);
});

test('a file the scan left to its upload to hash (HASH_LATER): a small one is hashed in the read, a larger one keeps the mark for the upload\'s hash', async (t) => {
  const dir = await tempDir(t);
  const small = path.join(dir, 'small');
  const smallContent = detBytes(16, 100 * 1024);
  await writeFile(small, smallContent);
  const s = await scanned(small, smallContent);
  t.is((await readAndEncrypt(small, keys(), uploader().up, false, { expect: { ...s, hash: HASH_LATER } }))?.hash, k.contentHash(smallContent));
  const large = path.join(dir, 'large');
  const largeContent = detBytes(17, 6 * MiB);
  await writeFile(large, largeContent);
  const l = await scanned(large, largeContent);
  const read = await readAndEncrypt(large, keys(), uploader().up, false, { expect: { ...l, hash: HASH_LATER } });
  t.is(read?.hash, HASH_LATER);
  t.is(read?.size, largeContent.length);
  await appendFile(large, Buffer.alloc(3)); // and the facts still decide
  t.is(await readAndEncrypt(large, keys(), uploader().up, false, { expect: { ...l, hash: HASH_LATER } }), null);
});

test('without the scan\'s facts the file is hashed as it is read', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'f');
  const content = detBytes(15, 9 * MiB);
  await writeFile(file, content);
  const read = await readAndEncrypt(file, keys(), uploader().up, false);
  t.is(read?.hash, k.contentHash(content));
  t.is(read?.size, content.length);
});

test('chunks the server holds (the replaced version\'s) are neither encrypted nor sent; the list still names them all', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'groot');
  const v1 = detBytes(16, 24 * MiB);
  await writeFile(file, v1);
  const fk = keys();
  const server = uploader();
  const first = await readAndEncrypt(file, fk, server.up, false, { expect: await scanned(file, v1) });
  await server.up.flush();
  t.is(first!.heldBytes, 0);

  const v2 = Buffer.from(v1);
  Buffer.from(detBytes(17, MiB)).copy(v2, 12 * MiB);
  await writeFile(file, v2);
  const before = server.sent.size;
  const next = uploader();
  const second = await readAndEncrypt(file, fk, next.up, true, { expect: await scanned(file, v2), previous: first!.chunks });
  await next.up.flush();
  t.truthy(second);
  const sentBytes = [...next.sent.values()].reduce((n, c) => n + c.length, 0);
  t.true(sentBytes > 0 && sentBytes < 4 * MiB, `sent ${sentBytes}`);
  t.true(second!.heldBytes >= 20 * MiB, `held ${second!.heldBytes}`);
  t.is(second!.heldBytes + [...next.sent.keys()].reduce((n, id) => n + second!.chunks.find(([x]) => x === id)![1], 0), v2.length);
  // Every chunk of the new list opens from what the server holds (the first upload's frames and the new ones).
  const back = Buffer.concat(second!.chunks.map(([id]) => k.decryptChunk(fk, id, next.sent.get(id) ?? server.sent.get(id)!)));
  t.true(back.equals(v2));
  t.is(server.sent.size, before);
});

test('a large new version is confirmed on two threads: the worker\'s ids from the end give the same chunk list', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'groot');
  const v1 = detBytes(21, 40 * MiB);
  await writeFile(file, v1);
  const fk = keys();
  const first = await readAndEncrypt(file, fk, uploader().up, false, { expect: await scanned(file, v1) });
  // edits in both halves: one the main thread meets, one in the part the worker hashes from the end
  const v2 = Buffer.from(v1);
  Buffer.from(detBytes(22, MiB)).copy(v2, 5 * MiB);
  Buffer.from(detBytes(23, MiB)).copy(v2, 35 * MiB);
  await writeFile(file, v2);
  const ahead = new ConfirmAhead(file, fk, first!.chunks);
  try {
    t.true(await ahead.started, 'the worker sent ids');
    const guided = async (g: PreviousChunks): Promise<[string, number][]> => {
      const list: [string, number][] = [];
      let at = 0;
      for await (const c of k.chunkStreamGuided(pieces(v2), g)) {
        const n = typeof c === 'number' ? c : c.length;
        list.push([typeof c === 'number' ? g.takeConfirmed() : k.chunkId(fk, c), n]);
        if (typeof c !== 'number') g.observe(at, list.at(-1)![0]);
        at += n;
      }
      return list;
    };
    const guide = new PreviousChunks(fk, first!.chunks, ahead);
    const list = await guided(guide);
    t.true(ahead.taken > 0, `ids taken from the worker: ${ahead.taken}`);
    // the same confirmations and misses as the main thread alone: every id the worker gave was the right one
    const alone = new PreviousChunks(fk, first!.chunks);
    t.deepEqual(await guided(alone), list);
    t.deepEqual([guide.confirmed, guide.missed], [alone.confirmed, alone.missed]);
    t.true(guide.confirmed > 0 && guide.missed >= 2, `confirmed ${guide.confirmed}, missed ${guide.missed}`);
    // exactly the chunk list of an unguided read of v2 (FastCDC from scratch, every id computed on this thread)
    const plain = await readAndEncrypt(file, fk, uploader().up, false, { expect: await scanned(file, v2) });
    t.deepEqual(list, plain!.chunks);
  } finally {
    await ahead.close();
  }
});

async function* pieces(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < bytes.length; o += MiB) yield bytes.subarray(o, o + MiB);
}
