// Organisation backups (docs/backup.md): the organisation's X25519 backup key, the content key sealed to it, the
// per-file keys and records, and the manifest signature. The byte layouts are specified in docs/backup.md §2.
import { CryptoError, ErrorCode } from '../errors.js';
import { concatBytes, toBase64Url, utf8 } from '../encoding.js';
import { canonicalBytes } from '../canonical.js';
import { constantTimeEqual, decodeB64, idBytes, randomBytes, signDetached, verifyDetached, boxKeyPair, kdfDerive, openSealedBox, sealBox, x25519Base } from './primitives.js';
import { openEnvelope, sealEnvelope } from './envelope.js';

export interface BackupKeyPair {
  /** 32-byte X25519 public key, base64url (registered on the server). */
  publicKey: string;
  /** 32-byte X25519 secret key (kept offline by the organisation). */
  secretKey: Uint8Array;
}

/** A fresh organisation backup key pair (crypto_box_keypair). */
export function generateBackupKeyPair(): BackupKeyPair {
  const kp = boxKeyPair();
  return { publicKey: toBase64Url(kp.publicKey), secretKey: kp.privateKey };
}

/** The key pair of a 32-byte secret key (its public half recomputed with crypto_scalarmult_base). */
export function backupKeyPairFromSecret(secretKey: Uint8Array): BackupKeyPair {
  if (secretKey.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'backup secret key must be 32 bytes');
  return { publicKey: toBase64Url(x25519Base(secretKey)), secretKey };
}

/** A fresh 32-byte content key and its Seal to the backup public key (base64url). */
export function newBackupContentKey(publicKey: string): { contentKey: Uint8Array; sealedKey: string } {
  const contentKey = randomBytes(32);
  return { contentKey, sealedKey: toBase64Url(sealBox(contentKey, decodeB64(publicKey, 'backup public key', 32))) };
}

/** Opens the sealed content key; throws CryptoError(decrypt_failed) for any other key pair. */
export function openBackupContentKey(sealedKey: string, pair: BackupKeyPair): Uint8Array {
  const pk = decodeB64(pair.publicKey, 'backup public key', 32);
  let key: Uint8Array;
  try {
    key = openSealedBox(decodeB64(sealedKey, 'sealed key'), pk, pair.secretKey);
  } catch {
    throw new CryptoError(ErrorCode.DecryptFailed, 'the backup is not sealed to this key');
  }
  if (key.length !== 32) throw new CryptoError(ErrorCode.DecryptFailed, 'the sealed content key is not 32 bytes');
  return key;
}

/** The key of the backup's file number `index` (1-based): KDF(index, "kluisbak", contentKey). */
export function backupFileKey(contentKey: Uint8Array, index: number): Uint8Array {
  if (!Number.isSafeInteger(index) || index < 1) throw new CryptoError(ErrorCode.BadKey, 'backup file index must be 1 or more');
  return kdfDerive(32, index, 'kluisbak', contentKey);
}

/** ad of a record: "kluis/backup-record/v1" || backupId (16) || u32 BE file index || u64 BE record index || u8 last. */
function recordAd(backupId: string, fileIndex: number, recordIndex: number, last: boolean): Uint8Array {
  const tail = new Uint8Array(13);
  const view = new DataView(tail.buffer);
  view.setUint32(0, fileIndex);
  view.setBigUint64(4, BigInt(recordIndex));
  tail[12] = last ? 1 : 0;
  return concatBytes(utf8('kluis/backup-record/v1'), idBytes(backupId, 'backupId'), tail);
}

export interface BackupRecordPlace {
  backupId: string;
  fileIndex: number;
  recordIndex: number;
  last: boolean;
}

/** Env(fileKey, payload, recordAd): one record of a backup file. */
export function sealBackupRecord(fileKey: Uint8Array, place: BackupRecordPlace, payload: Uint8Array): Uint8Array {
  return sealEnvelope(fileKey, payload, recordAd(place.backupId, place.fileIndex, place.recordIndex, place.last));
}

/** Opens a record at its place; a record moved, reordered, cut off or changed throws CryptoError(decrypt_failed). */
export function openBackupRecord(fileKey: Uint8Array, place: BackupRecordPlace, sealed: Uint8Array): Uint8Array {
  return openEnvelope(fileKey, sealed, recordAd(place.backupId, place.fileIndex, place.recordIndex, place.last));
}

/** Sign("kluis/backup-manifest/v1", canonical(manifest without `signature`), serverSecretKey), base64url. */
export function signBackupManifest(manifest: Record<string, unknown>, serverSecretKey: Uint8Array): string {
  const { signature: _omit, ...body } = manifest;
  return toBase64Url(signDetached('kluis/backup-manifest/v1', canonicalBytes(body), serverSecretKey));
}

/** Throws CryptoError(bad_signature) unless `manifest.signature` was made over the rest by `publicKey`. */
export function verifyBackupManifest(manifest: Record<string, unknown>, publicKey: string): void {
  const { signature, ...body } = manifest;
  if (typeof signature !== 'string') throw new CryptoError(ErrorCode.BadSignature, 'the manifest has no signature');
  verifyDetached('kluis/backup-manifest/v1', canonicalBytes(body), decodeB64(signature, 'signature', 64), decodeB64(publicKey, 'server public key', 32));
}

/** Constant-time comparison of two base64url public keys. */
export function sameBackupKey(a: string, b: string): boolean {
  try {
    return constantTimeEqual(decodeB64(a, 'key', 32), decodeB64(b, 'key', 32));
  } catch {
    return false;
  }
}
