// Chunk batch frames (docs/architecture.md §3.1; the wire contract is docs/api.md "Chunk batch frames"): the body of
// `POST /api/v1/spaces/:id/chunks/upload` and the answer of `POST /api/v1/spaces/:id/chunks/download`.
//
//   body  = frame*                                   (zero or more frames, back to back, nothing else)
//   frame = id (32 bytes, raw) || length (u32, big-endian) || ciphertext (length bytes)
//
// `id` is the raw form of the 64-hex chunk id (keyed BLAKE2b-256); the all-zero id is reserved and refused.
// `ciphertext` is the chunk envelope (docs/crypto.md), so it is at least ENVELOPE_OVERHEAD (41) bytes and at
// most CHUNK_MAX + 41 bytes. The server cannot check contents, only ids and sizes, and that is all this
// module checks.
//
// Pure TypeScript on Uint8Array (no Node builtins): runs in Node, Electron and the browser.
//   - `FrameParser` is the incremental core: `push(bytes)` returns the frames completed by those bytes,
//     `end()` checks that the body did not stop inside a frame. Limits are enforced as early as possible:
//     a length over the limit fails on the header, before any of its bytes are buffered; the total fails on
//     the input chunk that crosses it.
//   - `parseFrames(source)` wraps it over any (async) iterable of byte chunks, e.g. a Node request.
//   - `encodeFrames(items)` builds a whole body; `frameStream(items)` streams one, coalescing small frames.
import { CHUNK_MAX } from '../chunking/fastcdc.js';
import { ENVELOPE_OVERHEAD } from '../crypto/envelope.js';
import { ErrorCode, KluisError } from '../errors.js';

/** Bytes of the raw chunk id that starts each frame. */
export const FRAME_ID_BYTES = 32;
/** Bytes before the ciphertext: id + u32 length. */
export const FRAME_HEADER_BYTES = FRAME_ID_BYTES + 4;
/** Smallest chunk ciphertext: the envelope of an empty plaintext (version + nonce + tag). */
export const CHUNK_CIPHERTEXT_MIN = ENVELOPE_OVERHEAD;
/** Largest chunk ciphertext: the envelope of a CHUNK_MAX (2 MiB) plaintext. */
export const CHUNK_CIPHERTEXT_MAX = CHUNK_MAX + ENVELOPE_OVERHEAD;
/** Largest length a frame header can express. */
export const FRAME_LENGTH_MAX = 0xffffffff;

/** One chunk on the wire: its id as 64 lower-case hex digits and its ciphertext. */
export interface ChunkFrame {
  id: string;
  ciphertext: Uint8Array;
}

/** What a parser accepts. Sizes are in bytes; `maxTotalBytes` counts whole frames (headers included). */
export interface FrameLimits {
  /** Smallest ciphertext length accepted (default CHUNK_CIPHERTEXT_MIN = 41). */
  minFrameBytes: number;
  /** Largest ciphertext length accepted (default CHUNK_CIPHERTEXT_MAX = 2 MiB + 41). */
  maxFrameBytes: number;
  /** Largest body: the sum of 36 + length over all frames (default 256 MiB). */
  maxTotalBytes: number;
  /** Most frames in one body (default 10,000). */
  maxCount: number;
}

export const DEFAULT_FRAME_LIMITS: Readonly<FrameLimits> = Object.freeze({
  minFrameBytes: CHUNK_CIPHERTEXT_MIN,
  maxFrameBytes: CHUNK_CIPHERTEXT_MAX,
  maxTotalBytes: 256 * 1024 * 1024,
  maxCount: 10_000,
});

/** Fills in the defaults and checks that the limits are sane (a programming error otherwise). */
export function frameLimits(limits?: Partial<FrameLimits>): FrameLimits {
  const out = { ...DEFAULT_FRAME_LIMITS, ...stripUndefined(limits ?? {}) };
  for (const [name, value] of Object.entries(out)) {
    if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`frame limit ${name} must be a non-negative integer, got ${value}`);
  }
  if (out.minFrameBytes > out.maxFrameBytes) throw new TypeError('frame limit minFrameBytes exceeds maxFrameBytes');
  if (out.maxFrameBytes > FRAME_LENGTH_MAX) throw new TypeError(`frame limit maxFrameBytes exceeds ${FRAME_LENGTH_MAX}`);
  return out;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

// ------------------------------------------------------------------------------------------------ errors

export type FrameErrorReason = 'truncated' | 'frame_too_small' | 'frame_too_large' | 'batch_too_large' | 'too_many_frames' | 'bad_id';

/**
 * A body that is not a valid sequence of frames. `offset` is the byte position in the body where the problem
 * was found; `httpStatus` is what an HTTP route answers (400, or 413 for limits). `code` is a shared ErrorCode.
 */
export class FrameError extends KluisError {
  override name = 'FrameError';
  readonly reason: FrameErrorReason;
  readonly offset: number;
  readonly httpStatus: number;
  constructor(code: ErrorCode, reason: FrameErrorReason, offset: number, message: string) {
    super(code, message);
    this.reason = reason;
    this.offset = offset;
    this.httpStatus = code === ErrorCode.PayloadTooLarge ? 413 : 400;
  }
}

/** The body ended inside a frame (a cut header, or fewer ciphertext bytes than the length promised). */
export class FrameTruncatedError extends FrameError {
  override name = 'FrameTruncatedError';
  /** Bytes still expected for the frame that was cut. */
  readonly missing: number;
  constructor(offset: number, missing: number, where: 'header' | 'ciphertext') {
    super(ErrorCode.BadRequest, 'truncated', offset, `chunk frames: body ends inside a frame ${where} at byte ${offset} (${missing} more bytes expected)`);
    this.missing = missing;
  }
}

/** A frame's length is outside [minFrameBytes, maxFrameBytes]. Too large answers 413, too small 400. */
export class FrameLengthError extends FrameError {
  override name = 'FrameLengthError';
  readonly length: number;
  readonly limit: number;
  constructor(offset: number, length: number, limit: number, tooLarge: boolean) {
    super(
      tooLarge ? ErrorCode.PayloadTooLarge : ErrorCode.BadRequest,
      tooLarge ? 'frame_too_large' : 'frame_too_small',
      offset,
      `chunk frames: frame at byte ${offset} declares ${length} bytes, ${tooLarge ? 'more than the maximum' : 'less than the minimum'} of ${limit}`,
    );
    this.length = length;
    this.limit = limit;
  }
}

/** The body is larger than maxTotalBytes or has more than maxCount frames (413). */
export class FrameLimitError extends FrameError {
  override name = 'FrameLimitError';
  readonly limit: number;
  constructor(reason: 'batch_too_large' | 'too_many_frames', offset: number, limit: number) {
    super(
      ErrorCode.PayloadTooLarge,
      reason,
      offset,
      reason === 'batch_too_large' ? `chunk frames: body larger than ${limit} bytes` : `chunk frames: more than ${limit} frames at byte ${offset}`,
    );
    this.limit = limit;
  }
}

/** A frame id that is not a chunk id: the reserved all-zero id on the wire, or not 64 lower-case hex when encoding. */
export class FrameBadIdError extends FrameError {
  override name = 'FrameBadIdError';
  readonly id: string;
  constructor(offset: number, id: string, why: string) {
    super(ErrorCode.BadRequest, 'bad_id', offset, `chunk frames: bad chunk id at byte ${offset}: ${why}`);
    this.id = id;
  }
}

// ------------------------------------------------------------------------------------------------ ids

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const CHUNK_ID = /^[0-9a-f]{64}$/;
const ZERO_ID = '0'.repeat(64);

/** True for a well-formed chunk id: 64 lower-case hex digits, not all zero. */
export function isChunkId(id: unknown): id is string {
  return typeof id === 'string' && CHUNK_ID.test(id) && id !== ZERO_ID;
}

function idToHex(bytes: Uint8Array, start: number): string {
  let out = '';
  for (let i = start; i < start + FRAME_ID_BYTES; i++) out += HEX[bytes[i]!]!;
  return out;
}

function writeId(id: string, out: Uint8Array, at: number): void {
  for (let i = 0; i < FRAME_ID_BYTES; i++) out[at + i] = parseInt(id.slice(2 * i, 2 * i + 2), 16);
}

/** Writes a header at `out[at]`; `bodyOffset` is the frame's position in the body (for error messages). */
function writeHeader(id: string, length: number, out: Uint8Array, at: number, bodyOffset = at): void {
  if (!Number.isSafeInteger(length) || length < 0 || length > FRAME_LENGTH_MAX) {
    throw new FrameLengthError(bodyOffset, length, FRAME_LENGTH_MAX, true);
  }
  if (!isChunkId(id)) throw new FrameBadIdError(bodyOffset, String(id), 'expected 64 lower-case hex digits, not all zero');
  writeId(id, out, at);
  const p = at + FRAME_ID_BYTES;
  out[p] = (length >>> 24) & 0xff;
  out[p + 1] = (length >>> 16) & 0xff;
  out[p + 2] = (length >>> 8) & 0xff;
  out[p + 3] = length & 0xff;
}

// ------------------------------------------------------------------------------------------------ encoder

/** Writes the 36-byte header of one frame at `out[at]` (an upload batch built in place). */
export function writeFrameHeader(id: string, length: number, out: Uint8Array, at: number): void {
  writeHeader(id, length, out, at);
}

/** The 36-byte header of one frame. */
export function frameHeader(id: string, length: number): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES);
  writeHeader(id, length, out, 0);
  return out;
}

/** Body size of frames with these ciphertext lengths (36 bytes of header each), e.g. for Content-Length. */
export function framedSize(lengths: Iterable<number>): number {
  let total = 0;
  for (const n of lengths) total += FRAME_HEADER_BYTES + n;
  return total;
}

/** The whole body for `items`, in order. Throws FrameBadIdError / FrameLengthError on a bad item. */
export function encodeFrames(items: Iterable<ChunkFrame>): Uint8Array {
  const list = Array.isArray(items) ? (items as ChunkFrame[]) : [...items];
  const out = new Uint8Array(framedSize(list.map((f) => f.ciphertext.length)));
  let at = 0;
  for (const f of list) {
    writeHeader(f.id, f.ciphertext.length, out, at);
    out.set(f.ciphertext, at + FRAME_HEADER_BYTES);
    at += FRAME_HEADER_BYTES + f.ciphertext.length;
  }
  return out;
}

export interface FrameStreamOptions {
  /**
   * Frames whose ciphertext is shorter than this are copied into shared blocks of about this size, so a
   * stream of small chunks becomes few large writes; longer ciphertexts are passed through without a copy
   * (their header goes out with the block before). Default 256 KiB.
   */
  blockBytes?: number;
}

/**
 * Streams the body for `items` as byte chunks (each a fresh array the consumer may keep). Pulls the next item
 * only when the consumer asks for more, so memory stays at one block plus one item.
 */
export async function* frameStream(
  items: AsyncIterable<ChunkFrame> | Iterable<ChunkFrame>,
  options: FrameStreamOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const blockBytes = Math.max(FRAME_HEADER_BYTES, options.blockBytes ?? 256 * 1024);
  // Allocated when a small frame needs it: a block made at once after every large frame held one 36-byte header,
  // so a GiB of 600 KiB chunks zero-filled ~430 MB of blocks for 61 KB of headers (issue 22, W1's GC).
  let block: Uint8Array | null = null;
  let fill = 0;
  let offset = 0; // byte position of the next frame in the body (for error messages)
  for await (const f of items) {
    const n = f.ciphertext.length;
    // Small: header and ciphertext fit in one block (a ciphertext just under blockBytes does not: its header needs
    // FRAME_HEADER_BYTES more).
    const small = FRAME_HEADER_BYTES + n <= blockBytes;
    if (block && fill + FRAME_HEADER_BYTES + (small ? n : 0) > blockBytes && fill > 0) {
      yield block.subarray(0, fill);
      block = null;
      fill = 0;
    }
    if (small) {
      block ??= new Uint8Array(blockBytes);
      writeHeader(f.id, n, block, fill, offset);
      block.set(f.ciphertext, fill + FRAME_HEADER_BYTES);
      fill += FRAME_HEADER_BYTES + n;
    } else {
      // A large frame: its header goes out with the block before (if any), then the ciphertext as it is.
      if (block) {
        writeHeader(f.id, n, block, fill, offset);
        yield block.subarray(0, fill + FRAME_HEADER_BYTES);
        block = null;
        fill = 0;
      } else {
        const header = new Uint8Array(FRAME_HEADER_BYTES);
        writeHeader(f.id, n, header, 0, offset);
        yield header;
      }
      if (n > 0) yield f.ciphertext;
    }
    offset += FRAME_HEADER_BYTES + n;
  }
  if (block && fill > 0) yield block.subarray(0, fill);
}

// ------------------------------------------------------------------------------------------------ parser

export interface FrameParserOptions {
  /**
   * Where a ciphertext that spans pieces is assembled: an array of exactly `length` bytes (its contents are
   * overwritten). The server lends pooled buffers here, so that a GiB of 1 MiB chunks arriving in 64 KiB socket reads
   * is not a GiB of fresh external memory (issue 22, W1: that churn set off most of its full collections).
   */
  allocate?: (length: number) => Uint8Array;
}

/**
 * Incremental frame parser. Feed the body in pieces of any size with `push`; each call returns the frames
 * it completed, in order. Call `end()` after the last piece. Any violation throws a FrameError, after which
 * the parser is unusable. A returned ciphertext is a view into the pushed bytes when the whole ciphertext
 * sat in one piece, otherwise a copy assembled in `allocate(length)` (default: a fresh array); do not modify pushed
 * pieces afterwards.
 */
export class FrameParser {
  readonly limits: FrameLimits;
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFill = 0;
  private awaiting = 0; // length of a ciphertext whose header ended a piece and of which no byte arrived yet
  private body: Uint8Array | null = null; // ciphertext being assembled across pieces
  private bodyFill = 0;
  private bodyId = '';
  private frameStart = 0; // byte position of the current frame
  private consumed = 0; // bytes pushed so far
  private frames = 0;
  private failed: FrameError | null = null;
  private readonly allocate: (length: number) => Uint8Array;

  constructor(limits?: Partial<FrameLimits>, options: FrameParserOptions = {}) {
    this.limits = frameLimits(limits);
    const { allocate } = options;
    this.allocate = allocate
      ? (length) => {
          const body = allocate(length);
          if (body.length !== length) throw new TypeError(`chunk frames: allocate(${length}) gave ${body.length} bytes`);
          return body;
        }
      : (length) => new Uint8Array(length);
  }

  /** Number of complete frames so far. */
  get count(): number {
    return this.frames;
  }

  /** Bytes pushed so far. */
  get bytes(): number {
    return this.consumed;
  }

  push(piece: Uint8Array): ChunkFrame[] {
    if (this.failed) throw this.failed;
    if (!(piece instanceof Uint8Array)) throw new TypeError(`chunk frames: body pieces must be bytes, got ${typeof piece}`);
    try {
      return this.pushInner(piece);
    } catch (err) {
      if (err instanceof FrameError) this.failed = err;
      throw err;
    }
  }

  private pushInner(piece: Uint8Array): ChunkFrame[] {
    const base = this.consumed;
    if (base + piece.length > this.limits.maxTotalBytes) throw new FrameLimitError('batch_too_large', this.limits.maxTotalBytes, this.limits.maxTotalBytes);
    this.consumed += piece.length;
    const out: ChunkFrame[] = [];
    let pos = 0;
    while (pos < piece.length) {
      if (this.awaiting > 0) {
        // A header arrived at the end of an earlier piece: if this piece holds the whole ciphertext, take a view.
        const length = this.awaiting;
        this.awaiting = 0;
        if (piece.length - pos >= length) {
          out.push({ id: this.bodyId, ciphertext: piece.subarray(pos, pos + length) });
          pos += length;
          this.frameStart = base + pos;
          continue;
        }
        this.body = this.allocate(length);
        this.bodyFill = 0;
      }
      if (this.body) {
        // Continue a ciphertext that started in an earlier piece.
        const n = Math.min(this.body.length - this.bodyFill, piece.length - pos);
        this.body.set(piece.subarray(pos, pos + n), this.bodyFill);
        this.bodyFill += n;
        pos += n;
        if (this.bodyFill === this.body.length) {
          out.push({ id: this.bodyId, ciphertext: this.body });
          this.body = null;
          this.frameStart = base + pos;
        }
        continue;
      }
      // Header: fast path when all 36 bytes are in this piece.
      let length: number;
      let id: string;
      if (this.headerFill === 0 && piece.length - pos >= FRAME_HEADER_BYTES) {
        this.frameStart = base + pos;
        id = this.readId(piece, pos);
        length = readU32(piece, pos + FRAME_ID_BYTES);
        pos += FRAME_HEADER_BYTES;
      } else {
        if (this.headerFill === 0) this.frameStart = base + pos;
        const n = Math.min(FRAME_HEADER_BYTES - this.headerFill, piece.length - pos);
        this.header.set(piece.subarray(pos, pos + n), this.headerFill);
        this.headerFill += n;
        pos += n;
        if (this.headerFill < FRAME_HEADER_BYTES) break;
        this.headerFill = 0;
        id = this.readId(this.header, 0);
        length = readU32(this.header, FRAME_ID_BYTES);
      }
      this.checkFrame(length);
      if (length === 0) {
        out.push({ id, ciphertext: new Uint8Array(0) });
        this.frameStart = base + pos;
      } else if (piece.length - pos >= length) {
        out.push({ id, ciphertext: piece.subarray(pos, pos + length) });
        pos += length;
        this.frameStart = base + pos;
      } else if (pos === piece.length) {
        this.awaiting = length; // nothing of it here yet: allocate only if the next piece does not hold it all
        this.bodyId = id;
      } else {
        this.body = this.allocate(length);
        this.bodyFill = 0;
        this.bodyId = id;
      }
    }
    return out;
  }

  private readId(bytes: Uint8Array, at: number): string {
    const id = idToHex(bytes, at);
    if (id === ZERO_ID) throw new FrameBadIdError(this.frameStart, id, 'the all-zero id is reserved');
    return id;
  }

  private checkFrame(length: number): void {
    if (this.frames + 1 > this.limits.maxCount) throw new FrameLimitError('too_many_frames', this.frameStart, this.limits.maxCount);
    if (length > this.limits.maxFrameBytes) throw new FrameLengthError(this.frameStart, length, this.limits.maxFrameBytes, true);
    if (length < this.limits.minFrameBytes) throw new FrameLengthError(this.frameStart, length, this.limits.minFrameBytes, false);
    if (this.frameStart + FRAME_HEADER_BYTES + length > this.limits.maxTotalBytes) {
      throw new FrameLimitError('batch_too_large', this.frameStart, this.limits.maxTotalBytes);
    }
    this.frames++;
  }

  /** Declares the end of the body; throws FrameTruncatedError if it stopped inside a frame. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.awaiting > 0) {
      this.failed = new FrameTruncatedError(this.consumed, this.awaiting, 'ciphertext');
    } else if (this.body) {
      this.failed = new FrameTruncatedError(this.consumed, this.body.length - this.bodyFill, 'ciphertext');
    } else if (this.headerFill > 0) {
      this.failed = new FrameTruncatedError(this.consumed, FRAME_HEADER_BYTES - this.headerFill, 'header');
    }
    if (this.failed) throw this.failed;
  }
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) >>> 0) + (bytes[at + 1]! << 16) + (bytes[at + 2]! << 8) + bytes[at + 3]!;
}

/**
 * Parses a framed body from `source` (e.g. a Node request, a fetch body reader wrapped as an async iterable),
 * yielding each frame as soon as its last byte arrived. Throws a FrameError subclass on the first violation
 * (frames before it have been yielded: a consumer that must be all-or-nothing, like the chunk store, undoes
 * them). Stopping the iteration early stops reading the source.
 */
export async function* parseFrames(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  limits?: Partial<FrameLimits>,
  options?: FrameParserOptions,
): AsyncGenerator<ChunkFrame, void, undefined> {
  const parser = new FrameParser(limits, options);
  for await (const piece of source) {
    for (const frame of parser.push(piece)) yield frame;
  }
  parser.end();
}

/** Parses a whole body held in memory. */
export function decodeFrames(body: Uint8Array, limits?: Partial<FrameLimits>): ChunkFrame[] {
  const parser = new FrameParser(limits);
  const frames = parser.push(body);
  parser.end();
  return frames;
}
