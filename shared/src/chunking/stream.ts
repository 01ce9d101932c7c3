// Streaming FastCDC: chunks an async-iterable byte source in bounded memory (docs/crypto.md §10.3, "Streaming").
// Pure TypeScript: Node Readable streams, web ReadableStreams and any async generator of Uint8Array work.

import { CHUNK_MAX, CHUNK_MIN, cutPoint } from './fastcdc.js';

/**
 * Size of the internal window: four times the maximum chunk length (8 MiB). The bytes not yet cut (fewer than
 * CHUNK_MAX between pieces) are moved to its front only when less than CHUNK_MAX is free behind them, so with 1 MiB
 * pieces a move happens once per ~3 MiB read instead of after every piece (with a 4 MiB window, a GiB read moved
 * about 1.5 GiB).
 */
const WINDOW = 4 * CHUNK_MAX;
/** Pieces up to this length are copied into the window byte by byte (cheaper than subarray + set). */
const SMALL_COPY = 32;

/**
 * Yields the FastCDC chunks of the concatenation of the pieces of `source`, with exactly the boundaries that
 * `chunkBoundaries` gives on the whole concatenated input, however the source splits it into pieces
 * (empty pieces are allowed; a 0-byte source yields nothing).
 *
 * Every yielded chunk is an OWNED COPY: a fresh Uint8Array over its own ArrayBuffer (byteOffset 0, exactly the
 * chunk's length). It stays valid and unchanged forever, whatever the source later does with its own buffers, and
 * the consumer may keep, transfer or modify it.
 *
 * Memory: one internal window of 4 * CHUNK_MAX bytes, plus the piece the source is currently handing over (a piece
 * is consumed in window-sized portions, never concatenated), plus whatever chunks the consumer still holds. No
 * whole-file buffer is ever built. Boundaries are decided only once CHUNK_MAX bytes are buffered (or the source has
 * ended), so no byte is hashed twice.
 *
 * Throws TypeError if the source yields something that is not a Uint8Array (e.g. a Node stream with an encoding).
 */
export async function* chunkStream(source: AsyncIterable<Uint8Array>, options: ChunkStreamOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
  yield* cutWindowed(source, null, options.borrow === true) as AsyncGenerator<Uint8Array, void, undefined>;
}

export interface ChunkStreamOptions {
  /**
   * Yield views into the internal window instead of owned copies. A view is valid only until the consumer asks for
   * the next chunk (the window is then refilled and moved); a consumer that hashes and encrypts each chunk at once,
   * keeping only the result, saves a copy and an allocation of every byte (the sync client's upload).
   */
  borrow?: boolean;
}

/**
 * A previous version's chunk list, offered to chunkStreamGuided (chunk-guide.ts in the sync client): where a chunk of
 * it is expected, and a keyed check that some bytes are exactly that chunk.
 */
export interface ChunkGuide {
  /** The previous chunk expected to start at stream offset `at`, or null; `last` when it ended its stream. */
  expect(at: number): { length: number; last: boolean } | null;
  /** Whether `bytes`, starting at `at`, are exactly the chunk expect(at) named (a keyed hash: never a guess). */
  confirm(at: number, bytes: Uint8Array): boolean;
}

/**
 * chunkStream with a guide: where the guide confirms that the bytes at the current position are a chunk of the
 * previous version, that chunk's LENGTH (a number) is yielded instead of a copy of its bytes, and FastCDC's gear loop
 * does not run over it. The boundaries are those chunkStream gives, provided the previous version was itself cut by
 * FastCDC (docs/crypto.md §10.3, "Guided by the previous version"): the cut after a chunk depends only on its own
 * bytes, so the same bytes at a chunk start end at the same cut. A chunk that ended its stream is taken only at the
 * end of this one. Chunks that are not confirmed are yielded as owned copies, as by chunkStream.
 */
export function chunkStreamGuided(source: AsyncIterable<Uint8Array>, guide: ChunkGuide, options: ChunkStreamOptions = {}): AsyncGenerator<Uint8Array | number, void, undefined> {
  return cutWindowed(source, guide, options.borrow === true);
}

async function* cutWindowed(source: AsyncIterable<Uint8Array>, guide: ChunkGuide | null, borrow: boolean): AsyncGenerator<Uint8Array | number, void, undefined> {
  const win = new Uint8Array(WINDOW);
  const out = (start: number, end: number): Uint8Array => (borrow ? win.subarray(start, end) : win.slice(start, end));
  let pos = 0; // start of the bytes not yet yielded
  let fill = 0; // end of the buffered bytes; invariant between pieces: fill - pos < CHUNK_MAX and WINDOW - fill >= CHUNK_MAX
  let base = 0; // stream offset of win[0]
  /** The previous version's chunk at `pos`, if the guide confirms it; 0 otherwise. */
  const guided = (ended: boolean): number => {
    const e = guide?.expect(base + pos);
    if (!e) return 0;
    const ok = e.last ? ended && pos + e.length === fill : e.length > CHUNK_MIN && e.length <= CHUNK_MAX && e.length <= fill - pos;
    return ok && guide!.confirm(base + pos, win.subarray(pos, pos + e.length)) ? e.length : 0;
  };
  for await (const piece of source) {
    // (A tag check rather than instanceof, so Uint8Arrays from another realm, e.g. an Electron context, pass.)
    if (Object.prototype.toString.call(piece) !== '[object Uint8Array]') {
      throw new TypeError('chunkStream: the source must yield Uint8Array pieces');
    }
    const n = piece.length;
    if (n <= SMALL_COPY && fill - pos + n < CHUNK_MAX) {
      // Fast path for tiny pieces that cannot complete a decision: no subarray allocation.
      for (let j = 0; j < n; j++) win[fill + j] = piece[j]!;
      fill += n;
      continue;
    }
    let off = 0;
    while (off < n) {
      // Here fill - pos < CHUNK_MAX and at least CHUNK_MAX bytes of the window are free behind fill.
      const take = Math.min(n - off, WINDOW - fill);
      win.set(off === 0 && take === n ? piece : piece.subarray(off, off + take), fill);
      fill += take;
      off += take;
      // Decide every boundary that CHUNK_MAX buffered bytes make final.
      while (fill - pos >= CHUNK_MAX) {
        const known = guided(false);
        const len = known || cutPoint(win, pos, fill);
        yield known ? known : out(pos, pos + len);
        pos += len;
      }
      // Fewer than CHUNK_MAX bytes are left; if less than CHUNK_MAX is free behind them, move them to the front.
      if (WINDOW - fill < CHUNK_MAX) {
        win.copyWithin(0, pos, fill);
        fill -= pos;
        base += pos;
        pos = 0;
      }
    }
  }
  // End of the source: whatever remains is cut exactly as chunkBoundaries cuts the end of a buffer.
  while (pos < fill) {
    const known = guided(true);
    const len = known || cutPoint(win, pos, fill);
    yield known ? known : out(pos, pos + len);
    pos += len;
  }
}
