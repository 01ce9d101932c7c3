// How far V8 lets the heap grow between full collections, in the processes that run the sync engine: set by the
// engine when a pass has work to do (./act.ts; the CLI's process, and a desktop engine thread) and by the desktop app's
// main process at start (../electron/main/index.ts; its engine worker threads share its V8 flags). Issue 22, measured
// in docs/architecture.md §4 ("Where the memory of a sync goes").
//
// A pass makes garbage in proportion to its files (sealed manifests, commit bodies, index writes, answers parsed),
// and most of it lives long enough to reach the old generation. After each full collection V8 sets the next limit
// at the live size times a factor that, on a machine whose default heap limit is above 2 GB, may be up to 4: with
// 50-60 MB live, the heap of a first sync of 10,000 small files grew to 150-180 MB of mostly garbage before the next
// collection. A factor of 1.6 (`--heap-growing-percent=60`, read by V8 at every full collection, so it applies when
// set at run time) took that sync's peak RSS from about 290-340 MB to about 210 MB for a little more collection time
// (an unchanged re-run of the same folder took about 0.07 s more CPU with it, hence only once a pass has work); the
// live heap, and so any folder size the default heap limit allows, is unchanged (this is no heap cap).
//
// The young generation (W1). V8 doubles its young generation (two semi-spaces, from 1 MB up to 16 MB each) when much of
// it survives a scavenge. In the CLI's process, start-up (the bundle's modules, zod's schemas) and then a pass over a
// large file, whose scavenges are set off by chunk buffers rather than by JavaScript garbage, took it to its 34 MB
// maximum for nothing: W1's peak RSS was about 160 MB, about 133 MB with the young generation held at its first size,
// for the same CPU. A pass over many files makes young garbage in proportion to them, and there the larger young
// generation saves scavenges (W2 held: 35-45 MB less, 8-20 % more client CPU), so such a pass lets it grow. Only the
// CLI holds it (../cli/young-start.ts); the desktop app's long-lived process keeps V8's default.
// V8 puts the growth factor back to its default whenever it sets up an isolate's heap (it keeps it at 2 or more), so
// each worker thread's start undoes the hold: the engine's workers are started by `startWorker`, which holds it again
// once the worker runs.
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';

/** The heap may grow to the live size times 1 + this / 100 before the next full collection. */
export const HEAP_GROWING_PERCENT = 60;

/** Sets V8's heap growing factor for this process (and its worker threads). */
export function limitHeapGrowth(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

/** A pass acting on more files than this lets the young generation grow (above). */
export const YOUNG_HOLD_MAX_FILES = 1000;

let youngHeld = false;

/** Keeps V8's young generation at its first size (semi-space growth factor 1) until a busy pass releases it. */
export function holdYoungGeneration(): void {
  youngHeld = true;
  setFlagsFromString('--semi-space-growth-factor=1');
}

/** A pass acting on `files` files: past YOUNG_HOLD_MAX_FILES the young generation may grow again (V8's default). */
export function youngGenerationFor(files: number): void {
  if (!youngHeld || files <= YOUNG_HOLD_MAX_FILES) return;
  youngHeld = false;
  setFlagsFromString('--semi-space-growth-factor=2');
}

/**
 * Starts one of the sync engine's worker threads (worker-urls.ts). V8 resets the growth factor when it sets up the
 * worker's heap, so a hold is applied again once the worker runs.
 */
export function startWorker(url: URL, workerData: unknown): Worker {
  const w = new Worker(url, { workerData });
  w.on('online', () => {
    if (youngHeld) setFlagsFromString('--semi-space-growth-factor=1');
  });
  return w;
}
