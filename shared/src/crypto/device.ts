// Device keys and remote-wipe reports (docs/crypto.md §14). Each client installation makes an Ed25519 key pair of its
// own (not the account's) and registers the public half with its session. When an administrator orders a wipe, the
// device signs what it removed with that key, so the server records a report only that device could have made, and
// anyone holding the record can check it later. File names never go to the server in clear: the paths of unsynced
// edits the wipe removed are sealed (crypto_box_seal) to the account's encPublicKey, readable by the account's owner.
import { CryptoError, ErrorCode } from '../errors.js';
import { fromBase64Url, toBase64Url, utf8 } from '../encoding.js';
import { canonicalBytes } from '../canonical.js';
import { decodeB64, randomBytes, signDetached, verifyDetached, openSealedBox, sealBox, signSeedKeyPair } from './primitives.js';
import type { AccountKeys } from './keys.js';

const CTX_WIPE_REPORT = 'kluis/device-wipe-report/v1';

/** A device's signing key pair, made from a 32-byte seed (the seed is what the client stores). */
export interface DeviceKeys {
  /** Ed25519 public key, base64url. */
  publicKey: string;
  /** Ed25519 secret key (64 bytes: seed || public key). */
  secretKey: Uint8Array;
}

/** A fresh 32-byte device seed (base64url), for deviceKeysFromSeed. */
export function newDeviceSeed(): string {
  return toBase64Url(randomBytes(32));
}

/** The device key pair of a stored seed. */
export function deviceKeysFromSeed(seedB64: string): DeviceKeys {
  const seed = decodeB64(seedB64, 'device seed', 32);
  try {
    const kp = signSeedKeyPair(seed);
    return { publicKey: toBase64Url(kp.publicKey), secretKey: kp.privateKey };
  } finally {
    seed.fill(0);
  }
}

/** Sign("kluis/device-wipe-report/v1", canonical(report)) with the device key, base64url. */
export function signWipeReport(report: object, device: DeviceKeys): string {
  return toBase64Url(signDetached(CTX_WIPE_REPORT, canonicalBytes(report), device.secretKey));
}

/** Throws CryptoError(bad_signature) unless `signatureB64` is the device key's over `report`. */
export function verifyWipeReport(report: object, signatureB64: string, devicePublicKeyB64: string): void {
  verifyDetached(CTX_WIPE_REPORT, canonicalBytes(report), decodeB64(signatureB64, 'signature', 64), decodeB64(devicePublicKeyB64, 'devicePublicKey', 32));
}

/** Seals a list of paths to an account's encPublicKey (crypto_box_seal of UTF-8 JSON), base64url. */
export function sealWipePaths(paths: readonly string[], encPublicKeyB64: string): string {
  return toBase64Url(sealBox(utf8(JSON.stringify(paths)), decodeB64(encPublicKeyB64, 'encPublicKey', 32)));
}

/** Opens sealWipePaths with the account's keys; throws CryptoError(decrypt_failed) if it is not for them. */
export function openWipePaths(sealedB64: string, keys: AccountKeys): string[] {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(openSealedBox(fromBase64Url(sealedB64), keys.encPublicKey, keys.encSecretKey));
  } catch {
    throw new CryptoError(ErrorCode.DecryptFailed, 'the wipe report\'s sealed paths do not open with this account\'s key');
  }
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed) || !parsed.every((p) => typeof p === 'string')) throw new CryptoError(ErrorCode.BadCanonicalJson, 'the wipe report\'s sealed paths are not a list of paths');
  return parsed as string[];
}
