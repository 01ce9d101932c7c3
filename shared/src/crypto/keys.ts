// Account, space and file keys (docs/crypto.md §2, §4–§6). Keys are made on the client; the server only ever
// holds public keys, sealed secret keys and BLAKE2b-256(authKey).
import { CryptoError, ErrorCode } from '../errors.js';
import { concatBytes, fromBase32, toBase32, toBase64Url, toHex, utf8, EncodingError } from '../encoding.js';
import { canonicalBytes } from '../canonical.js';
import { openEnvelope, sealEnvelope } from './envelope.js';
import { blake2b, constantTimeEqual, decodeB64, kdfDerive, openSealedBox, randomBytes, sealBox, signDetached, verifyDetached, idBytes, argon2id, boxKeyPair, signKeyPair, signSeedKeyPair, x25519Base } from './primitives.js';
import { openBatchWrap, verifyBatchWrapSignature, type BatchFileKeyWrap } from './batch-wrap.js';

// ---------------------------------------------------------------------------------------------------------
// Password -> masterKey + authKey

export interface KdfParams {
  /** Argon2id13 passes (crypto_pwhash opslimit). */
  opsLimit: number;
  /** Argon2id13 memory in bytes (crypto_pwhash memlimit). */
  memLimit: number;
}

/** libsodium's named limits. MODERATE is the production floor (docs/architecture.md §2). */
export const KDF_MODERATE: KdfParams = { opsLimit: 3, memLimit: 268_435_456 };
export const KDF_INTERACTIVE: KdfParams = { opsLimit: 2, memLimit: 67_108_864 };
/** For tests and development only: the server refuses it in production. */
export const KDF_MIN: KdfParams = { opsLimit: 1, memLimit: 8_388_608 };
/** Upper bounds a client accepts from a server, so a hostile server cannot make it allocate without end. */
export const KDF_MAX: KdfParams = { opsLimit: 16, memLimit: 1_073_741_824 };
export const SALT_BYTES = 16;

/** Refuses parameters weaker than `floor` or larger than KDF_MAX. */
export function assertKdfParams(params: KdfParams, floor: KdfParams = KDF_MIN): void {
  const { opsLimit, memLimit } = params;
  if (!Number.isSafeInteger(opsLimit) || !Number.isSafeInteger(memLimit)) throw new CryptoError(ErrorCode.WeakKdfParams, 'KDF limits must be integers');
  if (opsLimit < floor.opsLimit || memLimit < floor.memLimit) throw new CryptoError(ErrorCode.WeakKdfParams, `KDF limits below the floor (ops ${floor.opsLimit}, mem ${floor.memLimit})`);
  if (opsLimit > KDF_MAX.opsLimit || memLimit > KDF_MAX.memLimit) throw new CryptoError(ErrorCode.WeakKdfParams, 'KDF limits above the allowed maximum');
}

/** A fresh 16-byte salt for a new account (base64url). */
export function newSalt(): string {
  return toBase64Url(randomBytes(SALT_BYTES));
}

/** Passwords are NFC-normalised, then UTF-8 encoded, before hashing. */
function passwordBytes(password: string): Uint8Array {
  return utf8(password.normalize('NFC'));
}

export interface PasswordKeys {
  /** Opens the account key bundle. Never leaves the client. */
  masterKey: Uint8Array;
  /** Proves the password to the server. Sent at login; the server stores only its BLAKE2b-256. */
  authKey: Uint8Array;
}

/** Argon2id13(password, salt) -> 64 bytes: masterKey = [0..32), authKey = [32..64). */
export function derivePasswordKeys(password: string, saltB64: string, params: KdfParams, floor: KdfParams = KDF_MIN): PasswordKeys {
  assertKdfParams(params, floor);
  const salt = decodeB64(saltB64, 'salt', SALT_BYTES);
  const out = argon2id(64, passwordBytes(password), salt, params.opsLimit, params.memLimit);
  return { masterKey: out.slice(0, 32), authKey: out.slice(32, 64) };
}

/** What the server stores for an account: BLAKE2b-256(authKey), base64url. */
export function authKeyVerifier(authKey: Uint8Array): string {
  if (authKey.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'authKey must be 32 bytes');
  return toBase64Url(blake2b(32, authKey));
}

/** Server side: constant-time check of a presented authKey against the stored verifier. */
export function checkAuthKey(authKey: Uint8Array, verifierB64: string): boolean {
  if (authKey.length !== 32) return false;
  return constantTimeEqual(blake2b(32, authKey), decodeB64(verifierB64, 'verifier', 32));
}

// ---------------------------------------------------------------------------------------------------------
// Account identity: X25519 (encryption) + Ed25519 (signing)

export interface AccountKeys {
  encPublicKey: Uint8Array;
  encSecretKey: Uint8Array;
  signPublicKey: Uint8Array;
  /** libsodium's 64-byte Ed25519 secret key (seed || public key). */
  signSecretKey: Uint8Array;
}

/** The public half of an account, as it sits in the server's key directory. */
export interface PublicIdentity {
  encPublicKey: string;
  signPublicKey: string;
}

/** A fresh account identity. */
export function generateAccountKeys(): AccountKeys {
  const enc = boxKeyPair();
  const sign = signKeyPair();
  return { encPublicKey: enc.publicKey, encSecretKey: enc.privateKey, signPublicKey: sign.publicKey, signSecretKey: sign.privateKey };
}

/** Rebuilds an identity from its two 32-byte secrets (X25519 secret, Ed25519 seed). */
function accountFromSecrets(encSecretKey: Uint8Array, signSeed: Uint8Array): AccountKeys {
  const sign = signSeedKeyPair(signSeed);
  return { encPublicKey: x25519Base(encSecretKey), encSecretKey, signPublicKey: sign.publicKey, signSecretKey: sign.privateKey };
}

export function publicIdentity(keys: AccountKeys): PublicIdentity {
  return { encPublicKey: toBase64Url(keys.encPublicKey), signPublicKey: toBase64Url(keys.signPublicKey) };
}

const CTX_IDENTITY = 'kluis/identity/v1';

/** Signs the binding e-mail <-> public keys (the directory entry); the server cannot swap keys undetected. */
export function signIdentity(keys: AccountKeys, email: string): string {
  return toBase64Url(signDetached(CTX_IDENTITY, identityBody(publicIdentity(keys), email), keys.signSecretKey));
}

/** Verifies a directory entry's self-signature; throws CryptoError on failure. */
export function verifyIdentity(identity: PublicIdentity, email: string, signatureB64: string): void {
  const signPk = decodeB64(identity.signPublicKey, 'signPublicKey', 32);
  verifyDetached(CTX_IDENTITY, identityBody(identity, email), decodeB64(signatureB64, 'signature', 64), signPk);
}

function identityBody(identity: PublicIdentity, email: string): Uint8Array {
  return canonicalBytes({ email: email.normalize('NFC').toLowerCase(), encPublicKey: identity.encPublicKey, signPublicKey: identity.signPublicKey });
}

/** Fingerprint users compare out of band: 8 groups of 4 hex digits of BLAKE2b-256(ctx || signPk || encPk). */
export function fingerprint(identity: PublicIdentity): string {
  const digest = blake2b(32, concatBytes(utf8('kluis/fingerprint/v1'), decodeB64(identity.signPublicKey, 'signPublicKey', 32), decodeB64(identity.encPublicKey, 'encPublicKey', 32)));
  const hex = toHex(digest.subarray(0, 16));
  return hex.match(/.{4}/g)!.join(' ');
}

// ---------------------------------------------------------------------------------------------------------
// Key bundle: the account's secret keys sealed with masterKey and, separately, with the recovery key

export interface KeyBundle {
  v: 1;
  encPublicKey: string;
  signPublicKey: string;
  /** Envelope (base64url) of encSecretKey || signSeed under a subkey of masterKey. */
  sealedByPassword: string;
  /** The same plaintext under a subkey of the recovery key. */
  sealedByRecovery: string;
}

const CTX_BUNDLE = 'kluis/keybundle/v1';
const CTX_BUNDLE_RECOVERY = 'kluis/keybundle-recovery/v1';

function bundleAd(context: string, encPk: Uint8Array, signPk: Uint8Array): Uint8Array {
  return concatBytes(utf8(context), encPk, signPk);
}

function passwordBundleKey(masterKey: Uint8Array): Uint8Array {
  return kdfDerive(32, 1, 'kluisacc', masterKey);
}

function recoveryBundleKey(recoveryKey: Uint8Array): Uint8Array {
  return kdfDerive(32, 1, 'kluisrec', recoveryKey);
}

/** Seals an identity's secrets for the server to keep. */
export function sealKeyBundle(keys: AccountKeys, masterKey: Uint8Array, recoveryKey: Uint8Array): KeyBundle {
  const secrets = concatBytes(keys.encSecretKey, keys.signSecretKey.subarray(0, 32));
  return {
    v: 1,
    ...publicIdentity(keys),
    sealedByPassword: toBase64Url(sealEnvelope(passwordBundleKey(masterKey), secrets, bundleAd(CTX_BUNDLE, keys.encPublicKey, keys.signPublicKey))),
    sealedByRecovery: toBase64Url(sealEnvelope(recoveryBundleKey(recoveryKey), secrets, bundleAd(CTX_BUNDLE_RECOVERY, keys.encPublicKey, keys.signPublicKey))),
  };
}

function openBundle(bundle: KeyBundle, key: Uint8Array, field: 'sealedByPassword' | 'sealedByRecovery', context: string): AccountKeys {
  if (bundle.v !== 1) throw new CryptoError(ErrorCode.UnsupportedVersion, `unknown key bundle version ${String(bundle.v)}`);
  const encPk = decodeB64(bundle.encPublicKey, 'encPublicKey', 32);
  const signPk = decodeB64(bundle.signPublicKey, 'signPublicKey', 32);
  const secrets = openEnvelope(key, decodeB64(bundle[field], field), bundleAd(context, encPk, signPk));
  if (secrets.length !== 64) throw new CryptoError(ErrorCode.BadKey, 'key bundle has the wrong length');
  const keys = accountFromSecrets(secrets.slice(0, 32), secrets.slice(32, 64));
  if (!constantTimeEqual(keys.encPublicKey, encPk) || !constantTimeEqual(keys.signPublicKey, signPk)) {
    throw new CryptoError(ErrorCode.BadKey, 'key bundle secrets do not match its public keys');
  }
  return keys;
}

/** Opens the bundle with the password's masterKey. */
export function openKeyBundle(bundle: KeyBundle, masterKey: Uint8Array): AccountKeys {
  return openBundle(bundle, passwordBundleKey(masterKey), 'sealedByPassword', CTX_BUNDLE);
}

/** Opens the bundle with the recovery key (after a forgotten password). */
export function openKeyBundleWithRecovery(bundle: KeyBundle, recoveryKey: Uint8Array): AccountKeys {
  return openBundle(bundle, recoveryBundleKey(recoveryKey), 'sealedByRecovery', CTX_BUNDLE_RECOVERY);
}

// ---------------------------------------------------------------------------------------------------------
// Recovery key: 32 random bytes + 3 check bytes, printed as 14 groups of 4 base32 characters

const CTX_RECOVERY_CHECK = 'kluis/recovery-check/v1';

/** A fresh recovery key (32 bytes). Shown once at sign-up with `formatRecoveryKey`. */
export function generateRecoveryKey(): Uint8Array {
  return randomBytes(32);
}

function recoveryCheck(key: Uint8Array): Uint8Array {
  return blake2b(32, concatBytes(utf8(CTX_RECOVERY_CHECK), key)).subarray(0, 3);
}

/** `ABCD-EFGH-...` (14 groups): base32 of key || check, RFC 4648 alphabet. */
export function formatRecoveryKey(key: Uint8Array): string {
  if (key.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'recovery key must be 32 bytes');
  return toBase32(concatBytes(key, recoveryCheck(key))).match(/.{4}/g)!.join('-');
}

/** Parses a typed recovery key: case, spaces and dashes are ignored; 0/1/8 read as O/I/B; the check must match. */
export function parseRecoveryKey(text: string): Uint8Array {
  const clean = text.toUpperCase().replace(/[\s-]/g, '').replace(/0/g, 'O').replace(/1/g, 'I').replace(/8/g, 'B');
  if (clean.length !== 56) throw new CryptoError(ErrorCode.BadRecoveryKey, 'a recovery key has 56 characters (14 groups of 4)');
  let bytes: Uint8Array;
  try {
    bytes = fromBase32(clean);
  } catch (e) {
    if (e instanceof EncodingError) throw new CryptoError(ErrorCode.BadRecoveryKey, 'the recovery key has a character outside A–Z and 2–7');
    throw e;
  }
  const key = bytes.slice(0, 32);
  if (!constantTimeEqual(bytes.subarray(32, 35), recoveryCheck(key))) throw new CryptoError(ErrorCode.BadRecoveryKey, 'the recovery key has a typo (check digits do not match)');
  return key;
}

// ---------------------------------------------------------------------------------------------------------
// Space keys, file keys and their signed wraps

export interface SpaceKeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** A fresh X25519 keypair for a space (one per key epoch). */
export function generateSpaceKeyPair(): SpaceKeyPair {
  const kp = boxKeyPair();
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
}

/** A fresh 32-byte file key (stable across a file's versions until the space key rotates). */
export function generateFileKey(): Uint8Array {
  return randomBytes(32);
}

export interface FileSubkeys {
  chunkKey: Uint8Array;
  chunkIdKey: Uint8Array;
  manifestKey: Uint8Array;
}

/** crypto_kdf_derive_from_key(32, id, "kluisfil", fileKey): 1 chunk key, 2 chunk-id key, 3 manifest key. */
export function deriveFileSubkeys(fileKey: Uint8Array): FileSubkeys {
  if (fileKey.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'fileKey must be 32 bytes');
  const kdf = (id: number) => kdfDerive(32, id, 'kluisfil', fileKey);
  return { chunkKey: kdf(1), chunkIdKey: kdf(2), manifestKey: kdf(3) };
}

/** A sealed key with its author's signature. The fields are the signed record; `sig` covers all others. */
export type KeyWrap = SpaceKeyWrap | FileKeyWrap;
/** A file-key wrap of either version: v1 here, v2 made in batches (batch-wrap.ts, docs/crypto.md §5.2). */
export type FileKeyWrap = FileKeyWrapV1 | BatchFileKeyWrap;

interface WrapCommon {
  v: 1;
  spaceId: string;
  keyEpoch: number;
  /** X25519 public key (base64url) the key is sealed to: a member's encPublicKey or a space public key. */
  recipient: string;
  /** crypto_box_seal of the 32-byte secret (base64url). */
  sealed: string;
  /** The author's Ed25519 public key (base64url). */
  signer: string;
  /** Ed25519 over "kluis/wrap/v1" || 0x00 || canonical JSON of every other field. */
  sig: string;
}
export interface SpaceKeyWrap extends WrapCommon {
  kind: 'space-key';
  /** The space public key whose secret half is sealed. */
  spacePublicKey: string;
}
export interface FileKeyWrapV1 extends WrapCommon {
  kind: 'file-key';
  fileId: string;
}

const CTX_WRAP = 'kluis/wrap/v1';

/** Whoever signs a wrap or manifest: an account, or a file request's key (docs/crypto.md §9.2). */
export type Signer = Pick<AccountKeys, 'signPublicKey' | 'signSecretKey'>;

function signWrap<T extends KeyWrap>(fields: Omit<T, 'sig'>, author: Signer): T {
  const sig = signDetached(CTX_WRAP, canonicalBytes(fields), author.signSecretKey);
  return { ...fields, sig: toBase64Url(sig) } as T;
}

/** Seals a space's secret key to a member's encPublicKey, signed by the author. */
export function wrapSpaceKey(space: SpaceKeyPair, target: { spaceId: string; keyEpoch: number; recipient: string }, author: AccountKeys): SpaceKeyWrap {
  const recipientPk = decodeB64(target.recipient, 'recipient', 32);
  idBytes(target.spaceId, 'spaceId');
  return signWrap<SpaceKeyWrap>({
    v: 1,
    kind: 'space-key',
    spaceId: target.spaceId,
    keyEpoch: target.keyEpoch,
    recipient: target.recipient,
    spacePublicKey: toBase64Url(space.publicKey),
    sealed: toBase64Url(sealBox(space.secretKey, recipientPk)),
    signer: toBase64Url(author.signPublicKey),
  }, author);
}

/** Seals a file key to a space public key (or a colleague's encPublicKey for a direct share), signed. */
export function wrapFileKey(fileKey: Uint8Array, target: { spaceId: string; keyEpoch: number; fileId: string; recipient: string }, author: Signer): FileKeyWrapV1 {
  if (fileKey.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'fileKey must be 32 bytes');
  const recipientPk = decodeB64(target.recipient, 'recipient', 32);
  idBytes(target.spaceId, 'spaceId');
  idBytes(target.fileId, 'fileId');
  return signWrap<FileKeyWrapV1>({
    v: 1,
    kind: 'file-key',
    spaceId: target.spaceId,
    keyEpoch: target.keyEpoch,
    fileId: target.fileId,
    recipient: target.recipient,
    sealed: toBase64Url(sealBox(fileKey, recipientPk)),
    signer: toBase64Url(author.signPublicKey),
  }, author);
}

/** Who may have written a wrap or manifest: returns true for a signer public key (base64url) that is trusted. */
export type SignerPolicy = (signPublicKey: string) => boolean;

/** What a wrap must be about; a wrap moved to another space, epoch or file is refused. */
export interface WrapExpectation {
  spaceId: string;
  keyEpoch: number;
  fileId?: string;
}

function verifyWrap(wrap: SpaceKeyWrap | FileKeyWrapV1, expect: WrapExpectation, recipient: { publicKey: Uint8Array }, trusted: SignerPolicy): void {
  if (wrap.v !== 1) throw new CryptoError(ErrorCode.UnsupportedVersion, `unknown wrap version ${String(wrap.v)}`);
  const { sig, ...fields } = wrap;
  verifyDetached(CTX_WRAP, canonicalBytes(fields), decodeB64(sig, 'sig', 64), decodeB64(wrap.signer, 'signer', 32));
  if (!trusted(wrap.signer)) throw new CryptoError(ErrorCode.UntrustedSigner, 'the wrap was signed by someone who may not grant this key');
  if (wrap.spaceId !== expect.spaceId || wrap.keyEpoch !== expect.keyEpoch || (wrap.kind === 'file-key' && wrap.fileId !== expect.fileId)) {
    throw new CryptoError(ErrorCode.WrongRecipient, 'the wrap belongs to another space, epoch or file');
  }
  if (!constantTimeEqual(decodeB64(wrap.recipient, 'recipient', 32), recipient.publicKey)) {
    throw new CryptoError(ErrorCode.WrongRecipient, 'the wrap is sealed to another key');
  }
}

function unseal(sealedB64: string, recipient: { publicKey: Uint8Array; secretKey: Uint8Array }): Uint8Array {
  try {
    const out = openSealedBox(decodeB64(sealedB64, 'sealed'), recipient.publicKey, recipient.secretKey);
    if (out.length !== 32) throw new Error('length');
    return out;
  } catch {
    throw new CryptoError(ErrorCode.DecryptFailed, 'sealed key does not open');
  }
}

/** Verifies and opens a space-key wrap addressed to `member`; returns the space keypair. */
export function openSpaceKeyWrap(wrap: SpaceKeyWrap, expect: WrapExpectation, member: AccountKeys, trusted: SignerPolicy): SpaceKeyPair {
  if (wrap.kind !== 'space-key') throw new CryptoError(ErrorCode.BadKey, 'not a space-key wrap');
  verifyWrap(wrap, expect, { publicKey: member.encPublicKey }, trusted);
  const secretKey = unseal(wrap.sealed, { publicKey: member.encPublicKey, secretKey: member.encSecretKey });
  const publicKey = x25519Base(secretKey);
  if (!constantTimeEqual(publicKey, decodeB64(wrap.spacePublicKey, 'spacePublicKey', 32))) {
    throw new CryptoError(ErrorCode.BadKey, 'space secret key does not match its public key');
  }
  return { publicKey, secretKey };
}

/** Verifies and opens a file-key wrap addressed to a space keypair or to a member's encryption keypair. */
export function openFileKeyWrap(wrap: FileKeyWrap, expect: WrapExpectation, recipient: SpaceKeyPair | AccountKeys, trusted: SignerPolicy): Uint8Array {
  if (wrap.kind !== 'file-key') throw new CryptoError(ErrorCode.BadKey, 'not a file-key wrap');
  const pair = 'encPublicKey' in recipient ? { publicKey: recipient.encPublicKey, secretKey: recipient.encSecretKey } : recipient;
  if (wrap.v === 2) return openBatchWrap(wrap, expect, pair, trusted);
  verifyWrap(wrap, expect, pair, trusted);
  return unseal(wrap.sealed, pair);
}

/** Checks only a wrap's own signature (by its `signer`); the server uses it to refuse forged wraps early. */
export function verifyWrapSignature(wrap: KeyWrap): void {
  if (wrap.v === 2) return verifyBatchWrapSignature(wrap);
  if (wrap.v !== 1) throw new CryptoError(ErrorCode.UnsupportedVersion, `unknown wrap version ${String((wrap as { v: unknown }).v)}`);
  const { sig, ...fields } = wrap;
  verifyDetached(CTX_WRAP, canonicalBytes(fields), decodeB64(sig, 'sig', 64), decodeB64(wrap.signer, 'signer', 32));
}
