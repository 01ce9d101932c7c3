// The framed batch encoder (shared/src/api/frames.ts): frameStream must give exactly encodeFrames' bytes for every
// ciphertext length, in particular those around the block size where a frame's header no longer fits beside it
// (a 256 KiB - 20 byte chunk crashed the server's download stream with "offset is out of bounds").
import test from 'ava';
import { FRAME_HEADER_BYTES, decodeFrames, encodeFrames, frameStream, type ChunkFrame } from '@kluis/shared';

function frame(i: number, n: number): ChunkFrame {
  const id = (i + 1).toString(16).padStart(64, '0');
  const ciphertext = new Uint8Array(n);
  for (let j = 0; j < n; j++) ciphertext[j] = (i * 31 + j) & 0xff;
  return { id, ciphertext };
}

async function streamed(frames: ChunkFrame[], blockBytes: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of frameStream(frames, { blockBytes })) parts.push(p.slice());
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

test('frameStream equals encodeFrames for lengths around the block size, alone and after other frames', async (t) => {
  const block = 1024;
  const lengths = [41, 100, block - FRAME_HEADER_BYTES - 1, block - FRAME_HEADER_BYTES, block - FRAME_HEADER_BYTES + 1, block - 20, block - 1, block, block + 1, 3 * block];
  for (const first of [0, 41, 500, block - FRAME_HEADER_BYTES - 41]) {
    for (const n of lengths) {
      const frames = [...(first ? [frame(0, first)] : []), frame(1, n), frame(2, 41), frame(3, n)];
      const bytes = await streamed(frames, block);
      t.deepEqual(bytes, encodeFrames(frames), `first ${first}, n ${n}`);
      t.deepEqual(decodeFrames(bytes).map((f) => f.ciphertext.length), frames.map((f) => f.ciphertext.length));
    }
  }
});

test('frameStream: parts stay valid when kept, and large frames cost no block of their own', async (t) => {
  const block = 1024;
  const frames = [frame(0, 3 * block), frame(1, 2 * block), frame(2, 41), frame(3, 5 * block), frame(4, 4 * block), frame(5, 100)];
  const parts: Uint8Array[] = [];
  for await (const p of frameStream(frames, { blockBytes: block })) parts.push(p); // kept as they are, no copy
  const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    whole.set(p, at);
    at += p.length;
  }
  t.deepEqual(whole, encodeFrames(frames));
  // a header met between two large frames travels in a 36-byte array, not in a fresh block of `block` bytes
  const blocks = parts.filter((p) => p.buffer.byteLength === block).length;
  t.is(blocks, 2, 'a block only where small frames were gathered (frame 2 with the header of 3, frame 5)');
  t.is(parts.filter((p) => p.buffer.byteLength === FRAME_HEADER_BYTES).length, 3, 'the headers of frames 0, 1 and 4');
});
