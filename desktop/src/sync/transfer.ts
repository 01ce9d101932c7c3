// Moving chunk ciphertexts (docs/architecture.md §3.1): a batching uploader with a bounded number of batches in flight
// (chunk-uploader.ts; the reading side of an upload is read-encrypt.ts), a windowed downloader that can take chunks
// from a local copy of an earlier version instead (delta download, each such chunk verified), and a bandwidth limit.
//
// Memory is bounded: the uploader holds at most `inFlight + 1` reused batch buffers of `batchBytes` (default 3 + 1 of
// 4 MiB, chunk-uploader.ts),
// a file is read in 1 MiB pieces through chunkStream (one 8 MiB window), and a download keeps two windows of
// chunks. A 4 GiB file therefore never costs more than a few dozen MiB.
import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { BULK_HASH_MIN, chunkId, decryptChunk, prepareChunkIds, type FileSubkeys } from '@kluis/shared';
import type { ApiClient } from '../api/client.js';


/** A token bucket over bytes per second shared by uploads and downloads; 0 = unlimited. */
export class RateLimiter {
  private available: number;
  private last = Date.now();
  constructor(public bytesPerSecond: number) {
    this.available = bytesPerSecond;
  }

  /** A new limit from now on (the desktop app's setting); 0: none. */
  setRate(bytesPerSecond: number): void {
    this.bytesPerSecond = bytesPerSecond;
    this.available = Math.min(this.available, bytesPerSecond);
  }

  async take(bytes: number): Promise<void> {
    for (;;) {
      // checked on every turn: a limit lifted (setRate(0)) while this waits lets it go; a check before the loop alone
      // left it waiting on a bucket that refills at 0 bytes a second, and the pass never ended
      if (this.bytesPerSecond <= 0) return;
      const now = Date.now();
      this.available = Math.min(this.bytesPerSecond, this.available + ((now - this.last) / 1000) * this.bytesPerSecond);
      this.last = now;
      // A request larger than a second's budget may go once the bucket is full (it then runs into debt).
      if (this.available >= Math.min(bytes, this.bytesPerSecond)) {
        this.available -= bytes;
        return;
      }
      const wait = ((Math.min(bytes, this.bytesPerSecond) - this.available) / this.bytesPerSecond) * 1000;
      await new Promise((resolve) => setTimeout(resolve, Math.max(5, Math.min(wait, 1000))));
    }
  }
}

/** Parses "10M", "512K", "1.5G", "100000" (bytes per second, base 1024). */
export function parseRate(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?(?:\/s)?$/i.exec(text.trim());
  if (!m) throw new RangeError(`not a rate: "${text}" (examples: 500K, 10M, 1G)`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Math.floor(Number(m[1]) * mult);
}

// The uploader moved to chunk-uploader.ts; it stays importable from here.
export { ChunkUploader, type UploaderOptions } from './chunk-uploader.js';

// O_NOFOLLOW: a local copy swapped for a symlink since the scan is not read.
const OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0);

// The reading side moved to read-encrypt.ts; these stay importable from here.
export { encryptStream, readAndEncrypt, type ReadFile } from './read-encrypt.js';

/** Runs `fn` over items with at most `n` at once. */
export async function each<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let sinceTurn = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      // Small files are read and sealed without a real I/O wait, so thousands of them would run as one chain of
      // microtasks: every 8 items the event loop turns, and timers and IPC of the process get in (the desktop app
      // runs its engines on Electron's main thread; scripts/bench/desktop-events.ts).
      if (++sinceTurn >= 8) {
        sinceTurn = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      await fn(items[next++]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

/** Bytes a download moved: chunk ciphertexts received from the server, and plaintext taken from a local copy. */
export interface DownloadCounts {
  bytesDownloaded: number;
  bytesReused: number;
}

/**
 * Fetches chunks by id (framed batch) into a map of decrypted plaintexts, checking each against its id. `counts`
 * gets the ciphertext bytes received.
 */
export async function fetchChunks(c: ApiClient, spaceId: string, wanted: { id: string; keys: FileSubkeys }[], limiter?: RateLimiter, counts?: DownloadCounts): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  if (wanted.length === 0) return out;
  const keyOf = new Map(wanted.map((w) => [w.id, w.keys]));
  for await (const frame of c.downloadChunks(spaceId, [...keyOf.keys()])) {
    if (counts) counts.bytesDownloaded += frame.ciphertext.length;
    const keys = keyOf.get(frame.id);
    if (!keys) continue; // not asked for: ignored
    await limiter?.take(frame.ciphertext.length);
    out.set(frame.id, decryptChunk(keys, frame.id, frame.ciphertext));
  }
  const lost = [...keyOf.keys()].filter((id) => !out.has(id));
  if (lost.length) throw Object.assign(new Error(`the server sent ${out.size} of ${keyOf.size} chunks`), { name: 'FrameTruncatedError' });
  return out;
}

/**
 * Where chunks of the new version may already be on disk: a local file believed to hold an earlier version of the
 * same file (same file key, so equal content has an equal keyed id), and for each chunk id of the new version that
 * the earlier version lists, its offset and size there.
 */
export interface LocalChunks {
  absPath: string;
  at: Map<string, { offset: number; size: number }>;
}

/**
 * Reads `size` bytes at `offset` and returns them only if their keyed chunk id is `id`; null when they differ, the
 * file is shorter now or cannot be read (the file may have changed since the scan: the caller fetches the chunk).
 */
async function readVerified(handle: FileHandle, at: { offset: number; size: number }, keys: FileSubkeys, id: string): Promise<Uint8Array | null> {
  try {
    const buf = new Uint8Array(at.size);
    let filled = 0;
    while (filled < at.size) {
      const { bytesRead } = await handle.read(buf, filled, at.size - filled, at.offset + filled);
      if (bytesRead === 0) return null;
      filled += bytesRead;
    }
    return chunkId(keys, buf) === id ? buf : null;
  } catch {
    return null;
  }
}

/** Splits a chunk list, in order, into download windows of about `maxBytes` of plaintext and at most `maxIds` chunks. */
export function chunkWindows(chunks: readonly [string, number][], maxBytes: number, maxIds = Number.POSITIVE_INFINITY): [string, number][][] {
  const windows: [string, number][][] = [];
  let cur: [string, number][] = [];
  let bytes = 0;
  for (const ch of chunks) {
    cur.push(ch);
    bytes += ch[1];
    if (bytes >= maxBytes || cur.length >= maxIds) {
      windows.push(cur);
      cur = [];
      bytes = 0;
    }
  }
  if (cur.length) windows.push(cur);
  return windows;
}

/**
 * The plaintext of a file, chunk by chunk in order, in windows of about `windowBytes` with the next window prepared
 * while the current one is written. With `local`, a chunk found there is read from disk and used only if its keyed
 * id, recomputed from the bytes read, is the chunk's id; every other chunk is fetched (one request per window).
 * `counts` gets the bytes received and reused. Memory: two windows of plaintext, wherever it came from.
 */
export async function* fileContent(
  c: ApiClient, spaceId: string, chunks: readonly [string, number][], keys: FileSubkeys, limiter?: RateLimiter, windowBytes = 16 * 1024 * 1024,
  options: { local?: LocalChunks; counts?: DownloadCounts } = {},
): AsyncGenerator<Uint8Array> {
  const windows = chunkWindows(chunks, windowBytes);
  const { local, counts } = options;
  // A large file: every chunk's id is checked (decryptChunk, readVerified) with the fast BLAKE2b (fast-blake2b.ts).
  if (chunks.reduce((sum, [, size]) => sum + size, 0) >= BULK_HASH_MIN) await prepareChunkIds(keys);
  let handle: FileHandle | null = null;
  if (local && local.at.size > 0) {
    // O_NOFOLLOW: a file swapped for a symlink is not read. Gone or unreadable: everything is fetched.
    handle = await open(local.absPath, OPEN_FLAGS).catch(() => null);
  }
  /** Set when the consumer stops early: a window being prepared fetches nothing more. */
  let stopped = false;
  const load = async (w: [string, number][]): Promise<Map<string, Uint8Array>> => {
    const got = new Map<string, Uint8Array>();
    const fetch: { id: string; keys: FileSubkeys }[] = [];
    for (const id of new Set(w.map(([x]) => x))) {
      const at = handle && !stopped ? local!.at.get(id) : undefined;
      const plain = at ? await readVerified(handle!, at, keys, id) : null;
      if (plain) {
        got.set(id, plain);
        if (counts) counts.bytesReused += plain.length;
      } else fetch.push({ id, keys });
    }
    if (stopped) return got;
    for (const [id, plain] of await fetchChunks(c, spaceId, fetch, limiter, counts)) got.set(id, plain);
    return got;
  };
  let next: Promise<Map<string, Uint8Array>> | null = windows.length ? load(windows[0]!) : null;
  try {
    for (let i = 0; i < windows.length; i++) {
      const got = await next!;
      next = i + 1 < windows.length ? load(windows[i + 1]!) : null;
      next?.catch(() => undefined); // awaited (and rethrown) on the next turn
      for (const [id] of windows[i]!) yield got.get(id)!;
    }
  } finally {
    stopped = true;
    // FileHandle.close waits for reads in flight; a read after it fails, and that chunk is simply not used.
    await handle?.close().catch(() => undefined);
  }
}
