// The one place libsodium is loaded. Everything in shared/src/crypto/ reaches it through `na()`;
// nothing outside this folder may import libsodium (lint rule).
import sodium from 'libsodium-wrappers-sumo';

let loaded = false;

/** Loads libsodium's WASM. Call (and await) once before any other crypto function. */
export async function initCrypto(): Promise<void> {
  if (loaded) return;
  await sodium.ready;
  loaded = true;
}

/** The loaded libsodium module; throws if `initCrypto()` has not finished. */
export function na(): typeof sodium {
  if (!loaded) throw new Error('crypto not initialised: await initCrypto() first');
  return sodium;
}
