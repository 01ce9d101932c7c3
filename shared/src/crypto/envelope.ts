// The versioned envelope for every symmetric ciphertext (docs/crypto.md §1):
//   0x01 || nonce(24) || XChaCha20-Poly1305-IETF(msg, ad, key)   (ciphertext || 16-byte tag)
// Two interchangeable backends produce the same bytes: libsodium (everywhere) and, in Node, node:crypto's
// IETF ChaCha20-Poly1305 keyed with HChaCha20(key, nonce[0..16]) and nonce 0x00000000 || nonce[16..24].
// The node:crypto path is ~5x faster than libsodium's WASM build; test vectors prove both give the same bytes.
// Below NATIVE_AEAD_MAX bytes the 'node' backend seals and opens with sodium-native's XChaCha20-Poly1305 instead (the
// same construction in one native call): a node:crypto cipher object and the HChaCha20 step cost ~25 µs, most of a
// small file's envelope; above it OpenSSL's ChaCha20 is the faster (4 KiB: 3.3 against 26.8 µs; 1 MiB: 663 against
// 817 MiB/s, same run). But OpenSSL's cipher returns each ciphertext in a fresh buffer: sealing into a caller's array
// (`out`, the sync client's upload batches) takes sodium-native at every size, since a GiB of such buffers is a GiB of
// external memory, and V8 answered it with a scavenge every 32 MB and a full collection after most (issue 22, W1).
// The OpenSSL path needs HChaCha20, which only the WASM build offers: in a process that left WASM out (sodium.ts,
// `wasm: 'lazy'`) every size goes through sodium-native.
import { CryptoError, ErrorCode } from '../errors.js';
import { na, native, wasmLoaded } from './sodium.js';
import { randomBytes } from './primitives.js';

export const ENVELOPE_V1 = 0x01;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
export const KEY_BYTES = 32;
export const ENVELOPE_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES;
/** Messages up to this size go through sodium-native's AEAD on the 'node' backend (see the top). */
const NATIVE_AEAD_MAX = 64 * 1024;

/** The shape of node:crypto that the fast path needs, declared structurally so shared/ stays host-neutral. */
interface NodeAeadCipher {
  setAAD(ad: Uint8Array, options: { plaintextLength: number }): unknown;
  update(data: Uint8Array): Uint8Array;
  final(): Uint8Array;
  getAuthTag(): Uint8Array;
  setAuthTag(tag: Uint8Array): unknown;
}
interface NodeCrypto {
  createCipheriv(alg: 'chacha20-poly1305', key: Uint8Array, iv: Uint8Array, options: { authTagLength: number }): NodeAeadCipher;
  createDecipheriv(alg: 'chacha20-poly1305', key: Uint8Array, iv: Uint8Array, options: { authTagLength: number }): NodeAeadCipher;
  getCiphers(): string[];
}

/** Finds node:crypto by feature detection (no import, so the browser build never references it). */
function detectNodeCrypto(): NodeCrypto | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const mod = proc?.getBuiltinModule?.('node:crypto') as NodeCrypto | undefined;
  if (!mod || typeof mod.createCipheriv !== 'function') return null;
  return mod.getCiphers().includes('chacha20-poly1305') ? mod : null;
}

export type EnvelopeBackend = 'sodium' | 'node';
let nodeCrypto: NodeCrypto | null | undefined;
let forced: EnvelopeBackend | null = null;

function node(): NodeCrypto | null {
  if (nodeCrypto === undefined) nodeCrypto = detectNodeCrypto();
  return nodeCrypto;
}

/** Picks the backend: 'node' (fast, Node only), 'sodium', or null for automatic (node when available). */
export function setEnvelopeBackend(backend: EnvelopeBackend | null): void {
  if (backend === 'node' && !node()) throw new Error('node:crypto chacha20-poly1305 is not available here');
  forced = backend;
}

/** The backend envelopes are made with right now. */
export function envelopeBackend(): EnvelopeBackend {
  return forced ?? (node() ? 'node' : 'sodium');
}

function checkKey(key: Uint8Array): void {
  if (key.length !== KEY_BYTES) throw new CryptoError(ErrorCode.BadKey, `envelope key must be ${KEY_BYTES} bytes`);
}

function ietfParams(key: Uint8Array, nonce: Uint8Array): { subkey: Uint8Array; iv: Uint8Array } {
  const subkey = na().crypto_core_hchacha20(nonce.subarray(0, 16), key, null);
  const iv = new Uint8Array(12);
  iv.set(nonce.subarray(16, 24), 4);
  return { subkey, iv };
}

/** Raw XChaCha20-Poly1305-IETF (ciphertext || tag) with an explicit nonce, on the chosen backend. */
export function xchachaEncrypt(msg: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array, backend: EnvelopeBackend, out?: Uint8Array, outOffset = 0): Uint8Array {
  const dest = out ?? new Uint8Array(msg.length + TAG_BYTES);
  const small = backend === 'node' && (msg.length <= NATIVE_AEAD_MAX || out || !wasmLoaded()) ? native() : null;
  if (small) {
    small.crypto_aead_xchacha20poly1305_ietf_encrypt(dest.subarray(outOffset, outOffset + msg.length + TAG_BYTES), msg, ad, null, nonce, key);
  } else if (backend === 'node') {
    const { subkey, iv } = ietfParams(key, nonce);
    const cipher = node()!.createCipheriv('chacha20-poly1305', subkey, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(ad, { plaintextLength: msg.length });
    const body = cipher.update(msg);
    cipher.final();
    dest.set(body, outOffset);
    dest.set(cipher.getAuthTag(), outOffset + msg.length);
  } else {
    dest.set(na().crypto_aead_xchacha20poly1305_ietf_encrypt(msg, ad, null, nonce, key), outOffset);
  }
  return dest;
}

/** Raw XChaCha20-Poly1305-IETF opening; throws CryptoError on any failure. */
export function xchachaDecrypt(sealed: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array, backend: EnvelopeBackend): Uint8Array {
  if (sealed.length < TAG_BYTES) throw new CryptoError(ErrorCode.BadEnvelope, 'ciphertext shorter than its tag');
  const small = backend === 'node' && (sealed.length - TAG_BYTES <= NATIVE_AEAD_MAX || !wasmLoaded()) ? native() : null;
  if (small) {
    const body = new Uint8Array(sealed.length - TAG_BYTES);
    try {
      small.crypto_aead_xchacha20poly1305_ietf_decrypt(body, null, sealed, ad, nonce, key);
    } catch {
      throw new CryptoError(ErrorCode.DecryptFailed, 'ciphertext failed authentication');
    }
    return body;
  }
  if (backend === 'node') {
    const { subkey, iv } = ietfParams(key, nonce);
    const decipher = node()!.createDecipheriv('chacha20-poly1305', subkey, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(ad, { plaintextLength: sealed.length - TAG_BYTES });
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const body = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
    try {
      decipher.final();
    } catch {
      throw new CryptoError(ErrorCode.DecryptFailed, 'ciphertext failed authentication');
    }
    return body;
  }
  try {
    return na().crypto_aead_xchacha20poly1305_ietf_decrypt(null, sealed, ad, nonce, key);
  } catch {
    throw new CryptoError(ErrorCode.DecryptFailed, 'ciphertext failed authentication');
  }
}

/** Seals `msg` for `key`, bound to `ad`, with a fresh random nonce. */
export function sealEnvelope(key: Uint8Array, msg: Uint8Array, ad: Uint8Array): Uint8Array {
  return sealEnvelopeWithNonce(key, msg, ad, randomBytes(NONCE_BYTES), envelopeBackend());
}

/**
 * HAZMAT: seals with a caller-chosen nonce. Reusing a nonce under one key breaks confidentiality and
 * integrity; only test vectors and benchmarks call this.
 */
export function sealEnvelopeWithNonce(key: Uint8Array, msg: Uint8Array, ad: Uint8Array, nonce: Uint8Array, backend: EnvelopeBackend): Uint8Array {
  const out = new Uint8Array(ENVELOPE_OVERHEAD + msg.length);
  writeEnvelope(key, msg, ad, nonce, backend, out);
  return out;
}

/**
 * sealEnvelope writing into `dest` (exactly ENVELOPE_OVERHEAD + msg.length bytes, e.g. a view of an upload batch
 * being built) instead of a new array: the same bytes, no allocation.
 */
export function sealEnvelopeInto(key: Uint8Array, msg: Uint8Array, ad: Uint8Array, dest: Uint8Array): void {
  if (dest.length !== ENVELOPE_OVERHEAD + msg.length) throw new RangeError(`sealEnvelopeInto: dest must be ${ENVELOPE_OVERHEAD + msg.length} bytes, not ${dest.length}`);
  writeEnvelope(key, msg, ad, randomBytes(NONCE_BYTES), envelopeBackend(), dest);
}

function writeEnvelope(key: Uint8Array, msg: Uint8Array, ad: Uint8Array, nonce: Uint8Array, backend: EnvelopeBackend, out: Uint8Array): void {
  checkKey(key);
  if (nonce.length !== NONCE_BYTES) throw new CryptoError(ErrorCode.BadKey, `nonce must be ${NONCE_BYTES} bytes`);
  out[0] = ENVELOPE_V1;
  out.set(nonce, 1);
  xchachaEncrypt(msg, ad, nonce, key, backend, out, 1 + NONCE_BYTES);
}

/** Opens an envelope; throws a typed CryptoError (never returns garbage) on any mismatch. */
export function openEnvelope(key: Uint8Array, envelope: Uint8Array, ad: Uint8Array, backend: EnvelopeBackend = envelopeBackend()): Uint8Array {
  checkKey(key);
  if (envelope.length < 1) throw new CryptoError(ErrorCode.BadEnvelope, 'empty envelope');
  if (envelope[0] !== ENVELOPE_V1) throw new CryptoError(ErrorCode.UnsupportedVersion, `unknown envelope version ${envelope[0]}`);
  if (envelope.length < ENVELOPE_OVERHEAD) throw new CryptoError(ErrorCode.BadEnvelope, 'envelope truncated');
  const nonce = envelope.subarray(1, 1 + NONCE_BYTES);
  return xchachaDecrypt(envelope.subarray(1 + NONCE_BYTES), ad, nonce, key, backend);
}
