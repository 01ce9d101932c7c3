// Small helpers over libsodium shared by the facade's modules. Not exported from the package.
import { CryptoError, ErrorCode } from '../errors.js';
import { EncodingError, fromBase64Url, toBase64Url, utf8, concatBytes } from '../encoding.js';
import { na } from './sodium.js';

export const ID_BYTES = 16;

/** A fresh random 16-byte id, base64url. */
export function newId(): string {
  return toBase64Url(na().randombytes_buf(ID_BYTES));
}

/** Decodes a 16-byte base64url id; throws CryptoError on anything else. */
export function idBytes(id: string, what = 'id'): Uint8Array {
  const bytes = decodeB64(id, what);
  if (bytes.length !== ID_BYTES) throw new CryptoError(ErrorCode.BadManifest, `${what} must be ${ID_BYTES} bytes`);
  return bytes;
}

/** base64url decoding that reports a CryptoError naming the field. */
export function decodeB64(text: string, what: string, length?: number): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(text);
  } catch (e) {
    if (e instanceof EncodingError) throw new CryptoError(ErrorCode.BadKey, `${what} is not base64url`);
    throw e;
  }
  if (length !== undefined && bytes.length !== length) throw new CryptoError(ErrorCode.BadKey, `${what} must be ${length} bytes`);
  return bytes;
}

/** Random bytes from libsodium's CSPRNG. */
export function randomBytes(n: number): Uint8Array {
  return na().randombytes_buf(n);
}

/** BLAKE2b with the given output length, optionally keyed. */
export function blake2b(length: number, message: Uint8Array, key: Uint8Array | null = null): Uint8Array {
  return na().crypto_generichash(length, message, key);
}

/** Constant-time equality of two byte strings of equal length (false on different lengths). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return na().memcmp(a, b);
}

/** The message a detached signature covers: UTF-8(context) || 0x00 || body. */
export function signingInput(context: string, body: Uint8Array): Uint8Array {
  return concatBytes(utf8(context), new Uint8Array([0]), body);
}

/** Ed25519 detached signature over a context-prefixed body. */
export function signDetached(context: string, body: Uint8Array, signSecretKey: Uint8Array): Uint8Array {
  return na().crypto_sign_detached(signingInput(context, body), signSecretKey);
}

/** Verifies an Ed25519 detached signature over a context-prefixed body; throws on failure. */
export function verifyDetached(context: string, body: Uint8Array, signature: Uint8Array, signPublicKey: Uint8Array): void {
  let ok = false;
  if (signature.length === 64 && signPublicKey.length === 32) {
    try {
      ok = na().crypto_sign_verify_detached(signature, signingInput(context, body), signPublicKey);
    } catch {
      ok = false;
    }
  }
  if (!ok) throw new CryptoError(ErrorCode.BadSignature, `signature (${context}) does not verify`);
}
