// Server-side primitives: bearer tokens, the audit hash chain and its signed checkpoints (docs/crypto.md §12).
import { CryptoError, ErrorCode } from '../errors.js';
import { concatBytes, fromHex, toBase64Url, toHex, utf8 } from '../encoding.js';
import { canonicalBytes } from '../canonical.js';
import { blake2b, constantTimeEqual, decodeB64, idBytes, randomBytes, signDetached, verifyDetached, kdfDerive, signKeyPair, signSeedKeyPair } from './primitives.js';
import { openEnvelope, sealEnvelope } from './envelope.js';

/** A fresh bearer secret (session token, invite token): 32 random bytes, base64url. */
export function newSecretToken(): string {
  return toBase64Url(randomBytes(32));
}

/** What the server stores for a bearer secret: hex(BLAKE2b-256("kluis/token/v1" || token bytes)). */
export function tokenHash(token: string): string {
  return toHex(blake2b(32, concatBytes(utf8('kluis/token/v1'), utf8(token))));
}

/** Constant-time comparison of two hex digests of equal length. */
export function digestsEqual(aHex: string, bHex: string): boolean {
  if (aHex.length !== bHex.length) return false;
  try {
    return constantTimeEqual(fromHex(aHex), fromHex(bHex));
  } catch {
    return false;
  }
}

/** The hash that starts the audit chain. */
export const AUDIT_GENESIS = '0'.repeat(64);

/** hash_n = hex(BLAKE2b-256(prevHash (32 raw bytes) || canonical JSON of entry n)). */
export function auditChainHash(prevHashHex: string, entry: unknown): string {
  return auditChainHashOfBody(prevHashHex, canonicalBytes(entry));
}

/** auditChainHash of an entry already encoded (`body` = canonicalBytes(entry)), which is also its Merkle leaf's input. */
export function auditChainHashOfBody(prevHashHex: string, body: Uint8Array): string {
  if (!/^[0-9a-f]{64}$/.test(prevHashHex)) throw new CryptoError(ErrorCode.BadKey, 'previous audit hash must be 64 hex digits');
  return toHex(blake2b(32, concatBytes(fromHex(prevHashHex), body)));
}

export interface ServerSigningKey {
  publicKey: string;
  secretKey: Uint8Array;
}

/** A fresh Ed25519 key for signing audit checkpoints. */
export function generateServerSigningKey(): ServerSigningKey {
  const kp = signKeyPair();
  return { publicKey: toBase64Url(kp.publicKey), secretKey: kp.privateKey };
}

/** Rebuilds the key from its 32-byte seed (as stored in the data directory). */
export function serverSigningKeyFromSeed(seed: Uint8Array): ServerSigningKey {
  if (seed.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'signing seed must be 32 bytes');
  const kp = signSeedKeyPair(seed);
  return { publicKey: toBase64Url(kp.publicKey), secretKey: kp.privateKey };
}

export interface AuditCheckpoint {
  seq: number;
  hash: string;
  ts: number;
}

/** Sign("kluis/audit-checkpoint/v1", canonical({hash, seq, ts})). */
export function signAuditCheckpoint(cp: AuditCheckpoint, key: ServerSigningKey): string {
  return toBase64Url(signDetached('kluis/audit-checkpoint/v1', canonicalBytes({ hash: cp.hash, seq: cp.seq, ts: cp.ts }), key.secretKey));
}

/** Throws CryptoError(bad_signature) unless the checkpoint was signed by `publicKey`. */
export function verifyAuditCheckpoint(cp: AuditCheckpoint, signature: string, publicKey: string): void {
  verifyDetached('kluis/audit-checkpoint/v1', canonicalBytes({ hash: cp.hash, seq: cp.seq, ts: cp.ts }), decodeB64(signature, 'signature', 64), decodeB64(publicKey, 'publicKey', 32));
}

/**
 * Stable fake salt for an e-mail with no account (prelogin answers without revealing whether an account exists):
 * BLAKE2b-128(UTF8("kluis/fake-salt/v1") || UTF8(email), key = server secret), base64url.
 */
export function fakeSalt(serverSecret: Uint8Array, email: string): string {
  if (serverSecret.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'server secret must be 32 bytes');
  return toBase64Url(blake2b(16, concatBytes(utf8('kluis/fake-salt/v1'), utf8(email)), serverSecret));
}

/** Purpose-bound 32-byte secrets derived from the server's key seed: KDF(id, "kluissrv", seed). Id 1: fake salts. */
export function serverSubkey(key: ServerSigningKey, id: number): Uint8Array {
  return kdfDerive(32, id, 'kluissrv', key.secretKey.subarray(0, 32));
}

/**
 * A user's TOTP secret as the server stores it (docs/crypto.md §12, "Server subkeys"): Env(KDF(2, "kluissrv", seed),
 * secret, UTF8("kluis/totp/v1") || userId (16 raw bytes)). The seed lives in the data directory, not the database,
 * so a database dump alone does not reveal the secret; the ad ties the ciphertext to its user.
 */
export function sealTotpSecret(totpKey: Uint8Array, userId: string, secret: Uint8Array): string {
  if (totpKey.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'TOTP key must be 32 bytes');
  return toBase64Url(sealEnvelope(totpKey, secret, concatBytes(utf8('kluis/totp/v1'), idBytes(userId))));
}

/** Opens what sealTotpSecret made; throws CryptoError(decrypt_failed) for another user's or a changed row. */
export function openTotpSecret(totpKey: Uint8Array, userId: string, sealed: string): Uint8Array {
  return openEnvelope(totpKey, decodeB64(sealed, 'totp secret'), concatBytes(utf8('kluis/totp/v1'), idBytes(userId)));
}
