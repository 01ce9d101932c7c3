// Share links (docs/crypto.md §9): https://<host>/s/<linkId>#<linkSecret>. The secret stays in the fragment.
import { CryptoError, ErrorCode } from '../errors.js';
import { concatBytes, fromHex, toBase64Url, toHex, utf8 } from '../encoding.js';
import { openEnvelope, sealEnvelope } from './envelope.js';
import { assertKdfParams, KDF_MIN, SALT_BYTES, type KdfParams } from './keys.js';
import { blake2b, constantTimeEqual, decodeB64, idBytes, randomBytes, argon2id } from './primitives.js';

export const LINK_SECRET_BYTES = 32;

export interface LinkKeys {
  /** Wraps the file key. Never leaves the browser or client. */
  linkKey: Uint8Array;
  /** Proves knowledge of the secret (and password) to the server, which stores BLAKE2b-256(linkAuth). */
  linkAuth: Uint8Array;
}

/** A fresh link secret (base64url, 43 characters). */
export function newLinkSecret(): string {
  return toBase64Url(randomBytes(LINK_SECRET_BYTES));
}

/** Argon2id13 of a link password: 32 bytes. The salt and limits are stored with the link. */
export function hashLinkPassword(password: string, saltB64: string, params: KdfParams, floor: KdfParams = KDF_MIN): Uint8Array {
  assertKdfParams(params, floor);
  const salt = decodeB64(saltB64, 'salt', SALT_BYTES);
  return argon2id(32, utf8(password.normalize('NFC')), salt, params.opsLimit, params.memLimit);
}

/**
 * linkKey  = BLAKE2b-256("kluis/link/v1"      || linkSecret [|| Argon2id(password)])
 * linkAuth = BLAKE2b-256("kluis/link-auth/v1" || linkSecret [|| Argon2id(password)])
 */
export function deriveLinkKeys(linkSecretB64: string, passwordHash: Uint8Array | null = null): LinkKeys {
  const secret = decodeB64(linkSecretB64, 'linkSecret', LINK_SECRET_BYTES);
  if (passwordHash && passwordHash.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'password hash must be 32 bytes');
  const tail = passwordHash ? concatBytes(secret, passwordHash) : secret;
  return {
    linkKey: blake2b(32, concatBytes(utf8('kluis/link/v1'), tail)),
    linkAuth: blake2b(32, concatBytes(utf8('kluis/link-auth/v1'), tail)),
  };
}

function linkAd(linkId: string): Uint8Array {
  return concatBytes(utf8('kluis/link-wrap/v1'), idBytes(linkId, 'linkId'));
}

/** Wraps a file key for a link: envelope(linkKey, fileKey, ad = "kluis/link-wrap/v1" || linkId). */
export function wrapFileKeyForLink(fileKey: Uint8Array, linkId: string, keys: LinkKeys): Uint8Array {
  if (fileKey.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'fileKey must be 32 bytes');
  return sealEnvelope(keys.linkKey, fileKey, linkAd(linkId));
}

/** Opens a link's file-key wrap. A wrong secret or password fails with CryptoError(decrypt_failed). */
export function openLinkFileKey(wrapped: Uint8Array, linkId: string, keys: LinkKeys): Uint8Array {
  const fileKey = openEnvelope(keys.linkKey, wrapped, linkAd(linkId));
  if (fileKey.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'link wrap holds no file key');
  return fileKey;
}

/** What the server stores for a link (`authHash`): hex(BLAKE2b-256(linkAuth)). The client computes it at creation. */
export function linkAuthHash(linkAuth: Uint8Array): string {
  if (linkAuth.length !== 32) throw new CryptoError(ErrorCode.BadKey, 'linkAuth must be 32 bytes');
  return toHex(blake2b(32, linkAuth));
}

/** Server side: constant-time check of a presented linkAuth against the stored hash; false for any malformed input. */
export function checkLinkAuth(linkAuth: Uint8Array, authHashHex: string): boolean {
  if (linkAuth.length !== 32 || !/^[0-9a-f]{64}$/.test(authHashHex)) return false;
  return constantTimeEqual(blake2b(32, linkAuth), fromHex(authHashHex));
}
