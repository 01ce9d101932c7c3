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
import { setFlagsFromString } from 'node:v8';

/** The heap may grow to the live size times 1 + this / 100 before the next full collection. */
export const HEAP_GROWING_PERCENT = 60;

/** Sets V8's heap growing factor for this process (and its worker threads). */
export function limitHeapGrowth(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
