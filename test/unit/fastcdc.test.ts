// FastCDC chunking (docs/architecture.md §3, docs/crypto.md §10): frozen vectors, invariants, streaming, locality, memory.
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  CHUNK_AVG,
  CHUNK_MAX,
  CHUNK_MIN,
  GEAR,
  MASK_L,
  MASK_S,
  chunkBoundaries,
  chunkStream,
  cutPoint,
} from '@kluis/shared';
import {
  DetByteStream,
  FASTCDC_GEAR_SEED,
  FASTCDC_VECTOR_LENGTH,
  FASTCDC_VECTOR_SEED,
  detBytes,
  fmix32,
  splitmix32Word,
  splitmix32Words,
} from '../helpers/det-bytes.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

interface VectorChunk {
  offset: number;
  length: number;
  cut: 'maskS' | 'maskL' | 'max' | 'end';
  first16: string;
}
interface Vectors {
  name: string;
  params: { min: number; avg: number; max: number; normalizationLevel: number; maskS: string; maskSBits: number; maskL: string; maskLBits: number; fingerprint: string; cut: string };
  gear: { derivation: string; seed: string; table: string[] };
  input: { generator: string; seed: string; length: number };
  chunks: VectorChunk[];
  additionalCases: { input: { generator: string; length: number }; chunks: VectorChunk[] }[];
}
const vectors = JSON.parse(readFileSync(path.join(root, 'test', 'vectors', 'fastcdc.json'), 'utf8')) as Vectors;

// ---------------------------------------------------------------------------------------------------------------
// Helpers

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

function popcount32(x: number): number {
  let n = 0;
  for (let v = x >>> 0; v !== 0; v >>>= 1) n += v & 1;
  return n;
}

/**
 * Reference chunker written straight from docs/crypto.md §10 with plain (slow) arithmetic, independent of the
 * optimised loop: its own gear table (derived), its own masks (literals from the spec).
 */
const REF_GEAR = splitmix32Words(0x67656172, 256);
function referenceChunks(buf: Uint8Array): number[] {
  const out: number[] = [];
  let start = 0;
  while (start < buf.length) {
    const rest = buf.length - start;
    let len = Math.min(rest, 2 * MiB);
    if (rest > 128 * KiB) {
      let fp = 0;
      for (let i = 128 * KiB; i < len; i++) {
        fp = (fp * 2 + REF_GEAR[buf[start + i]!]!) % 2 ** 32;
        const mask = i < 512 * KiB ? 0xfffff800 : 0xffff8000;
        if ((fp & mask) === 0) {
          len = i + 1;
          break;
        }
      }
    }
    out.push(len);
    start += len;
  }
  return out;
}

/** Small seeded PRNG for piece sizes (xorshift32; quality is irrelevant here). */
function sizeRng(seed: number): (lo: number, hi: number) => number {
  let s = seed >>> 0 || 1;
  return (lo, hi) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return lo + (s % (hi - lo + 1));
  };
}

/** Splits buf into pieces (subarrays) according to a size function; may emit empty pieces. */
async function* pieces(buf: Uint8Array, nextSize: () => number): AsyncGenerator<Uint8Array> {
  let off = 0;
  while (off < buf.length) {
    const n = Math.min(nextSize(), buf.length - off);
    yield buf.subarray(off, off + n);
    off += n;
  }
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of chunkStream(source)) out.push(c);
  return out;
}

/** Checks every chunk but the last is in (CHUNK_MIN, CHUNK_MAX], the last in [1, CHUNK_MAX], and the total. */
function assertInvariants(t: ExecutionContext, lengths: readonly number[], total: number): void {
  t.is(sum(lengths), total, 'chunk lengths add up to the input length');
  lengths.forEach((n, i) => {
    if (i < lengths.length - 1) {
      if (!(n > CHUNK_MIN && n <= CHUNK_MAX)) t.fail(`chunk ${i} has length ${n}, outside (CHUNK_MIN, CHUNK_MAX]`);
    } else if (!(n >= 1 && n <= CHUNK_MAX)) {
      t.fail(`last chunk has length ${n}`);
    }
  });
}

const vectorInput = detBytes(FASTCDC_VECTOR_SEED, FASTCDC_VECTOR_LENGTH);
const vectorLengths = vectors.chunks.map((c) => c.length);

// ---------------------------------------------------------------------------------------------------------------
// Constants, generator, gear table

test('parameters are the frozen ones', (t) => {
  t.is(CHUNK_MIN, 128 * KiB);
  t.is(CHUNK_AVG, 512 * KiB);
  t.is(CHUNK_MAX, 2 * MiB);
  t.is(MASK_S, 0xfffff800);
  t.is(MASK_L, 0xffff8000);
  t.is(popcount32(MASK_S), 21);
  t.is(popcount32(MASK_L), 17);
  t.is(MASK_L & MASK_S, MASK_L | 0, 'MASK_L is a subset of MASK_S');
  const { fingerprint: _f, cut: _c, ...params } = vectors.params;
  t.deepEqual(params, {
    min: CHUNK_MIN,
    avg: CHUNK_AVG,
    max: CHUNK_MAX,
    normalizationLevel: 2,
    maskS: '0xfffff800',
    maskSBits: 21,
    maskL: '0xffff8000',
    maskLBits: 17,
  });
});

test('SplitMix32 generator matches its definition and known values', (t) => {
  t.is(fmix32(0), 0);
  t.is(fmix32(1), 0x514e28b7); // MurmurHash3 fmix32(1)
  // word_k = fmix32(seed + (k+1) * gamma)
  t.is(splitmix32Word(0, 0), fmix32(0x9e3779b9));
  t.is(splitmix32Word(0xffffffff, 1), fmix32((0xffffffff + 2 * 0x9e3779b9) % 2 ** 32));
  const words = splitmix32Words(FASTCDC_VECTOR_SEED, 1000);
  words.forEach((w, k) => {
    if (w !== splitmix32Word(FASTCDC_VECTOR_SEED, k)) t.fail(`word ${k}`);
  });
  // Bytes are the words, little-endian.
  const bytes = detBytes(FASTCDC_VECTOR_SEED, 4000);
  const view = new DataView(bytes.buffer);
  for (let k = 0; k < 1000; k++) if (view.getUint32(4 * k, true) !== words[k]) t.fail(`byte word ${k}`);
  // Filling in pieces of any size continues the same stream.
  const s = new DetByteStream(FASTCDC_VECTOR_SEED);
  const pieced = new Uint8Array(4000);
  const rnd = sizeRng(7);
  for (let off = 0; off < pieced.length; ) {
    const n = Math.min(rnd(0, 9), pieced.length - off);
    s.fill(pieced.subarray(off, off + n));
    off += n;
  }
  t.deepEqual(pieced, bytes);
});

test('the gear table literal equals its documented derivation (SplitMix32, seed "gear")', (t) => {
  t.is(FASTCDC_GEAR_SEED, 0x67656172);
  t.is(GEAR.length, 256);
  t.deepEqual(Array.from(GEAR), Array.from(splitmix32Words(FASTCDC_GEAR_SEED, 256)));
  t.deepEqual(vectors.gear.table, Array.from(GEAR, (v) => '0x' + v.toString(16).padStart(8, '0')));
  t.is(vectors.gear.seed, '0x67656172');
  t.is(new Set(GEAR).size, 256, 'all entries distinct');
  // Spot values, so a wrong derivation cannot silently agree with a wrong literal.
  t.is(GEAR[0], 0xedfcf67a);
  t.is(GEAR[255], 0xe48914d9);
});

test('the exported GEAR is a copy: writing to it does not change chunking', (t) => {
  const saved = GEAR.slice();
  try {
    GEAR.fill(0);
    t.deepEqual(chunkBoundaries(vectorInput), vectorLengths);
  } finally {
    GEAR.set(saved);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Frozen vectors

test('vector file describes the input and is self-consistent', (t) => {
  t.deepEqual(vectors.input, { generator: 'splitmix32-fmix32-le', seed: '0x74657374', length: 8 * MiB });
  t.is(FASTCDC_VECTOR_SEED, 0x74657374);
  let offset = 0;
  for (const c of vectors.chunks) {
    t.is(c.offset, offset);
    t.is(c.first16, hex(vectorInput.subarray(c.offset, c.offset + 16)), `first16 of chunk at ${c.offset}`);
    offset += c.length;
  }
  t.is(offset, 8 * MiB);
  // The vector exercises both masks and a short final chunk.
  const cuts = vectors.chunks.map((c) => c.cut);
  t.true(cuts.filter((c) => c === 'maskS').length >= 2);
  t.true(cuts.filter((c) => c === 'maskL').length >= 2);
  t.is(cuts.at(-1), 'end');
  t.true(vectors.chunks.at(-1)!.length < CHUNK_MIN);
  for (const c of vectors.chunks.slice(0, -1)) {
    if (c.cut === 'maskS') t.true(c.length > CHUNK_MIN && c.length <= CHUNK_AVG);
    if (c.cut === 'maskL') t.true(c.length > CHUNK_AVG && c.length <= CHUNK_MAX);
  }
  t.log(`vector chunk lengths: ${vectorLengths.join(', ')}`);
});

test('chunkBoundaries reproduces the vectors exactly', (t) => {
  t.deepEqual(chunkBoundaries(vectorInput), vectorLengths);
  for (const extra of vectors.additionalCases) {
    t.is(extra.input.generator, 'zeros');
    const lengths = chunkBoundaries(new Uint8Array(extra.input.length));
    t.deepEqual(lengths, extra.chunks.map((c) => c.length));
  }
});

test('the reference implementation (plain arithmetic, from the spec) reproduces the vectors', (t) => {
  t.deepEqual(referenceChunks(vectorInput), vectorLengths);
});

/** Piece-size functions used to split stream inputs (fresh PRNG state per call). */
function splittings(seed: number): [string, () => number][] {
  const rnd = sizeRng(seed);
  return [
    ['one piece', () => Number.MAX_SAFE_INTEGER],
    ['64 KiB pieces', () => 64 * KiB],
    ['exactly CHUNK_MAX pieces', () => CHUNK_MAX],
    ['CHUNK_MAX - 1 pieces', () => CHUNK_MAX - 1],
    ['CHUNK_MAX + 1 pieces', () => CHUNK_MAX + 1],
    ['3 MiB pieces', () => 3 * MiB],
    ['5 MiB pieces', () => 5 * MiB],
    ['random 0..100 KiB', () => rnd(0, 100 * KiB)],
    // 1-byte pieces, tiny pieces, empty pieces, medium and > 2 MiB pieces mixed.
    [
      'random mix incl. 0, 1 byte and > 2 MiB',
      () => {
        const kind = rnd(0, 9);
        if (kind <= 1) return 1;
        if (kind === 2) return 0;
        if (kind <= 5) return rnd(2, 64);
        if (kind <= 7) return rnd(65, 300 * KiB);
        return rnd(2 * MiB + 1, 5 * MiB);
      },
    ],
  ];
}

async function checkStream(t: ExecutionContext, input: Uint8Array, expected: number[], seed: number): Promise<void> {
  for (const [name, next] of splittings(seed)) {
    const chunks = await collect(pieces(input, next));
    t.deepEqual(
      chunks.map((c) => c.length),
      expected,
      name,
    );
    let off = 0;
    for (const c of chunks) {
      if (!Buffer.from(c).equals(input.subarray(off, off + c.length))) t.fail(`${name}: wrong bytes at ${off}`);
      off += c.length;
    }
  }
}

test('chunkStream reproduces the vectors for many splittings, with correct bytes', async (t) => {
  await checkStream(t, vectorInput, vectorLengths, 0x5eed);
});

test('chunkStream equals chunkBoundaries on input with CHUNK_MAX cuts (zeros, 0xFF runs) and random parts', async (t) => {
  const parts = [new Uint8Array(4.5 * MiB), detBytes(0xabc, 6 * MiB), new Uint8Array(4.2 * MiB).fill(0xff), detBytes(0xdef, 3 * MiB + 3)];
  const input = new Uint8Array(sum(parts.map((p) => p.length)));
  let off = 0;
  for (const p of parts) {
    input.set(p, off);
    off += p.length;
  }
  const expected = chunkBoundaries(input);
  t.deepEqual(expected, referenceChunks(input));
  t.true(expected.filter((n) => n === CHUNK_MAX).length >= 4, 'several chunks cut at CHUNK_MAX');
  assertInvariants(t, expected, input.length);
  await checkStream(t, input, expected, 0xfeed);
});

test('chunkStream with 1-byte pieces over the first 2.5 MiB, then large pieces', async (t) => {
  let fed = 0;
  const chunks = await collect(
    pieces(vectorInput, () => {
      const n = fed < 2.5 * MiB ? 1 : 3 * MiB;
      fed += n;
      return n;
    }),
  );
  t.deepEqual(
    chunks.map((c) => c.length),
    vectorLengths,
  );
});

test('chunkStream yields owned copies that stay valid when the source reuses its buffer', async (t) => {
  const input = detBytes(0x0badcafe, 6 * MiB + 12345);
  async function* reusing(): AsyncGenerator<Uint8Array> {
    const scratch = new Uint8Array(3 * MiB);
    const rnd = sizeRng(99);
    for (let off = 0; off < input.length; ) {
      const n = Math.min(rnd(1, scratch.length), input.length - off);
      const piece = scratch.subarray(0, n);
      piece.set(input.subarray(off, off + n));
      yield piece;
      scratch.fill(0xa5); // the source scribbles over its buffer once the piece has been consumed
      off += n;
    }
  }
  const chunks = await collect(reusing());
  t.deepEqual(
    chunks.map((c) => c.length),
    chunkBoundaries(input),
  );
  let off = 0;
  const buffers = new Set<ArrayBufferLike>();
  for (const c of chunks) {
    t.is(c.byteOffset, 0);
    t.is(c.buffer.byteLength, c.length, 'each chunk has its own exactly-sized buffer');
    buffers.add(c.buffer);
    if (!Buffer.from(c).equals(input.subarray(off, off + c.length))) t.fail(`chunk at ${off} was overwritten`);
    off += c.length;
  }
  t.is(buffers.size, chunks.length);
});

test('chunkStream with borrow yields views of the right bytes and boundaries, each valid until the next is asked for', async (t) => {
  // 1 MiB pieces from one reused buffer, as the sync client reads a file; 23 MiB, so the window fills and its tail
  // is moved to the front several times
  const input = detBytes(0x5a5a, 23 * MiB + 777);
  async function* reusing(): AsyncGenerator<Uint8Array> {
    const scratch = new Uint8Array(MiB);
    for (let off = 0; off < input.length; off += MiB) {
      const piece = scratch.subarray(0, Math.min(MiB, input.length - off));
      piece.set(input.subarray(off, off + piece.length));
      yield piece;
      scratch.fill(0x5c);
    }
  }
  const lengths: number[] = [];
  const windows = new Set<ArrayBufferLike>();
  let off = 0;
  for await (const c of chunkStream(reusing(), { borrow: true })) {
    if (!Buffer.from(c).equals(input.subarray(off, off + c.length))) t.fail(`chunk at ${off}: wrong bytes`);
    windows.add(c.buffer);
    lengths.push(c.length);
    off += c.length;
  }
  t.deepEqual(lengths, chunkBoundaries(input));
  t.is(windows.size, 1, 'every chunk is a view of the one window, not a copy');
  t.is([...windows][0]!.byteLength, 4 * CHUNK_MAX);
});

test('chunkStream accepts Node Readable and web ReadableStream, rejects non-byte pieces', async (t) => {
  const input = detBytes(0x1234, 3 * MiB);
  const rs = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let off = 0; off < input.length; off += 700 * KiB) controller.enqueue(input.slice(off, off + 700 * KiB));
      controller.close();
    },
  });
  const chunks = await collect(rs as unknown as AsyncIterable<Uint8Array>);
  t.deepEqual(
    chunks.map((c) => c.length),
    chunkBoundaries(input),
  );
  const nodeChunks = await collect(Readable.from([Buffer.from(input.subarray(0, MiB)), Buffer.from(input.subarray(MiB))]));
  t.deepEqual(
    nodeChunks.map((c) => c.length),
    chunkBoundaries(input),
  );
  async function* strings(): AsyncGenerator<Uint8Array> {
    yield 'not bytes' as unknown as Uint8Array;
  }
  await t.throwsAsync(collect(strings()), { instanceOf: TypeError });
  async function* empty(): AsyncGenerator<Uint8Array> {}
  t.deepEqual(await collect(empty()), []);
});

// ---------------------------------------------------------------------------------------------------------------
// Invariants and edge cases

test('min/max invariants and size distribution on 64 MiB of random data; agrees with the reference', (t) => {
  const all: number[] = [];
  for (let s = 0; s < 8; s++) {
    const buf = detBytes(0x1000 + s, 8 * MiB + s * 1000);
    const lengths = chunkBoundaries(buf);
    assertInvariants(t, lengths, buf.length);
    if (s < 2) t.deepEqual(lengths, referenceChunks(buf), `reference, seed ${s}`);
    all.push(...lengths.slice(0, -1));
  }
  const mean = sum(all) / all.length;
  const small = all.filter((n) => n <= CHUNK_AVG).length;
  t.log(`${all.length} chunks, mean ${(mean / KiB).toFixed(0)} KiB, ${small} cut by MASK_S, min ${Math.min(...all)}, max ${Math.max(...all)}`);
  // Expected with these masks: ~17% of chunks cut by MASK_S, mean ~590 KiB.
  t.true(mean > 480 * KiB && mean < 700 * KiB, `mean ${mean}`);
  t.true(small >= 3 && small <= all.length / 2, `MASK_S cuts ${small}`);
});

test('all-zero and constant input cuts at CHUNK_MAX', (t) => {
  t.deepEqual(chunkBoundaries(new Uint8Array(7 * MiB)), [CHUNK_MAX, CHUNK_MAX, CHUNK_MAX, MiB]);
  t.deepEqual(chunkBoundaries(new Uint8Array(4 * MiB).fill(0xff)), [CHUNK_MAX, CHUNK_MAX]);
  // No constant run ever matches (docs/crypto.md §10.3): from fp = 0, after n bytes of c, fp = GEAR[c] * (2^n - 1),
  // constant from n = 32 on. MASK_L is a subset of MASK_S, so "no MASK_L match" covers both masks.
  for (let c = 0; c < 256; c++) {
    let fp = 0;
    for (let n = 1; n <= 40; n++) {
      fp = (2 * fp + GEAR[c]!) % 2 ** 32;
      if ((fp & MASK_L) === 0) t.fail(`a run of byte ${c} matches after ${n} bytes`);
    }
    t.is(fp, (2 ** 32 - GEAR[c]!) % 2 ** 32);
  }
  t.deepEqual(chunkBoundaries(new Uint8Array(CHUNK_MAX + 5).fill(0x5a)), [CHUNK_MAX, 5]);
});

test('edge lengths: 0, 1, min-1, min, min+1, max-1, max, max+1', (t) => {
  t.deepEqual(chunkBoundaries(new Uint8Array(0)), []);
  t.deepEqual(chunkBoundaries(new Uint8Array(1)), [1]);
  for (const n of [CHUNK_MIN - 1, CHUNK_MIN, CHUNK_MIN + 1]) {
    t.deepEqual(chunkBoundaries(new Uint8Array(n)), [n], `zeros ${n}`);
    t.deepEqual(chunkBoundaries(detBytes(n, n)), [n], `random ${n}`);
  }
  t.deepEqual(chunkBoundaries(new Uint8Array(CHUNK_MAX - 1)), [CHUNK_MAX - 1]);
  t.deepEqual(chunkBoundaries(new Uint8Array(CHUNK_MAX)), [CHUNK_MAX]);
  t.deepEqual(chunkBoundaries(new Uint8Array(CHUNK_MAX + 1)), [CHUNK_MAX, 1]);
  for (const n of [CHUNK_MAX - 1, CHUNK_MAX, CHUNK_MAX + 1]) {
    const buf = detBytes(n, n);
    const lengths = chunkBoundaries(buf);
    assertInvariants(t, lengths, n);
    t.deepEqual(lengths, referenceChunks(buf), `random ${n}`);
  }
});

test('the byte whose fingerprint matches is the last byte of its chunk (length = index + 1), under both masks', (t) => {
  // Zeros never match (see the all-zero test), so after zeros the fingerprint is known. Search 3 bytes (a, b, c)
  // whose fingerprints after a and b match neither mask and after c satisfy `want`; put them at index q.
  const step = (fp: number, byte: number): number => (2 * fp + GEAR[byte]!) % 2 ** 32;
  const matchS = (f: number): boolean => (f & MASK_S) === 0;
  const matchLOnly = (f: number): boolean => (f & MASK_L) === 0 && (f & MASK_S) !== 0;
  function suffix(fp0: number, want: (f: number) => boolean): [number, number, number] {
    for (let a = 0; a < 256; a++) {
      const f1 = step(fp0, a);
      if ((f1 & MASK_L) === 0) continue;
      for (let b = 0; b < 256; b++) {
        const f2 = step(f1, b);
        if ((f2 & MASK_L) === 0) continue;
        for (let c = 0; c < 256; c++) if (want(step(f2, c))) return [a, b, c];
      }
    }
    throw new Error('no 3-byte suffix found');
  }
  const cases: [number, (f: number) => boolean, number, string][] = [
    [CHUNK_MIN, matchS, CHUNK_MIN + 3, 'MASK_S match among the very first hashed bytes'],
    [200 * KiB, matchS, 200 * KiB + 3, 'MASK_S match'],
    [CHUNK_AVG - 3, matchS, CHUNK_AVG, 'MASK_S match at index CHUNK_AVG - 1'],
    [CHUNK_AVG - 3, matchLOnly, CHUNK_MAX, 'a MASK_L-only match at index CHUNK_AVG - 1 does not cut'],
    [300 * KiB, matchLOnly, CHUNK_MAX, 'a MASK_L-only match before CHUNK_AVG does not cut'],
    [CHUNK_AVG - 2, matchLOnly, CHUNK_AVG + 1, 'MASK_L-only match at index CHUNK_AVG cuts'],
    [CHUNK_MAX - 4, matchLOnly, CHUNK_MAX - 1, 'MASK_L-only match at index CHUNK_MAX - 2'],
  ];
  for (const [q, want, expected, what] of cases) {
    let fp = 0;
    for (let i = CHUNK_MIN; i < q; i++) fp = step(fp, 0);
    const buf = new Uint8Array(CHUNK_MAX + 100);
    buf.set(suffix(fp, want), q);
    t.is(cutPoint(buf, 0, buf.length), expected, what);
    t.is(chunkBoundaries(buf)[0], expected, what);
    t.is(referenceChunks(buf)[0], expected, what);
  }
});

test('cutPoint: ranges, offsets and independence from bytes beyond CHUNK_MAX', (t) => {
  const buf = detBytes(0x77, 9 * MiB);
  t.is(cutPoint(buf, 5, 5), 0);
  t.is(cutPoint(buf, 0, 10), 10);
  t.throws(() => cutPoint(buf, 10, 5), { instanceOf: RangeError });
  t.throws(() => cutPoint(buf, -1, 5), { instanceOf: RangeError });
  t.throws(() => cutPoint(buf, 0, buf.length + 1), { instanceOf: RangeError });
  t.throws(() => cutPoint(buf, 0.5, 5), { instanceOf: RangeError });
  // A chunk decided with exactly CHUNK_MAX bytes available does not change when more follow.
  for (const start of [0, 1, 12345, 3 * MiB + 7]) {
    const a = cutPoint(buf, start, start + CHUNK_MAX);
    const b = cutPoint(buf, start, buf.length);
    t.is(a, b);
    t.is(cutPoint(buf.subarray(start), 0, buf.length - start), b, 'same on a subarray');
  }
  // Walking with cutPoint from an offset equals chunkBoundaries of the subarray.
  const sub = buf.subarray(777);
  const walked: number[] = [];
  for (let p = 777; p < buf.length; ) {
    const n = cutPoint(buf, p, buf.length);
    walked.push(n);
    p += n;
  }
  t.deepEqual(walked, chunkBoundaries(sub));
});

// ---------------------------------------------------------------------------------------------------------------
// Locality and memory

test('locality: a 1 MiB edit in the middle of 16 MiB changes at most 4 MiB of chunks', (t) => {
  const before = detBytes(0x10ca1, 16 * MiB);
  const after = before.slice();
  after.set(detBytes(0xed17, MiB), 7.5 * MiB);
  const oldLengths = chunkBoundaries(before);
  const newLengths = chunkBoundaries(after);
  const oldIds = new Set<string>();
  let off = 0;
  for (const n of oldLengths) {
    oldIds.add(sha256(before.subarray(off, off + n)));
    off += n;
  }
  let changed = 0;
  let changedChunks = 0;
  off = 0;
  for (const n of newLengths) {
    if (!oldIds.has(sha256(after.subarray(off, off + n)))) {
      changed += n;
      changedChunks++;
    }
    off += n;
  }
  t.log(`changed: ${changedChunks} of ${newLengths.length} chunks, ${(changed / MiB).toFixed(2)} MiB for a 1 MiB edit`);
  t.true(changed >= MiB, 'the edited bytes are in changed chunks');
  t.true(changed <= 4 * MiB, `changed ${changed} bytes`);
  // Chunks wholly before the edit are identical.
  let prefix = 0;
  let i = 0;
  while (i < oldLengths.length && prefix + oldLengths[i]! <= 7.5 * MiB) prefix += oldLengths[i++]!;
  t.deepEqual(newLengths.slice(0, i), oldLengths.slice(0, i));
});

test.serial('a 1 GiB stream is chunked in bounded memory (never materialised)', async (t) => {
  const TOTAL = 1024 * MiB;
  const SCRATCH = 5 * MiB; // pieces up to 5 MiB, generated into one reused buffer
  async function* lazy(): AsyncGenerator<Uint8Array> {
    const scratch = new Uint8Array(SCRATCH);
    const words = new Int32Array(scratch.buffer);
    const rnd = sizeRng(0x1eaf);
    let x = 0x2545f491;
    for (let left = TOTAL; left > 0; ) {
      const kind = rnd(0, 15);
      const n = Math.min(kind === 0 ? rnd(1, 64) : rnd(1, SCRATCH), left);
      for (let k = 0, m = (n + 3) >>> 2; k < m; k++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        words[k] = x;
      }
      yield scratch.subarray(0, n);
      left -= n;
    }
  }
  // Every yielded chunk is a fresh buffer the consumer drops at once; V8 frees such external memory lazily (it
  // only forces a collection after ~64 MiB of new external allocations), which would measure the GC, not the
  // chunker. So collect every 16 chunks (~9 MiB of garbage), as a busy consumer's allocations would.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  const t0 = performance.now();
  const base = process.memoryUsage.rss();
  let peak = base;
  let total = 0;
  let count = 0;
  let bad = 0;
  let last = 0;
  for await (const chunk of chunkStream(lazy())) {
    if (last !== 0 && !(last > CHUNK_MIN && last <= CHUNK_MAX)) bad++;
    last = chunk.length;
    total += chunk.length;
    count++;
    if (count % 16 === 0) gc();
    const rss = process.memoryUsage.rss();
    if (rss > peak) peak = rss;
  }
  const secs = (performance.now() - t0) / 1000;
  const growth = (peak - base) / MiB;
  t.log(`1 GiB: ${count} chunks in ${secs.toFixed(1)} s (${(TOTAL / MiB / secs).toFixed(0)} MiB/s incl. generation), peak RSS growth ${growth.toFixed(1)} MiB`);
  t.is(total, TOTAL);
  t.is(bad, 0);
  t.true(count > TOTAL / CHUNK_MAX && count < TOTAL / CHUNK_MIN);
  t.true(growth < 64, `RSS grew by ${growth.toFixed(1)} MiB`);
});
