// Errors of the packed chunk store (chunks.ts): a shared ErrorCode, the HTTP status a route answers, and a reason.
import { ErrorCode, KluisError } from '@kluis/shared';
import type { ChunkBatchLimits } from './chunk-model.js';

export type ChunkStoreErrorReason = 'not_found' | 'bad_id' | 'bad_size' | 'limit' | 'space_not_found' | 'corrupt';

/** Errors of the chunk store: a shared ErrorCode, the HTTP status a route answers, and a reason. */
export class ChunkStoreError extends KluisError {
  override name = 'ChunkStoreError';
  readonly reason: ChunkStoreErrorReason;
  readonly httpStatus: number;
  constructor(code: ErrorCode, httpStatus: number, reason: ChunkStoreErrorReason, message: string) {
    super(code, message);
    this.reason = reason;
    this.httpStatus = httpStatus;
  }
}

/** Some requested chunks are not stored (404); `ids` lists every one of them. */
export class ChunkNotFoundError extends ChunkStoreError {
  override name = 'ChunkNotFoundError';
  readonly ids: string[];
  constructor(ids: string[]) {
    super(ErrorCode.NotFound, 404, 'not_found', `${ids.length} chunk(s) not found: ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''}`);
    this.ids = ids;
  }
}

/** A chunk id that is not 64 lower-case hex (or is all zero), or a ciphertext below the minimum size (400). */
export class InvalidChunkError extends ChunkStoreError {
  override name = 'InvalidChunkError';
  readonly id: string;
  constructor(id: unknown, reason: 'bad_id' | 'bad_size', detail: string) {
    super(ErrorCode.ValidationFailed, 400, reason, `chunk ${typeof id === 'string' ? id.slice(0, 80) : String(id)}: ${detail}`);
    this.id = typeof id === 'string' ? id : String(id);
  }
}

/** A chunk over maxFrameBytes, or a batch over maxTotalBytes / maxCount (413). */
export class ChunkLimitError extends ChunkStoreError {
  override name = 'ChunkLimitError';
  readonly limit: keyof ChunkBatchLimits;
  readonly value: number;
  constructor(limit: keyof ChunkBatchLimits, value: number, max: number) {
    super(ErrorCode.PayloadTooLarge, 413, 'limit', `chunk batch: ${limit} ${max} exceeded (${value})`);
    this.limit = limit;
    this.value = value;
  }
}

/** No such space in this organisation (404). */
export class SpaceNotFoundError extends ChunkStoreError {
  override name = 'SpaceNotFoundError';
  constructor(spaceId: string) {
    super(ErrorCode.NotFound, 404, 'space_not_found', `space ${String(spaceId).slice(0, 80)} not found`);
  }
}

/** An object does not match its index row (500: a bug or tampering with the bucket). */
export class ChunkCorruptError extends ChunkStoreError {
  override name = 'ChunkCorruptError';
  constructor(message: string) {
    super(ErrorCode.Internal, 500, 'corrupt', message);
  }
}

// ------------------------------------------------------------------------------------------------ helpers

