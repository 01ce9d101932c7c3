// Deterministic pseudo-random bytes that any language can reproduce (docs/crypto.md §10, "SplitMix32").
// Used for the FastCDC gear-table derivation check, the FastCDC test vectors and the chunking tests.
// NOT a CSPRNG; never use it for keys or nonces.
//
// SplitMix32 (as defined for Kluis; integer arithmetic is modulo 2^32 throughout):
//   state_0 = seed
//   state_{k+1} = state_k + 0x9E3779B9
//   word_k = fmix32(state_{k+1})            (k = 0, 1, 2, ...; the state is advanced BEFORE mixing)
//   fmix32(x): x ^= x >> 16; x *= 0x85EBCA6B; x ^= x >> 13; x *= 0xC2B2AE35; x ^= x >> 16   (MurmurHash3 finaliser)
// Byte stream: word_0, word_1, ... each written little-endian (byte 4k+j = (word_k >> 8j) & 0xFF).

/** Weyl increment of SplitMix32 (2^32 / golden ratio, odd). */
export const SPLITMIX32_GAMMA = 0x9e3779b9;

/** MurmurHash3 32-bit finaliser; input and output are u32. */
export function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** word_k of the SplitMix32 stream with the given u32 seed (random access). */
export function splitmix32Word(seed: number, k: number): number {
  return fmix32((seed + Math.imul(k + 1, SPLITMIX32_GAMMA)) >>> 0);
}

/** The first n words of the SplitMix32 stream with the given seed. */
export function splitmix32Words(seed: number, n: number): Uint32Array {
  const out = new Uint32Array(n);
  let state = seed >>> 0;
  for (let k = 0; k < n; k++) {
    state = (state + SPLITMIX32_GAMMA) >>> 0;
    out[k] = fmix32(state);
  }
  return out;
}

/**
 * Sequential reader of the SplitMix32 byte stream. `fill` continues where the previous call stopped, so
 * filling pieces of any sizes yields exactly the same bytes as one `detBytes(seed, total)`.
 */
export class DetByteStream {
  private state: number;
  private word = 0;
  private left = 0; // bytes of `word` not yet emitted (low byte first)

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Overwrites all of `dst` with the next dst.length bytes of the stream and returns dst. */
  fill(dst: Uint8Array): Uint8Array {
    const n = dst.length;
    let i = 0;
    // Finish a partly emitted word.
    while (this.left > 0 && i < n) {
      dst[i++] = this.word & 0xff;
      this.word >>>= 8;
      this.left--;
    }
    let state = this.state;
    // Whole words.
    for (; i + 4 <= n; i += 4) {
      state = (state + SPLITMIX32_GAMMA) >>> 0;
      const w = fmix32(state);
      dst[i] = w & 0xff;
      dst[i + 1] = (w >>> 8) & 0xff;
      dst[i + 2] = (w >>> 16) & 0xff;
      dst[i + 3] = w >>> 24;
    }
    // A tail shorter than a word: start a new word and keep the rest for the next call.
    if (i < n) {
      state = (state + SPLITMIX32_GAMMA) >>> 0;
      let w = fmix32(state);
      let left = 4;
      while (i < n) {
        dst[i++] = w & 0xff;
        w >>>= 8;
        left--;
      }
      this.word = w;
      this.left = left;
    }
    this.state = state;
    return dst;
  }
}

/** The first `length` bytes of the SplitMix32 byte stream with the given seed. */
export function detBytes(seed: number, length: number): Uint8Array {
  return new DetByteStream(seed).fill(new Uint8Array(length));
}

/**
 * Seed of the FastCDC vector input: ASCII "test" as a big-endian u32. (Picked among a few ASCII tags so that the 8 MiB
 * vector has several MASK_S cuts, many MASK_L cuts and a final chunk shorter than CHUNK_MIN.)
 */
export const FASTCDC_VECTOR_SEED = 0x74657374;
/** Length of the FastCDC vector input: 8 MiB. */
export const FASTCDC_VECTOR_LENGTH = 8 * 1024 * 1024;
/** Seed of the FastCDC gear-table derivation: ASCII "gear" as a big-endian u32. */
export const FASTCDC_GEAR_SEED = 0x67656172;
