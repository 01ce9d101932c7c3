// Chunks, whole-file hashes and manifests (docs/crypto.md §6–§8).
import { CryptoError, ErrorCode } from '../errors.js';
import { concatBytes, fromHex, fromUtf8, toHex, utf8 } from '../encoding.js';
import { canonicalBytes } from '../canonical.js';
import { assertSpacePath } from '../paths.js';
import { na, native } from './sodium.js';
import type { StateAddress } from 'libsodium-wrappers-sumo';
import { ENVELOPE_OVERHEAD, openEnvelope, sealEnvelope, sealEnvelopeInto } from './envelope.js';
import type { FileSubkeys, Signer, SignerPolicy } from './keys.js';
import { blake2b, constantTimeEqual, idBytes, signDetached, verifyDetached } from './primitives.js';
import { MANIFEST_BATCH_MARK, openManifestBatchPlain, signManifestBatch } from './manifest-batch.js';
import { toBase64Url } from '../encoding.js';
import type { IHasher } from 'hash-wasm';
import { giveHasher, keyedHasher, loadFastBlake2b, takeHasher } from './fast-blake2b.js';

const CTX_CHUNK = 'kluis/chunk/v1';
const CTX_MANIFEST = 'kluis/manifest/v1';

/** Keyed fast BLAKE2b instances of file keys whose chunks are hashed in bulk (prepareChunkIds). */
const fastIds = new WeakMap<FileSubkeys, IHasher>();

/**
 * From now on the chunk ids of `keys` (this very object) are computed with the fast BLAKE2b (fast-blake2b.ts): for a
 * large file, whose chunks are most of its hashing. Costs about half a millisecond (a WebAssembly instance holding the
 * chunk-id key), so not worth it for a file of a few chunks. Where the fast BLAKE2b cannot load, nothing changes.
 */
export async function prepareChunkIds(keys: FileSubkeys): Promise<void> {
  await loadFastBlake2b();
  if (fastIds.has(keys)) return;
  const h = await keyedHasher(keys.chunkIdKey);
  if (h && !fastIds.has(keys)) fastIds.set(keys, h);
}

/** BLAKE2b-256(plaintext, key = chunk-id key), raw. */
function chunkIdBytes(keys: FileSubkeys, plaintext: Uint8Array): Uint8Array {
  const fast = fastIds.get(keys);
  return fast ? fast.init().update(plaintext).digest('binary') : blake2b(32, plaintext, keys.chunkIdKey);
}

/** hex(BLAKE2b-256(plaintext, key = chunk-id key)). Keyed per file, so ids reveal nothing across files. */
export function chunkId(keys: FileSubkeys, plaintext: Uint8Array): string {
  return toHex(chunkIdBytes(keys, plaintext));
}

const CHUNK_AD_PREFIX = utf8(CTX_CHUNK);

function chunkAd(id: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(id)) throw new CryptoError(ErrorCode.ChunkIdMismatch, 'a chunk id is 64 lower-case hex digits');
  const raw = fromHex(id);
  const ad = new Uint8Array(CHUNK_AD_PREFIX.length + 32);
  ad.set(CHUNK_AD_PREFIX);
  ad.set(raw, CHUNK_AD_PREFIX.length);
  return ad;
}

/** Encrypts one chunk: returns its id and its envelope (ad = "kluis/chunk/v1" || raw chunk id). */
export function encryptChunk(keys: FileSubkeys, plaintext: Uint8Array): { id: string; ciphertext: Uint8Array } {
  const id = chunkId(keys, plaintext);
  return { id, ciphertext: sealEnvelope(keys.chunkKey, plaintext, chunkAd(id)) };
}

/**
 * encryptChunk for a caller that has just computed `id = chunkId(keys, plaintext)` itself (to look it up before
 * deciding to encrypt): the same envelope, without hashing the chunk twice. A wrong id makes a chunk no one opens.
 */
export function sealChunk(keys: FileSubkeys, id: string, plaintext: Uint8Array): Uint8Array {
  return sealEnvelope(keys.chunkKey, plaintext, chunkAd(id));
}

/** The envelope length of a chunk of `plaintextLength` bytes. */
export function sealedChunkLength(plaintextLength: number): number {
  return plaintextLength + ENVELOPE_OVERHEAD;
}

/**
 * sealChunk writing the envelope into `dest` (exactly sealedChunkLength(plaintext.length) bytes): the sync client
 * seals straight into the upload batch it is building, so a GiB uploaded allocates no GiB of ciphertexts.
 */
export function sealChunkInto(keys: FileSubkeys, id: string, plaintext: Uint8Array, dest: Uint8Array): void {
  sealEnvelopeInto(keys.chunkKey, plaintext, chunkAd(id), dest);
}

/** Opens a chunk and checks that its plaintext hashes to `id`; throws CryptoError otherwise. */
export function decryptChunk(keys: FileSubkeys, id: string, ciphertext: Uint8Array): Uint8Array {
  const plaintext = openEnvelope(keys.chunkKey, ciphertext, chunkAd(id));
  if (!constantTimeEqual(chunkIdBytes(keys, plaintext), fromHex(id))) {
    throw new CryptoError(ErrorCode.ChunkIdMismatch, 'chunk content does not match its id');
  }
  return plaintext;
}

/**
 * Streaming BLAKE2b-256 (unkeyed) of a whole file, the manifest's `hash`. Keeps the backend it was made on: the fast
 * BLAKE2b (fast-blake2b.ts) when it is loaded and an instance is free, else sodium.
 */
export class ContentHasher {
  private readonly fast = native();
  private readonly fastState: Uint8Array | null = null;
  private readonly wasmState: StateAddress | null = null;
  private bulk: IHasher | null = takeHasher();
  private done = false;
  constructor() {
    if (this.bulk) return;
    if (this.fast) {
      this.fastState = new Uint8Array(this.fast.crypto_generichash_STATEBYTES);
      this.fast.crypto_generichash_init(this.fastState, null, 32);
    } else {
      this.wasmState = na().crypto_generichash_init(null, 32);
    }
  }
  update(bytes: Uint8Array): this {
    if (this.done) throw new Error('hasher already finished');
    if (this.bulk) this.bulk.update(bytes);
    else if (this.fast) this.fast.crypto_generichash_update(this.fastState!, bytes);
    else na().crypto_generichash_update(this.wasmState!, bytes);
    return this;
  }
  /** Lower-case hex of the digest. */
  digest(): string {
    if (this.done) throw new Error('hasher already finished');
    this.done = true;
    if (this.bulk) {
      const hex = this.bulk.digest('hex');
      giveHasher(this.bulk);
      this.bulk = null;
      return hex;
    }
    if (!this.fast) return toHex(na().crypto_generichash_final(this.wasmState!, 32));
    const out = new Uint8Array(32);
    this.fast.crypto_generichash_final(this.fastState!, out);
    return toHex(out);
  }
}

/** BLAKE2b-256 hex of bytes in memory. */
export function contentHash(bytes: Uint8Array): string {
  return toHex(blake2b(32, bytes));
}

export type ManifestKind = 'file' | 'dir';

/**
 * One version of one file or folder. File names exist only here, and only encrypted. Version 2 adds `memberSeq`, the
 * position of the space's membership log the author wrote under (docs/crypto.md §4.1, §8); version 1 is still read.
 */
export interface Manifest {
  v: 1 | 2;
  /** v2 only: the membership log entry (seq) whose writers the version is judged by. */
  memberSeq?: number;
  fileId: string;
  versionId: string;
  /** The versionId this version was made from, or null for the first version. */
  parent: string | null;
  /** NFC-normalised POSIX path inside the space. */
  path: string;
  kind: ManifestKind;
  size: number;
  mtimeMs: number;
  /** [chunkId, plaintext size] in file order. */
  chunks: [string, number][];
  /** BLAKE2b-256 hex of the plaintext (folders and deletions carry the hash of zero bytes). */
  hash: string;
  deleted: boolean;
}

const HEX64 = /^[0-9a-f]{64}$/;

const MANIFEST_V1_FIELDS = ['chunks', 'deleted', 'fileId', 'hash', 'kind', 'mtimeMs', 'parent', 'path', 'size', 'v', 'versionId'] as const;
const MANIFEST_V2_FIELDS = [...MANIFEST_V1_FIELDS, 'memberSeq'] as const;

/** Whether `o`'s own enumerable keys are exactly `fields` (checked without sorting: every manifest made or read). */
function hasExactly(o: object, fields: readonly string[]): boolean {
  if (Object.keys(o).length !== fields.length) return false;
  for (const f of fields) if (!Object.prototype.propertyIsEnumerable.call(o, f)) return false;
  return true;
}

/** Throws CryptoError(bad_manifest) unless `m` has exactly the manifest's fields with valid values. */
export function assertManifest(m: unknown): asserts m is Manifest {
  const bad = (why: string): never => {
    throw new CryptoError(ErrorCode.BadManifest, `bad manifest: ${why}`);
  };
  if (typeof m !== 'object' || m === null || Array.isArray(m)) bad('not an object');
  const o = m as Record<string, unknown>;
  if (o.v !== 1 && o.v !== 2) throw new CryptoError(ErrorCode.UnsupportedVersion, `unknown manifest version ${String(o.v)}`);
  if (!hasExactly(o, o.v === 1 ? MANIFEST_V1_FIELDS : MANIFEST_V2_FIELDS)) bad(`unexpected fields (${Object.keys(o).sort().join(',')})`);
  if (o.v === 2 && (!Number.isSafeInteger(o.memberSeq) || (o.memberSeq as number) < 1)) bad('memberSeq');
  if (typeof o.fileId !== 'string') bad('fileId');
  idBytes(o.fileId as string, 'fileId');
  if (typeof o.versionId !== 'string') bad('versionId');
  idBytes(o.versionId as string, 'versionId');
  if (o.parent !== null) {
    if (typeof o.parent !== 'string') bad('parent');
    idBytes(o.parent as string, 'parent');
  }
  if (typeof o.path !== 'string') bad('path');
  assertSpacePath(o.path as string);
  if (o.kind !== 'file' && o.kind !== 'dir') bad('kind');
  if (!Number.isSafeInteger(o.mtimeMs) || (o.mtimeMs as number) < 0) bad('mtimeMs');
  if (typeof o.deleted !== 'boolean') bad('deleted');
  assertContent(o, bad);
  if (o.kind === 'dir' && (o.size !== 0)) bad('a folder has no content');
}

/** The content fields a manifest and a folder listing's entry share: `size`, `hash` and `chunks` adding up to `size`. */
export function assertContent(o: Record<string, unknown>, bad: (why: string) => never): void {
  if (!Number.isSafeInteger(o.size) || (o.size as number) < 0) bad('size');
  if (typeof o.hash !== 'string' || !HEX64.test(o.hash)) bad('hash');
  if (!Array.isArray(o.chunks)) bad('chunks');
  let total = 0;
  for (const c of o.chunks as unknown[]) {
    if (!Array.isArray(c) || c.length !== 2 || typeof c[0] !== 'string' || !HEX64.test(c[0]) || !Number.isSafeInteger(c[1]) || (c[1] as number) <= 0) bad('chunk entry');
    total += (c as [string, number])[1];
  }
  if (total !== o.size) bad('chunk sizes do not add up to size');
}

/** Where the raw ids start in a manifest's ad (after the context string). */
const MANIFEST_AD_PREFIX = utf8(CTX_MANIFEST);
const AD_IDS_AT = MANIFEST_AD_PREFIX.length;

function manifestAd(fileId: string, versionId: string): Uint8Array {
  return concatBytes(MANIFEST_AD_PREFIX, idBytes(fileId, 'fileId'), idBytes(versionId, 'versionId'));
}

/**
 * Signs and encrypts a manifest. Plaintext of the envelope: signPublicKey(32) || signature(64) || canonical JSON;
 * the signature covers "kluis/manifest/v1" || 0x00 || fileId || versionId || canonical JSON.
 */
export function sealManifest(manifest: Manifest, keys: FileSubkeys, author: Signer): Uint8Array {
  assertManifest(manifest);
  const body = canonicalBytes(manifest);
  const ad = manifestAd(manifest.fileId, manifest.versionId);
  const signature = signDetached(CTX_MANIFEST, concatBytes(ad.subarray(AD_IDS_AT), body), author.signSecretKey);
  return sealEnvelope(keys.manifestKey, concatBytes(author.signPublicKey, signature, body), ad);
}

/**
 * Signs and encrypts many manifests with one signature (docs/crypto.md §8.1): each envelope holds the signer's key,
 * the batch signature, the manifest's inclusion proof and salt, then its canonical JSON. Every manifest must be of
 * version 2. `keys[i]` are the subkeys of `manifests[i]`'s file. `salts` is for test vectors only.
 */
export function sealManifests(items: readonly { manifest: Manifest; keys: FileSubkeys }[], author: Signer, salts?: readonly Uint8Array[]): Uint8Array[] {
  const batch = items.map(({ manifest }) => {
    assertManifest(manifest);
    if (manifest.v !== 2) throw new CryptoError(ErrorCode.BadManifest, 'a batch-signed manifest is of version 2');
    const ad = manifestAd(manifest.fileId, manifest.versionId);
    return { ad, fileId: ad.subarray(AD_IDS_AT, AD_IDS_AT + 16), versionId: ad.subarray(AD_IDS_AT + 16), body: canonicalBytes(manifest) };
  });
  const plains = signManifestBatch(batch, author, salts);
  return items.map(({ keys }, i) => sealEnvelope(keys.manifestKey, plains[i]!, batch[i]!.ad));
}

/**
 * Who may have written a manifest: its signer's key and the membership position it names (null for a v1 manifest,
 * which names none). A plain SignerPolicy ignores the position.
 */
export type ManifestSignerPolicy = (signPublicKey: string, memberSeq: number | null) => boolean;

/** Decrypts and verifies a manifest sealed for (fileId, versionId); returns it with its author's key. */
export function openManifest(sealed: Uint8Array, keys: FileSubkeys, expect: { fileId: string; versionId: string }, trusted: SignerPolicy | ManifestSignerPolicy): { manifest: Manifest; signer: string } {
  const ad = manifestAd(expect.fileId, expect.versionId);
  const plain = openEnvelope(keys.manifestKey, sealed, ad);
  if (plain.length < 97) throw new CryptoError(ErrorCode.BadManifest, 'manifest too short');
  let signerPk: Uint8Array;
  let body: Uint8Array;
  // Byte 96 tells the layout: '{' begins the body of a manifest signed alone, MANIFEST_BATCH_MARK a batch's layout.
  const batched = plain[96] === MANIFEST_BATCH_MARK;
  if (!batched && plain[96] !== 0x7b) throw new CryptoError(ErrorCode.BadManifest, 'unknown manifest layout');
  const ids = ad.subarray(AD_IDS_AT); // fileId || versionId, raw
  if (batched) {
    ({ signer: signerPk, body } = openManifestBatchPlain(plain, ids.subarray(0, 16), ids.subarray(16)));
  } else {
    signerPk = plain.subarray(0, 32);
    body = plain.subarray(96);
    verifyDetached(CTX_MANIFEST, concatBytes(ids, body), plain.subarray(32, 96), signerPk);
  }
  const signer = toBase64Url(signerPk);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fromUtf8(body));
  } catch {
    throw new CryptoError(ErrorCode.BadManifest, 'manifest is not JSON');
  }
  assertManifest(parsed);
  // Only the canonical form is accepted, so one manifest has exactly one signed byte string.
  if (!constantTimeEqual(canonicalBytes(parsed), body)) throw new CryptoError(ErrorCode.BadManifest, 'manifest is not in canonical form');
  if (parsed.fileId !== expect.fileId || parsed.versionId !== expect.versionId) throw new CryptoError(ErrorCode.BadManifest, 'manifest belongs to another version');
  if (batched && parsed.v !== 2) throw new CryptoError(ErrorCode.BadManifest, 'a batch-signed manifest is of version 2');
  // Judged only now that the signed body is parsed: a v2 manifest is judged at the log position it names.
  if (!trusted(signer, parsed.v === 2 ? parsed.memberSeq! : null)) throw new CryptoError(ErrorCode.UntrustedSigner, 'the manifest was signed by someone who may not write here');
  return { manifest: parsed, signer };
}
