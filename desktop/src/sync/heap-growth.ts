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
// generation saves scavenges (W2 held: 35-45 MB less, 8-20 % more client CPU), so such a pass lets it grow, but to
// semi-spaces of 8 MB, half V8's maximum: W2's peak RSS 20-27 MB less, its CPU within the spread (a cap of 2 MB: 39 MB
// less for 9 % more CPU; docs/architecture.md §4). V8 has no run-time flag for that maximum (--max-semi-space-size is read once, when the heap is set
// up), so the growth factor goes back to 1 once the new space is that large, seen after a scavenge. Only the CLI holds
// it (../cli/young-start.ts); the desktop app's long-lived process keeps V8's default.
// V8 puts the growth factor back to its default whenever it sets up an isolate's heap (it keeps it at 2 or more), so
// each worker thread's start undoes the hold: the engine's workers are started by `startWorker`, which holds it again
// once the worker runs.
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';

/** The heap may grow to the live size times 1 + this / 100 before the next full collection. */
export const HEAP_GROWING_PERCENT = 60;

/** Sets V8's heap growing factor for this process (and its worker threads). */
export function limitHeapGrowth(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

/** A pass acting on more files than this lets the young generation grow (above). */
export const YOUNG_HOLD_MAX_FILES = 1000;

/** Released by a busy pass, the young generation grows to semi-spaces of this size at most, MB (V8's maximum: 16). */
export const YOUNG_SEMI_SPACE_MAX_MB = 8;

/**
 * held: at its first size; growing: released, up to YOUNG_SEMI_SPACE_MAX_MB; capped: grown to that size and held there;
 * free: never held (V8's default).
 */
let young: 'free' | 'held' | 'growing' | 'capped' = 'free';

/** V8's semi-space growth factor: 1 stops the young generation growing, 2 is V8's default. */
function growthFactor(f: 1 | 2): void {
  setFlagsFromString(`--semi-space-growth-factor=${f}`);
}

/** Keeps V8's young generation at its first size (semi-space growth factor 1) until a busy pass releases it. */
export function holdYoungGeneration(): void {
  young = 'held';
  growthFactor(1);
}

/** The new space: its two semi-spaces, bytes. */
function newSpaceBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

/**
 * A pass acting on `files` files: past YOUNG_HOLD_MAX_FILES the young generation may grow again, up to
 * YOUNG_SEMI_SPACE_MAX_MB: V8 grows it only at a scavenge, so after each one (a 'gc' entry) its size is looked at, and
 * at the cap the growth factor goes back to 1 for the rest of the process.
 */
export function youngGenerationFor(files: number): void {
  lastPassFiles = files;
  if (young !== 'held' || files <= YOUNG_HOLD_MAX_FILES) return;
  young = 'growing';
  growthFactor(2);
  const watch = new PerformanceObserver(() => {
    if (young !== 'growing' || newSpaceBytes() < 2 * YOUNG_SEMI_SPACE_MAX_MB * 1024 * 1024) return;
    young = 'capped';
    growthFactor(1);
    watch.disconnect();
  });
  watch.observe({ entryTypes: ['gc'] });
}

/** Files acted on by the last pass that had work (youngGenerationFor). */
let lastPassFiles = 0;

/** `kluis sync --once` collects its garbage in full after a pass that acted on more files than this (below). */
export const COLLECT_AFTER_FILES = 1000;

let fullGc: (() => void) | null = null;

/**
 * Between two passes of `kluis sync --once` (engine.ts runOnce), after a pass that acted on more than
 * COLLECT_AFTER_FILES files and asked for another (act.ts `again`): one full collection. That pass's garbage (its maps,
 * sealed manifests, answers parsed, the uploader's 4 MiB batch buffers) is still in the heap when the next pass reads
 * the folder's rows and scans it again; in a first sync of 10,000 small files (W2), which had such a pass until it
 * ended after committing everything, that second pass was the process's peak. V8 offers no collection to call unless started with --expose-gc: the flag is set for the moment a
 * fresh context is made, whose global `gc` stays usable.
 */
export function collectAfterBusyPass(): void {
  if (lastPassFiles <= COLLECT_AFTER_FILES) return;
  lastPassFiles = 0;
  if (!fullGc) {
    setFlagsFromString('--expose-gc');
    fullGc = runInNewContext('gc') as () => void;
    setFlagsFromString('--no-expose-gc');
  }
  fullGc();
}

/**
 * Starts one of the sync engine's worker threads (worker-urls.ts). V8 resets the growth factor when it sets up the
 * worker's heap, so a hold (or the cap) is applied again once the worker runs.
 */
export function startWorker(url: URL, workerData: unknown): Worker {
  const w = new Worker(url, { workerData });
  w.on('online', () => {
    if (young === 'held' || young === 'capped') growthFactor(1);
  });
  return w;
}
