// Child process of test/integration/chunkstore-crash.test.ts: opens the database and the filesystem blob store
// in DIR and runs a deterministic upload or compaction with the real ChunkStore, printing a line per progress
// point (`EV <event> <n>`), so that the parent can SIGKILL it at chosen or random moments.
//
//   node --import=tsx test/helpers/chunkstore-child.ts '<json ChildArgs>'
//
// With `pauseAt`, the child stops (forever) right after the n-th occurrence of that event and prints `PAUSED`:
// the parent's SIGKILL then lands exactly there. Content is a pure function of the chunk index (crashChunk), so
// the parent can check every byte that survived.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { frameStream, parseFrames } from '../../shared/dist/api/frames.js';
import { openFsBlobStore } from '../../server/dist/blobstore/fs.js';
import { openDatabase } from '../../server/dist/db/db.js';
import { ChunkStore, type ChunkStoreEvent, type ChunkStoreOptions } from '../../server/dist/storage/chunks.js';
import { detBytes } from './det-bytes.js';

export interface ChildArgs {
  dir: string;
  orgId: string;
  spaceId: string;
  mode: 'upload' | 'compact';
  pauseAt?: { event: ChunkStoreEvent; n: number };
}

export const CRASH_CHUNKS = 2400;
export const CRASH_BATCH = 400;
/** Small packs and a low threshold, so that one run has many packs and many standalone chunks. */
export const CRASH_STORE_OPTIONS: ChunkStoreOptions = { packTargetBytes: 256 * 1024, packThresholdBytes: 128 * 1024, standaloneWritesInFlight: 4 };

/** Length of chunk i: mostly 41 B .. 6 KiB (packed), every 25th 150..450 KiB (standalone). */
export function crashLength(i: number): number {
  const h = Math.imul(i + 1, 0x9e3779b1) >>> 0;
  return i % 25 === 7 ? 150 * 1024 + (h % (300 * 1024)) : 41 + (h % (6 * 1024));
}

export function crashId(i: number): string {
  return createHash('sha256').update(`kluis-crash-${i}`).digest('hex');
}

export function crashChunk(i: number): { id: string; ciphertext: Uint8Array } {
  return { id: crashId(i), ciphertext: detBytes(0x5eed0000 + i, crashLength(i)) };
}

/** Which chunks the compaction run marks dead: 3 of 4 in the first three batches, 1 of 10 in the others. */
export function crashDead(i: number): boolean {
  return Math.floor(i / CRASH_BATCH) < 3 ? i % 4 !== 0 : i % 10 === 0;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ChildArgs;
  const counts = new Map<string, number>();
  const onEvent = async (event: ChunkStoreEvent): Promise<void> => {
    const n = (counts.get(event) ?? 0) + 1;
    counts.set(event, n);
    process.stdout.write(`EV ${event} ${n}\n`);
    if (args.pauseAt && args.pauseAt.event === event && args.pauseAt.n === n) {
      process.stdout.write('PAUSED\n');
      setInterval(() => {}, 1 << 30); // keep the process alive until the parent kills it
      await new Promise(() => {});
    }
  };
  const db = await openDatabase({ dataDir: path.join(args.dir, 'db') });
  const blobs = await openFsBlobStore({ root: path.join(args.dir, 'blobs') });
  const store = new ChunkStore(db, blobs, { ...CRASH_STORE_OPTIONS, onEvent });
  process.stdout.write('READY\n');
  if (args.mode === 'upload') {
    for (let b = 0; b * CRASH_BATCH < CRASH_CHUNKS; b++) {
      const items = function* () {
        for (let i = b * CRASH_BATCH; i < Math.min(CRASH_CHUNKS, (b + 1) * CRASH_BATCH); i++) yield crashChunk(i);
      };
      // Through the wire format, as the upload route will do it.
      const res = await store.putBatch(args.orgId, args.spaceId, parseFrames(frameStream(items())));
      process.stdout.write(`BATCH ${b} ${res.stored} ${res.duplicate}\n`);
    }
  } else {
    const dead: string[] = [];
    for (let i = 0; i < CRASH_CHUNKS; i++) if (crashDead(i)) dead.push(crashId(i));
    await store.markDead(args.orgId, args.spaceId, dead);
    const res = await store.compact(args.orgId, args.spaceId);
    process.stdout.write(`COMPACTED ${JSON.stringify(res)}\n`);
  }
  await db.destroy();
  await blobs.close();
  process.stdout.write('DONE\n');
}

// Run only as a script (the parent imports the helpers above).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`child failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
