// Byte encodings used on the wire and in documents. Pure TypeScript: runs in Node, Electron and the browser.

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64URL_LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < B64URL.length; i++) B64URL_LOOKUP[B64URL.charCodeAt(i)] = i;

/** Thrown when a textual encoding cannot be decoded. */
export class EncodingError extends Error {
  override name = 'EncodingError';
}

const B64URL_CODES = Uint8Array.from(B64URL, (c) => c.charCodeAt(0));
const ascii = new TextDecoder();

/**
 * base64url without padding (RFC 4648 §5), the encoding of every binary value in JSON. The characters are written into
 * one byte array and decoded once into a flat string. Appending four characters at a time (the earlier way) made a
 * rope of cons strings, about 16 KB of garbage per sealed manifest of a small file and a rope kept as long as the
 * pending commit holding it: a third of a first sync's allocations (issue 22).
 */
export function toBase64Url(bytes: Uint8Array): string {
  const out = new Uint8Array(Math.ceil((bytes.length * 4) / 3));
  let o = 0;
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[o++] = B64URL_CODES[n >> 18]!;
    out[o++] = B64URL_CODES[(n >> 12) & 63]!;
    out[o++] = B64URL_CODES[(n >> 6) & 63]!;
    out[o++] = B64URL_CODES[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out[o++] = B64URL_CODES[n >> 18]!;
    out[o++] = B64URL_CODES[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out[o++] = B64URL_CODES[n >> 18]!;
    out[o++] = B64URL_CODES[(n >> 12) & 63]!;
    out[o++] = B64URL_CODES[(n >> 6) & 63]!;
  }
  return ascii.decode(out);
}

/** Strict base64url decoding: no padding, no whitespace, canonical trailing bits. */
export function fromBase64Url(text: string): Uint8Array {
  if (text.length % 4 === 1) throw new EncodingError('invalid base64url length');
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? B64URL_LOOKUP[c]! : -1;
    if (v < 0) throw new EncodingError('invalid base64url character');
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  // Leftover bits must be zero so that every byte string has exactly one encoding.
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) throw new EncodingError('non-canonical base64url');
  return out;
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding. */
export function toBase32(bytes: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = ((acc << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += B32[(acc >> bits) & 31];
    }
  }
  if (bits > 0) out += B32[(acc << (5 - bits)) & 31];
  return out;
}

/** RFC 4648 base32 without padding, upper case only. */
export function fromBase32(text: string): Uint8Array {
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const v = B32.indexOf(text[i]!);
    if (v < 0) throw new EncodingError('invalid base32 character');
    acc = ((acc << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/** The character codes of each byte's two lower-case hex digits: byte b at 2b and 2b + 1. */
const HEX_CODES: Uint16Array = (() => {
  const codes = new Uint16Array(512);
  for (let b = 0; b < 256; b++) {
    const hex = b.toString(16).padStart(2, '0');
    codes[2 * b] = hex.charCodeAt(0);
    codes[2 * b + 1] = hex.charCodeAt(1);
  }
  return codes;
})();
/** Bytes turned into characters per String.fromCharCode call (twice as many arguments). */
const HEX_BLOCK = 4096;
const hexScratch = new Uint16Array(2 * HEX_BLOCK);

/**
 * Lower-case hex, as one flat string. Appending two digits at a time (`out += ...`) made a rope of about 30 string
 * pieces per 32-byte hash, about 900 bytes of heap where the flat string takes 100, and every hash and chunk id the
 * sync engine keeps per file was one (issue 22: client memory).
 */
export function toHex(bytes: Uint8Array): string {
  const parts: string[] = [];
  for (let at = 0; at < bytes.length; at += HEX_BLOCK) {
    const end = Math.min(bytes.length, at + HEX_BLOCK);
    let o = 0;
    for (let i = at; i < end; i++) {
      const b = bytes[i]!;
      hexScratch[o++] = HEX_CODES[2 * b]!;
      hexScratch[o++] = HEX_CODES[2 * b + 1]!;
    }
    parts.push(String.fromCharCode.apply(null, hexScratch.subarray(0, o) as unknown as number[]));
  }
  return parts.length === 1 ? parts[0]! : parts.join('');
}

/** A hex digit's value by character code (-1: not a hex digit; codes past the table read as undefined). */
const HEX_VALUE: Int8Array = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < 10; i++) table[0x30 + i] = i;
  for (let i = 0; i < 6; i++) table[0x41 + i] = table[0x61 + i] = 10 + i;
  return table;
})();

/** Strict lower- or upper-case hex of an even length. */
export function fromHex(text: string): Uint8Array {
  if (text.length % 2 !== 0) throw new EncodingError('invalid hex');
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = HEX_VALUE[text.charCodeAt(2 * i)] ?? -1;
    const lo = HEX_VALUE[text.charCodeAt(2 * i + 1)] ?? -1;
    if ((hi | lo) < 0) throw new EncodingError('invalid hex');
    out[i] = (hi << 4) | lo;
  }
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Strict UTF-8 decoding: invalid sequences throw. */
export function fromUtf8(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new EncodingError('invalid UTF-8');
  }
}

/** Concatenates byte arrays into one new array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Byte-wise equality (not constant time: use the crypto facade for secrets). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
