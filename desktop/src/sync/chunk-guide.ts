// The previous version's chunk list as a guide for cutting the new one (shared chunkStreamGuided; docs/crypto.md
// §10.3 "Guided by the previous version"). A new version of a large file mostly repeats the one it replaces, so most
// of its chunks start where the old ones did (or at a constant shift after an insertion or deletion). Where a chunk
// of the old list is expected, its keyed id is computed over the same number of bytes; if it matches, the chunk is
// taken as it is: no FastCDC gear loop over it, no copy, and its id is already known. So an edit in the middle of a
// 1 GiB file costs one pass of chunk ids instead of FastCDC plus chunk ids.
//
// A wrong guess costs one chunk id over at most CHUNK_MAX bytes. After MAX_MISSES wrong guesses in a row (a file
// rewritten, or the previous list made under another key) the guide stops guessing, until a chunk cut by FastCDC
// turns out to be one of the old ones again: from there, the old list goes on at that chunk's shift.
import { chunkId, type ChunkGuide, type FileSubkeys } from '@kluis/shared';

const MAX_MISSES = 3;

export class PreviousChunks implements ChunkGuide {
  /** old chunk start offset -> its index */
  private readonly byStart = new Map<number, number>();
  /** old chunk id -> its start offset (the first, if an id repeats) */
  private readonly startOf = new Map<string, number>();
  /** new offset - old offset of the chunk last matched */
  private shift = 0;
  private misses = 0;
  private lastConfirmed: string | null = null;
  /** chunks taken from the guide / guesses that were wrong (tests, benchmarks) */
  confirmed = 0;
  missed = 0;

  /**
   * `ahead`: ids already computed by a worker for the bytes at the old chunks' places (confirm-ahead.ts); used where
   * the new version has not shifted (shift 0), instead of hashing the same bytes again.
   */
  constructor(private readonly keys: FileSubkeys, private readonly previous: readonly (readonly [string, number])[], private readonly ahead?: { idAt(i: number): string | null | undefined }) {
    let at = 0;
    previous.forEach(([id, length], i) => {
      this.byStart.set(at, i);
      if (!this.startOf.has(id)) this.startOf.set(id, at);
      at += length;
    });
  }

  expect(at: number): { length: number; last: boolean } | null {
    if (this.misses >= MAX_MISSES) return null;
    const i = this.byStart.get(at - this.shift);
    if (i === undefined) return null;
    return { length: this.previous[i]![1], last: i === this.previous.length - 1 };
  }

  confirm(at: number, bytes: Uint8Array): boolean {
    const i = this.byStart.get(at - this.shift)!;
    const known = this.shift === 0 ? this.ahead?.idAt(i) : undefined;
    const id = typeof known === 'string' ? known : chunkId(this.keys, bytes);
    if (id === this.previous[i]![0]) {
      this.misses = 0;
      this.confirmed++;
      this.lastConfirmed = id;
      return true;
    }
    this.misses++;
    this.missed++;
    return false;
  }

  /** The id of the chunk confirm() last accepted (the stream yields only its length). */
  takeConfirmed(): string {
    const id = this.lastConfirmed!;
    this.lastConfirmed = null;
    return id;
  }

  /** A chunk FastCDC cut at `at` with this id: if the old list has it, the old list goes on from its shift. */
  observe(at: number, id: string): void {
    const old = this.startOf.get(id);
    if (old === undefined) return;
    this.shift = at - old;
    this.misses = 0;
  }
}
