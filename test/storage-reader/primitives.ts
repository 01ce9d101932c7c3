// The few operations of docs/crypto.md that an independent reader of Kluis storage needs, written from that document
// with libsodium only (no Kluis code): base64url (§0), canonical JSON (§7), KDF and signatures (§0), the envelope (§1).
// Any failure throws; nothing returns partial plaintext.
import sodium from 'libsodium-wrappers-sumo';

export { sodium };

export async function ready(): Promise<void> {
  await sodium.ready;
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
export const concat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));
export const hex = (b: Uint8Array): string => sodium.to_hex(b);
export const fromHex = (s: string): Uint8Array => {
  if (!/^[0-9a-f]*$/.test(s) || s.length % 2) throw new Error(`not lower-case hex: ${s}`);
  return sodium.from_hex(s);
};

/** §0: base64url without padding; anything else is refused. */
export function b64u(s: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error('not base64url without padding');
  const bytes = sodium.from_base64(s, sodium.base64_variants.URLSAFE_NO_PADDING);
  if (sodium.to_base64(bytes, sodium.base64_variants.URLSAFE_NO_PADDING) !== s) throw new Error('non-canonical base64url');
  return bytes;
}

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && sodium.memcmp(a, b);
}

/** §7: members sorted by key (UTF-16 order), no whitespace, ECMAScript JSON.stringify for scalars. */
export function canonical(v: unknown): string {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new Error('canonical JSON holds only safe integers');
    return JSON.stringify(v === 0 ? 0 : v);
  }
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v as object).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  throw new Error(`not a JSON value: ${typeof v}`);
}

/** Parses canonical JSON and refuses text that is not exactly the canonical form of what it parsed to. */
export function parseCanonical<T = Record<string, unknown>>(text: string): T {
  const v = JSON.parse(text) as T;
  if (canonical(v) !== text) throw new Error('not canonical JSON');
  return v;
}

/** §0 KDF(id, ctx, key). */
export const kdf = (id: number, ctx: string, key: Uint8Array): Uint8Array => sodium.crypto_kdf_derive_from_key(32, id, ctx, key);

/** §0 BLAKE2b-256, keyed or not. */
export const blake2b256 = (m: Uint8Array, key: Uint8Array | null = null): Uint8Array => sodium.crypto_generichash(32, m, key);

/** §0 Sign(ctx, body, sk) checked with pk. */
export function verifySigned(ctx: string, body: Uint8Array, sig: Uint8Array, pk: Uint8Array): boolean {
  return sodium.crypto_sign_verify_detached(sig, concat(utf8(ctx), new Uint8Array([0]), body), pk);
}

/** §1: 0x01 || nonce(24) || XChaCha20-Poly1305-IETF(msg, ad). */
export function openEnvelope(key: Uint8Array, envelope: Uint8Array, ad: Uint8Array): Uint8Array {
  if (envelope.length > 0 && envelope[0] !== 0x01) throw new Error('unsupported envelope version');
  if (envelope.length < 41) throw new Error('bad envelope');
  return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, envelope.subarray(25), ad, envelope.subarray(1, 25), key);
}

/** §0 Seal opened with an X25519 key pair; must yield exactly 32 bytes (every sealed key of Kluis). */
export function openSealedKey(sealed: Uint8Array, pk: Uint8Array, sk: Uint8Array): Uint8Array {
  const key = sodium.crypto_box_seal_open(sealed, pk, sk);
  if (key.length !== 32) throw new Error('a sealed key is not 32 bytes');
  return key;
}

/** The X25519 public key of a secret key. */
export const publicOf = (sk: Uint8Array): Uint8Array => sodium.crypto_scalarmult_base(sk);

/** §2: masterKey from a password and the account's KDF parameters. */
export function masterKeyOf(password: string, salt: Uint8Array, ops: number, mem: number): Uint8Array {
  return sodium.crypto_pwhash(64, utf8(password.normalize('NFC')), salt, ops, mem, sodium.crypto_pwhash_ALG_ARGON2ID13).subarray(0, 32);
}

/** §3: the account's secret keys from its key bundle, checked against the bundle's public keys. */
export function openKeyBundle(bundle: { v: number; encPublicKey: string; signPublicKey: string; sealedByPassword: string }, masterKey: Uint8Array): { encPublicKey: Uint8Array; encSecretKey: Uint8Array; signPublicKey: Uint8Array } {
  if (bundle.v !== 1) throw new Error('unknown key bundle version');
  const encPublicKey = b64u(bundle.encPublicKey);
  const signPublicKey = b64u(bundle.signPublicKey);
  const secrets = openEnvelope(kdf(1, 'kluisacc', masterKey), b64u(bundle.sealedByPassword), concat(utf8('kluis/keybundle/v1'), encPublicKey, signPublicKey));
  if (secrets.length !== 64) throw new Error('key bundle secrets are not 64 bytes');
  const encSecretKey = secrets.slice(0, 32);
  if (!equal(publicOf(encSecretKey), encPublicKey)) throw new Error('key bundle: encryption key does not match');
  if (!equal(sodium.crypto_sign_seed_keypair(secrets.slice(32)).publicKey, signPublicKey)) throw new Error('key bundle: signing key does not match');
  return { encPublicKey, encSecretKey, signPublicKey };
}
