// How far V8 lets the server's heap grow between full collections (issue 22, W1; docs/architecture.md §9).
//
// An upload relays every byte through the server: Node's HTTP parser copies each piece of a request body into a fresh
// buffer, and every 32 MB of such young external memory sets off a scavenge. After each scavenge V8 starts incremental
// marking when the old generation is near its limit, and with the server's small live heap (about 31 MB) and V8's
// default factor here that limit was only 23-30 MB away: a GiB upload ran 60-130 full collections (one every 8-15 MB
// received), and the four GC helper threads spent about as much CPU as the main thread. Factor 4 (V8's own largest,
// `--heap-growing-percent=300`, read at every full collection, so it applies when set at run time) took that to 18-19
// collections and the server's CPU for W1 from 5.3-6.9 s to 3.5-3.8 s. The heap may hold up to four times its live
// size in garbage: the server's peak RSS in the whole sync benchmark went from 235-280 MB to 386 MB (operations.md,
// "Memory"); no heap cap changes.
import { setFlagsFromString } from 'node:v8';

/** The heap may grow to the live size times 1 + this / 100 before the next full collection. */
export const SERVER_HEAP_GROWING_PERCENT = 300;

/** Sets V8's heap growing factor for this process. */
export function setServerHeapGrowth(): void {
  setFlagsFromString(`--heap-growing-percent=${SERVER_HEAP_GROWING_PERCENT}`);
}
