// The packed chunk store (server/src/storage/chunks.ts) and the batch frame format (shared/src/api/frames.ts).
// One suite, run against the filesystem blob store and against the minio store on a real local S3 (Ceph RGW
// started by test/helpers/s3.ts). Every blob request goes through a counting proxy, so the tests can assert how
// many reads a batch download costs. Nothing is mocked.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Knex } from 'knex';
import {
  CHUNK_CIPHERTEXT_MAX,
  DEFAULT_FRAME_LIMITS,
  FRAME_HEADER_BYTES,
  FrameBadIdError,
  FrameError,
  FrameLengthError,
  FrameLimitError,
  FrameParser,
  FrameTruncatedError,
  decodeFrames,
  encodeFrames,
  frameHeader,
  frameStream,
  parseFrames,
  type ChunkFrame,
} from '../../shared/dist/api/frames.js';
import { BlobSizeMismatchError, type BlobStore, type OrgBlobStore } from '../../server/dist/blobstore/index.js';
import { openFsBlobStore } from '../../server/dist/blobstore/fs.js';
import { MinioBlobStore } from '../../server/dist/blobstore/minio.js';
import { openDatabase } from '../../server/dist/db/db.js';
import {
  ChunkLimitError,
  ChunkNotFoundError,
  ChunkStore,
  InvalidChunkError,
  SpaceNotFoundError,
  PACK_TARGET_BYTES,
  chunkKey,
  packKey,
  type ChunkStoreOptions,
} from '../../server/dist/storage/chunks.js';
import { checkIndex, countRows, createSpace, listObjects, type SpaceFixture } from '../helpers/chunkstore-fixture.js';
import { startLocalS3, type LocalS3 } from '../helpers/s3.js';

const KiB = 1024;
const MiB = 1024 * KiB;

// ------------------------------------------------------------------------------------------ helpers

/** A chunk whose id is the SHA-256 of its bytes (the server never checks that; it just makes ids unique). */
function chunk(length: number): ChunkFrame {
  const ciphertext = randomBytes(Math.round(length));
  return { id: createHash('sha256').update(ciphertext).digest('hex'), ciphertext };
}

function chunks(n: number, min: number, max: number): ChunkFrame[] {
  return Array.from({ length: n }, () => chunk(randomInt(Math.round(min), Math.round(max) + 1)));
}

/** Cuts a body into random pieces (1 byte .. 96 KiB), as a socket would deliver it. */
function* pieces(body: Uint8Array, maxPiece = 96 * KiB): Generator<Uint8Array> {
  let at = 0;
  while (at < body.length) {
    const n = Math.min(body.length - at, randomInt(1, maxPiece + 1));
    yield body.subarray(at, at + n);
    at += n;
  }
}

function shuffle<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(0, i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

async function collect(read: AsyncIterable<{ id: string; ciphertext: Uint8Array }>): Promise<{ id: string; ciphertext: Buffer }[]> {
  const out: { id: string; ciphertext: Buffer }[] = [];
  for await (const c of read) out.push({ id: c.id, ciphertext: Buffer.from(c.ciphertext) });
  return out;
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

function sameBytes(t: ExecutionContext, got: Map<string, Buffer> | { id: string; ciphertext: Buffer }[], want: ChunkFrame[]): void {
  const map = got instanceof Map ? got : new Map(got.map((c) => [c.id, c.ciphertext]));
  t.is(map.size, want.length);
  let bad = 0;
  for (const w of want) if (!map.get(w.id)?.equals(w.ciphertext)) bad++;
  t.is(bad, 0, `${bad} chunks differ`);
}

type Op = 'put' | 'get' | 'getRange' | 'stat' | 'exists' | 'delete' | 'list';

/** Wraps a BlobStore and counts every object operation. */
class CountingBlobStore implements BlobStore {
  readonly counts: Record<Op, number> = { put: 0, get: 0, getRange: 0, stat: 0, exists: 0, delete: 0, list: 0 };
  constructor(readonly inner: BlobStore) {}
  get kind() {
    return this.inner.kind;
  }
  forOrg(orgId: string): OrgBlobStore {
    const org = this.inner.forOrg(orgId);
    return new Proxy(org, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (typeof prop === 'string' && prop in this.counts) this.counts[prop as Op]++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }
  ready() {
    return this.inner.ready();
  }
  close() {
    return this.inner.close();
  }
  reset(): void {
    for (const k of Object.keys(this.counts) as Op[]) this.counts[k] = 0;
  }
  get reads(): number {
    return this.counts.get + this.counts.getRange;
  }
}

interface Harness {
  db: Knex;
  store: BlobStore;
  cleanup(): Promise<void>;
}

interface Ctx {
  db: Knex;
  blobs: CountingBlobStore;
  cs: ChunkStore;
  space: SpaceFixture;
  org: OrgBlobStore;
}

// ------------------------------------------------------------------------------------------ the suite

function suite(name: string, setup: () => Promise<Harness>): void {
  let harness: Harness | undefined;
  let failure: unknown;
  const ready = setup().then(
    (h) => void (harness = h),
    (err: unknown) => void (failure = err),
  );
  test.after.always(`${name}: cleanup`, async () => {
    await ready;
    await harness?.cleanup();
  });

  /**
   * A fresh organisation + space and a ChunkStore over a counting proxy. Chunks of 512 KiB and more are objects of their
   * own here (packThresholdBytes), so that these tests cover both kinds; the default packs every chunk of a batch.
   */
  async function ctx(options: ChunkStoreOptions = {}): Promise<Ctx> {
    await ready;
    if (!harness) throw failure instanceof Error ? failure : new Error(String(failure));
    const blobs = new CountingBlobStore(harness.store);
    const space = await createSpace(harness.db);
    return { db: harness.db, blobs, cs: new ChunkStore(harness.db, blobs, { packThresholdBytes: 512 * KiB, ...options }), space, org: harness.store.forOrg(space.orgId) };
  }

  test(`${name}: pack buffers are reused from batch to batch, and every batch reads back intact`, async (t) => {
    const c = await ctx();
    const bodies: ArrayBufferLike[] = [];
    // the blob store as it is, but every body put is noted
    const spy = Object.create(c.blobs) as BlobStore;
    spy.forOrg = (orgId: string) => {
      const org = c.blobs.forOrg(orgId);
      return new Proxy(org, {
        get: (target, prop, receiver) => {
          const value = Reflect.get(target, prop, receiver) as unknown;
          if (prop !== 'put' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
          return (key: string, data: Uint8Array, size?: number) => {
            bodies.push(data.buffer);
            return org.put(key, data, size);
          };
        },
      });
    };
    const cs = new ChunkStore(c.db, spy, { packThresholdBytes: 512 * KiB });
    const batches = [chunks(40, 41, 60 * KiB), chunks(40, 41, 60 * KiB), chunks(40, 41, 60 * KiB)];
    for (const b of batches) {
      const res = await cs.putBatch(c.space.orgId, c.space.spaceId, parseFrames(pieces(encodeFrames(b))));
      t.is(res.packs, 1);
      t.is(cs.packBuffers.idle, 1, 'the pack buffer is back in the pool once its object is written');
    }
    t.is(bodies.length, 3);
    t.is(new Set(bodies).size, 1, 'one buffer for the three packs');
    const all = batches.flat();
    sameBytes(t, await collect(await cs.getBatch(c.space.orgId, c.space.spaceId, shuffle(all.map((x) => x.id)))), all);
  });

  test(`${name}: chunks that span socket reads are assembled in pooled buffers, reused only once copied or written`, async (t) => {
    const c = await ctx();
    const lent: ArrayBufferLike[] = [];
    const allocate = c.cs.frameBuffers.allocate.bind(c.cs.frameBuffers);
    c.cs.frameBuffers.allocate = (length: number) => {
      const view = allocate(length);
      lent.push(view.buffer);
      return view;
    };
    // Packed (below 512 KiB here) and standalone chunks, each batch repeating a chunk of its own and one of the batch
    // before, in 1 byte .. 64 KiB pieces: nearly every chunk is assembled from several pieces.
    const batches = [chunks(12, 70 * KiB, 900 * KiB), chunks(12, 70 * KiB, 900 * KiB), chunks(12, 70 * KiB, 900 * KiB)];
    let stored = 0;
    for (const [i, b] of batches.entries()) {
      const body = [...b, b[0]!, ...(i > 0 ? [batches[i - 1]![1]!] : [])];
      const res = await c.cs.putBatch(c.space.orgId, c.space.spaceId, c.cs.framesOf(pieces(encodeFrames(body), 64 * KiB)));
      t.is(res.duplicate, i > 0 ? 2 : 1);
      stored += res.stored;
    }
    t.is(stored, 36);
    t.true(lent.length >= 30, `${lent.length} chunks assembled in the pool`);
    t.true(new Set(lent).size < lent.length, 'buffers given back were lent again');
    t.true(c.cs.frameBuffers.idle > 0);
    const all = batches.flat();
    sameBytes(t, await collect(await c.cs.getBatch(c.space.orgId, c.space.spaceId, shuffle(all.map((x) => x.id)))), all);
    t.deepEqual(await checkIndex(c.db, c.org, c.space.spaceId, { orphans: true }), []);
  });

  test(`${name}: by default every chunk of a batch is packed, the largest ciphertext too, and reads back`, async (t) => {
    await ready;
    if (!harness) throw failure instanceof Error ? failure : new Error(String(failure));
    const blobs = new CountingBlobStore(harness.store);
    const space = await createSpace(harness.db);
    const c: Ctx = { db: harness.db, blobs, cs: new ChunkStore(harness.db, blobs), space, org: harness.store.forOrg(space.orgId) };
    const all = shuffle([...chunks(3, CHUNK_CIPHERTEXT_MAX, CHUNK_CIPHERTEXT_MAX), ...chunks(4, 600 * KiB, 700 * KiB), ...chunks(20, 41, 8 * KiB)]);
    const bytes = all.reduce((s, x) => s + x.ciphertext.length, 0);
    const res = await put(c, all);
    t.is(res.standalone, 0);
    const fewest = Math.ceil(bytes / PACK_TARGET_BYTES);
    t.true(res.packs >= fewest && res.packs <= fewest + 1, `${res.packs} packs of about PACK_TARGET_BYTES for ${bytes} bytes`);
    const objects = await listObjects(c.org);
    t.is([...objects.keys()].filter((k) => k.startsWith(`spaces/${c.space.spaceId}/chunks/`)).length, 0, 'no object of its own');
    t.deepEqual(await checkIndex(c.db, c.org, c.space.spaceId, { orphans: true }), []);
    const got = await collect(await c.cs.getBatch(c.space.orgId, c.space.spaceId, shuffle(all.map((x) => x.id))));
    sameBytes(t, got, all);
  });

  const put = (c: Ctx, items: ChunkFrame[], limits = {}) => c.cs.putBatch(c.space.orgId, c.space.spaceId, c.cs.framesOf(pieces(encodeFrames(items)), limits), limits);

  test(`${name}: round trip of many small and some large chunks (batch and single)`, async (t) => {
    const c = await ctx();
    const small = chunks(1500, 41, 8 * KiB); // ~6 MiB: one pack
    const large = chunks(5, 1.5 * MiB, CHUNK_CIPHERTEXT_MAX);
    const all = shuffle([...small, ...large]);
    const res = await put(c, all);
    const bytes = all.reduce((s, x) => s + x.ciphertext.length, 0);
    t.deepEqual(res, { stored: 1505, duplicate: 0, bytes, packs: 1, standalone: 5 });
    const objects = await listObjects(c.org);
    t.is(objects.size, 6, 'one pack and five standalone objects');
    t.is([...objects.keys()].filter((k) => k.startsWith(`spaces/${c.space.spaceId}/chunks/`)).length, 5);
    t.deepEqual(await checkIndex(c.db, c.org, c.space.spaceId, { orphans: true }), []);

    c.blobs.reset();
    const read = await c.cs.getBatch(c.space.orgId, c.space.spaceId, shuffle(all.map((x) => x.id)));
    t.is(read.count, 1505);
    t.is(read.bytes, bytes);
    t.is(read.framedBytes, bytes + FRAME_HEADER_BYTES * 1505);
    const got = await collect(read);
    sameBytes(t, got, all);
    t.is(c.blobs.counts.getRange, 1, 'the packed chunks came with one ranged read');
    t.is(c.blobs.counts.get, 5, 'one read per standalone chunk');
    t.is(read.reads, 6);

    for (const one of [small[7]!, large[2]!]) {
      const r = await c.cs.getOne(c.space.orgId, c.space.spaceId, one.id);
      t.is(r.size, one.ciphertext.length);
      t.true((await readAll(r.stream)).equals(one.ciphertext));
    }
    const unknown = chunks(3, 100, 200).map((x) => x.id);
    t.deepEqual(await c.cs.missing(c.space.orgId, c.space.spaceId, [...all.map((x) => x.id), ...unknown]), unknown);
  });

  test(`${name}: a download streams as frames that parse back to the chunks`, async (t) => {
    const c = await ctx();
    const all = [...chunks(300, 41, 8 * KiB), ...chunks(2, 1.2 * MiB, 1.3 * MiB)];
    await put(c, all);
    const read = await c.cs.getBatch(c.space.orgId, c.space.spaceId, all.map((x) => x.id));
    const body: Uint8Array[] = [];
    for await (const piece of frameStream(read)) body.push(piece);
    const bytes = Buffer.concat(body);
    t.is(bytes.length, read.framedBytes);
    sameBytes(t, decodeFrames(bytes).map((f) => ({ id: f.id, ciphertext: Buffer.from(f.ciphertext) })), all);
  });

  test(`${name}: duplicates (already stored, or twice in one batch) are skipped, not stored twice`, async (t) => {
    const c = await ctx();
    const a = chunks(200, 41, 4 * KiB);
    const bigA = chunk(1.1 * MiB);
    t.like(await put(c, [...a, bigA]), { stored: 201, duplicate: 0 });
    const before = await listObjects(c.org);
    const fresh = chunks(50, 41, 4 * KiB);
    const bigB = chunk(1.2 * MiB);
    // 100 known + 1 known large + 50 new + 20 repeats of new ones + the new large one twice
    const batch = shuffle([...a.slice(0, 100), bigA, ...fresh, ...fresh.slice(0, 20), bigB, bigB]);
    const res = await put(c, batch);
    t.deepEqual(res, { stored: 51, duplicate: 122, bytes: fresh.reduce((s, x) => s + x.ciphertext.length, 0) + bigB.ciphertext.length, packs: 1, standalone: 1 });
    t.deepEqual(await countRows(c.db, c.space.spaceId), { chunks: 252, packs: 2 });
    t.is((await listObjects(c.org)).size, before.size + 2);
    // Only known chunks: nothing written at all.
    c.blobs.reset();
    t.deepEqual(await put(c, [...a.slice(150), bigA, bigB]), { stored: 0, duplicate: 52, bytes: 0, packs: 0, standalone: 0 });
    t.is(c.blobs.counts.put, 0);
    t.deepEqual(await countRows(c.db, c.space.spaceId), { chunks: 252, packs: 2 });
    // putOne of a stored chunk does not read its stream.
    let pulled = false;
    const stream = new Readable({ read() { pulled = true; this.push(null); } });
    t.deepEqual(await c.cs.putOne(c.space.orgId, c.space.spaceId, bigA.id, stream, bigA.ciphertext.length), { stored: false });
    t.false(pulled);
    const all = [...a, bigA, ...fresh, bigB];
    sameBytes(t, await collect(await c.cs.getBatch(c.space.orgId, c.space.spaceId, all.map((x) => x.id))), all);
    t.deepEqual(await checkIndex(c.db, c.org, c.space.spaceId, { orphans: true }), []);
  });

  test(`${name}: missing() answers in batches, first-occurrence order, ignoring repeats`, async (t) => {
    const c = await ctx();
    const stored = chunks(700, 41, 2 * KiB);
    await put(c, stored);
    const absent = chunks(500, 41, 100).map((x) => x.id);
    const ask = shuffle([...stored.map((x) => x.id), ...absent]);
    const want = ask.filter((id) => absent.includes(id));
    t.deepEqual(await c.cs.missing(c.space.orgId, c.space.spaceId, [...ask, ...ask.slice(0, 30)]), want);
    t.deepEqual(await c.cs.missing(c.space.orgId, c.space.spaceId, []), []);
    await t.throwsAsync(c.cs.missing(c.space.orgId, c.space.spaceId, ['ABC']), { instanceOf: InvalidChunkError });
    await t.throwsAsync(c.cs.missing('o-someone-else', c.space.spaceId, absent), { instanceOf: SpaceNotFoundError });
  });

  test(`${name}: getBatch reads packed chunks with few ranged GETs grouped per pack`, async (t) => {
    const c = await ctx({ packTargetBytes: 2 * MiB });
    const small = chunks(1000, 2.5 * KiB, 3.5 * KiB); // ~3 MiB: two packs
    const res = await put(c, small);
    t.is(res.packs, 2);
    c.blobs.reset();
    sameBytes(t, await collect(await c.cs.getBatch(c.space.orgId, c.space.spaceId, shuffle(small.map((x) => x.id)))), small);
    t.true(c.blobs.counts.getRange <= 4, `${c.blobs.counts.getRange} ranged reads for 1,000 chunks`);
    t.is(c.blobs.counts.getRange, 2);
    t.is(c.blobs.counts.get, 0);

    // Every 40th chunk (~120 KiB apart): gaps below 256 KiB are read through, still one read per pack.
    c.blobs.reset();
    const sparse = small.filter((_, i) => i % 40 === 0);
    sameBytes(t, await collect(await c.cs.getBatch(c.space.orgId, c.space.spaceId, sparse.map((x) => x.id))), sparse);
    t.true(c.blobs.counts.getRange <= 4, `${c.blobs.counts.getRange} ranged reads for ${sparse.length} sparse chunks`);

    // With a small gap limit the same request is split into runs, never one read per chunk.
    const tight = new ChunkStore(c.db, c.blobs, { readGapBytes: 4 * KiB });
    c.blobs.reset();
    const runs = small.filter((_, i) => i % 100 < 10); // runs of 10 adjacent chunks
    sameBytes(t, await collect(await tight.getBatch(c.space.orgId, c.space.spaceId, runs.map((x) => x.id))), runs);
    // (10 runs; one more if a run straddles the two packs)
    t.true(c.blobs.counts.getRange >= 10 && c.blobs.counts.getRange <= 11, `${c.blobs.counts.getRange} reads: one per run of adjacent chunks`);
  });

  test(`${name}: getBatch order is grouped per read, in order of first request`, async (t) => {
    const c = await ctx({ packTargetBytes: 64 * KiB });
    const first = chunks(20, 2 * KiB, 3 * KiB); // ~50 KiB: one pack
    const second = chunks(20, 2 * KiB, 3 * KiB);
    const big = chunk(1.1 * MiB);
    await put(c, first);
    await put(c, [big]);
    await put(c, second);
    // In upload order: answered in that order.
    const inOrder = [...first, big, ...second].map((x) => x.id);
    t.deepEqual((await collect(await c.cs.getBatch(c.space.orgId, c.space.spaceId, inOrder))).map((x) => x.id), inOrder);
    // Mixed: the pack of the first requested id comes first, its chunks by offset; repeats are served once.
    const ask = [second[5]!.id, first[3]!.id, big.id, second[0]!.id, first[0]!.id, second[5]!.id];
    const got = (await collect(await c.cs.getBatch(c.space.orgId, c.space.spaceId, ask))).map((x) => x.id);
    t.deepEqual(got, [second[0]!.id, second[5]!.id, first[0]!.id, first[3]!.id, big.id]);
  });

  test(`${name}: unknown ids fail before anything is read, listing every unknown id`, async (t) => {
    const c = await ctx();
    const stored = chunks(30, 41, 1000);
    await put(c, stored);
    const unknown = chunks(4, 41, 100).map((x) => x.id);
    c.blobs.reset();
    const err = await t.throwsAsync(c.cs.getBatch(c.space.orgId, c.space.spaceId, [stored[0]!.id, unknown[0]!, stored[1]!.id, ...unknown.slice(1)]), { instanceOf: ChunkNotFoundError });
    t.deepEqual(err?.ids, unknown);
    t.is(err?.httpStatus, 404);
    t.is(c.blobs.reads, 0);
    await t.throwsAsync(c.cs.getOne(c.space.orgId, c.space.spaceId, unknown[0]!), { instanceOf: ChunkNotFoundError });
    await t.throwsAsync(c.cs.getBatch(c.space.orgId, c.space.spaceId, ['0'.repeat(64)]), { instanceOf: InvalidChunkError });
    await t.throwsAsync(c.cs.getBatch(c.space.orgId, c.space.spaceId, [stored[0]!.id.toUpperCase()]), { instanceOf: InvalidChunkError });
    t.is(c.blobs.reads, 0);
  });

  test(`${name}: a bad body (truncated, lying length, oversize, bad id, limits) fails typed and writes nothing`, async (t) => {
    // Small packs, so that several packs and large chunks are already written when the bad frame arrives.
    const c = await ctx({ packTargetBytes: 256 * KiB });
    const kept = chunks(10, 41, 4 * KiB);
    await put(c, kept);
    const rowsBefore = await countRows(c.db, c.space.spaceId);
    const objectsBefore = await listObjects(c.org);
    // 600 small chunks (the first 500 are checked and packed before the tail arrives) and 3 large ones.
    const good = () => encodeFrames([...chunks(600, 1 * KiB, 4 * KiB), ...chunks(3, 1.1 * MiB, 1.2 * MiB)]);
    const bad = chunk(3000);
    const badFrame = encodeFrames([bad]);
    const cases: { name: string; tail: Uint8Array; type: new (...args: never[]) => Error; limits?: (good: Uint8Array) => object }[] = [
      { name: 'header cut', tail: badFrame.subarray(0, 20), type: FrameTruncatedError },
      { name: 'ciphertext cut', tail: badFrame.subarray(0, 1000), type: FrameTruncatedError },
      { name: 'length says more than follows', tail: Buffer.concat([frameHeader(bad.id, 5000), bad.ciphertext]), type: FrameTruncatedError },
      { name: 'length over the maximum', tail: Buffer.concat([frameHeader(bad.id, 0xfffffff0), bad.ciphertext]), type: FrameLengthError },
      { name: 'oversize frame', tail: encodeFrames([chunk(CHUNK_CIPHERTEXT_MAX + 1)]), type: FrameLengthError },
      { name: 'length below the minimum', tail: encodeFrames([chunk(40)]), type: FrameLengthError },
      { name: 'zero id', tail: Buffer.concat([new Uint8Array(32), badFrame.subarray(32)]), type: FrameBadIdError },
      { name: 'too many frames', tail: badFrame, type: FrameLimitError, limits: () => ({ maxCount: 603 }) },
      { name: 'body too large', tail: badFrame, type: FrameLimitError, limits: (g) => ({ maxTotalBytes: g.length + 100 }) },
    ];
    for (const k of cases) {
      const head = good();
      const limits = k.limits?.(head) ?? {};
      const body = Buffer.concat([head, k.tail]);
      const err = await t.throwsAsync(c.cs.putBatch(c.space.orgId, c.space.spaceId, parseFrames(pieces(body), limits), limits), { instanceOf: k.type }, k.name);
      t.true(err instanceof FrameError, k.name);
      t.deepEqual(await countRows(c.db, c.space.spaceId), rowsBefore, `${k.name}: rows unchanged`);
      t.deepEqual(await listObjects(c.org), objectsBefore, `${k.name}: objects unchanged`);
    }
    t.true(c.blobs.counts.put > 0, 'objects were written before the failure (and removed)');
    // The store enforces the limits itself too (frames from anywhere else).
    const direct: { items: ChunkFrame[]; limits: object; type: new (...args: never[]) => Error }[] = [
      { items: [...chunks(5, 100, 200), { id: 'nothex', ciphertext: randomBytes(100) }], limits: {}, type: InvalidChunkError },
      { items: chunks(5, 100, 200), limits: { maxCount: 4 }, type: ChunkLimitError },
      { items: chunks(5, 1000, 1000), limits: { maxTotalBytes: 4000 }, type: ChunkLimitError },
      { items: [chunk(CHUNK_CIPHERTEXT_MAX + 1)], limits: {}, type: ChunkLimitError },
      { items: [chunk(40)], limits: {}, type: InvalidChunkError },
    ];
    for (const d of direct) await t.throwsAsync(c.cs.putBatch(c.space.orgId, c.space.spaceId, d.items, d.limits), { instanceOf: d.type });
    t.deepEqual(await countRows(c.db, c.space.spaceId), rowsBefore);
    t.deepEqual(await listObjects(c.org), objectsBefore);
    sameBytes(t, await collect(await c.cs.getBatch(c.space.orgId, c.space.spaceId, kept.map((x) => x.id))), kept);
  });

  test(`${name}: compaction rewrites packs that are more than half dead and keeps live chunks byte-identical`, async (t) => {
    const c = await ctx({ packTargetBytes: 1 * MiB });
    const batches = [chunks(250, 3 * KiB, 5 * KiB), chunks(250, 3 * KiB, 5 * KiB), chunks(250, 3 * KiB, 5 * KiB), chunks(250, 3 * KiB, 5 * KiB)];
    for (const b of batches) await put(c, b); // each ~1 MiB: one or two packs per batch
    const large = chunks(4, 1.1 * MiB, 1.3 * MiB);
    await put(c, large);
    const all = [...batches.flat(), ...large];
    const objectBytes = async () => [...(await listObjects(c.org)).values()].reduce((s, n) => s + n, 0);
    const bytesBefore = await objectBytes();
    // Kill 80% of the first two batches, 10% of the third, none of the fourth, and two large chunks.
    const dead = new Set<string>([
      ...batches[0]!.filter((_, i) => i % 5 !== 0).map((x) => x.id),
      ...batches[1]!.filter((_, i) => i % 5 !== 0).map((x) => x.id),
      ...batches[2]!.filter((_, i) => i % 10 === 0).map((x) => x.id),
      large[0]!.id,
      large[1]!.id,
    ]);
    const marked = await c.cs.markDead(c.space.orgId, c.space.spaceId, [...dead, 'f'.repeat(64)]);
    t.is(marked.changed, dead.size);
    t.deepEqual(marked.missing, ['f'.repeat(64)]);
    t.is((await c.cs.markDead(c.space.orgId, c.space.spaceId, [...dead])).changed, 0, 'idempotent');
    t.deepEqual(await checkIndex(c.db, c.org, c.space.spaceId, { orphans: true }), [], 'dead_bytes follow markDead');
    // A dead chunk referenced again is live again and survives.
    const revived = batches[0]![1]!;
    t.deepEqual(await c.cs.markLive(c.space.orgId, c.space.spaceId, [revived.id, batches[3]![0]!.id]), { changed: 1, missing: [] });
    dead.delete(revived.id);

    const res = await c.cs.compact(c.space.orgId, c.space.spaceId);
    t.true(res.packsRewritten >= 2, `rewrote ${res.packsRewritten} packs`);
    t.is(res.packsWritten, 1, 'the live rest of the sparse packs shares one new pack');
    t.is(res.standaloneDeleted, 2);
    t.is(res.conflicts, 0);
    t.is(res.deadChunksRemoved, dead.size - batches[2]!.filter((_, i) => i % 10 === 0).length);
    const bytesAfter = await objectBytes();
    t.is(bytesBefore - bytesAfter, res.bytesFreed);
    t.true(res.bytesFreed > 3 * MiB, `freed ${res.bytesFreed} bytes`);
    t.deepEqual(await checkIndex(c.db, c.org, c.space.spaceId, { orphans: true }), []);

    const live = all.filter((x) => !dead.has(x.id));
    sameBytes(t, await collect(await c.cs.getBatch(c.space.orgId, c.space.spaceId, live.map((x) => x.id))), live);
    const removed = [...dead].filter((id) => !batches[2]!.some((x) => x.id === id));
    // Sorted: ava compares Sets in insertion order, and `missing` promises no order.
    t.deepEqual((await c.cs.missing(c.space.orgId, c.space.spaceId, [...dead])).sort(), [...removed].sort(), 'dead chunks of rewritten packs are gone');
    await t.throwsAsync(c.cs.getBatch(c.space.orgId, c.space.spaceId, [removed[0]!]), { instanceOf: ChunkNotFoundError });
    // Nothing left to do.
    t.like(await c.cs.compact(c.space.orgId), { packsRewritten: 0, standaloneDeleted: 0, bytesFreed: 0 });
  });

  test(`${name}: sweepOrphans removes unreferenced pack and chunk objects and retired packs, nothing else`, async (t) => {
    const c = await ctx({ packTargetBytes: 256 * KiB });
    const all = [...chunks(200, 1 * KiB, 3 * KiB), ...chunks(2, 1.1 * MiB, 1.2 * MiB)];
    await put(c, all);
    const sid = c.space.spaceId;
    const live = await listObjects(c.org);
    // Garbage a crash could leave: a pack never committed, a standalone chunk never committed, a standalone copy
    // of a chunk whose row points into a pack, and a retired pack (compaction stopped after its switch).
    await c.org.put(packKey(sid, 'uncommitted-pack-0000'), randomBytes(5000));
    await c.org.put(chunkKey(sid, chunk(10).id), randomBytes(3000));
    await c.org.put(chunkKey(sid, all[0]!.id), all[0]!.ciphertext);
    await c.db('packs').insert({ id: 'retired-pack-00000000', space_id: sid, size: 7000, dead_bytes: 7000, state: 'retired', created_at: Date.now() });
    await c.org.put(packKey(sid, 'retired-pack-00000000'), randomBytes(7000));
    await c.org.put(`spaces/${sid}/other/thing`, randomBytes(10)); // not ours: left alone

    // Young objects are left alone by default (another node may be uploading them); retired packs are not.
    t.deepEqual(await c.cs.sweepOrphans({ orgId: c.space.orgId }), { orphanPacks: 0, orphanChunks: 0, retiredPacks: 1, bytesFreed: 7000 });
    const swept = await c.cs.sweepOrphans({ orgId: c.space.orgId, spaceId: sid, graceMs: 0 });
    t.deepEqual(swept, { orphanPacks: 1, orphanChunks: 2, retiredPacks: 0, bytesFreed: 5000 + 3000 + all[0]!.ciphertext.length });
    const after = await listObjects(c.org);
    t.deepEqual([...after.keys()].sort(), [...live.keys(), `spaces/${sid}/other/thing`].sort());
    t.deepEqual(await checkIndex(c.db, c.org, sid, { orphans: true }), [`object spaces/${sid}/other/thing: not referenced by any row`]);
    sameBytes(t, await collect(await c.cs.getBatch(c.space.orgId, sid, all.map((x) => x.id))), all);
    t.deepEqual(await c.cs.sweepOrphans({ graceMs: 0, spaceId: sid }), { orphanPacks: 0, orphanChunks: 0, retiredPacks: 0, bytesFreed: 0 });
  });

  test(`${name}: single-chunk PUT and GET stream; a short stream stores nothing`, async (t) => {
    const c = await ctx();
    const big = chunk(CHUNK_CIPHERTEXT_MAX);
    const stream = Readable.from((function* () {
      for (let at = 0; at < big.ciphertext.length; at += 64 * KiB) yield big.ciphertext.subarray(at, at + 64 * KiB);
    })());
    t.deepEqual(await c.cs.putOne(c.space.orgId, c.space.spaceId, big.id, stream, big.ciphertext.length), { stored: true });
    const r = await c.cs.getOne(c.space.orgId, c.space.spaceId, big.id);
    t.is(r.size, big.ciphertext.length);
    t.true((await readAll(r.stream)).equals(big.ciphertext));
    const short = chunk(200 * KiB);
    await t.throwsAsync(c.cs.putOne(c.space.orgId, c.space.spaceId, short.id, Readable.from([short.ciphertext.subarray(0, 1000)]), short.ciphertext.length), { instanceOf: BlobSizeMismatchError });
    await t.throwsAsync(c.cs.putOne(c.space.orgId, c.space.spaceId, short.id, Readable.from([]), CHUNK_CIPHERTEXT_MAX + 1), { instanceOf: ChunkLimitError });
    await t.throwsAsync(c.cs.putOne(c.space.orgId, c.space.spaceId, 'xyz', Readable.from([]), 100), { instanceOf: InvalidChunkError });
    t.deepEqual(await countRows(c.db, c.space.spaceId), { chunks: 1, packs: 0 });
    t.is((await listObjects(c.org)).size, 1);
    t.deepEqual(await c.cs.missing(c.space.orgId, c.space.spaceId, [big.id, short.id]), [short.id]);
  });

  test(`${name}: concurrent batches with overlapping chunks store each chunk once`, async (t) => {
    const c = await ctx({ packTargetBytes: 512 * KiB });
    const shared = [...chunks(300, 1 * KiB, 3 * KiB), ...chunks(3, 1.1 * MiB, 1.2 * MiB)];
    const own = [chunks(100, 1 * KiB, 3 * KiB), chunks(100, 1 * KiB, 3 * KiB), chunks(100, 1 * KiB, 3 * KiB)];
    const results = await Promise.all(own.map((o) => put(c, shuffle([...shared, ...o]))));
    t.is(results.reduce((s, r) => s + r.stored, 0), 300 + 3 + 300);
    t.is(results.reduce((s, r) => s + r.duplicate, 0), 2 * 303);
    t.deepEqual(await checkIndex(c.db, c.org, c.space.spaceId, { orphans: true }), []);
    const all = [...shared, ...own.flat()];
    sameBytes(t, await collect(await c.cs.getBatch(c.space.orgId, c.space.spaceId, all.map((x) => x.id))), all);
    // The copies that lost are dead bytes, freed by compaction once their pack is mostly dead.
    await c.cs.compact(c.space.orgId, c.space.spaceId);
    t.deepEqual(await checkIndex(c.db, c.org, c.space.spaceId, { orphans: true }), []);
    sameBytes(t, await collect(await c.cs.getBatch(c.space.orgId, c.space.spaceId, all.map((x) => x.id))), all);
  });
}

suite('fs', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kluis-chunkstore-'));
  const db = await openDatabase({ dataDir: path.join(dir, 'db') });
  const store = await openFsBlobStore({ root: path.join(dir, 'blobs') });
  return {
    db,
    store,
    async cleanup() {
      await db.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

suite('minio', async () => {
  let s3: LocalS3 | undefined;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kluis-chunkstore-s3-'));
  const db = await openDatabase({ dataDir: dir });
  try {
    s3 = await startLocalS3();
  } catch (err) {
    await db.destroy();
    throw err;
  }
  const store = new MinioBlobStore({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey });
  return {
    db,
    store,
    async cleanup() {
      await store.close();
      await db.destroy();
      await s3?.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

// ------------------------------------------------------------------------------------------ frames (pure)

test('frames: encode, stream and parse round trip over arbitrary splits', async (t) => {
  const items = [...chunks(200, 41, 9 * KiB), ...chunks(3, 300 * KiB, 2 * MiB)];
  const body = encodeFrames(items);
  t.is(body.length, items.reduce((s, x) => s + 36 + x.ciphertext.length, 0));
  const streamed = Buffer.concat(await (async () => {
    const out: Uint8Array[] = [];
    for await (const p of frameStream(items, { blockBytes: 64 * KiB })) out.push(p);
    return out;
  })());
  t.true(streamed.equals(body));
  for (const max of [1, 7, 36, 37, 4096, 1 * MiB]) {
    const parsed: ChunkFrame[] = [];
    for await (const f of parseFrames(pieces(body, max))) parsed.push(f);
    t.deepEqual(parsed.map((f) => f.id), items.map((x) => x.id));
    t.true(parsed.every((f, i) => Buffer.from(f.ciphertext).equals(items[i]!.ciphertext)), `splits up to ${max}`);
  }
  t.deepEqual(decodeFrames(new Uint8Array(0)), []);
  t.throws(() => encodeFrames([{ id: 'A'.repeat(64), ciphertext: new Uint8Array(50) }]), { instanceOf: FrameBadIdError });
  t.throws(() => frameHeader('0'.repeat(64), 50), { instanceOf: FrameBadIdError });
});

test('frames: typed errors for truncation, lengths, ids and limits, raised as early as possible', (t) => {
  const a = chunk(100);
  const body = encodeFrames([a, chunk(200)]);
  const trunc = t.throws(() => decodeFrames(body.subarray(0, body.length - 1)), { instanceOf: FrameTruncatedError });
  t.is(trunc?.missing, 1);
  t.is(trunc?.httpStatus, 400);
  t.throws(() => decodeFrames(body.subarray(0, 136 + 10)), { instanceOf: FrameTruncatedError });
  // A lying length that the limit catches: refused on the header, before the bytes are awaited.
  const parser = new FrameParser();
  const huge = t.throws(() => parser.push(frameHeader(a.id, 0xffffffff)), { instanceOf: FrameLengthError });
  t.is(huge?.httpStatus, 413);
  t.is(huge?.reason, 'frame_too_large');
  t.throws(() => parser.push(new Uint8Array(1)), { instanceOf: FrameLengthError }, 'a failed parser stays failed');
  t.throws(() => decodeFrames(encodeFrames([chunk(DEFAULT_FRAME_LIMITS.maxFrameBytes + 1)])), { instanceOf: FrameLengthError });
  t.like(t.throws(() => decodeFrames(encodeFrames([chunk(40)])), { instanceOf: FrameLengthError }), { reason: 'frame_too_small', httpStatus: 400 });
  t.notThrows(() => decodeFrames(encodeFrames([chunk(10)]), { minFrameBytes: 0 }));
  const zero = Buffer.concat([new Uint8Array(32), body.subarray(32)]);
  t.like(t.throws(() => decodeFrames(zero), { instanceOf: FrameBadIdError }), { offset: 0 });
  const secondZero = Buffer.from(body);
  secondZero.fill(0, 136, 168);
  t.like(t.throws(() => decodeFrames(secondZero), { instanceOf: FrameBadIdError }), { offset: 136 });
  t.like(t.throws(() => decodeFrames(body, { maxCount: 1 }), { instanceOf: FrameLimitError }), { reason: 'too_many_frames', httpStatus: 413 });
  t.like(t.throws(() => decodeFrames(body, { maxTotalBytes: body.length - 1 }), { instanceOf: FrameLimitError }), { reason: 'batch_too_large' });
  // The total limit fails on the header whose frame would cross it, before its ciphertext arrives.
  const p2 = new FrameParser({ maxTotalBytes: 136 + 100 });
  p2.push(body.subarray(0, 136));
  t.throws(() => p2.push(body.subarray(136, 172)), { instanceOf: FrameLimitError });
  t.throws(() => decodeFrames(body.subarray(0, 20)), { instanceOf: FrameTruncatedError });
});

test('KLUIS_PACK_THRESHOLD: bytes, absent by default (the store packs every chunk of a batch), a bad value refused', async (t) => {
  const { loadConfig } = await import('../../server/dist/config.js');
  const base = { KLUIS_DATA_DIR: '/tmp/kluis-config-only' };
  t.is(loadConfig(base).packThresholdBytes, undefined);
  t.is(loadConfig({ ...base, KLUIS_PACK_THRESHOLD: '524288' }).packThresholdBytes, 524288);
  for (const bad of ['0', '-1', 'many', '1.5', String(65 * 1024 * 1024)]) {
    t.throws(() => loadConfig({ ...base, KLUIS_PACK_THRESHOLD: bad }), { name: 'ConfigError', message: /^KLUIS_PACK_THRESHOLD: / }, bad);
  }
});
