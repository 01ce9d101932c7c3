// The one place libsodium is loaded. Everything in shared/src/crypto/ reaches it through `na()`;
// nothing outside this folder may import libsodium (lint rule).
import sodium from 'libsodium-wrappers-sumo';

let loaded = false;

/** Loads libsodium's WASM. Call (and await) once before any other crypto function. */
export async function initCrypto(): Promise<void> {
  if (loaded) return;
  await sodium.ready;
  poolRandomness();
  loaded = true;
}

// libsodium.js draws randomness through `getRandomValue()`, ONE BYTE per call, each a crypto.getRandomValues call
// of its own: a 24-byte nonce cost 24 calls and a new file (ids, key, sealed wrap, nonces) about 170, which was
// 40% of the client's CPU when syncing 10,000 small files. The same CSPRNG now fills a 4 KiB pool that the calls
// drain 4 bytes per call (the pool is plain process memory, like the keys it becomes). Where no such hook exists nothing changes.
const POOL_BYTES = 4096;
function poolRandomness(): void {
  const mod = (sodium as unknown as { libsodium?: { getRandomValue?: () => number } }).libsodium;
  const webCrypto = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } }).crypto;
  if (!mod || typeof mod.getRandomValue !== 'function' || typeof webCrypto?.getRandomValues !== 'function') return;
  const pool = new Uint8Array(POOL_BYTES);
  let pos = POOL_BYTES;
  mod.getRandomValue = () => {
    if (pos === POOL_BYTES) {
      webCrypto.getRandomValues!(pool);
      pos = 0;
    }
    // A full 32-bit value, as the original hook returns (randombytes_random() uses all of it).
    const v = (pool[pos]! | (pool[pos + 1]! << 8) | (pool[pos + 2]! << 16) | (pool[pos + 3]! << 24)) >>> 0;
    pool.fill(0, pos, pos + 4);
    pos += 4;
    return v;
  };
}

/** The loaded libsodium module; throws if `initCrypto()` has not finished. */
export function na(): typeof sodium {
  if (!loaded) throw new Error('crypto not initialised: await initCrypto() first');
  return sodium;
}
