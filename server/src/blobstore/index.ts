// Blob stores (docs/architecture.md §8): where encrypted chunk and pack objects live. One small, driver-like interface with
// two implementations: `fs` (embedded default, ./fs.ts) and `minio` (any S3 server via the `minio` client,
// ./minio.ts). Everything above this layer talks to `BlobStore` / `OrgBlobStore` only.
//
// Decisions (the conformance suite in test/integration/blobstore.test.ts holds both stores to them):
//
// - Scope: a store is opened once per process (`BlobStore`); `forOrg(orgId)` returns the view of ONE
//   organisation (`OrgBlobStore`), and every object operation goes through such a view, so no call can forget
//   the organisation. The same key in two organisations names two different objects. Backing: MinIO/S3 uses
//   one bucket per organisation (created on first write), the filesystem one directory per organisation. The
//   bucket / directory name is derived by `orgStorageName()`: `o-<orgId>` when the id is already a safe
//   lower-case name, otherwise `h-<40 hex of SHA-256(orgId)>`; the two forms never collide.
// - Keys: 1..1024 characters of `[A-Za-z0-9/_.-]`, `/`-separated segments of 1..200 characters, no leading or
//   trailing `/`, no empty segment, no `.`/`..` segment and no `..` anywhere. A bad key (or org id) throws
//   `InvalidBlobKeyError` before any I/O. Kluis keys look like `spaces/<spaceId>/chunks/<chunkId>`.
//   A key may be both an object and a prefix of other keys (`a` and `a/b` can coexist), as in S3.
// - Missing objects, one rule: the queries `stat()` and `exists()` answer `null` / `false`; every read
//   (`get`, `getRange`) rejects with `BlobNotFoundError`; `delete()` of a missing object succeeds (idempotent).
// - Writes are atomic: a reader sees the old object or the whole new one, never a part; a put that fails
//   (source stream error, size mismatch, store error) leaves the previous state (no object, or the old one).
//   A put from a stream needs the byte count up front and checks it: a short or long source is an error
//   (`BlobSizeMismatchError`) and stores nothing. Overwrites replace the object.
// - `getRange(key, offset, length)` returns exactly `length` bytes or rejects with `BlobRangeError`
//   (offset + length beyond the object, negative or non-integer numbers). `length` 0 is allowed.
// - `list(prefix)` yields every object whose key starts with `prefix` (a plain string prefix, as in S3, not a
//   directory: `spaces/a` matches `spaces/ab/x`) in ascending byte order of the key. An empty prefix lists all.
// - `ready()` is the `/readyz` probe: resolves when the store can serve, rejects with `BlobUnavailableError`.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

/** A stream source for `put`: a Node Readable (of Buffers) or any async iterable of byte chunks. */
export type BlobStream = Readable | AsyncIterable<Uint8Array>;

export interface BlobStat {
  /** Size in bytes. */
  size: number;
  /** Last modification time in ms since the epoch (S3 gives whole seconds). */
  mtimeMs: number;
}

export interface BlobListEntry extends BlobStat {
  key: string;
}

export interface BlobRead {
  /** Size in bytes of what `stream` will deliver. */
  size: number;
  stream: Readable;
}

/** One organisation's objects. Obtain it with `BlobStore.forOrg(orgId)`. */
export interface OrgBlobStore {
  readonly orgId: string;
  /** Stores `data` under `key` atomically, replacing any previous object. A stream needs its exact size. */
  put(key: string, data: Uint8Array): Promise<void>;
  put(key: string, data: BlobStream, size: number): Promise<void>;
  put(key: string, data: Uint8Array | BlobStream, size?: number): Promise<void>;
  /** The whole object as a stream, with its size. Rejects with `BlobNotFoundError` when missing. */
  get(key: string): Promise<BlobRead>;
  /** Exactly `length` bytes from `offset` (fits in memory: meant for chunks inside a pack). */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array>;
  /** `null` when missing. */
  stat(key: string): Promise<BlobStat | null>;
  exists(key: string): Promise<boolean>;
  /** Removes the object; a missing object is not an error. */
  delete(key: string): Promise<void>;
  /** Objects whose key starts with `prefix`, ascending by key. */
  list(prefix?: string): AsyncIterable<BlobListEntry>;
}

/** A configured backend (one per process). */
export interface BlobStore {
  readonly kind: 'fs' | 'minio';
  /** The view of one organisation. Cheap; validates the id (`InvalidBlobKeyError`). */
  forOrg(orgId: string): OrgBlobStore;
  /** Readiness probe for `/readyz`: resolves when usable, rejects with `BlobUnavailableError` otherwise. */
  ready(): Promise<void>;
  /** Releases sockets and handles; call it after in-flight operations have finished (graceful shutdown). */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------- errors

export type BlobErrorCode =
  | 'ERR_BLOB_NOT_FOUND'
  | 'ERR_BLOB_INVALID_KEY'
  | 'ERR_BLOB_RANGE'
  | 'ERR_BLOB_SIZE_MISMATCH'
  | 'ERR_BLOB_UNAVAILABLE';

export class BlobStoreError extends Error {
  readonly code: BlobErrorCode;
  constructor(code: BlobErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

export class BlobNotFoundError extends BlobStoreError {
  readonly key: string;
  constructor(key: string, options?: { cause?: unknown }) {
    super('ERR_BLOB_NOT_FOUND', `blob not found: ${key}`, options);
    this.key = key;
  }
}

export class InvalidBlobKeyError extends BlobStoreError {
  readonly key: string;
  constructor(key: string, reason: string) {
    super('ERR_BLOB_INVALID_KEY', `invalid blob key ${JSON.stringify(key)}: ${reason}`);
    this.key = key;
  }
}

export class BlobRangeError extends BlobStoreError {
  readonly key: string;
  readonly offset: number;
  readonly length: number;
  constructor(key: string, offset: number, length: number, detail: string) {
    super('ERR_BLOB_RANGE', `range ${offset}+${length} of ${key} not satisfiable: ${detail}`);
    this.key = key;
    this.offset = offset;
    this.length = length;
  }
}

export class BlobSizeMismatchError extends BlobStoreError {
  readonly key: string;
  readonly expected: number;
  readonly actual: number;
  constructor(key: string, expected: number, actual: number) {
    super('ERR_BLOB_SIZE_MISMATCH', `put ${key}: declared ${expected} bytes, source ${actual > expected ? 'gave more than' : 'ended after'} ${actual}`);
    this.key = key;
    this.expected = expected;
    this.actual = actual;
  }
}

export class BlobUnavailableError extends BlobStoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_BLOB_UNAVAILABLE', message, options);
  }
}

export function isBlobNotFound(err: unknown): err is BlobNotFoundError {
  return err instanceof BlobNotFoundError;
}

// ------------------------------------------------------------------------------------ keys and org ids

export const MAX_KEY_LENGTH = 1024;
/** 200, not 255: the fs store appends a marker to file names and must stay within NAME_MAX (255). */
export const MAX_SEGMENT_LENGTH = 200;
const KEY_CHARS = /^[A-Za-z0-9/_.-]+$/;

/** Throws `InvalidBlobKeyError` unless `key` follows the key rules in the header of this file. */
export function validateKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidBlobKeyError(String(key), 'empty');
  if (key.length > MAX_KEY_LENGTH) throw new InvalidBlobKeyError(key, `longer than ${MAX_KEY_LENGTH}`);
  if (!KEY_CHARS.test(key)) throw new InvalidBlobKeyError(key, 'only A-Z a-z 0-9 / _ . - are allowed');
  if (key.startsWith('/')) throw new InvalidBlobKeyError(key, 'leading /');
  if (key.endsWith('/')) throw new InvalidBlobKeyError(key, 'trailing /');
  if (key.includes('..')) throw new InvalidBlobKeyError(key, '".." is not allowed');
  for (const segment of key.split('/')) {
    if (segment === '') throw new InvalidBlobKeyError(key, 'empty segment');
    if (segment === '.') throw new InvalidBlobKeyError(key, '"." segment');
    if (segment.length > MAX_SEGMENT_LENGTH) throw new InvalidBlobKeyError(key, `segment longer than ${MAX_SEGMENT_LENGTH}`);
  }
}

/** A list prefix is empty or any string a key could start with (same characters, no `..`, no leading `/`). */
export function validatePrefix(prefix: string): void {
  if (typeof prefix !== 'string') throw new InvalidBlobKeyError(String(prefix), 'prefix must be a string');
  if (prefix === '') return;
  if (prefix.length > MAX_KEY_LENGTH) throw new InvalidBlobKeyError(prefix, `longer than ${MAX_KEY_LENGTH}`);
  if (!KEY_CHARS.test(prefix)) throw new InvalidBlobKeyError(prefix, 'only A-Z a-z 0-9 / _ . - are allowed');
  if (prefix.startsWith('/')) throw new InvalidBlobKeyError(prefix, 'leading /');
  if (prefix.includes('..')) throw new InvalidBlobKeyError(prefix, '".." is not allowed');
  if (prefix.includes('//')) throw new InvalidBlobKeyError(prefix, 'empty segment');
}

// Ids are random base64url, so they may start with `_` or `-` (a leading `.` is still refused).
const ORG_ID = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;
const SAFE_ORG_NAME = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/;

/** Organisation ids: 1..128 of `[A-Za-z0-9_.-]`, not starting with a dot. */
export function validateOrgId(orgId: string): void {
  if (typeof orgId !== 'string' || !ORG_ID.test(orgId)) {
    throw new InvalidBlobKeyError(String(orgId), 'organisation id must be 1..128 of A-Z a-z 0-9 _ . - not starting with a dot');
  }
}

/**
 * The name of an organisation's bucket / directory, without the store's prefix: `o-<orgId>` when the id is
 * lower-case letters, digits and inner hyphens of at most 40 characters (UUIDs qualify), else `h-` and 40 hex
 * digits of SHA-256(orgId). At most 42 characters, valid in S3 bucket names and file names; the two forms
 * cannot collide (different first letter), and distinct ids give distinct names.
 */
export function orgStorageName(orgId: string): string {
  validateOrgId(orgId);
  // (`--` and a `-s3alias` ending are reserved in S3 bucket names.)
  if (SAFE_ORG_NAME.test(orgId) && !orgId.includes('--') && !orgId.endsWith('-s3alias')) return `o-${orgId}`;
  return `h-${createHash('sha256').update(orgId, 'utf8').digest('hex').slice(0, 40)}`;
}

// ------------------------------------------------------------------------------- helpers for drivers

/** Throws `BlobRangeError` unless offset/length are non-negative safe integers. */
export function validateRangeArgs(key: string, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new BlobRangeError(key, offset, length, 'offset must be a non-negative integer');
  if (!Number.isSafeInteger(length) || length < 0) throw new BlobRangeError(key, offset, length, 'length must be a non-negative integer');
}

/** Checks the size argument of `put` and returns the byte count to expect. */
export function expectedPutSize(key: string, data: Uint8Array | BlobStream, size: number | undefined): number {
  if (data instanceof Uint8Array) {
    if (size !== undefined && size !== data.byteLength) throw new BlobSizeMismatchError(key, size, data.byteLength);
    return data.byteLength;
  }
  if (size === undefined || !Number.isSafeInteger(size) || size < 0) {
    throw new TypeError(`put ${key}: a stream source needs its size in bytes (a non-negative integer)`);
  }
  return size;
}

/**
 * Iterates a put source as Uint8Array chunks and enforces the declared size: throws `BlobSizeMismatchError`
 * as soon as the source gives more than `size` bytes, or when it ends short. Errors of the source propagate
 * unchanged; stopping early (return/throw) destroys a Readable source.
 */
export async function* sizedChunks(key: string, data: Uint8Array | BlobStream, size: number): AsyncGenerator<Uint8Array, void, undefined> {
  if (data instanceof Uint8Array) {
    if (data.byteLength > 0) yield data;
    return;
  }
  let seen = 0;
  for await (const chunk of data as AsyncIterable<unknown>) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError(`put ${key}: the source must yield bytes, got ${typeof chunk}`);
    seen += chunk.byteLength;
    if (seen > size) throw new BlobSizeMismatchError(key, size, seen);
    if (chunk.byteLength > 0) yield chunk;
  }
  if (seen !== size) throw new BlobSizeMismatchError(key, size, seen);
}

/** Rejects with `BlobUnavailableError` when `probe` fails or takes longer than `timeoutMs`. */
export async function probeWithTimeout(what: string, timeoutMs: number, probe: () => Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BlobUnavailableError(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([probe(), timeout]);
  } catch (err) {
    if (err instanceof BlobUnavailableError) throw err;
    throw new BlobUnavailableError(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
