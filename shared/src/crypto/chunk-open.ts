// Opening chunks without fresh buffers (the link page's decryption workers, docs/crypto.md §6 and §9): the same
// checks as decryptChunk, in the same order, but libsodium works in one area of its own heap that is kept between
// chunks, and the plaintext is written back over the caller's ciphertext buffer. decryptChunk through libsodium.js's
// wrappers allocates a fresh plaintext buffer per chunk and copies the plaintext out of the heap and back in for the
// chunk-id hash; on a 2-core machine whose cores are busy the page faults of those fresh buffers showed as kernel time.
import { CryptoError, ErrorCode } from '../errors.js';
import { concatBytes, fromHex, utf8 } from '../encoding.js';
import { decryptChunk } from './content.js';
import { ENVELOPE_OVERHEAD, ENVELOPE_V1, KEY_BYTES, NONCE_BYTES, TAG_BYTES } from './envelope.js';
import type { FileSubkeys } from './keys.js';
import { constantTimeEqual } from './primitives.js';
import { na, wasmLoaded } from './sodium.js';

/** The parts of libsodium.js's raw module used here (64-bit lengths are passed as two 32-bit halves). */
interface RawSodium {
  HEAPU8: Uint8Array;
  _malloc(n: number): number;
  _free(p: number): void;
  _crypto_aead_xchacha20poly1305_ietf_decrypt(m: number, mlenP: number, nsec: number, c: number, clenLo: number, clenHi: number, ad: number, adlenLo: number, adlenHi: number, npub: number, k: number): number;
  _crypto_generichash(out: number, outlen: number, input: number, inlenLo: number, inlenHi: number, key: number, keylen: number): number;
}

function raw(): RawSodium | null {
  if (!wasmLoaded()) return null; // a Node process that left WASM out (initCrypto wasm: 'lazy'): decryptChunk, natively
  const mod = (na() as unknown as { libsodium?: Partial<RawSodium> }).libsodium;
  return mod && typeof mod._malloc === 'function' && typeof mod._crypto_aead_xchacha20poly1305_ietf_decrypt === 'function' && typeof mod._crypto_generichash === 'function' ? (mod as RawSodium) : null;
}

const CTX_CHUNK = utf8('kluis/chunk/v1');
const HASH_BYTES = 32;
const HEX64 = /^[0-9a-f]{64}$/;

// The working area: keys, nonce, ad, hash, ciphertext and plaintext; grown to the largest chunk seen, never shrunk.
let area = 0;
let areaBytes = 0;

function workArea(mod: RawSodium, bytes: number): number {
  if (bytes > areaBytes) {
    if (area) mod._free(area);
    area = mod._malloc(bytes);
    if (!area) {
      areaBytes = 0;
      throw new CryptoError(ErrorCode.DecryptFailed, 'out of memory for a chunk');
    }
    areaBytes = bytes;
  }
  return area;
}

/**
 * decryptChunk for a ciphertext buffer the caller gives up: opens the envelope (AEAD under the chunk key, ad =
 * "kluis/chunk/v1" || raw id), checks that the keyed BLAKE2b-256 of the plaintext is `id` (constant time), and returns
 * the plaintext as a view over the start of `ciphertext`'s own bytes (41 bytes shorter). Throws CryptoError like
 * decryptChunk; `ciphertext` is then left as it was or partly overwritten, never returned. Falls back to decryptChunk
 * where libsodium.js's raw module is not reachable.
 */
export function openChunkInPlace(keys: FileSubkeys, id: string, ciphertext: Uint8Array): Uint8Array {
  const mod = raw();
  if (!mod) return decryptChunk(keys, id, ciphertext);
  if (!HEX64.test(id)) throw new CryptoError(ErrorCode.ChunkIdMismatch, 'a chunk id is 64 lower-case hex digits');
  if (keys.chunkKey.length !== KEY_BYTES || keys.chunkIdKey.length !== KEY_BYTES) throw new CryptoError(ErrorCode.BadKey, `envelope key must be ${KEY_BYTES} bytes`);
  if (ciphertext.length < 1) throw new CryptoError(ErrorCode.BadEnvelope, 'empty envelope');
  if (ciphertext[0] !== ENVELOPE_V1) throw new CryptoError(ErrorCode.UnsupportedVersion, `unknown envelope version ${ciphertext[0]}`);
  if (ciphertext.length < ENVELOPE_OVERHEAD) throw new CryptoError(ErrorCode.BadEnvelope, 'envelope truncated');
  const raw32 = fromHex(id);
  const ad = concatBytes(CTX_CHUNK, raw32);
  const sealed = ciphertext.length - 1 - NONCE_BYTES;
  const plainBytes = sealed - TAG_BYTES;
  // Layout: chunkKey | chunkIdKey | nonce | ad | hash | sealed | plaintext
  const base = workArea(mod, 2 * KEY_BYTES + NONCE_BYTES + ad.length + HASH_BYTES + sealed + plainBytes);
  const kAt = base;
  const idKeyAt = kAt + KEY_BYTES;
  const nonceAt = idKeyAt + KEY_BYTES;
  const adAt = nonceAt + NONCE_BYTES;
  const hashAt = adAt + ad.length;
  const sealedAt = hashAt + HASH_BYTES;
  const plainAt = sealedAt + sealed;
  let heap = mod.HEAPU8;
  heap.set(keys.chunkKey, kAt);
  heap.set(keys.chunkIdKey, idKeyAt);
  heap.set(ciphertext.subarray(1, 1 + NONCE_BYTES), nonceAt);
  heap.set(ad, adAt);
  heap.set(ciphertext.subarray(1 + NONCE_BYTES), sealedAt);
  try {
    if (mod._crypto_aead_xchacha20poly1305_ietf_decrypt(plainAt, 0, 0, sealedAt, sealed, 0, adAt, ad.length, 0, nonceAt, kAt) !== 0) {
      throw new CryptoError(ErrorCode.DecryptFailed, 'ciphertext failed authentication');
    }
    mod._crypto_generichash(hashAt, HASH_BYTES, plainAt, plainBytes, 0, idKeyAt, KEY_BYTES);
    heap = mod.HEAPU8; // (the heap's buffer is replaced when libsodium grows its memory)
    if (!constantTimeEqual(heap.slice(hashAt, hashAt + HASH_BYTES), raw32)) throw new CryptoError(ErrorCode.ChunkIdMismatch, 'chunk content does not match its id');
    const plain = new Uint8Array(ciphertext.buffer, ciphertext.byteOffset, plainBytes);
    plain.set(heap.subarray(plainAt, plainAt + plainBytes));
    return plain;
  } finally {
    // The keys do not stay in the heap between chunks (the plaintext area is overwritten by the next chunk).
    mod.HEAPU8.fill(0, kAt, nonceAt);
  }
}
