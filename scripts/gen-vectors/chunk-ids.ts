// Writes test/vectors/chunk-ids.json ONCE: the keyed chunk ids (docs/crypto.md §6) of the FastCDC vector input
// (docs/crypto.md §10.5) under a recorded file key, so chunking and id derivation are checked end to end.
import { existsSync, writeFileSync } from 'node:fs';
import * as k from '@kluis/shared';
import { detBytes, FASTCDC_VECTOR_LENGTH, FASTCDC_VECTOR_SEED } from '../../test/helpers/det-bytes.js';

const out = new URL('../../test/vectors/chunk-ids.json', import.meta.url);
if (existsSync(out)) {
  console.error('test/vectors/chunk-ids.json exists: vectors are frozen and never regenerated');
  process.exit(1);
}
await k.initCrypto();
const input = detBytes(FASTCDC_VECTOR_SEED, FASTCDC_VECTOR_LENGTH);
const fileKey = k.generateFileKey();
const sub = k.deriveFileSubkeys(fileKey);
const chunks: { offset: number; length: number; id: string }[] = [];
let offset = 0;
for (const length of k.chunkBoundaries(input)) {
  chunks.push({ offset, length, id: k.chunkId(sub, input.subarray(offset, offset + length)) });
  offset += length;
}
writeFileSync(out, JSON.stringify({
  note: 'Keyed chunk ids of the FastCDC vector input (seed and length below) under fileKey. Never regenerate.',
  input: { generator: 'splitmix32-bytes', seed: FASTCDC_VECTOR_SEED, length: FASTCDC_VECTOR_LENGTH },
  fileKey: k.toBase64Url(fileKey),
  chunkIdKey: k.toBase64Url(sub.chunkIdKey),
  wholeFileHash: k.contentHash(input),
  chunks,
}, null, 2) + '\n');
console.log('wrote', out.pathname, chunks.length, 'chunks');
