// The chunker guided by the previous version's chunk list (shared chunkStreamGuided, desktop/src/sync/chunk-guide.ts;
// docs/crypto.md §10.3 "Guided by the previous version"): for every kind of edit the boundaries and ids are exactly
// FastCDC's over the new content, the chunks the old list confirms skip the gear loop, and a guide that keeps being
// wrong (a rewritten file, another key) stops guessing.
import test from 'ava';
import * as k from '@kluis/shared';
import { PreviousChunks } from '../../desktop/dist/sync/chunk-guide.js';
import { detBytes } from '../helpers/det-bytes.js';

const MiB = 1024 * 1024;

test.before(async () => {
  await k.initCrypto();
});

async function* piecesOf(bytes: Uint8Array, size = MiB): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, Math.min(at + size, bytes.length));
}

/** [id, length] of each chunk, as plain FastCDC cuts `bytes`. */
function plain(keys: k.FileSubkeys, bytes: Uint8Array): [string, number][] {
  let at = 0;
  return k.chunkBoundaries(bytes).map((n) => {
    const id = k.chunkId(keys, bytes.subarray(at, at + n));
    at += n;
    return [id, n];
  });
}

/** The guided cut of `bytes` with `previous` as the guide (as read-encrypt.ts's sink does it). */
async function guided(keys: k.FileSubkeys, bytes: Uint8Array, previous: [string, number][], pieceSize?: number) {
  const guide = new PreviousChunks(keys, previous);
  const out: [string, number][] = [];
  let at = 0;
  let gearBytes = 0;
  for await (const c of k.chunkStreamGuided(piecesOf(bytes, pieceSize), guide)) {
    if (typeof c === 'number') {
      out.push([guide.takeConfirmed(), c]);
      at += c;
    } else {
      const id = k.chunkId(keys, c);
      guide.observe(at, id);
      out.push([id, c.length]);
      at += c.length;
      gearBytes += c.length;
    }
  }
  return { chunks: out, confirmed: guide.confirmed, missed: guide.missed, gearBytes };
}

const base = detBytes(41, 48 * MiB);
const edits: [string, (b: Uint8Array) => Uint8Array][] = [
  ['1 MiB overwritten in the middle', (b) => { const c = b.slice(); c.set(detBytes(42, MiB), 20 * MiB); return c; }],
  ['1,000 bytes inserted', (b) => Buffer.concat([b.subarray(0, 17 * MiB + 5), detBytes(43, 1000), b.subarray(17 * MiB + 5)])],
  ['300 KiB deleted', (b) => Buffer.concat([b.subarray(0, 9 * MiB), b.subarray(9 * MiB + 300 * 1024)])],
  ['3 MiB appended', (b) => Buffer.concat([b, detBytes(44, 3 * MiB)])],
  ['cut short by 5 MiB and a byte', (b) => b.subarray(0, b.length - 5 * MiB - 1)],
  ['its first byte changed', (b) => { const c = b.slice(); c[0] = c[0]! ^ 1; return c; }],
  ['unchanged', (b) => b.slice()],
];

for (const [name, edit] of edits) {
  test(`${name}: the same chunks as FastCDC, most of them taken from the old list`, async (t) => {
    const keys = k.deriveFileSubkeys(k.generateFileKey());
    const previous = plain(keys, base);
    const next = edit(base);
    const want = plain(keys, next);
    for (const pieceSize of [MiB, 64 * 1024 + 7]) {
      const got = await guided(keys, next, previous, pieceSize);
      t.deepEqual(got.chunks, want, `pieces of ${pieceSize}`);
      // The gear loop ran over a few chunks around the edit only.
      t.true(got.gearBytes <= 8 * MiB, `gear loop over ${got.gearBytes} bytes`);
      t.true(got.confirmed >= want.length - 6, `${got.confirmed} of ${want.length} confirmed`);
      t.true(got.missed <= 3, `${got.missed} wrong guesses`);
    }
  });
}

test('a rewritten file, or the old list under another key: the guide stops after three wrong guesses, the cut is FastCDC\'s', async (t) => {
  const keys = k.deriveFileSubkeys(k.generateFileKey());
  const rewritten = detBytes(45, 48 * MiB);
  const r1 = await guided(keys, rewritten, plain(keys, base));
  t.deepEqual(r1.chunks, plain(keys, rewritten));
  t.is(r1.confirmed, 0);
  // Guessed at offset 0 (an old chunk starts there); later cuts fall where no old chunk starts, so no more guesses.
  t.true(r1.missed >= 1 && r1.missed <= 3, `${r1.missed} wrong guesses`);
  const other = k.deriveFileSubkeys(k.generateFileKey());
  const r2 = await guided(keys, base, plain(other, base));
  t.deepEqual(r2.chunks, plain(keys, base));
  t.is(r2.confirmed, 0);
  // Every cut falls where an old chunk starts: three wrong guesses, then none.
  t.is(r2.missed, 3);
});

test('an old list that does not match the bytes it names is never taken on trust: each chunk is checked by its keyed id', async (t) => {
  const keys = k.deriveFileSubkeys(k.generateFileKey());
  const previous = plain(keys, base);
  // The same lengths with one id swapped for another chunk's: that chunk is cut by FastCDC and gets its real id.
  const lying: [string, number][] = previous.map(([id, n], i) => (i === 5 ? [previous[6]![0], n] : [id, n]));
  const got = await guided(keys, base, lying);
  t.deepEqual(got.chunks, plain(keys, base));
  t.is(got.missed, 1);
});
