// Confirming a new version's unchanged chunks on both cores (issue 22, W3). A large file edited in place keeps most of
// its old chunks at their old offsets; the guided chunker (chunk-guide.ts) confirms each with its keyed id, one pass
// of BLAKE2b over the whole file on the main thread, after the scan's own pass for the whole-file hash. Here a worker
// thread (chunk-id-worker.ts) computes the ids of the bytes at the old chunks' places from the LAST chunk backwards
// while the main thread goes forwards; where the worker has been, the main thread takes its id instead of hashing.
// They meet about halfway: the pass takes about half the time, for the same CPU.
//
// The worker reads the same file by itself; both reads happen between the upload's two checks of the file's facts
// (read-encrypt.ts: inode, size and mtime when opened and after the last byte), so a file changed meanwhile is
// caught as before and taken again by the next pass.
import type { Worker } from 'node:worker_threads';
import type { FileSubkeys } from '@kluis/shared';
import type { ChunkIdJob, ChunkIdResult } from './chunk-id-worker.js';
import { CHUNK_ID_WORKER_URL } from './worker-urls.js';
import { startWorker } from './heap-growth.js';

/** Files below this size are confirmed by the main thread alone: a worker costs ~50 ms and ~15 MB to start. */
export const CONFIRM_AHEAD_MIN = 64 * 1024 * 1024;

export class ConfirmAhead {
  private readonly ids = new Map<number, string | null>();
  private readonly progress = new Int32Array(new SharedArrayBuffer(4));
  private worker: Worker | null;
  /** ids taken from the worker (tests, benchmarks) */
  taken = 0;

  constructor(absPath: string, keys: FileSubkeys, previous: readonly (readonly [string, number])[]) {
    const ranges: [number, number][] = [];
    let at = 0;
    for (const [, length] of previous) {
      ranges.push([at, length]);
      at += length;
    }
    Atomics.store(this.progress, 0, -1);
    const job: ChunkIdJob = { absPath, keys: { chunkKey: new Uint8Array(32), chunkIdKey: keys.chunkIdKey, manifestKey: new Uint8Array(32) }, ranges, progress: this.progress.buffer as SharedArrayBuffer };
    this.worker = startWorker(CHUNK_ID_WORKER_URL, job);
    this.worker.unref();
    let started: (ok: boolean) => void = () => {};
    this.started = new Promise((resolve) => (started = resolve));
    this.worker.on('message', (r: ChunkIdResult) => {
      r.ids.forEach((id, j) => this.ids.set(r.from - j, id));
      started(true);
    });
    // A worker that fails (cannot open the file, no memory) only means the main thread hashes everything itself.
    this.worker.on('error', () => void this.close());
    this.worker.on('exit', () => started(false));
  }

  /** Resolves once the worker has sent its first ids (true), or ended without any (false). */
  readonly started: Promise<boolean>;

  /**
   * The id of the bytes at old chunk `i`'s place, if the worker has it by now; undefined otherwise. Also tells the
   * worker that the main thread has reached `i` (it stops there).
   */
  idAt(i: number): string | null | undefined {
    if (Atomics.load(this.progress, 0) < i) Atomics.store(this.progress, 0, i);
    const id = this.ids.get(i);
    if (id !== undefined) this.taken++;
    return id;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    Atomics.store(this.progress, 0, 0x7fffffff);
    if (w) await w.terminate();
  }
}
