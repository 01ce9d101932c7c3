// File requests, upload-only links (docs/crypto.md §9.2): https://<host>/r/<requestId>#<requestSecret>.
//
// The member who makes a request signs an upload grant with their own identity key; the grant names a request
// signing key derived from the secret in the link's fragment. An uploader without an account signs its file-key
// wrap, its manifest and an upload receipt with that request key; members' clients accept such a version only as
// the grant allows (a new file directly in the granted folder, before expiry, within the file count). The folder's
// name travels sealed: to the space key for members, under a key from the secret for the uploader.
import { CryptoError, ErrorCode } from '../errors.js';
import { assertSpacePath } from '../paths.js';
import { canonicalBytes } from '../canonical.js';
import { concatBytes, fromUtf8, toBase64Url, utf8 } from '../encoding.js';
import { openEnvelope, sealEnvelope } from './envelope.js';
import type { AccountKeys, SpaceKeyPair } from './keys.js';
import type { Manifest } from './content.js';
import { linkAuthHash } from './link.js';
import { constantTimeEqual, decodeB64, idBytes, randomBytes, signDetached, verifyDetached, kdfDerive, openSealedBox, sealBox, signSeedKeyPair } from './primitives.js';

export const REQUEST_SECRET_BYTES = 32;
const KDF_CTX = 'kluisreq';
const CTX_GRANT = 'kluis/upload-grant/v1';
const CTX_RECEIPT = 'kluis/request-upload/v1';
const CTX_FOLDER = 'kluis/request-folder/v1';

/** What the link's secret gives its holder. Never leaves the uploader's browser (or the creating client). */
export interface RequestKeys {
  /** Ed25519: signs the uploads' wraps, manifests and receipts. */
  signPublicKey: Uint8Array;
  signSecretKey: Uint8Array;
  /** Opens the grant's `folderForUploader`. */
  folderKey: Uint8Array;
  /** Bearer proof of the secret for the server, which stores only hex(BLAKE2b-256(requestAuth)). */
  requestAuth: Uint8Array;
}

/** A fresh request secret (base64url, 43 characters). */
export function newRequestSecret(): string {
  return toBase64Url(randomBytes(REQUEST_SECRET_BYTES));
}

/** signSeed = KDF(1, "kluisreq", secret), folderKey = KDF(2, …), requestAuth = KDF(3, …). */
export function deriveRequestKeys(secretB64: string): RequestKeys {
  const secret = decodeB64(secretB64, 'requestSecret', REQUEST_SECRET_BYTES);
  const kdf = (id: number) => kdfDerive(32, id, KDF_CTX, secret);
  const sign = signSeedKeyPair(kdf(1));
  return { signPublicKey: sign.publicKey, signSecretKey: sign.privateKey, folderKey: kdf(2), requestAuth: kdf(3) };
}

/** What the server stores to check a presented requestAuth: hex(BLAKE2b-256(requestAuth)), as for links. */
export function requestAuthHash(keys: RequestKeys): string {
  return linkAuthHash(keys.requestAuth);
}

/** The signed grant (docs/crypto.md §9.2). `sig` covers every other field. */
export interface UploadGrant {
  v: 1;
  kind: 'upload-grant';
  requestId: string;
  spaceId: string;
  keyEpoch: number;
  spacePublicKey: string;
  /** The creator's verified membership position: the uploads are judged there. */
  memberSeq: number;
  expiresAt: number;
  maxFiles: number;
  requestPublicKey: string;
  /** Seal(UTF8(folder), spacePublicKey): members open it. */
  folderSealed: string;
  /** Env(folderKey, UTF8(folder), "kluis/request-folder/v1" || requestId || spaceId || spacePublicKey): the uploader opens it. */
  folderForUploader: string;
  signer: string;
  sig: string;
}

export interface GrantFields {
  requestId: string;
  spaceId: string;
  keyEpoch: number;
  spacePublicKey: string;
  memberSeq: number;
  expiresAt: number;
  maxFiles: number;
  /** The space path of the folder uploads land in; "" is the space's top folder. */
  folder: string;
}

function assertFolder(folder: string): string {
  if (folder !== '') assertSpacePath(folder);
  return folder;
}

function folderAd(requestId: string, spaceId: string, spacePublicKey: string): Uint8Array {
  return concatBytes(utf8(CTX_FOLDER), idBytes(requestId, 'requestId'), idBytes(spaceId, 'spaceId'), decodeB64(spacePublicKey, 'spacePublicKey', 32));
}

/** The creator's side: a grant for `request`'s key, signed with the creator's identity key. */
export function signUploadGrant(f: GrantFields, request: RequestKeys, author: AccountKeys): UploadGrant {
  const folder = utf8(assertFolder(f.folder));
  const spacePk = decodeB64(f.spacePublicKey, 'spacePublicKey', 32);
  const fields: Omit<UploadGrant, 'sig'> = {
    v: 1, kind: 'upload-grant', requestId: f.requestId, spaceId: f.spaceId, keyEpoch: f.keyEpoch, spacePublicKey: f.spacePublicKey,
    memberSeq: f.memberSeq, expiresAt: f.expiresAt, maxFiles: f.maxFiles, requestPublicKey: toBase64Url(request.signPublicKey),
    folderSealed: toBase64Url(sealBox(folder, spacePk)),
    folderForUploader: toBase64Url(sealEnvelope(request.folderKey, folder, folderAd(f.requestId, f.spaceId, f.spacePublicKey))),
    signer: toBase64Url(author.signPublicKey),
  };
  return { ...fields, sig: toBase64Url(signDetached(CTX_GRANT, canonicalBytes(fields), author.signSecretKey)) };
}

const GRANT_FIELDS = 'expiresAt,folderForUploader,folderSealed,keyEpoch,kind,maxFiles,memberSeq,requestId,requestPublicKey,sig,signer,spaceId,spacePublicKey,v';

/** Checks the grant's shape and its signature by `signer` (not who the signer is). Throws CryptoError. */
export function verifyUploadGrant(grant: unknown): asserts grant is UploadGrant {
  const bad = (why: string): never => {
    throw new CryptoError(ErrorCode.BadSignature, `bad upload grant: ${why}`);
  };
  if (typeof grant !== 'object' || grant === null || Array.isArray(grant)) bad('not an object');
  const g = grant as Record<string, unknown>;
  if (Object.keys(g).sort().join(',') !== GRANT_FIELDS) bad('unexpected fields');
  if (g.v !== 1 || g.kind !== 'upload-grant') bad('unknown version or kind');
  for (const k of ['keyEpoch', 'memberSeq', 'expiresAt', 'maxFiles']) if (!Number.isSafeInteger(g[k]) || (g[k] as number) < 1) bad(k);
  for (const k of ['requestId', 'spaceId', 'spacePublicKey', 'requestPublicKey', 'folderSealed', 'folderForUploader', 'signer', 'sig']) if (typeof g[k] !== 'string') bad(k);
  idBytes(g.requestId as string, 'requestId');
  idBytes(g.spaceId as string, 'spaceId');
  decodeB64(g.spacePublicKey as string, 'spacePublicKey', 32);
  decodeB64(g.requestPublicKey as string, 'requestPublicKey', 32);
  const { sig, ...fields } = g;
  verifyDetached(CTX_GRANT, canonicalBytes(fields), decodeB64(sig as string, 'sig', 64), decodeB64(g.signer as string, 'signer', 32));
}

/**
 * The uploader's side: the grant must be signed, name the request key the secret gives (so a server cannot swap in
 * a grant of its own, with a space key it holds), and its folder must open under the secret's folder key (whose `ad`
 * binds the space and its public key). Returns the folder. Who signed it cannot be judged without an account.
 */
export function openGrantForUploader(grant: unknown, request: RequestKeys, requestId: string): { grant: UploadGrant; folder: string } {
  verifyUploadGrant(grant);
  if (grant.requestId !== requestId) throw new CryptoError(ErrorCode.BadSignature, 'the grant belongs to another request');
  if (!constantTimeEqual(decodeB64(grant.requestPublicKey, 'requestPublicKey', 32), request.signPublicKey)) {
    throw new CryptoError(ErrorCode.BadKey, 'the grant is not for the key in this link');
  }
  const folder = fromUtf8(openEnvelope(request.folderKey, decodeB64(grant.folderForUploader, 'folderForUploader'), folderAd(grant.requestId, grant.spaceId, grant.spacePublicKey)));
  return { grant, folder: assertFolder(folder) };
}

/**
 * A member's side: `writerAt(signer, seq)` is the verified membership log's judgement (§4.1) and `spaceKey` the key
 * pair of the grant's epoch as the log names it. Returns the folder.
 */
export function openGrantForMember(grant: unknown, spaceId: string, spaceKey: SpaceKeyPair, writerAt: (signer: string, seq: number) => boolean): { grant: UploadGrant; folder: string } {
  verifyUploadGrant(grant);
  if (grant.spaceId !== spaceId) throw new CryptoError(ErrorCode.BadSignature, 'the grant belongs to another space');
  if (grant.spacePublicKey !== toBase64Url(spaceKey.publicKey)) throw new CryptoError(ErrorCode.BadKey, 'the grant names another space key than the log');
  if (!writerAt(grant.signer, grant.memberSeq)) throw new CryptoError(ErrorCode.UntrustedSigner, 'the grant was signed by someone who was not a writer of this space');
  const opened = openSealedBox(decodeB64(grant.folderSealed, 'folderSealed'), spaceKey.publicKey, spaceKey.secretKey);
  return { grant, folder: assertFolder(fromUtf8(opened)) };
}

/** One upload through a request: which file and version, and its slot (1..maxFiles), signed by the request key. */
export interface UploadReceipt {
  v: 1;
  kind: 'request-upload';
  requestId: string;
  spaceId: string;
  fileId: string;
  versionId: string;
  slot: number;
  sig: string;
}

export function signUploadReceipt(f: Omit<UploadReceipt, 'v' | 'kind' | 'sig'>, request: RequestKeys): UploadReceipt {
  const fields = { v: 1 as const, kind: 'request-upload' as const, requestId: f.requestId, spaceId: f.spaceId, fileId: f.fileId, versionId: f.versionId, slot: f.slot };
  return { ...fields, sig: toBase64Url(signDetached(CTX_RECEIPT, canonicalBytes(fields), request.signSecretKey)) };
}

const RECEIPT_FIELDS = 'fileId,kind,requestId,sig,slot,spaceId,v,versionId';

/** Checks a receipt's shape and its signature by the grant's request key. Throws CryptoError. */
export function verifyUploadReceipt(receipt: unknown, requestPublicKey: string): asserts receipt is UploadReceipt {
  const bad = (why: string): never => {
    throw new CryptoError(ErrorCode.BadSignature, `bad upload receipt: ${why}`);
  };
  if (typeof receipt !== 'object' || receipt === null || Array.isArray(receipt)) bad('not an object');
  const r = receipt as Record<string, unknown>;
  if (Object.keys(r).sort().join(',') !== RECEIPT_FIELDS) bad('unexpected fields');
  if (r.v !== 1 || r.kind !== 'request-upload' || !Number.isSafeInteger(r.slot) || (r.slot as number) < 1) bad('version, kind or slot');
  for (const k of ['requestId', 'spaceId', 'fileId', 'versionId']) {
    if (typeof r[k] !== 'string') bad(k);
    idBytes(r[k] as string, k);
  }
  if (typeof r.sig !== 'string') bad('sig');
  const { sig, ...fields } = r;
  verifyDetached(CTX_RECEIPT, canonicalBytes(fields), decodeB64(sig as string, 'sig', 64), decodeB64(requestPublicKey, 'requestPublicKey', 32));
}

/** The request key as the author of its uploads' wraps and manifests (wrapFileKey, sealManifest). */
export function requestAuthor(request: RequestKeys): Pick<AccountKeys, 'signPublicKey' | 'signSecretKey'> {
  return { signPublicKey: request.signPublicKey, signSecretKey: request.signSecretKey };
}

/**
 * Why a member's client refuses a version written with a request key, or null (docs/crypto.md §9.2): the receipt must
 * be this version's and within the grant's file count; the manifest a new file (no parent, not deleted) directly in
 * the granted folder, at the grant's position; and the server's commit time not after the grant's expiry.
 */
export function requestUploadProblem(grant: UploadGrant, folder: string, receipt: UploadReceipt, manifest: Manifest, committedAt: number): string | null {
  if (receipt.requestId !== grant.requestId || receipt.spaceId !== grant.spaceId) return 'the receipt belongs to another request';
  if (receipt.fileId !== manifest.fileId || receipt.versionId !== manifest.versionId) return 'the receipt belongs to another version';
  if (receipt.slot > grant.maxFiles) return `more files than the request allows (${grant.maxFiles})`;
  if (manifest.v !== 2 || manifest.memberSeq !== grant.memberSeq) return 'the upload names another membership position than its grant';
  if (manifest.parent !== null || manifest.deleted || manifest.kind !== 'file') return 'an upload may only add a new file';
  const slash = manifest.path.lastIndexOf('/');
  if ((slash < 0 ? '' : manifest.path.slice(0, slash)) !== folder) return 'the upload is outside the requested folder';
  if (committedAt > grant.expiresAt) return 'the upload came after the request expired';
  return null;
}
