// Password reset with the recovery key (docs/crypto.md §13), and the account's two 32-byte secrets as a client
// keeps them locally. The reset is authorised by a signature of the account's own Ed25519 key, which only someone
// who opened the recovery-sealed half of the key bundle can make: the server never learns the recovery key, and
// it never hands out the password-sealed half to an unauthenticated caller (that would allow offline guessing).
import { CryptoError, ErrorCode } from '../errors.js';
import { concatBytes, toBase64Url, utf8 } from '../encoding.js';
import { canonicalBytes } from '../canonical.js';
import { ENVELOPE_V1, NONCE_BYTES, TAG_BYTES } from './envelope.js';
import { blake2b, constantTimeEqual, decodeB64, randomBytes, signDetached, verifyDetached, boxSeedKeyPair, signSeedKeyPair, wipe, x25519Base, xchacha20Xor } from './primitives.js';
import type { AccountKeys, KeyBundle } from './keys.js';

const CTX_RECOVERY_RESET = 'kluis/recovery-reset/v1';
const CTX_FAKE_RECOVERY = 'kluis/fake-recovery/v1';

/** Bytes of a recovery challenge (the server's nonce for one reset). */
export const RECOVERY_CHALLENGE_BYTES = 32;

/** What a password reset replaces, as signed by the account's key (docs/crypto.md §13). */
export interface RecoveryResetFields {
  /** The account's e-mail address; signed as lower(NFC(email)). */
  email: string;
  /** The challenge from `recovery/start` (32 bytes, base64url). */
  challenge: string;
  /** The new password's KDF salt and limits. */
  kdf: { salt: string; opsLimit: number; memLimit: number };
  /** BLAKE2b-256 of the new authKey (base64url), i.e. `authKeyVerifier(authKey)`: what the server will store. */
  authVerifier: string;
  /** The new key bundle: the same identity, sealed by the new masterKey and the same recovery key. */
  keyBundle: KeyBundle;
}

function resetBody(f: RecoveryResetFields): Uint8Array {
  // Only the named fields are signed (and in canonical form), so an extra member smuggled into the JSON can
  // neither change the signed bytes nor be stored unsigned: the server stores what it parsed.
  return canonicalBytes({
    authVerifier: f.authVerifier,
    challenge: f.challenge,
    email: f.email.normalize('NFC').toLowerCase(),
    kdf: { memLimit: f.kdf.memLimit, opsLimit: f.kdf.opsLimit, salt: f.kdf.salt },
    keyBundle: {
      encPublicKey: f.keyBundle.encPublicKey,
      sealedByPassword: f.keyBundle.sealedByPassword,
      sealedByRecovery: f.keyBundle.sealedByRecovery,
      signPublicKey: f.keyBundle.signPublicKey,
      v: f.keyBundle.v,
    },
  });
}

/** Sign("kluis/recovery-reset/v1", canonical(fields)) with the account's key, base64url. */
export function signRecoveryReset(fields: RecoveryResetFields, keys: AccountKeys): string {
  decodeB64(fields.challenge, 'challenge', RECOVERY_CHALLENGE_BYTES);
  return toBase64Url(signDetached(CTX_RECOVERY_RESET, resetBody(fields), keys.signSecretKey));
}

/** Server side: throws CryptoError(bad_signature) unless `signature` is the account key's over `fields`. */
export function verifyRecoveryReset(fields: RecoveryResetFields, signatureB64: string, signPublicKeyB64: string): void {
  verifyDetached(CTX_RECOVERY_RESET, resetBody(fields), decodeB64(signatureB64, 'signature', 64), decodeB64(signPublicKeyB64, 'signPublicKey', 32));
}

/** A fresh recovery challenge: 32 random bytes, base64url (stored by the server only as tokenHash). */
export function newRecoveryChallenge(): string {
  return toBase64Url(randomBytes(RECOVERY_CHALLENGE_BYTES));
}

/** What `recovery/start` answers for an e-mail address without an account (besides a random challenge). */
export interface FakeRecoveryMaterial {
  encPublicKey: string;
  signPublicKey: string;
  sealedByRecovery: string;
}

/**
 * Stable, plausible recovery material for an unknown e-mail, so `recovery/start` does not reveal which accounts
 * exist: real X25519 and Ed25519 public keys (random bytes would be told apart: half of all 32-byte strings are not
 * Ed25519 points) and an envelope of the real length (version byte, then keystream), all derived from
 * BLAKE2b-512(UTF8("kluis/fake-recovery/v1") || UTF8(email), key = serverSecret).
 */
export function fakeRecoveryMaterial(serverSecret: Uint8Array, email: string): FakeRecoveryMaterial {
  if (serverSecret.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'server secret must be 32 bytes');
  const seed = blake2b(64, concatBytes(utf8(CTX_FAKE_RECOVERY), utf8(email)), serverSecret);
  const enc = boxSeedKeyPair(seed.subarray(0, 32));
  const sign = signSeedKeyPair(seed.subarray(32, 64));
  // A real sealedByRecovery is 0x01 || nonce (24) || ciphertext of 64 bytes || tag (16) = 105 bytes.
  const streamKey = blake2b(32, concatBytes(utf8(CTX_FAKE_RECOVERY), seed));
  const body = xchacha20Xor(new Uint8Array(NONCE_BYTES + 64 + TAG_BYTES), new Uint8Array(NONCE_BYTES), streamKey);
  return {
    encPublicKey: toBase64Url(enc.publicKey),
    signPublicKey: toBase64Url(sign.publicKey),
    sealedByRecovery: toBase64Url(concatBytes(new Uint8Array([ENVELOPE_V1]), body)),
  };
}

// ---------------------------------------------------------------------------------------------------------
// The account's secrets as a client stores them locally (the CLI's keys.json; docs/cli.md)

/** The two 32-byte secrets an identity is rebuilt from (the plaintext of a key bundle, docs/crypto.md §3). */
export interface AccountSecrets {
  encSecretKey: Uint8Array;
  signSeed: Uint8Array;
}

/** The secret halves of an identity, for a local key store. Copies: wipe them after use. */
export function accountSecrets(keys: AccountKeys): AccountSecrets {
  return { encSecretKey: keys.encSecretKey.slice(), signSeed: keys.signSecretKey.slice(0, 32) };
}

/**
 * Rebuilds an identity from its stored secrets and requires its public keys to equal the expected ones (base64url),
 * so a corrupted or swapped local key file is refused instead of silently signing with another key.
 */
export function accountKeysFromSecrets(secrets: AccountSecrets, expected: { encPublicKey: string; signPublicKey: string }): AccountKeys {
  if (secrets.encSecretKey.length !== 32 || secrets.signSeed.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'account secrets must be 32 bytes each');
  const sign = signSeedKeyPair(secrets.signSeed);
  const encPublicKey = x25519Base(secrets.encSecretKey);
  if (!constantTimeEqual(encPublicKey, decodeB64(expected.encPublicKey, 'encPublicKey', 32)) || !constantTimeEqual(sign.publicKey, decodeB64(expected.signPublicKey, 'signPublicKey', 32))) {
    throw new CryptoError(ErrorCode.BadKey, 'the stored secret keys do not match the account\'s public keys');
  }
  return { encPublicKey, encSecretKey: secrets.encSecretKey.slice(), signPublicKey: sign.publicKey, signSecretKey: sign.privateKey };
}

/** Overwrites key material in memory (best effort: JavaScript may have copied it elsewhere). */
export function wipeBytes(...buffers: (Uint8Array | null | undefined)[]): void {
  wipe(...buffers);
}
