// Share links (docs/api.md "Share links"): members create, list and revoke them; the link page (no session) reads a
// link's public facts, proves the secret to get the wrapped file key, the manifest and a download token, and fetches
// the version's chunks with that token. The logic is in services/links.ts; the page itself is served elsewhere.
import type Router from '@koa/router';
import { Readable } from 'node:stream';
import * as z from 'zod';
import { CreateFolderLinkRequest, CreateLinkRequest, ErrorCode, LinkAccessRequest, LinkChunksRequest, frameStream } from '@kluis/shared';
import type { Services } from '../context.js';
import { actor, answerRefusal, auditSuccess, body, type KCtx, meta, parse, pathId, publicRoute, route, target } from '../http.js';
import { kdfFloor } from './auth.js';
import {
  accessLink, auditAccessRefusal, authoriseChunks, chunksAuditEntry, createLink, findLink, listLinks, publicInfo, revokeLink,
} from '../services/links.js';
import { createFolderLink } from '../services/folder-links.js';
import { DomainError } from '../domain-error.js';

export const IdParam = z.string().regex(/^[A-Za-z0-9_-]{22}$/, 'must be a 16-byte base64url id');
const ListQuery = z.object({ spaceId: IdParam.optional() });

/** A link id from the path; one that cannot exist is answered like a missing link. */
function linkParam(ctx: KCtx): string {
  const id = String(ctx.params.linkId);
  target(ctx, 'link', id.slice(0, 64));
  if (!IdParam.safeParse(id).success) throw new DomainError(ErrorCode.NotFound, 'no such link');
  return id;
}

/** `Authorization: Bearer <token>`, or null (also the bearer proof of file requests, routes/requests.ts). */
export function bearer(ctx: KCtx): string | null {
  const m = /^Bearer ([A-Za-z0-9_-]{43})$/.exec(ctx.get('authorization'));
  return m ? m[1]! : null;
}

export function linkRoutes(router: Router, services: Services): void {
  route(router, services, 'post', '/api/v1/spaces/:spaceId/links', { action: 'link.create' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    const req = parse(CreateLinkRequest, body(ctx));
    target(ctx, 'link', req.linkId);
    ctx.status = 201;
    ctx.body = await createLink(services, caller, actor(ctx, caller), spaceId, req, kdfFloor(services));
  });

  route(router, services, 'post', '/api/v1/spaces/:spaceId/folder-links', { action: 'link.create' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    const req = parse(CreateFolderLinkRequest, body(ctx));
    target(ctx, 'link', req.linkId);
    ctx.status = 201;
    ctx.body = await createFolderLink(services, caller, actor(ctx, caller), spaceId, req, kdfFloor(services));
  });

  route(router, services, 'get', '/api/v1/links', { action: 'link.list' }, async (ctx, caller) => {
    const { spaceId } = parse(ListQuery, ctx.query);
    target(ctx, spaceId ? 'space' : 'user', spaceId ?? caller.userId);
    const links = await listLinks(services, caller, spaceId);
    await auditSuccess(services, ctx, caller, spaceId ? 'space' : 'user', spaceId ?? caller.userId, { count: links.length });
    ctx.body = { links };
  });

  route(router, services, 'delete', '/api/v1/links/:linkId', { action: 'link.revoke' }, async (ctx, caller) => {
    const linkId = linkParam(ctx);
    await revokeLink(services, caller, actor(ctx, caller), linkId);
    ctx.status = 204;
  });

  // Without a session: aggregated in the audit trail like every unauthenticated request (audit/anonymous.ts).
  publicRoute(router, 'get', '/api/v1/public/links/:linkId', 'link.info', async (ctx) => {
    const link = await findLink(services.read, linkParam(ctx));
    ctx.state.orgId = link.org_id;
    const info = publicInfo(link);
    await services.audit.appendAnonymous({ ...meta(ctx), orgId: link.org_id, action: 'link.info', targetType: 'link', targetId: link.id, outcome: 'success' });
    ctx.body = info;
  });

  // Every access of a known link, granted or refused, gets its own audit entry under the link's organisation, so a
  // refusal is answered here rather than thrown to the error middleware (which would aggregate it). An unknown id
  // has no organisation to file it under and goes the aggregated way.
  publicRoute(router, 'post', '/api/v1/public/links/:linkId/access', 'link.access', async (ctx) => {
    const link = await findLink(services.db, linkParam(ctx));
    ctx.state.orgId = link.org_id;
    const who = meta(ctx);
    try {
      const { auth } = parse(LinkAccessRequest, body(ctx));
      ctx.body = await accessLink(services, link, auth, who);
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      await auditAccessRefusal(services, link, who, err);
      answerRefusal(ctx, err);
    }
  });

  publicRoute(router, 'post', '/api/v1/public/links/:linkId/chunks', 'link.chunks', async (ctx) => {
    const link = await findLink(services.read, linkParam(ctx));
    ctx.state.orgId = link.org_id;
    const { ids } = parse(LinkChunksRequest, body(ctx));
    await authoriseChunks(services, link, bearer(ctx), ids);
    const batch = await services.chunks.getBatch(link.org_id, link.space_id, ids);
    await services.tx((trx) => services.audit.append(trx, chunksAuditEntry(link, meta(ctx), batch.count, batch.bytes)));
    ctx.type = 'application/octet-stream';
    ctx.length = batch.framedBytes;
    ctx.body = Readable.from(frameStream(batch));
  });
}
