// Chunk transfer (docs/architecture.md §3.1): which chunks are missing, framed batch upload and download of many small chunks,
// and single-chunk streaming PUT/GET for large ones. Storage (packs, ranged reads) lives in storage/chunks.ts.
import type Router from '@koa/router';
import { Readable } from 'node:stream';
import { ChunkIdsRequest, ErrorCode, frameStream } from '@kluis/shared';
import { ApiError } from '../errors.js';
import type { Services } from '../context.js';
import { auditSuccess, body, type KCtx, parse, pathId, route } from '../http.js';
import { refuseIfFrozen, spaceAccess } from '../services/access.js';
import { DEFAULT_CHUNK_BATCH_LIMITS, isChunkId, type ChunkStore } from '../storage/chunks.js';
import { DomainError } from '../domain-error.js';

/** Largest framed upload body accepted (the store's batch limit). */
export const MAX_UPLOAD_BYTES = DEFAULT_CHUNK_BATCH_LIMITS.maxTotalBytes;

function chunkParam(ctx: KCtx): string {
  const id = String(ctx.params.chunkId);
  if (!isChunkId(id)) throw new DomainError(ErrorCode.ValidationFailed, 'chunkId: 64 lower-case hex digits');
  return id;
}

export function declaredLength(ctx: KCtx, max: number): number | null {
  const raw = ctx.get('content-length');
  if (!raw) return null;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) throw new DomainError(ErrorCode.BadRequest, 'bad Content-Length');
  if (n > max) throw new DomainError(ErrorCode.PayloadTooLarge, `request body over ${max} bytes`);
  return n;
}

/**
 * Chunk bodies are ciphertext, read by the route as they arrive (the JSON parser leaves them alone): sent as
 * application/octet-stream or without a type, and not content-encoded (ciphertext does not compress, and the store
 * must keep exactly the bytes whose id was announced). Anything else is 415, before a byte is read.
 */
export function binaryBody(ctx: KCtx, what: string): void {
  const type = ctx.request.type;
  if (type && type !== 'application/octet-stream') throw new DomainError(ErrorCode.UnsupportedMediaType, `send ${what} as application/octet-stream`);
  const encoding = ctx.get('content-encoding').trim().toLowerCase();
  if (encoding && encoding !== 'identity') throw new DomainError(ErrorCode.UnsupportedMediaType, `${what}: no Content-Encoding is supported`);
}

export function chunkRoutes(router: Router, services: Services, chunks: ChunkStore): void {
  const { read } = services;

  route(router, services, 'post', '/api/v1/spaces/:spaceId/chunks/missing', { action: 'chunks.missing' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    const { space } = await spaceAccess(services.hot, caller, spaceId, 'editor');
    const { ids } = parse(ChunkIdsRequest, body(ctx));
    const missing = await chunks.missing(space.org_id, spaceId, ids);
    await auditSuccess(services, ctx, caller, 'space', spaceId, { asked: ids.length, missing: missing.length });
    ctx.body = { missing };
  });

  route(router, services, 'post', '/api/v1/spaces/:spaceId/chunks/upload', { action: 'chunks.upload' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    const { space } = await spaceAccess(services.hot, caller, spaceId, 'editor');
    await refuseIfFrozen(read, spaceId);
    binaryBody(ctx, 'the chunk frames');
    declaredLength(ctx, MAX_UPLOAD_BYTES);
    // Frames are parsed while they arrive; a truncated or lying body fails before its pack is committed.
    const r = await chunks.putBatch(space.org_id, spaceId, chunks.framesOf(ctx.req, DEFAULT_CHUNK_BATCH_LIMITS));
    await auditSuccess(services, ctx, caller, 'space', spaceId, { stored: r.stored, duplicate: r.duplicate, bytes: r.bytes });
    ctx.status = 201;
    ctx.body = { stored: r.stored, duplicate: r.duplicate, bytes: r.bytes };
  });

  route(router, services, 'post', '/api/v1/spaces/:spaceId/chunks/download', { action: 'chunks.download' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    const { space } = await spaceAccess(services.hot, caller, spaceId, 'viewer');
    const { ids } = parse(ChunkIdsRequest, body(ctx));
    const batch = await chunks.getBatch(space.org_id, spaceId, ids);
    await auditSuccess(services, ctx, caller, 'space', spaceId, { count: batch.count, bytes: batch.bytes });
    ctx.type = 'application/octet-stream';
    ctx.length = batch.framedBytes;
    ctx.body = Readable.from(frameStream(batch));
  });

  route(router, services, 'put', '/api/v1/spaces/:spaceId/chunks/:chunkId', { action: 'chunks.upload' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    const { space } = await spaceAccess(services.hot, caller, spaceId, 'editor');
    const id = chunkParam(ctx);
    binaryBody(ctx, 'the chunk');
    const size = declaredLength(ctx, DEFAULT_CHUNK_BATCH_LIMITS.maxFrameBytes);
    if (size === null) throw new ApiError(411, ErrorCode.BadRequest, 'Content-Length is required');
    const r = await chunks.putOne(space.org_id, spaceId, id, ctx.req, size);
    await auditSuccess(services, ctx, caller, 'space', spaceId, { stored: r.stored ? 1 : 0, duplicate: r.stored ? 0 : 1, bytes: r.stored ? size : 0 });
    ctx.status = r.stored ? 201 : 200;
    ctx.body = { stored: r.stored };
  });

  route(router, services, 'get', '/api/v1/spaces/:spaceId/chunks/:chunkId', { action: 'chunks.download' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    const { space } = await spaceAccess(services.hot, caller, spaceId, 'viewer');
    const id = chunkParam(ctx);
    const r = await chunks.getOne(space.org_id, spaceId, id);
    await auditSuccess(services, ctx, caller, 'space', spaceId, { count: 1, bytes: r.size });
    ctx.type = 'application/octet-stream';
    ctx.length = r.size;
    ctx.body = r.stream;
  });
}

