// The crypto facade (docs/architecture.md §2): every cryptographic operation of Kluis, and the only code that uses libsodium.
// Callers get operations (seal a file key, encrypt a chunk, open a manifest), never raw primitives,
// except through `hazmat`, which exists for test vectors and benchmarks.
export { initCrypto, cryptoBackend, setCryptoBackend, wasmLoaded, type InitOptions, type SodiumBackend } from './sodium.js';
export { setEnvelopeBackend, envelopeBackend, sealEnvelope, openEnvelope, ENVELOPE_OVERHEAD, type EnvelopeBackend } from './envelope.js';
export { newId, idBytes, constantTimeEqual } from './primitives.js';
export * from './keys.js';
export { wrapFileKeysBatch, verifyBatchWrapSignature, verifyBatchWrapSignatures, wrapBatchStatement, expandWrapBatch, type BatchFileKeyWrap, type BatchWrapTarget, type WrapBatchStatement, type WrapBatchMember } from './batch-wrap.js';
export * from './content.js';
export { BULK_HASH_MIN, loadFastBlake2b, fastBlake2bLoaded } from './fast-blake2b.js';
export { openChunkInPlace } from './chunk-open.js';
export * from './link.js';
export * from './link-folder.js';
export * from './server.js';
export * from './recovery.js';
export * from './membership.js';
export * from './device.js';
export * from './request.js';
export * from './backup.js';

import { sealEnvelopeWithNonce, xchachaEncrypt, xchachaDecrypt } from './envelope.js';
import { argon2id, blake2b, boxSeedKeyPair, kdfDerive, openSealedBox, randomBytes, sealBox, sha256, signDetached, signingInput, signSeedKeyPair, verifyDetached, x25519 } from './primitives.js';
import { na } from './sodium.js';

/**
 * HAZMAT: raw primitives for known-answer vectors and benchmarks only. A chosen nonce reused under one key
 * destroys confidentiality; product code must use the operations above.
 */
export const hazmat = {
  sealEnvelopeWithNonce,
  xchachaEncrypt,
  xchachaDecrypt,
  blake2b,
  randomBytes,
  signDetached,
  /** Argon2id13 with explicit output length, for vectors. */
  pwhash: argon2id,
  kdf: kdfDerive,
  sha256,
  verifyDetached,
  /** crypto_box_seal and its opening (file-key wraps of version 1, docs/crypto.md §5). */
  sealBox,
  openSealedBox,
  signSeedKeypair: signSeedKeyPair,
  /** libsodium.js's own Ed25519 signing (signDetached may use sodium-native or node:crypto): tests compare them. */
  signDetachedSodium: (context: string, body: Uint8Array, signSecretKey: Uint8Array): Uint8Array => na().crypto_sign_detached(signingInput(context, body), signSecretKey),
  /** libsodium's randombytes_random() (32 bits from the CSPRNG hook): tests check the pooled hook. */
  randomUint32: (): number => na().randombytes_random(),
  boxSeedKeypair: boxSeedKeyPair,
  /** X25519 (crypto_scalarmult), for the batch-wrap vectors (docs/crypto.md §5.2). */
  x25519,
} as const;
export * from './merkle.js';
