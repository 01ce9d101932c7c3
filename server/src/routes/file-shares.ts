// Direct shares (docs/api.md "Direct shares"): a writer shares one file with a colleague, writers list a space's
// active shares (the sync engine adds wraps of new key epochs), the recipient lists what was shared with them and
// downloads that file's chunks, and the sharer or a manager revokes. The logic is in services/file-shares.ts.
import type Router from '@koa/router';
import { Readable } from 'node:stream';
import * as z from 'zod';
import { CreateFileShareRequest, ErrorCode, SharedChunksRequest, frameStream } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Services } from '../context.js';
import { actor, auditSuccess, body, type KCtx, parse, route, target } from '../http.js';
import { authoriseSharedChunks, receivedShare, revokeShare, shareFile, sharedWithMe, spaceShares } from '../services/file-shares.js';

const IdParam = z.string().regex(/^[A-Za-z0-9_-]{22}$/, 'must be a 16-byte base64url id');
const SharesQuery = z.object({ fileId: IdParam.optional() });

/** An id from the path; one that cannot exist is answered like a missing one. */
function idParam(ctx: KCtx, name: string, type: string): string {
  const id = String(ctx.params[name]);
  target(ctx, type, id.slice(0, 64));
  if (!IdParam.safeParse(id).success) throw new DomainError(ErrorCode.NotFound, `no such ${type}`);
  return id;
}

export function fileShareRoutes(router: Router, services: Services): void {
  route(router, services, 'post', '/api/v1/spaces/:spaceId/files/:fileId/shares', { action: 'share.create' }, async (ctx, caller) => {
    const spaceId = idParam(ctx, 'spaceId', 'space');
    const fileId = idParam(ctx, 'fileId', 'file');
    const req = parse(CreateFileShareRequest, body(ctx));
    const share = await shareFile(services, caller, actor(ctx, caller), spaceId, fileId, req);
    target(ctx, 'share', share.shareId);
    ctx.status = share.created ? 201 : 200;
    ctx.body = share;
  });

  route(router, services, 'get', '/api/v1/spaces/:spaceId/shares', { action: 'share.list' }, async (ctx, caller) => {
    const spaceId = idParam(ctx, 'spaceId', 'space');
    const { fileId } = parse(SharesQuery, ctx.query);
    const shares = await spaceShares(services, caller, spaceId, fileId);
    await auditSuccess(services, ctx, caller, 'space', spaceId, { count: shares.length, ...(fileId ? { fileId } : {}) });
    ctx.body = { shares };
  });

  route(router, services, 'get', '/api/v1/shared', { action: 'shared.list' }, async (ctx, caller) => {
    target(ctx, 'user', caller.userId);
    const answer = await sharedWithMe(services, caller);
    // One entry for the listing, naming every share it showed (each is a read of that share's manifest).
    await auditSuccess(services, ctx, caller, 'user', caller.userId, { count: answer.shares.length, shareIds: answer.shares.map((s) => s.shareId) });
    ctx.body = answer;
  });

  route(router, services, 'post', '/api/v1/shared/:shareId/chunks/download', { action: 'shared.chunks' }, async (ctx, caller) => {
    const shareId = idParam(ctx, 'shareId', 'share');
    const share = await receivedShare(services.read, caller, shareId);
    const { ids } = parse(SharedChunksRequest, body(ctx));
    await authoriseSharedChunks(services, share, ids);
    const batch = await services.chunks.getBatch(share.org_id, share.space_id, ids);
    await auditSuccess(services, ctx, caller, 'share', shareId, { spaceId: share.space_id, fileId: share.file_id, count: batch.count, bytes: batch.bytes });
    ctx.type = 'application/octet-stream';
    ctx.length = batch.framedBytes;
    ctx.body = Readable.from(frameStream(batch));
  });

  route(router, services, 'delete', '/api/v1/shares/:shareId', { action: 'share.revoke' }, async (ctx, caller) => {
    const shareId = idParam(ctx, 'shareId', 'share');
    await revokeShare(services, caller, actor(ctx, caller), shareId);
    ctx.status = 204;
  });
}
