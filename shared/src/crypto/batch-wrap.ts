// File-key wraps of version 2 (docs/crypto.md §5.2): one ephemeral X25519 key and one signature per batch of wraps,
// each wrap carrying a Merkle inclusion proof of itself under the signed batch statement. Version 1 (keys.ts) spent
// a crypto_box_seal and a signature per file, which was most of the CPU of a first sync of many small files.
import { CryptoError, ErrorCode } from '../errors.js';
import { concatBytes, toBase64Url, utf8 } from '../encoding.js';
import { canonicalBytes } from '../canonical.js';
import { openEnvelope, sealEnvelope } from './envelope.js';
import { merkleLeafHashOf, merkleTreeProofs, verifyMerkleInclusion } from './merkle.js';
import { blake2b, constantTimeEqual, decodeB64, idBytes, signDetached, verifyDetached, x25519, boxKeyPair } from './primitives.js';
import type { Signer, SignerPolicy, WrapExpectation } from './keys.js';

const CTX_KEY = 'kluis/wrap-key/v2';
const CTX_AD = 'kluis/wrap/v2';
const CTX_LEAF = 'kluis/wrap-leaf/v2';
const CTX_BATCH = 'kluis/wrap-batch/v2';
// The prefixes encoded once (each wrap's AD and leaf start with one).
const AD_PREFIX = utf8(CTX_AD);
const LEAF_PREFIX = utf8(CTX_LEAF);
/** Env(wrapKey, 32-byte key): version byte, nonce, key, tag. */
const SEALED_BYTES = 1 + 24 + 32 + 16;
/** More leaves than any batch: a proof longer than this is refused before any hashing. */
const MAX_PROOF = 64;

/** A file key wrapped in a batch (docs/crypto.md §5.2). Every field but `proof`, `index` and `sig` is signed through the root. */
export interface BatchFileKeyWrap {
  v: 2;
  kind: 'file-key';
  spaceId: string;
  keyEpoch: number;
  fileId: string;
  /** X25519 public key the batch is wrapped to (the space public key of the epoch). */
  recipient: string;
  /** The batch's ephemeral X25519 public key. */
  ephemeral: string;
  /** Env(wrapKey, fileKey, ad) (base64url, 73 bytes). */
  sealed: string;
  signer: string;
  index: number;
  size: number;
  /** RFC 9162 inclusion proof of this wrap's leaf (base64url hashes). */
  proof: string[];
  root: string;
  /** Ed25519 over "kluis/wrap-batch/v2" || 0x00 || the batch statement. */
  sig: string;
}

/** What one batch wraps: the file keys of one space, epoch and recipient. */
export interface BatchWrapTarget {
  spaceId: string;
  keyEpoch: number;
  recipient: string;
}

function u32be(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) throw new CryptoError(ErrorCode.BadKey, 'keyEpoch out of range');
  return new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

/** What every wrap's AD of one space and epoch starts with (the file id follows). */
function wrapAdHead(spaceId: string, keyEpoch: number): Uint8Array {
  return concatBytes(AD_PREFIX, idBytes(spaceId, 'spaceId'), u32be(keyEpoch));
}

function wrapAd(spaceId: string, keyEpoch: number, fileId: string): Uint8Array {
  return concatBytes(wrapAdHead(spaceId, keyEpoch), idBytes(fileId, 'fileId'));
}

function wrapKey(shared: Uint8Array, ephPk: Uint8Array, recipientPk: Uint8Array): Uint8Array {
  return blake2b(32, concatBytes(utf8(CTX_KEY), shared, ephPk, recipientPk));
}

function exchange(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  try {
    return x25519(secretKey, publicKey); // throws on an all-zero result (a small-order point)
  } catch {
    throw new CryptoError(ErrorCode.BadKey, 'the batch key exchange gives no key (small-order public key)');
  }
}

function leafHash(fileId: string, sealed: Uint8Array): Uint8Array {
  return leafHashOfId(idBytes(fileId, 'fileId'), sealed);
}

/** leafHash of a file id already decoded. */
function leafHashOfId(fileId: Uint8Array, sealed: Uint8Array): Uint8Array {
  return merkleLeafHashOf(LEAF_PREFIX, fileId, sealed);
}

function statementBytes(w: Pick<BatchFileKeyWrap, 'spaceId' | 'keyEpoch' | 'recipient' | 'ephemeral' | 'signer' | 'size' | 'root'>): Uint8Array {
  return canonicalBytes({ v: 2, spaceId: w.spaceId, keyEpoch: w.keyEpoch, recipient: w.recipient, ephemeral: w.ephemeral, signer: w.signer, size: w.size, root: w.root });
}

/**
 * Wraps many file keys at once: one ephemeral X25519 exchange with `target.recipient` and one signature by `author`.
 * `ephemeral` is for test vectors only (a fixed keypair); product code lets it be drawn here.
 */
export function wrapFileKeysBatch(items: readonly { fileId: string; fileKey: Uint8Array }[], target: BatchWrapTarget, author: Signer, ephemeral?: { publicKey: Uint8Array; privateKey: Uint8Array }): BatchFileKeyWrap[] {
  if (items.length === 0) throw new CryptoError(ErrorCode.BadKey, 'a wrap batch needs at least one file key');
  const recipientPk = decodeB64(target.recipient, 'recipient', 32);
  // wrapAd and leafHash, with the AD's shared head made once and each file id decoded once.
  const adHead = wrapAdHead(target.spaceId, target.keyEpoch);
  const ids = items.map(({ fileId }) => idBytes(fileId, 'fileId'));
  const eph = ephemeral ?? boxKeyPair();
  const key = wrapKey(exchange(eph.privateKey, recipientPk), eph.publicKey, recipientPk);
  if (!ephemeral) eph.privateKey.fill(0);
  const sealed = items.map(({ fileKey }, i) => {
    if (fileKey.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'fileKey must be 32 bytes');
    return sealEnvelope(key, fileKey, concatBytes(adHead, ids[i]!));
  });
  key.fill(0);
  const leaves = items.map((_, i) => leafHashOfId(ids[i]!, sealed[i]!));
  const { root, proofs } = merkleTreeProofs(leaves);
  const common = {
    spaceId: target.spaceId, keyEpoch: target.keyEpoch, recipient: target.recipient, ephemeral: toBase64Url(eph.publicKey),
    signer: toBase64Url(author.signPublicKey), size: items.length, root: toBase64Url(root),
  };
  const sig = toBase64Url(signDetached(CTX_BATCH, statementBytes(common), author.signSecretKey));
  const enc = encoder();
  return items.map(({ fileId }, i) => ({
    v: 2, kind: 'file-key', ...common, fileId, sealed: toBase64Url(sealed[i]!), index: i, proof: proofs[i]!.map(enc), sig,
  }));
}

/** base64url of tree nodes, each encoded once (a node sits in the proofs of every leaf below its sibling). */
function encoder(): (h: Uint8Array) => string {
  const done = new Map<Uint8Array, string>();
  return (h) => {
    let text = done.get(h);
    if (text === undefined) done.set(h, (text = toBase64Url(h)));
    return text;
  };
}

// Statements whose signature was checked (statementKey): the further wraps of a batch cost their hash path only.
// Bounded; dropped whole when full (a batch is read together, so that is rarely felt).
const verified = new Set<string>();
const VERIFIED_MAX = 256;

const bad = (why: string): never => {
  throw new CryptoError(ErrorCode.BadSignature, `batch wrap: ${why}`);
};

/** The signature and every field of the statement, unambiguously (JSON): one key per signed statement. */
function statementKey(w: WrapBatchStatement): string {
  return JSON.stringify([w.sig, w.spaceId, w.keyEpoch, w.recipient, w.ephemeral, w.signer, w.size, w.root]);
}

/** The statement's signature by `signer`, checked once per statement (cached). */
function checkStatement(wrap: WrapBatchStatement): void {
  const key = statementKey(wrap);
  if (verified.has(key)) return;
  verifyDetached(CTX_BATCH, statementBytes(wrap), decodeB64(wrap.sig, 'sig', 64), decodeB64(wrap.signer, 'signer', 32));
  if (verified.size >= VERIFIED_MAX) verified.clear();
  verified.add(key);
}

function checkShape(wrap: BatchFileKeyWrap): Uint8Array {
  if (wrap.v !== 2 || wrap.kind !== 'file-key') throw new CryptoError(ErrorCode.UnsupportedVersion, 'not a version-2 file-key wrap');
  if (!Number.isSafeInteger(wrap.size) || !Number.isSafeInteger(wrap.index) || wrap.index < 0 || wrap.index >= wrap.size) bad('index out of range');
  if (!Array.isArray(wrap.proof) || wrap.proof.length > MAX_PROOF) bad('proof too long');
  const sealed = decodeB64(wrap.sealed, 'sealed');
  if (sealed.length !== SEALED_BYTES) bad('sealed key has the wrong length');
  return sealed;
}

/**
 * Checks a version-2 wrap's own signature: the leaf's inclusion under `root` and the statement's signature by
 * `signer`. Throws CryptoError(bad_signature) on any mismatch. The server uses it to refuse forged wraps early.
 */
export function verifyBatchWrapSignature(wrap: BatchFileKeyWrap): void {
  const sealed = checkShape(wrap);
  const proof = wrap.proof.map((h) => decodeB64(h, 'proof', 32));
  const root = decodeB64(wrap.root, 'root', 32);
  if (!verifyMerkleInclusion(wrap.index, wrap.size, leafHash(wrap.fileId, sealed), proof, root)) bad('the wrap is not in the signed batch');
  checkStatement(wrap);
}

/**
 * The order of a complete batch's members by `index` (each 0..size-1 exactly once), or null when some are missing or
 * repeated.
 */
function completeOrder(indexes: readonly number[], size: number): number[] | null {
  if (indexes.length !== size) return null;
  const byIndex: (number | undefined)[] = new Array(size);
  for (let i = 0; i < indexes.length; i++) {
    const at = indexes[i]!;
    if (!Number.isSafeInteger(at) || at < 0 || at >= size || byIndex[at] !== undefined) return null;
    byIndex[at] = i;
  }
  return byIndex as number[];
}

/**
 * The tree over a complete batch's leaves (in index order), its root required to be `root`: the proofs, base64url,
 * leaf by leaf (each node encoded once).
 */
function batchTreeProofs(root: string, leaves: readonly { fileId: string; sealed: Uint8Array }[]): string[][] {
  const tree = merkleTreeProofs(leaves.map((l) => leafHash(l.fileId, l.sealed)));
  const enc = encoder();
  if (enc(tree.root) !== root) bad('the wraps are not the signed batch');
  return tree.proofs.map((p) => p.map(enc));
}

/**
 * verifyBatchWrapSignature for many wraps at once (a commit's): the wraps of a complete batch (each index 0..size-1
 * once) are checked by rebuilding the tree from their leaves, about two hashes a wrap instead of a proof's worth, and
 * requiring each proof to be exactly the one the tree gives (base64url has one encoding per value, and a tree one
 * proof per leaf: the same wraps pass as one by one). Other wraps are checked one by one. Throws on the first failure.
 */
export function verifyBatchWrapSignatures(wraps: readonly BatchFileKeyWrap[]): void {
  const groups = new Map<string, BatchFileKeyWrap[]>();
  for (const w of wraps) {
    const key = statementKey(w);
    const g = groups.get(key);
    if (g) g.push(w);
    else groups.set(key, [w]);
  }
  for (const group of groups.values()) {
    const sealed = group.map(checkShape);
    const order = completeOrder(group.map((w) => w.index), group[0]!.size);
    if (!order) {
      group.forEach(verifyBatchWrapSignature);
      continue;
    }
    const proofs = batchTreeProofs(group[0]!.root, order.map((i) => ({ fileId: group[i]!.fileId, sealed: sealed[i]! })));
    order.forEach((i, index) => {
      const want = proofs[index]!;
      const got = group[i]!.proof;
      if (got.length !== want.length || got.some((h, j) => h !== want[j])) bad('a proof is not the batch tree\'s');
    });
    checkStatement(group[0]!);
  }
}

/** What every wrap of a batch repeats: its signed statement and signature (a commit may send it once, docs/api.md). */
export type WrapBatchStatement = Pick<BatchFileKeyWrap, 'v' | 'kind' | 'spaceId' | 'keyEpoch' | 'recipient' | 'ephemeral' | 'signer' | 'size' | 'root' | 'sig'>;

/** A wrap of a batch sent whole, without what its statement holds and without its proof (the tree gives it). */
export interface WrapBatchMember {
  fileId: string;
  index: number;
  sealed: string;
}

/** The statement of a version-2 wrap's batch. */
export function wrapBatchStatement(w: BatchFileKeyWrap): WrapBatchStatement {
  return { v: 2, kind: 'file-key', spaceId: w.spaceId, keyEpoch: w.keyEpoch, recipient: w.recipient, ephemeral: w.ephemeral, signer: w.signer, size: w.size, root: w.root, sig: w.sig };
}

/**
 * The wraps of a batch sent whole (docs/crypto.md §5.2 "A batch sent whole"): every member (each index 0..size-1
 * once), the tree rebuilt from their leaves and its root the statement's, the statement's signature checked. Returns
 * each member's complete wrap, proof included, in `members`' order: the very records the batch's author made, each
 * verified. Throws CryptoError(bad_signature) otherwise.
 */
export function expandWrapBatch(statement: WrapBatchStatement, members: readonly WrapBatchMember[]): BatchFileKeyWrap[] {
  if (statement.v !== 2 || statement.kind !== 'file-key') throw new CryptoError(ErrorCode.UnsupportedVersion, 'not a version-2 file-key batch');
  const order = completeOrder(members.map((m) => m.index), statement.size);
  if (!order) bad(`a batch of ${statement.size} wraps is sent whole: each index from 0 to ${statement.size - 1} once`);
  const sealed = members.map((m) => {
    const bytes = decodeB64(m.sealed, 'sealed');
    if (bytes.length !== SEALED_BYTES) bad('sealed key has the wrong length');
    return bytes;
  });
  const proofs = batchTreeProofs(statement.root, order!.map((i) => ({ fileId: members[i]!.fileId, sealed: sealed[i]! })));
  checkStatement(statement);
  const { spaceId, keyEpoch, recipient, ephemeral, signer, size, root, sig } = statement;
  return members.map((m) => ({
    v: 2, kind: 'file-key', spaceId, keyEpoch, recipient, ephemeral, signer, size, root, fileId: m.fileId, sealed: m.sealed, index: m.index, proof: proofs[m.index]!, sig,
  }));
}

/** Verifies a version-2 wrap as docs/crypto.md §5.2 says and opens it with the recipient's keypair. */
export function openBatchWrap(wrap: BatchFileKeyWrap, expect: WrapExpectation, recipient: { publicKey: Uint8Array; secretKey: Uint8Array }, trusted: SignerPolicy): Uint8Array {
  verifyBatchWrapSignature(wrap);
  if (!trusted(wrap.signer)) throw new CryptoError(ErrorCode.UntrustedSigner, 'the wrap was signed by someone who may not grant this key');
  if (wrap.spaceId !== expect.spaceId || wrap.keyEpoch !== expect.keyEpoch || wrap.fileId !== expect.fileId) {
    throw new CryptoError(ErrorCode.WrongRecipient, 'the wrap belongs to another space, epoch or file');
  }
  if (!constantTimeEqual(decodeB64(wrap.recipient, 'recipient', 32), recipient.publicKey)) {
    throw new CryptoError(ErrorCode.WrongRecipient, 'the wrap is sealed to another key');
  }
  const ephPk = decodeB64(wrap.ephemeral, 'ephemeral', 32);
  const key = wrapKey(exchange(recipient.secretKey, ephPk), ephPk, recipient.publicKey);
  let fileKey: Uint8Array;
  try {
    fileKey = openEnvelope(key, decodeB64(wrap.sealed, 'sealed'), wrapAd(expect.spaceId, expect.keyEpoch, expect.fileId));
  } catch {
    throw new CryptoError(ErrorCode.DecryptFailed, 'sealed key does not open');
  } finally {
    key.fill(0);
  }
  if (fileKey.length !== 32) throw new CryptoError(ErrorCode.DecryptFailed, 'sealed key has the wrong length');
  return fileKey;
}
