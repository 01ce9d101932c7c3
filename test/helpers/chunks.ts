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

/** The whole-file hash of `data` through a streaming ContentHasher fed in `pieces` sizes, in turn (0: an empty update). */
export function hashInPieces(data: Uint8Array, pieces: readonly number[]): string {
  const h = new k.ContentHasher();
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = pieces[i % pieces.length]!;
    h.update(data.subarray(at, Math.min(data.length, at + n)));
    at += n;
  }
  return h.digest();
}
