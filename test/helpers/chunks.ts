// Client-side chunk helpers for server tests: real content, cut, encrypted and framed like the sync engine does.
import * as k from '@kluis/shared';

export interface EncryptedChunk {
  id: string;
  plaintext: Uint8Array;
  ciphertext: Uint8Array;
}

/** Encrypts `plaintexts` under one file's keys. */
export function encryptAll(sub: k.FileSubkeys, plaintexts: Uint8Array[]): EncryptedChunk[] {
  return plaintexts.map((p) => ({ plaintext: p, ...k.encryptChunk(sub, p) }));
}

/** Deterministic pseudo-random bytes (xorshift32), so tests can regenerate content after a restart. */
export function pseudoRandom(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
