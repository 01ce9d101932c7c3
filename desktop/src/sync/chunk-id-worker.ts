// Worker thread of confirm-ahead.ts: the keyed chunk ids (docs/crypto.md §5) of a file's bytes at the places where
// the replaced version's chunks were, from the LAST chunk backwards, until it meets the main thread coming forwards
// (the shared progress counter). It reads the file itself (the page cache has it: the scan has just hashed it), so
// nothing is copied between the threads but the ids.
import { closeSync, openSync, readSync, constants as fsConstants } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { CHUNK_MAX, chunkId, initCrypto, prepareChunkIds, type FileSubkeys } from '@kluis/shared/hashing';

export interface ChunkIdJob {
  absPath: string;
  keys: FileSubkeys;
  /** [offset, length] of each chunk of the replaced version, in order */
  ranges: [number, number][];
  /** Int32Array over it: [0] = the index of the chunk the main thread is at (it never needs ids below) */
  progress: SharedArrayBuffer;
}

/** Ids are posted in groups of this many chunks (one message per ~8 MiB of 512 KiB chunks). */
const GROUP = 16;

export interface ChunkIdResult {
  /** ids[j] is the id of the bytes at ranges[from - j] (null: the file ended before that range) */
  from: number;
  ids: (string | null)[];
}

async function run(job: ChunkIdJob): Promise<void> {
  await initCrypto({ wasm: 'lazy' });
  await prepareChunkIds(job.keys); // a large file's ids (fast-blake2b.ts)
  const progress = new Int32Array(job.progress);
  const buf = new Uint8Array(CHUNK_MAX);
  const fd = openSync(job.absPath, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0));
  try {
    let group: (string | null)[] = [];
    let from = job.ranges.length - 1;
    for (let i = job.ranges.length - 1; i >= 0; i--) {
      if (Atomics.load(progress, 0) >= i) break;
      const [offset, length] = job.ranges[i]!;
      let id: string | null = null;
      if (length <= buf.length) {
        let filled = 0;
        while (filled < length) {
          const n = readSync(fd, buf, filled, length - filled, offset + filled);
          if (n === 0) break;
          filled += n;
        }
        if (filled === length) id = chunkId(job.keys, buf.subarray(0, length));
      }
      group.push(id);
      if (group.length === GROUP) {
        parentPort!.postMessage({ from, ids: group } satisfies ChunkIdResult);
        group = [];
        from = i - 1;
      }
    }
    if (group.length > 0) parentPort!.postMessage({ from, ids: group } satisfies ChunkIdResult);
  } finally {
    closeSync(fd);
  }
}

if (parentPort && workerData) {
  await run(workerData as ChunkIdJob);
}
