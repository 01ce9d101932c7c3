// Chunk storage benchmark (docs/architecture.md §3.1, §9): the packed ChunkStore against the raw `minio` client on the same local
// S3 in one run. Starts its own Ceph RGW (test/helpers/s3.ts: scripts/s3/start-local-s3.sh, warmed up) and stops it.
//   (a) 10,000 chunks of 4 KiB: raw putObject of 10,000 objects (16 in flight) vs ChunkStore.putBatch in batches of
//       1,000 (through the frame parser, as the upload route does); raw getObject (16 in flight) vs getBatch.
//   (b) 1 GiB as 2 MiB chunks: raw put of 2 MiB objects (16 in flight), raw put of ONE multipart object, vs
//       ChunkStore.putBatch; reads raw vs getBatch.
//   (c) the pack threshold: putBatch + getBatch of one size at a time, everything packed vs everything standalone,
//       for 4 KiB .. 2 MiB; the threshold is the smallest size from which (for it and every larger size) writing
//       plus reading a byte standalone costs at most 10% more time than packed (standalone chunks are then
//       preferred: a dead one is deleted, not copied by compaction). Single figures vary by ±30% between runs on
//       a shared 2-core machine, hence the medians of --reps runs and the combined write+read criterion.
// Prints one table and writes bench-results/storage.json. Not a test: figures go into notes.
//   node --import=tsx scripts/bench/storage.ts [--parts a,b,c] [--mib 1024] [--small 10000]
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import type { Client } from 'minio';
import { frameStream, parseFrames } from '../../shared/dist/api/frames.js';
import { MinioBlobStore } from '../../server/dist/blobstore/minio.js';
import { openDatabase } from '../../server/dist/db/db.js';
import { ChunkStore, PACK_THRESHOLD_BYTES, type ChunkData, type ChunkStoreOptions } from '../../server/dist/storage/chunks.js';
import { createSpace } from '../../test/helpers/chunkstore-fixture.js';
import { startLocalS3 } from '../../test/helpers/s3.js';

const { values } = parseArgs({
  options: {
    parts: { type: 'string', default: 'a,b,c' },
    mib: { type: 'string', default: '1024' },
    small: { type: 'string', default: '10000' },
    // Pipeline depth overrides (defaults: the ChunkStore's own), for tuning runs.
    'pack-writes': { type: 'string' },
    'standalone-writes': { type: 'string' },
    'pack-target': { type: 'string' },
    reps: { type: 'string', default: '3' },
    sizes: { type: 'string', default: '4,64,256,512,1024,2048' },
  },
});
const PARTS = new Set(values.parts.split(','));
const KiB = 1024;
const MiB = 1024 * KiB;
const BIG_BYTES = Number(values.mib) * MiB;
const SMALL_COUNT = Number(values.small);
const INFLIGHT = 16;
const ENVELOPE = 41;

const REPS = Math.max(1, Number(values.reps));

interface Row {
  part: string;
  name: string;
  what: string;
  count: number;
  bytes: number;
  /** Median of the repetitions, and all of them. */
  seconds: number;
  runs: number[];
  perSecond: number;
  mbps: number;
  /** Against the baseline of the same part and direction. */
  ratio?: number;
}
const rows: Row[] = [];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function record(part: string, name: string, what: string, count: number, bytes: number, runs: number[], baseline?: Row): Row {
  const seconds = median(runs);
  const row: Row = { part, name, what, count, bytes, seconds, runs, perSecond: count / seconds, mbps: bytes / 1e6 / seconds };
  if (baseline) row.ratio = row.perSecond / baseline.perSecond;
  rows.push(row);
  console.error(`  ${part} ${name.padEnd(52)} ${row.perSecond.toFixed(0).padStart(7)} /s ${row.mbps.toFixed(1).padStart(7)} MB/s${row.ratio !== undefined ? `  x${row.ratio.toFixed(2)}` : ''}   [${runs.map((r) => r.toFixed(2)).join(' ')} s]`);
  return row;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Runs every step once per repetition, interleaved (rep 1: all steps, rep 2: all steps, ...), and returns the times. */
async function interleaved(steps: Record<string, () => Promise<number | void>>): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (let rep = 0; rep < REPS; rep++) {
    for (const [name, step] of Object.entries(steps)) {
      const t = await step();
      if (typeof t === 'number') (out[name] ??= []).push(t);
    }
  }
  return out;
}

async function forEachLimit<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

async function drain(stream: AsyncIterable<unknown>): Promise<number> {
  let n = 0;
  for await (const piece of stream) n += (piece as Buffer).length;
  return n;
}

/** Chunks with random ids; contents are views into one random buffer (the server never looks at them). */
function makeChunks(count: number, size: number): ChunkData[] {
  const pool = randomBytes(Math.max(size, 4 * MiB));
  return Array.from({ length: count }, (_, i) => ({ id: randomBytes(32).toString('hex'), ciphertext: pool.subarray((i * 4099) % (pool.length - size + 1), ((i * 4099) % (pool.length - size + 1)) + size) }));
}

async function emptyBucket(client: Client, bucket: string): Promise<void> {
  const names: string[] = [];
  for await (const o of client.listObjectsV2(bucket, '', true) as AsyncIterable<{ name?: string }>) if (o.name) names.push(o.name);
  for (let i = 0; i < names.length; i += 1000) await client.removeObjects(bucket, names.slice(i, i + 1000));
}

// ------------------------------------------------------------------------------------------------ setup

process.env.LOCAL_S3_MEMSTORE_BYTES ??= String(6 * 1024 * MiB);
console.error('starting local S3 (Ceph RGW, memstore)...');
const s3 = await startLocalS3();
console.error(`  up in ${(s3.startMs / 1000).toFixed(1)} s + warm-up ${(s3.warmupMs / 1000).toFixed(1)} s at ${s3.endpoint}`);
const dir = await mkdtemp(path.join(os.tmpdir(), 'kluis-bench-storage-'));
const db = await openDatabase({ dataDir: dir });
const blobStore = new MinioBlobStore({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey });
const client = blobStore.client;
const region = 'us-east-1';
const decisions: Record<string, unknown> = {};

async function freshSpace() {
  return createSpace(db);
}

/** A warmed-up space: its bucket exists (the first write to a new bucket costs more than the rest). */
const tuning: ChunkStoreOptions = {
  ...(values['pack-writes'] ? { packWritesInFlight: Number(values['pack-writes']) } : {}),
  ...(values['standalone-writes'] ? { standaloneWritesInFlight: Number(values['standalone-writes']) } : {}),
  ...(values['pack-target'] ? { packTargetBytes: Number(values['pack-target']) * MiB } : {}),
};

async function storeFor(options: ChunkStoreOptions) {
  const store = new ChunkStore(db, blobStore, { ...tuning, ...options });
  const fx = await freshSpace();
  await store.putBatch(fx.orgId, fx.spaceId, makeChunks(1, 4 * KiB));
  return { store, fx };
}

function batchesOf(items: ChunkData[], perBatch: number): ChunkData[][] {
  const out: ChunkData[][] = [];
  for (let i = 0; i < items.length; i += perBatch) out.push(items.slice(i, i + perBatch));
  return out;
}

/** Uploads `items` in batches of `perBatch`, `inflight` batch requests at a time (a syncing client pipelines). */
async function putBatches(store: ChunkStore, fx: { orgId: string; spaceId: string }, items: ChunkData[], perBatch: number, inflight = 1): Promise<void> {
  await forEachLimit(batchesOf(items, perBatch), inflight, async (slice) => {
    const total = slice.reduce((s, c) => s + 36 + c.ciphertext.length, 0);
    const limits = { maxTotalBytes: Math.max(256 * MiB, total), maxCount: Math.max(10_000, slice.length) };
    await store.putBatch(fx.orgId, fx.spaceId, parseFrames(frameStream(slice), limits), limits);
  });
}

/** Downloads `items` in batches of `perBatch`, `inflight` at a time; the frames are encoded as a route would. */
async function getBatches(store: ChunkStore, fx: { orgId: string; spaceId: string }, items: ChunkData[], perBatch: number, inflight = 1): Promise<number> {
  let bytes = 0;
  await forEachLimit(batchesOf(items, perBatch), inflight, async (slice) => {
    for await (const piece of frameStream(await store.getBatch(fx.orgId, fx.spaceId, slice.map((x) => x.id)))) bytes += piece.length;
  });
  return bytes;
}

try {
  // ---------------------------------------------------------------------------------------------- (a)
  if (PARTS.has('a')) {
    console.error(`(a) ${SMALL_COUNT} chunks of 4 KiB, ${REPS} repetitions`);
    const items = makeChunks(SMALL_COUNT, 4 * KiB);
    const bytes = items.length * 4 * KiB;
    let bucket = '';
    let target = await storeFor({});
    const t = await interleaved({
      setup: async () => {
        bucket = `raw-a-${randomBytes(4).toString('hex')}`;
        await client.makeBucket(bucket, region);
        target = await storeFor({});
      },
      rawPut: () => time(() => forEachLimit(items, INFLIGHT, async (c) => void (await client.putObject(bucket, c.id, Buffer.from(c.ciphertext), c.ciphertext.length)))),
      storePut1: () => time(() => putBatches(target.store, target.fx, items, 1000, 1)),
      rawGet: () => time(() => forEachLimit(items, INFLIGHT, async (c) => void (await drain(await client.getObject(bucket, c.id))))),
      storeGet1: () => time(() => getBatches(target.store, target.fx, items, 1000, 1)),
      storeGet2: () => time(() => getBatches(target.store, target.fx, items, 1000, 2)),
      again: async () => {
        await emptyBucket(client, blobStore.bucketFor(target.fx.orgId));
        target = await storeFor({});
      },
      storePut2: () => time(() => putBatches(target.store, target.fx, items, 1000, 2)),
      cleanup: async () => {
        await emptyBucket(client, bucket);
        await client.removeBucket(bucket);
        await emptyBucket(client, blobStore.bucketFor(target.fx.orgId));
      },
    });
    const rawPut = record('a', 'raw minio putObject, 16 in flight', `${SMALL_COUNT} objects of 4 KiB`, items.length, bytes, t.rawPut!);
    const put1 = record('a', 'ChunkStore.putBatch, 1,000 per batch, 1 at a time', 'framed body -> parser -> pack + index', items.length, bytes, t.storePut1!, rawPut);
    const put = record('a', 'ChunkStore.putBatch, 1,000 per batch, 2 in flight', 'as a pipelining client sends them', items.length, bytes, t.storePut2!, rawPut);
    const rawGet = record('a', 'raw minio getObject, 16 in flight', `${SMALL_COUNT} objects`, items.length, bytes, t.rawGet!);
    record('a', 'ChunkStore.getBatch, 1,000 per batch, 1 at a time', 'index lookup + ranged GET per pack + frames', items.length, bytes, t.storeGet1!, rawGet);
    const get = record('a', 'ChunkStore.getBatch, 1,000 per batch, 2 in flight', 'as a pipelining client asks', items.length, bytes, t.storeGet2!, rawGet);
    decisions.a = { putRatio: put.ratio, putRatioOneBatchAtATime: put1.ratio, getRatio: get.ratio, goalPut: 8, putGoalMet: (put.ratio ?? 0) >= 8 };
  }

  // ---------------------------------------------------------------------------------------------- (b)
  if (PARTS.has('b')) {
    const size = 2 * MiB + ENVELOPE;
    const count = Math.floor(BIG_BYTES / (2 * MiB));
    const bytes = count * size;
    console.error(`(b) ${(bytes / MiB).toFixed(0)} MiB as ${count} chunks of 2 MiB + 41, ${REPS} repetitions`);
    const items = makeChunks(count, size);
    const bucket = `raw-b-${randomBytes(3).toString('hex')}`;
    await client.makeBucket(bucket, region);
    let target = await storeFor({});
    const t = await interleaved({
      rawPut: () => time(() => forEachLimit(items, INFLIGHT, async (c) => void (await client.putObject(bucket, c.id, Buffer.from(c.ciphertext), c.ciphertext.length)))),
      rawGet: () => time(() => forEachLimit(items, INFLIGHT, async (c) => void (await drain(await client.getObject(bucket, c.id))))),
      cleanRaw: () => emptyBucket(client, bucket),
      multiPut: () => time(() => client.putObject(bucket, 'one', Readable.from((function* () { for (const c of items) yield Buffer.from(c.ciphertext); })()), bytes)),
      multiGet: () => time(async () => drain(await client.getObject(bucket, 'one'))),
      cleanMulti: () => emptyBucket(client, bucket),
      setupStore: async () => void (target = await storeFor({})),
      storePut: () => time(() => putBatches(target.store, target.fx, items, count)),
      storeGet: () => time(() => getBatches(target.store, target.fx, items, count)),
      cleanStore: () => emptyBucket(client, blobStore.bucketFor(target.fx.orgId)),
    });
    await client.removeBucket(bucket);
    const rawPut = record('b', 'raw minio putObject 2 MiB objects, 16 in flight', `${count} objects`, count, bytes, t.rawPut!);
    const multi = record('b', 'raw minio putObject, ONE multipart object', `1 object, 16 MiB parts`, count, bytes, t.multiPut!, rawPut);
    const put = record('b', 'ChunkStore.putBatch', `one framed batch; threshold ${PACK_THRESHOLD_BYTES / MiB} MiB`, count, bytes, t.storePut!, rawPut);
    const rawGet = record('b', 'raw minio getObject 2 MiB objects, 16 in flight', `${count} objects`, count, bytes, t.rawGet!);
    record('b', 'raw minio getObject, one object', 'one stream', count, bytes, t.multiGet!, rawGet);
    const get = record('b', 'ChunkStore.getBatch', 'one batch of ids', count, bytes, t.storeGet!, rawGet);
    decisions.b = { putVsRaw2MiB: put.ratio, putVsMultipart: put.perSecond / multi.perSecond, getVsRaw: get.ratio, goal: 0.9, goalMet: (put.ratio ?? 0) >= 0.9 && put.perSecond / multi.perSecond >= 0.9 };
  }

  // ---------------------------------------------------------------------------------------------- (c)
  if (PARTS.has('c')) {
    console.error(`(c) pack threshold: every chunk packed vs every chunk standalone, ${REPS} repetitions`);
    const sizes = values.sizes.split(',').map((k) => Number(k) * KiB);
    const table: { size: number; packedPut: number; standalonePut: number; packedGet: number; standaloneGet: number }[] = [];
    for (const size of sizes) {
      const count = size <= 4 * KiB ? 4000 : size <= 64 * KiB ? 2000 : Math.max(64, Math.round((256 * MiB) / size));
      const items = makeChunks(count, size);
      const bytes = count * size;
      const perBatch = Math.max(1, Math.min(1000, Math.floor((64 * MiB) / size)));
      const label = size >= MiB ? `${size / MiB} MiB` : `${size / KiB} KiB`;
      const targets = { packed: await storeFor({ packThresholdBytes: Number.MAX_SAFE_INTEGER }), standalone: await storeFor({ packThresholdBytes: 0 }) };
      const steps: Record<string, () => Promise<number | void>> = {};
      for (const mode of ['packed', 'standalone'] as const) {
        steps[`${mode}Setup`] = async () => void (targets[mode] = await storeFor({ packThresholdBytes: mode === 'packed' ? Number.MAX_SAFE_INTEGER : 0 }));
        steps[`${mode}Put`] = () => time(() => putBatches(targets[mode].store, targets[mode].fx, items, perBatch));
        steps[`${mode}Get`] = () => time(() => getBatches(targets[mode].store, targets[mode].fx, items, perBatch));
        steps[`${mode}Clean`] = () => emptyBucket(client, blobStore.bucketFor(targets[mode].fx.orgId));
      }
      const t = await interleaved(steps);
      const r = {
        packedPut: record('c', `${label} packed: putBatch`, `${count} chunks, ${perBatch} per batch`, count, bytes, t.packedPut!),
        standalonePut: record('c', `${label} standalone: putBatch`, `${count} chunks, ${perBatch} per batch`, count, bytes, t.standalonePut!),
        packedGet: record('c', `${label} packed: getBatch`, `${perBatch} per batch`, count, bytes, t.packedGet!),
        standaloneGet: record('c', `${label} standalone: getBatch`, `${perBatch} per batch`, count, bytes, t.standaloneGet!),
      };
      r.standalonePut.ratio = r.standalonePut.perSecond / r.packedPut.perSecond;
      r.standaloneGet.ratio = r.standaloneGet.perSecond / r.packedGet.perSecond;
      table.push({ size, packedPut: r.packedPut.mbps, standalonePut: r.standalonePut.mbps, packedGet: r.packedGet.mbps, standaloneGet: r.standaloneGet.mbps });
    }
    // A chunk is written once and read at least once: compare the time to write AND read a byte both ways.
    const cost = (put: number, get: number) => 1 / put + 1 / get;
    const ok = table.filter((r) => cost(r.standalonePut, r.standaloneGet) <= 1.1 * cost(r.packedPut, r.packedGet)).map((r) => r.size);
    // The smallest size from which every larger tested size is fine standalone too.
    let threshold = Number.MAX_SAFE_INTEGER;
    for (let i = table.length - 1; i >= 0 && ok.includes(table[i]!.size); i--) threshold = table[i]!.size;
    decisions.c = { table, suggestedThreshold: threshold === Number.MAX_SAFE_INTEGER ? 'pack everything' : threshold, configuredThreshold: PACK_THRESHOLD_BYTES };
  }
} finally {
  await blobStore.close();
  await db.destroy();
  await rm(dir, { recursive: true, force: true });
  await s3.stop();
}

const lines = [
  '| part | case | chunks/s | MB/s | x baseline | what |',
  '|---|---|---:|---:|---:|---|',
  ...rows.map((r) => `| ${r.part} | ${r.name} | ${r.perSecond.toFixed(0)} | ${r.mbps.toFixed(1)} | ${r.ratio !== undefined ? r.ratio.toFixed(2) : ''} | ${r.what} |`),
];
console.log(lines.join('\n'));
console.log(`\ndecisions: ${JSON.stringify(decisions, null, 2)}`);
mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/storage.json', JSON.stringify({
  bench: 'storage', date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model,
  s3: 'Ceph RGW (memstore OSD, beast tcp_nodelay=1) on 127.0.0.1', inflight: INFLIGHT, rows, decisions,
}, null, 2) + '\n');
console.log('wrote bench-results/storage.json');
