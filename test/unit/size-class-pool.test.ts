// Pooled arrays by size class (shared/src/buffer-pool.ts: the server's buffers for chunks that span socket reads, the
// sync client's file reads) and the frame parser's `allocate` option that the server lends them to.
import test from 'ava';
import { FrameParser, FRAME_HEADER_BYTES, SizeClassPool, encodeFrames, type ChunkFrame } from '@kluis/shared';

const KiB = 1024;

function frame(i: number, n: number): ChunkFrame {
  const ciphertext = new Uint8Array(n);
  for (let j = 0; j < n; j++) ciphertext[j] = (i * 7 + j) & 0xff;
  return { id: (i + 1).toString(16).padStart(64, '0'), ciphertext };
}

test('SizeClassPool lends views of exactly the asked length and lends a given-back buffer again', (t) => {
  const pool = new SizeClassPool(1024 * KiB, 4096 * KiB);
  const a = pool.allocate(100 * KiB + 3);
  t.is(a.length, 100 * KiB + 3);
  t.is(a.buffer.byteLength, 128 * KiB, 'a power of two from 64 KiB');
  const before = a.buffer;
  pool.give(a);
  t.is(pool.idle, 128 * KiB);
  const b = pool.allocate(70 * KiB);
  t.is(b.buffer, before, 'the same buffer for a length of the same size class');
  t.is(b.length, 70 * KiB);
  t.is(pool.idle, 0);
  const c = pool.allocate(70 * KiB);
  t.not(c.buffer, before, 'a buffer is never lent twice at once');
});

test('SizeClassPool takes back only whole buffers it made, once, and within its idle budget', (t) => {
  const pool = new SizeClassPool(1024 * KiB, 256 * KiB);
  pool.give(new Uint8Array(128 * KiB)); // not the pool's
  pool.give(Buffer.allocUnsafeSlow(128 * KiB));
  t.is(pool.idle, 0);
  const a = pool.allocate(100 * KiB);
  pool.give(a.subarray(1)); // a view that does not start at the buffer's start
  t.is(pool.idle, 0);
  pool.give(a);
  pool.give(a); // twice
  t.is(pool.idle, 128 * KiB);
  const big = pool.allocate(2048 * KiB);
  t.is(big.length, 2048 * KiB, 'above maxSize: a one-off array');
  pool.give(big);
  t.is(pool.idle, 128 * KiB);
  const b = pool.allocate(200 * KiB); // a 256 KiB buffer: beside the idle 128 KiB it would pass the budget
  pool.give(b);
  t.is(pool.idle, 128 * KiB);
  pool.allocate(100 * KiB); // takes the idle one
  pool.give(b);
  t.is(pool.idle, 256 * KiB);
});

test('FrameParser assembles a spanning ciphertext in allocate(length) and passes whole ones as views', (t) => {
  const frames = [frame(0, 300), frame(1, 5000), frame(2, 41), frame(3, 9000)];
  const body = encodeFrames(frames);
  const asked: number[] = [];
  const parser = new FrameParser(undefined, {
    allocate: (n) => {
      asked.push(n);
      return new Uint8Array(new ArrayBuffer(n + 10), 0, n);
    },
  });
  // pieces: frame 0 whole in the first; frame 1 cut in three; frame 2's header cut, its ciphertext whole; frame 3 cut
  const cuts = [FRAME_HEADER_BYTES + 300 + FRAME_HEADER_BYTES + 100, 2000, 2920, 16 + 41 + 10, 4000];
  const out: ChunkFrame[] = [];
  let at = 0;
  for (const n of [...cuts, body.length]) {
    const end = Math.min(body.length, at + n);
    out.push(...parser.push(body.subarray(at, end)));
    at = end;
    if (at === body.length) break;
  }
  parser.end();
  t.deepEqual(out.map((f) => Buffer.from(f.ciphertext).toString('hex')), frames.map((f) => Buffer.from(f.ciphertext).toString('hex')));
  t.deepEqual(asked, [5000, 9000], 'only the two spanning ciphertexts are assembled');
  t.is(out[1]!.ciphertext.buffer.byteLength, 5010);
  t.is(out[0]!.ciphertext.buffer, body.buffer, 'a whole ciphertext is a view of its piece');
  const bad = new FrameParser(undefined, { allocate: (n) => new Uint8Array(n + 1) });
  t.throws(() => bad.push(body.subarray(0, FRAME_HEADER_BYTES + 100)), { instanceOf: TypeError, message: /allocate\(300\) gave 301 bytes/ });
});
