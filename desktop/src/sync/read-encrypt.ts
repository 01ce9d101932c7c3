// The reading side of an upload: read -> FastCDC -> chunk id -> encrypt -> the uploader (transfer.ts ChunkUploader).
// A file is read in 1 MiB pieces through chunkStream (one 8 MiB window, chunks lent as views); small files in one piece.
//
// Hash once (issue 22). The scan has just hashed every file it uploads (or reused the index's hash because size,
// mtime and inode are unchanged). Reading the file again, the upload used to hash it a second time only to notice a
// file changed since the scan. With `expect` (the scan's facts and hash), a file above SYNC_READ is not hashed again:
// its inode, size and mtime, taken when it is opened and again after the last byte is read, must be the scan's; that
// is the test by which the scan trusts its own hash (file-hash.ts hashFile) and the index a stored one. If they differ, the
// file changed since the scan: null, and the next pass takes it. Small files are still hashed (cheaper than a stat).
// A file the scan did not hash (HASH_LATER, hash-later.ts) keeps that hash here (the upload has it hashed beside the
// read) unless it is small enough to be read in one piece, which is hashed anyway.
//
// Chunks the server holds. A new version of a large file mostly repeats the version it replaces, under the same file
// key, so with the same keyed chunk ids; the index keeps that version's chunk list (download.ts keepChunks). With
// `previous` (that list), a chunk whose id is listed is neither encrypted nor queued: the server holds it, since it
// accepted the version that names it. Only the new chunks are encrypted and go through the uploader (and its check
// of the server's missing list). Should the server answer a commit with missing chunks all the same, the engine
// uploads that file in full next time (commit.ts, upload.ts).
//
// The same list, in order, guides the chunker (chunk-guide.ts): where an old chunk is expected and its keyed id
// matches, it is taken without FastCDC's gear loop and without a copy.
import { closeSync, constants as fsConstants, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { BULK_HASH_MIN, chunkBoundaries, chunkId, chunkStream, chunkStreamGuided, contentHash, prepareChunkIds, sealChunkInto, sealedChunkLength, ContentHasher, type FileSubkeys } from '@kluis/shared';
import { PreviousChunks } from './chunk-guide.js';
import { HASH_LATER, READ_WHOLE_MAX } from './types.js';
import { CONFIRM_AHEAD_MIN, ConfirmAhead } from './confirm-ahead.js';
import type { ChunkUploader } from './chunk-uploader.js';
import { readBuffers } from './read-buffers.js';

const READ_PIECE = 1024 * 1024;
/** Files up to this size are read in one piece (one read call instead of a stream). */
const SMALL_FILE = 4 * 1024 * 1024;
/** Files up to this size are read with synchronous calls: four thread-pool round trips cost more than the read. */
const SYNC_READ = READ_WHOLE_MAX;
// O_NOFOLLOW: a file swapped for a symlink since the scan is not followed.
const OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0);

/** The buffer readSmall reads into; its result is a copy at the file's size (see readSmall). */
const smallScratch = new Uint8Array(SYNC_READ + 1);

/**
 * The whole content of a small file (a copy at its size, lent by readBuffers), or null if it is bigger than SYNC_READ by now. Read into
 * one scratch buffer (the call is synchronous, so no other read shares it meanwhile) and copied out. A fresh
 * SYNC_READ + 1 buffer per file was the earlier way, on the belief that only its pages read are touched: glibc's
 * malloc raises its mmap threshold past that size at the first such buffer freed, and from then on each one comes
 * from the heap and calloc zero-fills (touches) all 256 KiB; with the garbage collector freeing them only now and
 * then, 10,000 small files kept over a hundred MB of them (issue 22, measured in docs/architecture.md §4).
 */
function readSmall(absPath: string): Uint8Array | null {
  const fd = openSync(absPath, OPEN_FLAGS);
  try {
    const buf = smallScratch;
    let filled = 0;
    for (;;) {
      const n = readSync(fd, buf, filled, buf.length - filled, null);
      if (n === 0) break;
      filled += n;
      if (filled === buf.length) return null;
    }
    const content = readBuffers.allocate(filled); // given back by the caller once cut
    content.set(buf.subarray(0, filled));
    return content;
  } finally {
    closeSync(fd);
  }
}

/** The content of a file as read for an upload. */
export interface ReadFile {
  hash: string;
  size: number;
  chunks: [string, number][];
}

/** What the scan found: the file's facts and the hash it computed (or trusted) for them. */
export interface ReadExpect {
  size: number;
  mtimeMs: number;
  ino: number;
  hash: string;
}

const sameFacts = (st: { size: number; mtimeMs: number; ino: number }, e: ReadExpect): boolean => st.size === e.size && st.mtimeMs === e.mtimeMs && st.ino === e.ino;

/** Where the chunks of one file go: the chunk list, and the uploader for those the server does not hold. */
class ChunkSink {
  readonly chunks: [string, number][] = [];
  /** plaintext bytes of chunks not sent because the server holds them */
  heldBytes = 0;
  private readonly held: ReadonlySet<string> | undefined;
  private readonly guide: PreviousChunks | undefined;
  constructor(private readonly keys: FileSubkeys, private readonly uploader: ChunkUploader, private readonly known: boolean, previous?: readonly [string, number][], private readonly onHeld?: (bytes: number) => void, ahead?: ConfirmAhead) {
    if (previous) {
      this.held = new Set(previous.map(([id]) => id));
      this.guide = new PreviousChunks(keys, previous, ahead);
    }
  }

  /** plaintext bytes so far */
  private size = 0;

  async take(piece: Uint8Array): Promise<void> {
    const id = chunkId(this.keys, piece);
    this.guide?.observe(this.size, id);
    this.chunks.push([id, piece.length]);
    this.size += piece.length;
    if (this.held?.has(id)) {
      this.heldBytes += piece.length;
      this.onHeld?.(piece.length);
      return;
    }
    await this.uploader.add(id, sealedChunkLength(piece.length), (dest) => sealChunkInto(this.keys, id, piece, dest), this.known, piece.length);
  }

  /** A chunk the guide confirmed as one of the replaced version's: the server holds it. */
  private takeKnown(length: number): void {
    this.chunks.push([this.guide!.takeConfirmed(), length]);
    this.size += length;
    this.heldBytes += length;
    this.onHeld?.(length);
  }

  /** Cuts a piece of content in memory (a whole small file; `take` keeps no piece, so views, not copies). */
  async cut(content: Uint8Array): Promise<void> {
    let pos = 0;
    for (const n of chunkBoundaries(content)) {
      await this.take(content.subarray(pos, pos + n));
      pos += n;
    }
  }

  /** Cuts a stream of content (FastCDC over a window), hashing it with `hasher`; returns its size. */
  async cutStream(source: AsyncIterable<Uint8Array>, hasher: ContentHasher | null): Promise<number> {
    let size = 0;
    async function* counted(): AsyncGenerator<Uint8Array> {
      for await (const piece of source) {
        hasher?.update(piece);
        size += piece.length;
        yield piece;
      }
    }
    // Borrowed views, not copies: `take` hashes and encrypts a chunk before asking for the next, and keeps neither.
    if (!this.guide) for await (const chunk of chunkStream(counted(), { borrow: true })) await this.take(chunk);
    else {
      for await (const chunk of chunkStreamGuided(counted(), this.guide, { borrow: true })) {
        if (typeof chunk === 'number') this.takeKnown(chunk);
        else await this.take(chunk);
      }
    }
    return size;
  }
}

export interface ReadOptions {
  /**
   * Plaintext bytes of chunks the server holds (`previous`), which are never sent: done for progress as they are cut. The
   * others are done when the uploader says so (ChunkUploader `onDone`), not when read: reading runs ahead of sending
   * by the chunker's window and what the uploader holds in flight.
   */
  onHeld?: (bytes: number) => void;
  /** picks the small-file path (default: expect.size) */
  sizeHint?: number;
  /** what the scan found: the file must still be that (see the top) */
  expect?: ReadExpect;
  /**
   * The replaced version's chunk list, in order, under this file key (see the top): the server holds these chunks, so
   * they are not encrypted or sent, and the list guides the chunker.
   */
  previous?: readonly [string, number][];
}

/**
 * Reads a file, cuts it (FastCDC), encrypts each chunk with the file's keys and hands the ciphertexts to the
 * uploader. Returns the chunk list and the whole-file hash of the bytes that were read. With `expect`, the file
 * must be what the scan found (see the top): null if it changed since.
 */
export async function readAndEncrypt(absPath: string, keys: FileSubkeys, uploader: ChunkUploader, known: boolean, options: ReadOptions = {}): Promise<(ReadFile & { heldBytes: number; confirmedAhead?: number }) | null> {
  const { expect } = options;
  const sizeHint = options.sizeHint ?? expect?.size;
  // A large file: its chunk ids and whole-file hash with the fast BLAKE2b (fast-blake2b.ts in shared).
  if (sizeHint !== undefined && sizeHint >= BULK_HASH_MIN) await prepareChunkIds(keys);
  // A large new version of a file whose old chunk list is known: a worker confirms chunks from the end meanwhile.
  const ahead = options.previous && sizeHint !== undefined && sizeHint >= CONFIRM_AHEAD_MIN ? new ConfirmAhead(absPath, keys, options.previous) : undefined;
  try {
    const read = await readInto(absPath, new ChunkSink(keys, uploader, known, options.previous, options.onHeld, ahead), sizeHint, expect);
    return read && ahead ? { ...read, confirmedAhead: ahead.taken } : read;
  } finally {
    await ahead?.close();
  }
}

async function readInto(absPath: string, sink: ChunkSink, sizeHint: number | undefined, expect: ReadExpect | undefined): Promise<(ReadFile & { heldBytes: number }) | null> {
  if (sizeHint !== undefined && sizeHint <= SYNC_READ) {
    const content = readSmall(absPath);
    if (content) {
      await sink.cut(content);
      const hash = contentHash(content);
      readBuffers.give(content); // sealed and hashed: nothing refers to it any more
      const differs = expect && (content.length !== expect.size || (expect.hash !== HASH_LATER && hash !== expect.hash));
      return differs ? null : { hash, size: content.length, chunks: sink.chunks, heldBytes: sink.heldBytes };
    }
  }
  const handle = await open(absPath, OPEN_FLAGS);
  try {
    const st = await handle.stat();
    if (expect && !sameFacts(st, expect)) return null;
    // With `expect`, the bytes are not hashed: the facts after the read decide (see the top).
    const hasher = expect ? null : new ContentHasher();
    const finish = async (size: number): Promise<(ReadFile & { heldBytes: number }) | null> => {
      const read = { size, chunks: sink.chunks, heldBytes: sink.heldBytes };
      if (!expect) return { ...read, hash: hasher!.digest() };
      const after = await handle.stat();
      return size === expect.size && sameFacts(after, expect) ? { ...read, hash: expect.hash } : null;
    };
    if (st.size <= SMALL_FILE) {
      const buf = readBuffers.allocate(st.size + 1); // one spare byte shows growth since the stat
      let filled = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buf, filled, buf.length - filled, null);
        if (bytesRead === 0) break;
        filled += bytesRead;
        if (filled === buf.length) break;
      }
      if (filled > st.size) {
        if (expect) return null; // grew since the scan
        // grew while we read: stream the whole thing instead
        return await finish(await sink.cutStream(pieces(handle), hasher));
      }
      const content = buf.subarray(0, filled);
      hasher?.update(content);
      await sink.cut(content); // every chunk sealed into the uploader's batches by now: nothing refers to buf any more
      readBuffers.give(buf);
      return await finish(filled);
    }
    return await finish(await sink.cutStream(pieces(handle), hasher));
  } finally {
    await handle.close();
  }
}

/** An open file from its start, in READ_PIECE pieces (one buffer: chunkStream copies each piece before the next). */
async function* pieces(handle: FileHandle): AsyncGenerator<Uint8Array> {
  let position = 0;
  const buf = new Uint8Array(READ_PIECE);
  for (;;) {
    const { bytesRead } = await handle.read(buf, 0, READ_PIECE, position);
    if (bytesRead === 0) return;
    position += bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}

/** Cuts, encrypts and queues a stream of plaintext (an old version being re-encrypted by a restore). */
export async function encryptStream(source: AsyncIterable<Uint8Array>, keys: FileSubkeys, uploader: ChunkUploader, known: boolean): Promise<ReadFile> {
  const hasher = new ContentHasher();
  const sink = new ChunkSink(keys, uploader, known);
  const size = await sink.cutStream(source, hasher);
  return { hash: hasher.digest(), size, chunks: sink.chunks };
}
