// Batch-signed manifests (docs/crypto.md §8.1): one Ed25519 signature over a Merkle root of the manifests a client
// commits together, each sealed manifest carrying its inclusion proof inside its envelope. A first sync of many small
// files signed every manifest on its own, about a tenth of the client's CPU (issue 22, W2), and every reader verified
// each signature. This module knows only the plaintext layout behind the signer's key and signature; the envelope,
// the manifest's own checks and the signer's judgement stay in content.ts.
import { CryptoError, ErrorCode } from '../errors.js';
import { toBase64Url, utf8 } from '../encoding.js';
import { canonicalBytes } from '../canonical.js';
import { merkleLeafHashOf, merkleRootFromInclusion, merkleTreeProofs } from './merkle.js';
import { randomBytes, signDetached, verifyDetached } from './primitives.js';
import type { Signer } from './keys.js';

const CTX_LEAF = 'kluis/manifest-leaf/v3';
const CTX_BATCH = 'kluis/manifest-batch/v3';
/** The byte after the signature: 0x7b ('{', a body) in a manifest signed alone, this in a batch-signed one. */
export const MANIFEST_BATCH_MARK = 0x03;
const SALT_BYTES = 16;
/** More levels than any batch has (2^64 leaves): a longer proof is refused before any hashing. */
const MAX_PROOF = 64;
/** signer key, signature, mark, index, size, proof length */
const HEAD_BYTES = 32 + 64 + 1 + 4 + 4 + 1;

/** One manifest of a batch: its raw ids (the envelope's ad) and its canonical body. */
export interface ManifestBatchItem {
  fileId: Uint8Array;
  versionId: Uint8Array;
  body: Uint8Array;
}

const LEAF_PREFIX = utf8(CTX_LEAF);

function leafHash(salt: Uint8Array, item: ManifestBatchItem): Uint8Array {
  return merkleLeafHashOf(LEAF_PREFIX, salt, item.fileId, item.versionId, item.body);
}

function statementBytes(signer: Uint8Array, size: number, root: Uint8Array): Uint8Array {
  return canonicalBytes({ v: 3, kind: 'manifest-batch', signer: toBase64Url(signer), size, root: toBase64Url(root) });
}

function putU32(out: Uint8Array, at: number, n: number): void {
  out[at] = n >>> 24;
  out[at + 1] = (n >>> 16) & 0xff;
  out[at + 2] = (n >>> 8) & 0xff;
  out[at + 3] = n & 0xff;
}

const getU32 = (b: Uint8Array, at: number): number => ((b[at]! << 24) >>> 0) + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!);

/**
 * The plaintexts (before the envelope) of `items` signed as one batch by `author`: for item i,
 * signPublicKey || sig || 0x03 || u32be(i) || u32be(n) || u8(proof length) || proof || salt || body.
 * `salts` is for test vectors only (fixed values); product code draws 16 random bytes per item.
 */
export function signManifestBatch(items: readonly ManifestBatchItem[], author: Signer, salts?: readonly Uint8Array[]): Uint8Array[] {
  if (items.length === 0) throw new CryptoError(ErrorCode.BadManifest, 'a manifest batch needs at least one manifest');
  if (items.length > 0xffffffff) throw new CryptoError(ErrorCode.BadManifest, 'a manifest batch is at most 2^32 - 1 manifests');
  // One draw for the batch's salts (each a 16-byte view of it), not one array per manifest.
  const drawn = salts ? null : randomBytes(SALT_BYTES * items.length);
  const salt = items.map((_, i) => {
    const s = drawn ? drawn.subarray(i * SALT_BYTES, (i + 1) * SALT_BYTES) : salts![i]!;
    if (s.length !== SALT_BYTES) throw new CryptoError(ErrorCode.BadManifest, 'a manifest salt is 16 bytes');
    return s;
  });
  const { root, proofs } = merkleTreeProofs(items.map((item, i) => leafHash(salt[i]!, item)));
  const sig = signDetached(CTX_BATCH, statementBytes(author.signPublicKey, items.length, root), author.signSecretKey);
  return items.map((item, i) => {
    const proof = proofs[i]!;
    const out = new Uint8Array(HEAD_BYTES + 32 * proof.length + SALT_BYTES + item.body.length);
    out.set(author.signPublicKey, 0);
    out.set(sig, 32);
    out[96] = MANIFEST_BATCH_MARK;
    putU32(out, 97, i);
    putU32(out, 101, items.length);
    out[105] = proof.length;
    let at = HEAD_BYTES;
    for (const h of proof) {
      out.set(h, at);
      at += 32;
    }
    out.set(salt[i]!, at);
    out.set(item.body, at + SALT_BYTES);
    return out;
  });
}

// Batch statements whose signature was checked: the further manifests of a batch cost their hash path only. Keyed by
// the exact signed bytes and the signature; bounded, dropped whole when full (a batch is usually read together).
const verified = new Set<string>();
const VERIFIED_MAX = 256;

const bad = (why: string): never => {
  throw new CryptoError(ErrorCode.BadSignature, `batch-signed manifest: ${why}`);
};

/**
 * Checks a batch-signed manifest's plaintext (its byte 96 is MANIFEST_BATCH_MARK) for the version whose raw ids are
 * given: its leaf's inclusion proof up to a root, and the signature over that root's statement by the key it names.
 * Returns that key and the manifest body (still to be parsed and judged). Throws CryptoError otherwise.
 */
export function openManifestBatchPlain(plain: Uint8Array, fileId: Uint8Array, versionId: Uint8Array): { signer: Uint8Array; body: Uint8Array } {
  if (plain.length < HEAD_BYTES + SALT_BYTES || plain[96] !== MANIFEST_BATCH_MARK) throw new CryptoError(ErrorCode.BadManifest, 'not a batch-signed manifest');
  const index = getU32(plain, 97);
  const size = getU32(plain, 101);
  const depth = plain[105]!;
  if (index >= size) bad('index out of range');
  if (depth > MAX_PROOF) bad('proof too long');
  const saltAt = HEAD_BYTES + 32 * depth;
  if (plain.length < saltAt + SALT_BYTES) throw new CryptoError(ErrorCode.BadManifest, 'manifest too short');
  const proof: Uint8Array[] = [];
  for (let at = HEAD_BYTES; at < saltAt; at += 32) proof.push(plain.subarray(at, at + 32));
  const salt = plain.subarray(saltAt, saltAt + SALT_BYTES);
  const body = plain.subarray(saltAt + SALT_BYTES);
  const signer = plain.subarray(0, 32);
  const sig = plain.subarray(32, 96);
  // The root is whatever the proof leads to; the signature over it is what makes it the signer's batch.
  const root = merkleRootFromInclusion(index, size, leafHash(salt, { fileId, versionId, body }), proof);
  if (!root) return bad('the proof does not fit the batch');
  const statement = statementBytes(signer, size, root);
  const key = `${toBase64Url(sig)}.${toBase64Url(statement)}`;
  if (!verified.has(key)) {
    verifyDetached(CTX_BATCH, statement, sig, signer);
    if (verified.size >= VERIFIED_MAX) verified.clear();
    verified.add(key);
  }
  return { signer, body };
}
