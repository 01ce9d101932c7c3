// The batching chunk uploader (desktop/src/sync/chunk-uploader.ts): envelopes sealed straight into reused batch
// buffers, each batch's body sent as it is. Over a stand-in for the server's HTTP API that decodes what it is sent
// (the real endpoint is covered by the sync integration suites).
import test from 'ava';
import * as k from '@kluis/shared';
import type { ApiClient } from '../../desktop/dist/api/client.js';
import { ChunkUploader } from '../../desktop/dist/sync/chunk-uploader.js';

const KiB = 1024;

test.before(async () => {
  await k.initCrypto();
});

interface Server {
  client: ApiClient;
  /** id -> the envelope as received (copied) */
  stored: Map<string, Uint8Array>;
  /** every body's ArrayBuffer, in order */
  buffers: ArrayBufferLike[];
  /** ids asked for in missingChunks */
  asked: string[];
  failNext: number;
  failed: Uint8Array[];
}

function server(): Server {
  const s: Server = { stored: new Map(), buffers: [], asked: [], failNext: 0, failed: [], client: null as unknown as ApiClient };
  s.client = {
    async uploadFramed(_space: string, body: Uint8Array) {
      s.buffers.push(body.buffer);
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (s.failNext > 0) {
        s.failNext--;
        s.failed.push(body);
        throw new Error('connection reset');
      }
      for (const f of k.decodeFrames(body)) s.stored.set(f.id, f.ciphertext.slice());
      return { stored: 0, duplicate: 0 };
    },
    async missingChunks(_space: string, ids: string[]) {
      s.asked.push(...ids);
      return ids.filter((id) => !s.stored.has(id));
    },
  } as unknown as ApiClient;
  return s;
}

function content(seed: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function addChunk(up: ChunkUploader, keys: k.FileSubkeys, plain: Uint8Array, known = false): Promise<string> {
  const id = k.chunkId(keys, plain);
  await up.add(id, k.sealedChunkLength(plain.length), (dest) => k.sealChunkInto(keys, id, plain, dest), known, plain.length);
  return id;
}

test('every chunk arrives sealed as sealChunk would, and batch buffers are reused (at most inFlight + 1)', async (t) => {
  const s = server();
  const keys = k.deriveFileSubkeys(k.generateFileKey());
  let done = 0;
  const up = new ChunkUploader(s.client, 'space', { batchBytes: 64 * KiB, inFlight: 2, onDone: (n) => (done += n) });
  const plains = Array.from({ length: 200 }, (_, i) => content(i + 1, 5 * KiB + i * 37));
  const ids: string[] = [];
  for (const p of plains) ids.push(await addChunk(up, keys, p));
  await up.flush();
  t.is(s.stored.size, plains.length);
  ids.forEach((id, i) => t.deepEqual(k.decryptChunk(keys, id, s.stored.get(id)!), plains[i]));
  t.true(s.buffers.length >= 10, `${s.buffers.length} batches`);
  t.true(new Set(s.buffers).size <= 3, `${new Set(s.buffers).size} distinct buffers`);
  t.is(done, plains.reduce((n, p) => n + p.length, 0));
  t.is(up.sentChunks, plains.length);
  t.is(up.sentBytes, plains.reduce((n, p) => n + k.sealedChunkLength(p.length), 0));
});

test('files read concurrently share batches without mixing their frames', async (t) => {
  const s = server();
  const up = new ChunkUploader(s.client, 'space', { batchBytes: 40 * KiB, inFlight: 2 });
  const files = Array.from({ length: 6 }, (_, f) => ({ keys: k.deriveFileSubkeys(k.generateFileKey()), plains: Array.from({ length: 30 }, (_, i) => content(f * 100 + i + 1, 3 * KiB + f * 301 + i)) }));
  const ids = await Promise.all(
    files.map(async (f) => {
      const out: string[] = [];
      for (const p of f.plains) out.push(await addChunk(up, f.keys, p));
      return out;
    }),
  );
  await up.flush();
  files.forEach((f, i) => f.plains.forEach((p, j) => t.deepEqual(k.decryptChunk(f.keys, ids[i]![j]!, s.stored.get(ids[i]![j]!)!), p)));
});

test('chunks of a known file are asked for first; those the server holds are cut out of the body', async (t) => {
  const s = server();
  const keys = k.deriveFileSubkeys(k.generateFileKey());
  const plains = Array.from({ length: 12 }, (_, i) => content(i + 500, 7 * KiB + i));
  const first = new ChunkUploader(s.client, 'space', { batchBytes: 1024 * KiB });
  for (const p of plains.filter((_, i) => i % 3 === 0)) await addChunk(first, keys, p);
  await first.flush();
  t.is(s.stored.size, 4);

  const next = new ChunkUploader(s.client, 'space', { batchBytes: 1024 * KiB });
  const ids: string[] = [];
  for (const p of plains) ids.push(await addChunk(next, keys, p, true));
  await next.flush();
  t.is(next.skippedChunks, 4);
  t.is(next.sentChunks, 8);
  t.deepEqual(s.asked.slice(-12).sort(), [...ids].sort());
  ids.forEach((id, i) => t.deepEqual(k.decryptChunk(keys, id, s.stored.get(id)!), plains[i]));
});

test('a failed batch fails the flush, its chunks are sent again by a later uploader, and its buffer is never written again', async (t) => {
  const s = server();
  const keys = k.deriveFileSubkeys(k.generateFileKey());
  const up = new ChunkUploader(s.client, 'space', { batchBytes: 16 * KiB, inFlight: 1 });
  s.failNext = 1;
  const plains = Array.from({ length: 30 }, (_, i) => content(i + 900, 6 * KiB));
  const added = async (): Promise<void> => {
    for (const p of plains) await addChunk(up, keys, p);
  };
  await t.throwsAsync(async () => {
    await added();
    await up.flush();
  }, { message: 'connection reset' });
  const failed = s.failed[0]!;
  const snapshot = failed.slice();
  // a later uploader (the engine's retry) sends everything that was not stored
  const again = new ChunkUploader(s.client, 'space', { batchBytes: 16 * KiB, inFlight: 1 });
  for (const p of plains) await addChunk(again, keys, p, true);
  await again.flush();
  t.is(s.stored.size, plains.length);
  t.deepEqual(failed, snapshot, 'the failed body was not reused for another batch');
  t.false(s.buffers.slice(1).includes(failed.buffer));
});

test('a batch goes when its next frame would not fit; the largest chunk FastCDC makes fits an empty one', async (t) => {
  const s = server();
  const keys = k.deriveFileSubkeys(k.generateFileKey());
  const up = new ChunkUploader(s.client, 'space', { batchBytes: 4 * KiB });
  const small = content(8, 3 * KiB);
  const big = content(7, k.CHUNK_MAX);
  const a = await addChunk(up, keys, small);
  const b = await addChunk(up, keys, big);
  const c = await addChunk(up, keys, small.subarray(1));
  await up.flush();
  t.deepEqual(k.decryptChunk(keys, a, s.stored.get(a)!), small);
  t.true(Buffer.from(k.decryptChunk(keys, b, s.stored.get(b)!)).equals(big));
  t.deepEqual(k.decryptChunk(keys, c, s.stored.get(c)!), small.subarray(1));
  t.is(s.buffers.length, 3, 'the small frame goes alone: the largest one does not fit beside it');
  t.is(s.buffers[0]!.byteLength, k.FRAME_HEADER_BYTES + k.sealedChunkLength(k.CHUNK_MAX), 'a buffer is one largest frame when batchBytes is less');
});

test('barrier waits for every batch begun before it, also one still waiting for a place, but not for later ones', async (t) => {
  // A server whose uploads end only when the test says so.
  const gates: { ids: string[]; open: () => void }[] = [];
  const stored = new Set<string>();
  const client = {
    async uploadFramed(_space: string, body: Uint8Array) {
      const ids = k.decodeFrames(body).map((f) => f.id);
      await new Promise<void>((resolve) => gates.push({ ids, open: resolve }));
      for (const id of ids) stored.add(id);
      return { stored: ids.length, duplicate: 0 };
    },
  } as unknown as ApiClient;
  const keys = k.deriveFileSubkeys(k.generateFileKey());
  // Batches of one 40 KiB chunk each, two in flight at a time.
  const up = new ChunkUploader(client, 'space', { batchBytes: 32 * KiB, inFlight: 2 });
  const settle = () => new Promise((resolve) => setTimeout(resolve, 5));
  const a = await addChunk(up, keys, content(1, 40 * KiB)); // batch 1: in flight
  const b = await addChunk(up, keys, content(2, 40 * KiB)); // batch 2: in flight
  const adding = addChunk(up, keys, content(3, 40 * KiB)); // batch 3: taken, waiting for a place
  await settle();
  t.is(gates.length, 2);
  let passed = false;
  const barrier = up.barrier().then(() => (passed = true));
  // A reader adds a chunk after the barrier began: batch 4, which the barrier must not wait for.
  const later = addChunk(up, keys, content(4, 40 * KiB));
  gates[0]!.open(); // batch 1 ends; batch 3 goes
  const c = await adding;
  await settle();
  gates[1]!.open(); // batch 2 ends; batch 4 goes
  await settle();
  t.is(gates.length, 4);
  t.false(passed, 'batch 3 (taken before the barrier) is still being sent');
  gates[2]!.open();
  await settle();
  t.true(passed, 'batch 4, begun after the barrier, is not waited for');
  await barrier;
  t.true(stored.has(a) && stored.has(b) && stored.has(c));
  t.false(stored.has(await later));
  gates[3]!.open();
  await up.flush();
  t.is(stored.size, 4);
});

test('barrier sends the batch being filled and rethrows a failed batch once', async (t) => {
  const s = server();
  const keys = k.deriveFileSubkeys(k.generateFileKey());
  const up = new ChunkUploader(s.client, 'space', { batchBytes: 64 * KiB, inFlight: 2 });
  const id = await addChunk(up, keys, content(7, 5 * KiB));
  t.is(s.stored.size, 0, 'a partly filled batch waits');
  await up.barrier();
  t.true(s.stored.has(id));
  s.failNext = 1;
  await addChunk(up, keys, content(8, 5 * KiB));
  await t.throwsAsync(up.barrier(), { message: 'connection reset' });
  await up.barrier(); // reported once
  t.pass();
});
