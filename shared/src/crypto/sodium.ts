// The one place libsodium is loaded. Everything in shared/src/crypto/ reaches it through `na()` (libsodium.js, WASM,
// everywhere) or `native()` (sodium-native, the same C library as an N-API addon, Node only); nothing outside this
// folder may import either (lint rule).
//
// Where sodium-native loads, a process may leave the WASM build unloaded (`initCrypto({ wasm: 'lazy' })`, the CLI and
// the sync workers): every primitive it runs then has a native path (primitives.ts), and the WASM module's start-up
// (30-80 ms) and about 5 MB of memory are saved (issue 22, docs/architecture.md §2). `na()` throws there rather than
// load it.
import type Sodium from 'libsodium-wrappers-sumo';

let loaded = false;
let sodium: typeof Sodium | null = null;

/**
 * The parts of sodium-native used on hot paths (docs/architecture.md §2, "Native libsodium"), declared structurally
 * so that shared/ names no Node module. sodium-native writes into buffers the caller allocates; any Uint8Array does.
 */
export interface NativeSodium {
  crypto_generichash(out: Uint8Array, input: Uint8Array, key?: Uint8Array): void;
  crypto_sign_keypair(publicKey: Uint8Array, secretKey: Uint8Array): void;
  crypto_sign_seed_keypair(publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void;
  crypto_box_keypair(publicKey: Uint8Array, secretKey: Uint8Array): void;
  crypto_box_seed_keypair(publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void;
  crypto_scalarmult_base(out: Uint8Array, secretKey: Uint8Array): void;
  crypto_pwhash(out: Uint8Array, password: Uint8Array, salt: Uint8Array, opsLimit: number, memLimit: number, alg: number): void;
  crypto_pwhash_ALG_ARGON2ID13: number;
  crypto_stream_xchacha20_xor(out: Uint8Array, message: Uint8Array, nonce: Uint8Array, key: Uint8Array): void;
  sodium_memcmp(a: Uint8Array, b: Uint8Array): boolean;
  sodium_memzero(buf: Uint8Array): void;
  crypto_generichash_STATEBYTES: number;
  crypto_generichash_init(state: Uint8Array, key: Uint8Array | null, outlen: number): void;
  crypto_generichash_update(state: Uint8Array, input: Uint8Array): void;
  crypto_generichash_final(state: Uint8Array, out: Uint8Array): void;
  crypto_sign_detached(sig: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void;
  crypto_sign_verify_detached(sig: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
  crypto_box_seal(out: Uint8Array, message: Uint8Array, publicKey: Uint8Array): void;
  crypto_box_seal_open(out: Uint8Array, sealed: Uint8Array, publicKey: Uint8Array, secretKey: Uint8Array): boolean;
  crypto_kdf_derive_from_key(out: Uint8Array, id: number, context: Uint8Array, key: Uint8Array): void;
  crypto_scalarmult(out: Uint8Array, secretKey: Uint8Array, publicKey: Uint8Array): void;
  crypto_hash_sha256(out: Uint8Array, input: Uint8Array): void;
  /** Writes ciphertext || tag into `out` (message length + 16); returns its length. */
  crypto_aead_xchacha20poly1305_ietf_encrypt(out: Uint8Array, message: Uint8Array, ad: Uint8Array, nsec: null, nonce: Uint8Array, key: Uint8Array): number;
  /** Writes the plaintext into `out` (ciphertext length - 16); throws when the tag does not verify. */
  crypto_aead_xchacha20poly1305_ietf_decrypt(out: Uint8Array, nsec: null, ciphertext: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array): number;
  randombytes_buf(out: Uint8Array): void;
}

/** Which libsodium build the routed primitives run on. */
export type SodiumBackend = 'native' | 'wasm';

let nativeMod: NativeSodium | null = null;
let forced: SodiumBackend | null = null;

interface NodeProcess {
  versions?: { node?: string };
  env?: Record<string, string | undefined>;
}

function nodeProcess(): NodeProcess | null {
  const proc = (globalThis as { process?: NodeProcess }).process;
  return typeof proc?.versions?.node === 'string' ? proc : null;
}

// The specifier is held in a variable so that esbuild (the web pages, the Electron renderer) neither bundles nor
// resolves sodium-native: those builds keep WASM, and this function returns before the import in a browser.
const NATIVE_MODULE = 'sodium-native';

async function loadNative(): Promise<NativeSodium | null> {
  const proc = nodeProcess();
  if (!proc || proc.env?.KLUIS_SODIUM === 'wasm') return null;
  try {
    const mod = (await import(NATIVE_MODULE)) as { default?: NativeSodium } & Partial<NativeSodium>;
    const s = (mod.default ?? mod) as NativeSodium;
    return typeof s.crypto_generichash === 'function' && typeof s.crypto_sign_verify_detached === 'function' ? s : null;
  } catch {
    return null; // not installed, or no binary for this platform: WASM does everything
  }
}

export interface InitOptions {
  /**
   * 'eager' (the default): libsodium's WASM build is loaded as well as sodium-native, so `na()` always works.
   * 'lazy': where sodium-native loads (and KLUIS_SODIUM is not 'wasm'), the WASM build is not loaded at all; see the top.
   */
  wasm?: 'eager' | 'lazy';
}

async function loadWasm(): Promise<void> {
  const mod = (await import('libsodium-wrappers-sumo')) as { default?: typeof Sodium } & typeof Sodium;
  const s = mod.default ?? mod;
  await s.ready;
  sodium = s;
  poolRandomness(s);
}

/**
 * Loads sodium-native in Node and libsodium's WASM build (unless `wasm: 'lazy'` and sodium-native loaded). Call (and
 * await) once before any other crypto function; a later eager call loads the WASM build a lazy one left out.
 */
export async function initCrypto(options: InitOptions = {}): Promise<void> {
  nativeLoad ??= loadNative().then((mod) => {
    nativeMod = mod;
    loaded = true;
  });
  await nativeLoad;
  if (options.wasm === 'lazy' && nativeMod) return;
  wasmLoad ??= loadWasm();
  await wasmLoad;
}

let nativeLoad: Promise<void> | null = null;
let wasmLoad: Promise<void> | null = null;

/** Whether libsodium's WASM build is loaded (initCrypto). */
export function wasmLoaded(): boolean {
  return sodium !== null;
}

/** The backend the routed primitives use now: 'native' in Node with sodium-native, unless KLUIS_SODIUM=wasm. */
export function cryptoBackend(): SodiumBackend {
  if (!loaded) throw new Error('crypto not initialised: await initCrypto() first');
  return forced ?? (nativeMod ? 'native' : 'wasm');
}

/** Tests and benchmarks: forces a backend ('native' only where it loaded), or null for the automatic choice. */
export function setCryptoBackend(backend: SodiumBackend | null): void {
  if (!loaded) throw new Error('crypto not initialised: await initCrypto() first');
  if (backend === 'native' && !nativeMod) throw new Error('sodium-native is not loaded here');
  if (backend === 'wasm' && !sodium) throw new Error('libsodium WASM is not loaded here: initCrypto() without wasm: \'lazy\'');
  forced = backend;
}

/** sodium-native when it is the current backend, else null (then use `na()`). */
export function native(): NativeSodium | null {
  return forced === 'wasm' ? null : nativeMod;
}

// libsodium.js draws randomness through `getRandomValue()`, ONE BYTE per call, each a crypto.getRandomValues call
// of its own: a 24-byte nonce cost 24 calls and a new file (ids, key, sealed wrap, nonces) about 170, which was
// 40% of the client's CPU when syncing 10,000 small files. The same CSPRNG now fills a 4 KiB pool that the calls
// drain 4 bytes per call (the pool is plain process memory, like the keys it becomes). Where no such hook exists nothing changes.
const POOL_BYTES = 4096;
function poolRandomness(sodium: typeof Sodium): void {
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

/** The loaded libsodium WASM module; throws if `initCrypto()` has not finished or left it out (wasm: 'lazy'). */
export function na(): typeof Sodium {
  if (!loaded) throw new Error('crypto not initialised: await initCrypto() first');
  if (!sodium) throw new Error('libsodium WASM is not loaded in this process (initCrypto wasm: \'lazy\'), and this operation has no sodium-native path');
  return sodium;
}
