// Small helpers over libsodium shared by the facade's modules. Not exported from the package. The hot primitives
// (BLAKE2b, Ed25519, sealed boxes, the file-subkey KDF, SHA-256) run on sodium-native when it is loaded (sodium.ts),
// else on libsodium.js's WASM: the same C library either way, so the same bytes (test/unit/crypto-native.test.ts).
import { CryptoError, ErrorCode } from '../errors.js';
import { EncodingError, fromBase64Url, toBase64Url, utf8, concatBytes } from '../encoding.js';
import { na, native } from './sodium.js';

export const ID_BYTES = 16;

/**
 * A fresh random 16-byte id, base64url. Never starts with `-`, so it can be typed as a command argument without
 * being taken for an option (docs/crypto.md §1); a reader still accepts any 16-byte base64url id.
 */
export function newId(): string {
  for (;;) {
    const id = toBase64Url(randomBytes(ID_BYTES));
    if (id[0] !== '-') return id;
  }
}

/** Decodes a 16-byte base64url id; throws CryptoError on anything else. */
export function idBytes(id: string, what = 'id'): Uint8Array {
  const bytes = decodeB64(id, what);
  if (bytes.length !== ID_BYTES) throw new CryptoError(ErrorCode.BadManifest, `${what} must be ${ID_BYTES} bytes`);
  return bytes;
}

/** base64url decoding that reports a CryptoError naming the field. */
export function decodeB64(text: string, what: string, length?: number): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(text);
  } catch (e) {
    if (e instanceof EncodingError) throw new CryptoError(ErrorCode.BadKey, `${what} is not base64url`);
    throw e;
  }
  if (length !== undefined && bytes.length !== length) throw new CryptoError(ErrorCode.BadKey, `${what} must be ${length} bytes`);
  return bytes;
}

/** Random bytes from libsodium's CSPRNG. */
export function randomBytes(n: number): Uint8Array {
  const s = native();
  if (!s) return na().randombytes_buf(n);
  const out = new Uint8Array(n);
  if (n > POOL_BYTES / 16) {
    s.randombytes_buf(out);
    return out;
  }
  // Small draws (nonces, keys, ids: a new file takes about ten) come from a pool that one call to libsodium's CSPRNG
  // (a getrandom() system call each) refills: one call per ~24 bytes cost 5% of a first sync of 10,000 small files.
  // Bytes handed out are wiped from the pool, as in sodium.ts's pool for the WASM build.
  if (pos + n > POOL_BYTES) {
    s.randombytes_buf(pool);
    pos = 0;
  }
  out.set(pool.subarray(pos, pos + n));
  pool.fill(0, pos, pos + n);
  pos += n;
  return out;
}

const POOL_BYTES = 4096;
const pool = new Uint8Array(POOL_BYTES);
let pos = POOL_BYTES;

/** BLAKE2b with the given output length, optionally keyed. */
export function blake2b(length: number, message: Uint8Array, key: Uint8Array | null = null): Uint8Array {
  const n = native();
  if (!n) return na().crypto_generichash(length, message, key);
  const out = new Uint8Array(length);
  if (key) n.crypto_generichash(out, message, key);
  else n.crypto_generichash(out, message);
  return out;
}

/** SHA-256 (the audit and wrap Merkle trees, docs/crypto.md §5.2). */
export function sha256(message: Uint8Array): Uint8Array {
  const n = native();
  if (!n) return na().crypto_hash_sha256(message);
  const out = new Uint8Array(32);
  n.crypto_hash_sha256(out, message);
  return out;
}

/** crypto_kdf_derive_from_key with an 8-character context. */
export function kdfDerive(length: number, id: number, context: string, key: Uint8Array): Uint8Array {
  const n = native();
  if (!n) return na().crypto_kdf_derive_from_key(length, id, context, key);
  const out = new Uint8Array(length);
  n.crypto_kdf_derive_from_key(out, id, contextBytes(context), key);
  return out;
}

/** X25519 (crypto_scalarmult); throws (a plain Error) on an all-zero result, i.e. a small-order public key. */
export function x25519(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const n = native();
  if (!n) return na().crypto_scalarmult(secretKey, publicKey);
  const out = new Uint8Array(32);
  n.crypto_scalarmult(out, secretKey, publicKey);
  return out;
}

const SEAL_OVERHEAD = 48; // crypto_box_SEALBYTES: ephemeral public key and tag

/** crypto_box_seal of `message` to an X25519 public key. */
export function sealBox(message: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const n = native();
  if (!n) return na().crypto_box_seal(message, publicKey);
  const out = new Uint8Array(message.length + SEAL_OVERHEAD);
  n.crypto_box_seal(out, message, publicKey);
  return out;
}

/** crypto_box_seal_open; throws (a plain Error, callers map it) when the box does not open. */
export function openSealedBox(sealed: Uint8Array, publicKey: Uint8Array, secretKey: Uint8Array): Uint8Array {
  const n = native();
  if (!n) return na().crypto_box_seal_open(sealed, publicKey, secretKey);
  if (sealed.length < SEAL_OVERHEAD) throw new Error('sealed box too short');
  const out = new Uint8Array(sealed.length - SEAL_OVERHEAD);
  if (!n.crypto_box_seal_open(out, sealed, publicKey, secretKey)) throw new Error('sealed box does not open');
  return out;
}

/** Constant-time equality of two byte strings of equal length (false on different lengths). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  const n = native();
  return n ? n.sodium_memcmp(a, b) : na().memcmp(a, b);
}

/** Overwrites secrets with zeros (sodium_memzero: not optimised away). */
export function wipe(...buffers: (Uint8Array | null | undefined)[]): void {
  const n = native();
  for (const b of buffers) {
    if (!b) continue;
    if (n) n.sodium_memzero(b);
    else na().memzero(b);
  }
}

/** A public key and its secret key, named as libsodium.js names them. */
export interface KeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

type NativeKeyPairFn = (publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array) => void;

function nativePair(publicBytes: number, secretBytes: number, make: NativeKeyPairFn, seed?: Uint8Array): KeyPair {
  const publicKey = new Uint8Array(publicBytes);
  const privateKey = new Uint8Array(secretBytes);
  make(publicKey, privateKey, seed!);
  return { publicKey, privateKey };
}

/** A fresh Ed25519 key pair (secret key: 64 bytes, seed || public key). */
export function signKeyPair(): KeyPair {
  const n = native();
  return n ? nativePair(32, 64, (pk, sk) => n.crypto_sign_keypair(pk, sk)) : na().crypto_sign_keypair();
}

/** The Ed25519 key pair of a 32-byte seed. */
export function signSeedKeyPair(seed: Uint8Array): KeyPair {
  const n = native();
  return n ? nativePair(32, 64, (pk, sk, sd) => n.crypto_sign_seed_keypair(pk, sk, sd), seed) : na().crypto_sign_seed_keypair(seed);
}

/** A fresh X25519 key pair. */
export function boxKeyPair(): KeyPair {
  const n = native();
  return n ? nativePair(32, 32, (pk, sk) => n.crypto_box_keypair(pk, sk)) : na().crypto_box_keypair();
}

/** The X25519 key pair of a 32-byte seed (crypto_box_seed_keypair: the secret key is a hash of the seed). */
export function boxSeedKeyPair(seed: Uint8Array): KeyPair {
  const n = native();
  return n ? nativePair(32, 32, (pk, sk, sd) => n.crypto_box_seed_keypair(pk, sk, sd), seed) : na().crypto_box_seed_keypair(seed);
}

/** The X25519 public key of a secret key (crypto_scalarmult_base). */
export function x25519Base(secretKey: Uint8Array): Uint8Array {
  const n = native();
  if (!n) return na().crypto_scalarmult_base(secretKey);
  const out = new Uint8Array(32);
  n.crypto_scalarmult_base(out, secretKey);
  return out;
}

/** Argon2id13 (crypto_pwhash) with an explicit output length. */
export function argon2id(length: number, password: Uint8Array, salt: Uint8Array, opsLimit: number, memLimit: number): Uint8Array {
  const n = native();
  if (!n) return na().crypto_pwhash(length, password, salt, opsLimit, memLimit, na().crypto_pwhash_ALG_ARGON2ID13);
  const out = new Uint8Array(length);
  n.crypto_pwhash(out, password, salt, opsLimit, memLimit, n.crypto_pwhash_ALG_ARGON2ID13);
  return out;
}

/** XChaCha20 keystream XOR (no tag): `message` encrypted or decrypted under a 24-byte nonce. */
export function xchacha20Xor(message: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array {
  const n = native();
  if (!n) return na().crypto_stream_xchacha20_xor(message, nonce, key);
  const out = new Uint8Array(message.length);
  n.crypto_stream_xchacha20_xor(out, message, nonce, key);
  return out;
}

/** The message a detached signature covers: UTF-8(context) || 0x00 || body. */
export function signingInput(context: string, body: Uint8Array): Uint8Array {
  const prefix = contextBytes(context);
  const out = new Uint8Array(prefix.length + 1 + body.length); // the 0x00 separator is the fresh array's zero
  out.set(prefix);
  out.set(body, prefix.length + 1);
  return out;
}

const contexts = new Map<string, Uint8Array>();

/** UTF-8 of a protocol context string, encoded once per context (callers only read it). */
function contextBytes(context: string): Uint8Array {
  let bytes = contexts.get(context);
  if (!bytes) contexts.set(context, (bytes = utf8(context)));
  return bytes;
}

// Node fast path for SIGNING when sodium-native is absent (or KLUIS_SODIUM=wasm): Ed25519 signatures are
// deterministic (RFC 8032), so OpenSSL's are byte-identical to libsodium's (the vectors check both), at about 24 µs
// instead of 38 µs here — a new file costs two signatures. The private KeyObject is made once per secret key. Verification stays in libsodium, whose checks
// (canonical S, small-order keys) are the ones the spec names.
interface NodeSign {
  createPrivateKey(o: { key: Uint8Array; format: 'der'; type: 'pkcs8' }): object;
  sign(alg: null, data: Uint8Array, key: object): Uint8Array;
}
let nodeSign: NodeSign | null | undefined;
const signKeys = new WeakMap<Uint8Array, object>();
const ED25519_PKCS8_PREFIX = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

function nodeSigner(): NodeSign | null {
  if (nodeSign === undefined) {
    const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
    const mod = proc?.getBuiltinModule?.('node:crypto') as NodeSign | undefined;
    nodeSign = mod && typeof mod.sign === 'function' && typeof mod.createPrivateKey === 'function' ? mod : null;
  }
  return nodeSign;
}

/** Ed25519 detached signature over a context-prefixed body. */
export function signDetached(context: string, body: Uint8Array, signSecretKey: Uint8Array): Uint8Array {
  const message = signingInput(context, body);
  const s = native();
  if (s) {
    const sig = new Uint8Array(64);
    s.crypto_sign_detached(sig, message, signSecretKey);
    return sig;
  }
  const n = nodeSigner();
  if (n && signSecretKey.length === 64) {
    let key = signKeys.get(signSecretKey);
    if (!key) {
      const der = concatBytes(ED25519_PKCS8_PREFIX, signSecretKey.subarray(0, 32));
      try {
        key = n.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
      } finally {
        der.fill(0);
      }
      signKeys.set(signSecretKey, key);
    }
    return new Uint8Array(n.sign(null, message, key));
  }
  return na().crypto_sign_detached(message, signSecretKey);
}

/** Verifies an Ed25519 detached signature over a context-prefixed body; throws on failure. */
export function verifyDetached(context: string, body: Uint8Array, signature: Uint8Array, signPublicKey: Uint8Array): void {
  let ok = false;
  if (signature.length === 64 && signPublicKey.length === 32) {
    try {
      const n = native();
      const message = signingInput(context, body);
      ok = n ? n.crypto_sign_verify_detached(signature, message, signPublicKey) : na().crypto_sign_verify_detached(signature, message, signPublicKey);
    } catch {
      ok = false;
    }
  }
  if (!ok) throw new CryptoError(ErrorCode.BadSignature, `signature (${context}) does not verify`);
}
