// BLAKE2b-256 over large inputs through hash-wasm's WebAssembly build (issue 22: W1 and W3 hash every byte twice,
// once for the whole-file hash, docs/crypto.md §7, once for the keyed chunk ids, §5). sodium-native's prebuilt
// libsodium hashes with BLAKE2b's reference code: 1,671 ms per GiB on this machine (an AVX2 EPYC), against 997 ms with
// hash-wasm and 840 ms with OpenSSL's BLAKE2b-512, which Node cannot shorten to 256 bits (the digest length is part
// of BLAKE2b's parameter block: a truncated BLAKE2b-512 is another hash). The same function, the same output
// (test/unit/fast-blake2b.test.ts compares them on every length class, keyed and not).
//
// Loaded on demand (loadFastBlake2b: a dynamic import and a WebAssembly instance, a few milliseconds), so that a
// process that hashes nothing large does not pay for it. Until it is loaded, and if it cannot be (a page whose CSP
// forbids WebAssembly), the callers hash with sodium as before. A hash-wasm instance holds its hashing state in its
// own WebAssembly memory: one instance per hash in progress, so streaming hashers take one from a small pool and give
// it back at their digest, and keyed ones (chunk ids) are made per file key.
import type { IHasher } from 'hash-wasm';

/**
 * Content from this size is hashed with the fast BLAKE2b (callers load it, and make a file key's keyed instance, for
 * files this large): below it the half-millisecond of a keyed instance, and the first load's tens of milliseconds,
 * cost more than the faster hash saves.
 */
export const BULK_HASH_MIN = 4 * 1024 * 1024;

type Create = (bits?: number, key?: Uint8Array) => Promise<IHasher>;

let create: Create | null = null;
let loading: Promise<void> | null = null;
/** Unkeyed instances ready for a streaming hash (taken synchronously, made asynchronously). */
const free: IHasher[] = [];
/** Instances kept ready: the sync client streams at most a few large files at once. */
const POOL = 2;
let refilling = false;

/** KLUIS_SODIUM names one backend for all cryptography (docs/cli.md): then hashing stays on it too. */
function sodiumNamed(): boolean {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.KLUIS_SODIUM === 'native' || env?.KLUIS_SODIUM === 'wasm';
}

/**
 * Loads hash-wasm's BLAKE2b once; resolves (never rejects) when it is ready or known to be unavailable (also with
 * KLUIS_SODIUM set: see sodiumNamed).
 */
export function loadFastBlake2b(): Promise<void> {
  loading ??= (async () => {
    if (sodiumNamed()) return;
    try {
      const { createBLAKE2b } = await import('./fast-blake2b-wasm.js');
      for (let i = 0; i < POOL; i++) free.push(await createBLAKE2b(256));
      create = createBLAKE2b as Create;
    } catch {
      create = null; // sodium keeps hashing
    }
  })();
  return loading;
}

/** Whether the fast BLAKE2b is loaded (tests, benchmarks). */
export function fastBlake2bLoaded(): boolean {
  return create !== null;
}

/** An unkeyed BLAKE2b-256 instance, initialised, if one is ready now; give it back with `giveHasher`. */
export function takeHasher(): IHasher | null {
  const h = free.pop() ?? null;
  if (free.length === 0) refill();
  return h?.init() ?? null;
}

/** Returns an instance taken with `takeHasher` (after its digest). */
export function giveHasher(h: IHasher): void {
  if (free.length < POOL) free.push(h);
}

function refill(): void {
  if (!create || refilling) return;
  refilling = true;
  void create(256)
    .then((h) => giveHasher(h), () => undefined)
    .finally(() => (refilling = false));
}

/** A keyed BLAKE2b-256 instance (init before each message), or null where the fast BLAKE2b is not loaded. */
export async function keyedHasher(key: Uint8Array): Promise<IHasher | null> {
  if (!create) return null;
  try {
    return await create(256, key);
  } catch {
    return null;
  }
}
