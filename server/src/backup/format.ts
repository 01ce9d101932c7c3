// The backup directory's layout (docs/backup.md §2): manifest.json, signed by the server, and record files, each a run
// of frames `u32 BE length || Env(record)`. Writing, reading frames (with or without the key) and the manifest's schema.
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import * as z from 'zod';
import { ContentHasher, backupFileKey, openBackupRecord, sealBackupRecord } from '@kluis/shared';

export const BACKUP_FORMAT = 'kluis-backup/v1';
export const MANIFEST_FILE = 'manifest.json';
/** Largest frame a reader accepts (a pack of 8 MiB and its key fit many times over). */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

const B64U = z.string().regex(/^[A-Za-z0-9_-]+$/);
const Count = z.number().int().nonnegative();

export const BackupFileEntry = z.strictObject({
  name: z.string().regex(/^(tables\/[a-z0-9_]+|objects|audit)\.kbk$/),
  records: Count,
  bytes: Count,
  hash: z.string().regex(/^[0-9a-f]{64}$/),
});
export type BackupFileEntry = z.infer<typeof BackupFileEntry>;

export const BackupManifest = z.strictObject({
  format: z.literal(BACKUP_FORMAT),
  backupId: B64U.length(22),
  orgId: z.string().min(1).max(32),
  createdAt: Count,
  serverPublicKey: B64U.length(43),
  backupPublicKey: B64U.length(43),
  sealedKey: B64U.length(107),
  schema: z.array(z.string()),
  files: z.array(BackupFileEntry),
  counts: z.strictObject({
    rows: z.record(z.string(), Count),
    objects: Count,
    objectBytes: Count,
    auditEntries: Count,
  }),
  signature: B64U.length(86),
});
export type BackupManifest = z.infer<typeof BackupManifest>;

export const tableFile = (table: string) => `tables/${table}.kbk`;
export const OBJECTS_FILE = 'objects.kbk';
export const AUDIT_FILE = 'audit.kbk';

/**
 * Writes one record file. A record is sealed when the next one arrives (or at `close`), so that the last one carries
 * the `last` flag in its ad: a file cut after any record fails to open.
 */
export class RecordFileWriter {
  private readonly out: WriteStream;
  private readonly key: Uint8Array;
  private readonly hasher = new ContentHasher();
  private pending: Uint8Array | null = null;
  private records = 0;
  private bytes = 0;

  /** The stream's error, kept: an error event with no listener would end the process (the file opens asynchronously). */
  private failure: Error | null = null;

  constructor(path: string, readonly name: string, private readonly backupId: string, contentKey: Uint8Array, private readonly fileIndex: number) {
    this.out = createWriteStream(path, { mode: 0o600, flags: 'wx' });
    this.out.on('error', (err) => {
      this.failure ??= err;
    });
    this.key = backupFileKey(contentKey, fileIndex);
  }

  /**
   * Gives the file up (the backup failed): the stream is destroyed and its descriptor closed before this resolves, so
   * that the caller may remove the directory (a stream still opening would otherwise fail on the missing directory).
   */
  async discard(): Promise<void> {
    if (this.out.closed) return;
    const closed = once(this.out, 'close').catch(() => undefined);
    this.out.destroy();
    await closed;
  }

  async add(payload: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.pending) await this.flush(false);
    this.pending = payload;
  }

  private async flush(last: boolean): Promise<void> {
    const sealed = sealBackupRecord(this.key, { backupId: this.backupId, fileIndex: this.fileIndex, recordIndex: this.records, last }, this.pending!);
    this.pending = null;
    const header = Buffer.allocUnsafe(4);
    header.writeUInt32BE(sealed.length, 0);
    this.hasher.update(header).update(sealed);
    this.records++;
    this.bytes += 4 + sealed.length;
    this.out.write(header);
    if (!this.out.write(sealed)) await once(this.out, 'drain');
  }

  /** Ends the file (fsynced) and returns its manifest entry. */
  async close(): Promise<BackupFileEntry> {
    if (this.failure) throw this.failure;
    if (this.pending) await this.flush(true);
    await new Promise<void>((resolve, reject) => this.out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    return { name: this.name, records: this.records, bytes: this.bytes, hash: this.hasher.digest() };
  }
}

/** A frame file that is not well formed. */
export class BackupFormatError extends Error {
  override name = 'BackupFormatError';
}

/** The frames of a record file as stored (sealed), with the running BLAKE2b-256 of the file in `hasher`. */
export async function* readFrames(path: string, label: string, hasher?: ContentHasher): AsyncGenerator<Uint8Array> {
  // Pieces are kept in a list and joined once a whole frame is there: joining on every read copied an 8 MiB frame
  // eight times over.
  let pieces: Buffer[] = [];
  let have = 0;
  let need = 4; // bytes wanted next: a header, then its frame
  let frameLen = -1;
  const take = (n: number): Buffer => {
    const all = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, have);
    pieces = all.length > n ? [all.subarray(n)] : [];
    have -= n;
    return all.subarray(0, n);
  };
  for await (const piece of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    hasher?.update(piece);
    pieces.push(piece);
    have += piece.length;
    while (have >= need) {
      if (frameLen < 0) {
        frameLen = take(4).readUInt32BE(0);
        if (frameLen > MAX_FRAME_BYTES) throw new BackupFormatError(`${label}: a frame of ${frameLen} bytes (at most ${MAX_FRAME_BYTES})`);
        need = frameLen;
      } else {
        yield take(frameLen);
        frameLen = -1;
        need = 4;
      }
    }
  }
  if (have || frameLen >= 0) throw new BackupFormatError(`${label}: ends inside a frame`);
}

/** The opened records of file number `fileIndex` (its entry says how many; the last one must carry the flag). */
export async function* readRecords(path: string, entry: BackupFileEntry, backupId: string, contentKey: Uint8Array, fileIndex: number): AsyncGenerator<Uint8Array> {
  const key = backupFileKey(contentKey, fileIndex);
  let index = 0;
  for await (const frame of readFrames(path, entry.name)) {
    if (index >= entry.records) throw new BackupFormatError(`${entry.name}: more records than the manifest counts`);
    yield openBackupRecord(key, { backupId, fileIndex, recordIndex: index, last: index === entry.records - 1 }, frame);
    index++;
  }
  if (index !== entry.records) throw new BackupFormatError(`${entry.name}: ${index} records, the manifest counts ${entry.records}`);
}

/** An object record: u16 BE key length || UTF8(key) || bytes. */
export function objectRecord(key: string, bytes: Uint8Array): Uint8Array {
  const k = Buffer.from(key, 'utf8');
  const out = Buffer.allocUnsafe(2 + k.length + bytes.length);
  out.writeUInt16BE(k.length, 0);
  out.set(k, 2);
  out.set(bytes, 2 + k.length);
  return out;
}

export function parseObjectRecord(record: Uint8Array): { key: string; bytes: Uint8Array } {
  const b = Buffer.from(record.buffer, record.byteOffset, record.byteLength);
  if (b.length < 2) throw new BackupFormatError('an object record shorter than its key length');
  const n = b.readUInt16BE(0);
  if (b.length < 2 + n) throw new BackupFormatError('an object record shorter than its key');
  return { key: b.subarray(2, 2 + n).toString('utf8'), bytes: b.subarray(2 + n) };
}
