// Writes test/vectors/fastcdc.json, the frozen FastCDC test vectors (layout: docs/crypto.md §10 §"Test vectors").
// Run once, after `npx tsc -b`:   node --import=tsx scripts/gen-vectors/fastcdc.ts
// It refuses to overwrite an existing file: the vectors pin the chunk boundaries forever, and regenerating them
// from changed code would hide exactly the change they exist to catch.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CHUNK_AVG,
  CHUNK_MAX,
  CHUNK_MIN,
  GEAR,
  MASK_L,
  MASK_S,
  chunkBoundaries,
} from '@kluis/shared';
import {
  FASTCDC_GEAR_SEED,
  FASTCDC_VECTOR_LENGTH,
  FASTCDC_VECTOR_SEED,
  detBytes,
  splitmix32Words,
} from '../../test/helpers/det-bytes.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = path.join(root, 'test', 'vectors', 'fastcdc.json');

const u32hex = (v: number): string => '0x' + (v >>> 0).toString(16).padStart(8, '0');
const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

// The table in the source must be the documented derivation; never freeze vectors made with anything else.
const derived = splitmix32Words(FASTCDC_GEAR_SEED, 256);
if (GEAR.length !== 256 || derived.some((v, k) => v !== GEAR[k])) {
  throw new Error('GEAR in shared/src/chunking/fastcdc.ts differs from its documented derivation');
}

type Cut = 'maskS' | 'maskL' | 'max' | 'end';

// Why a chunk ended, recomputed independently of the optimised loop with plain arithmetic.
function cutReason(buf: Uint8Array, offset: number, length: number): Cut {
  if (length > CHUNK_MIN) {
    let fp = 0;
    for (let i = offset + CHUNK_MIN; i < offset + length; i++) fp = (2 * fp + GEAR[buf[i]!]!) % 2 ** 32;
    const last = length - 1; // index, within the chunk, of the byte whose fingerprint decided the cut
    if (last < CHUNK_AVG && (fp & MASK_S) === 0) return 'maskS';
    if (last >= CHUNK_AVG && (fp & MASK_L) === 0) return 'maskL';
    if (length === CHUNK_MAX) return 'max';
  }
  if (offset + length === buf.length) return 'end';
  throw new Error(`chunk at ${offset} (+${length}) has no valid reason to end`);
}

function describe(buf: Uint8Array): { offset: number; length: number; cut: Cut; first16: string }[] {
  const chunks = [];
  let offset = 0;
  for (const length of chunkBoundaries(buf)) {
    chunks.push({ offset, length, cut: cutReason(buf, offset, length), first16: hex(buf.subarray(offset, offset + 16)) });
    offset += length;
  }
  if (offset !== buf.length) throw new Error('chunk lengths do not add up');
  return chunks;
}

const input = detBytes(FASTCDC_VECTOR_SEED, FASTCDC_VECTOR_LENGTH);
const zeros = new Uint8Array(5 * 1024 * 1024);

const doc = {
  name: 'kluis-fastcdc-v1',
  spec: 'docs/crypto.md §10',
  params: {
    min: CHUNK_MIN,
    avg: CHUNK_AVG,
    max: CHUNK_MAX,
    normalizationLevel: 2,
    maskS: u32hex(MASK_S),
    maskSBits: 21,
    maskL: u32hex(MASK_L),
    maskLBits: 17,
    fingerprint: 'u32 fp; fp = 0 at chunk index min; for each byte b at chunk index i >= min: fp = (2*fp + GEAR[b]) mod 2^32',
    cut: 'cut after the byte at chunk index i (chunk length i+1) when (fp & maskS) == 0 for min <= i < avg, or (fp & maskL) == 0 for avg <= i < max; otherwise at max; the last chunk is the remainder',
  },
  gear: {
    derivation: 'splitmix32-fmix32: GEAR[k] = fmix32((seed + (k+1)*0x9e3779b9) mod 2^32), k = 0..255',
    seed: u32hex(FASTCDC_GEAR_SEED),
    table: Array.from(GEAR, u32hex),
  },
  input: {
    generator: 'splitmix32-fmix32-le',
    seed: u32hex(FASTCDC_VECTOR_SEED),
    length: FASTCDC_VECTOR_LENGTH,
  },
  chunks: describe(input),
  additionalCases: [
    {
      input: { generator: 'zeros', length: zeros.length },
      chunks: describe(zeros),
    },
  ],
};

try {
  writeFileSync(out, JSON.stringify(doc, null, 2) + '\n', { flag: 'wx' });
} catch (err) {
  if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
    console.error(`${path.relative(root, out)} already exists; the vectors are frozen, refusing to overwrite it.`);
    process.exit(1);
  }
  throw err;
}
console.log(`wrote ${path.relative(root, out)}: ${doc.chunks.length} chunks`);
for (const c of doc.chunks) console.log(`  ${String(c.offset).padStart(8)} +${String(c.length).padStart(8)}  ${c.cut}`);
