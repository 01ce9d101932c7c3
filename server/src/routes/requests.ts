// File requests (docs/api.md "File requests"): members create, list and revoke them; the request page (no session)
// reads a request's public facts, uploads chunk frames and commits one new file at a time with the request's bearer
// proof. The logic is in services/requests.ts; the page itself is served by routes/web.ts.
import type Router from '@koa/router';
import * as z from 'zod';
import { CreateFileRequest, ErrorCode, REQUEST_MAX_UPLOAD_BYTES, RequestCommit } from '@kluis/shared';
import { ApiError } from '../errors.js';
import type { Services } from '../context.js';
import { actor, answerRefusal, auditSuccess, body, type KCtx, meta, parse, pathId, publicRoute, route, target } from '../http.js';
import { IdParam, bearer } from './links.js';
import {
  assertBudget, auditRefusal, authorise, commitUpload, countBytes, createRequest, findRequest, infoAuditEntry, listRequests, publicInfo, revokeRequest, throttle,
  type RequestRow,
} from '../services/requests.js';
import { DEFAULT_CHUNK_BATCH_LIMITS } from '../storage/chunks.js';
import { binaryBody, declaredLength } from './chunks.js';
import { DomainError } from '../domain-error.js';

const ListQuery = z.object({ spaceId: IdParam.optional() });

/** A request id from the path; one that cannot exist is answered like a missing request. */
function requestParam(ctx: KCtx): string {
  const id = String(ctx.params.requestId);
  target(ctx, 'filerequest', id.slice(0, 64));
  if (!IdParam.safeParse(id).success) throw new DomainError(ErrorCode.NotFound, 'no such request');
  return id;
}

/**
 * A public call of a known request: every answer, granted or refused, gets its own audit entry under the request's
 * organisation, so a refusal is answered here rather than thrown to the error middleware (which would aggregate it).
 */
function publicRequestRoute(router: Router, services: Services, method: 'get' | 'post', path: string, action: string, handler: (ctx: KCtx, r: RequestRow) => Promise<void>): void {
  publicRoute(router, method, path, action, async (ctx) => {
    const r = await findRequest(services.db, requestParam(ctx));
    ctx.state.orgId = r.org_id;
    try {
      await throttle(services, r, meta(ctx));
      await handler(ctx, r);
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      // The body of a refused upload is not read: the connection closes after the answer rather than draining it.
      if (ctx.req.readable && method === 'post') ctx.set('Connection', 'close');
      await auditRefusal(services, r, action, meta(ctx), err);
      answerRefusal(ctx, err);
    }
  });
}

export function requestRoutes(router: Router, services: Services): void {
  route(router, services, 'post', '/api/v1/spaces/:spaceId/requests', { action: 'filerequest.create' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    const req = parse(CreateFileRequest, body(ctx));
    target(ctx, 'filerequest', req.requestId);
    ctx.status = 201;
    ctx.body = await createRequest(services, caller, actor(ctx, caller), spaceId, req);
  });

  route(router, services, 'get', '/api/v1/requests', { action: 'filerequest.list' }, async (ctx, caller) => {
    const { spaceId } = parse(ListQuery, ctx.query);
    target(ctx, spaceId ? 'space' : 'user', spaceId ?? caller.userId);
    const requests = await listRequests(services, caller, spaceId);
    await auditSuccess(services, ctx, caller, spaceId ? 'space' : 'user', spaceId ?? caller.userId, { count: requests.length });
    ctx.body = { requests };
  });

  route(router, services, 'delete', '/api/v1/requests/:requestId', { action: 'filerequest.revoke' }, async (ctx, caller) => {
    await revokeRequest(services, caller, actor(ctx, caller), requestParam(ctx));
    ctx.status = 204;
  });

  publicRequestRoute(router, services, 'get', '/api/v1/public/requests/:requestId', 'filerequest.info', async (ctx, r) => {
    const info = publicInfo(r);
    await services.audit.appendStandalone(infoAuditEntry(r, meta(ctx)));
    ctx.body = info;
  });

  publicRequestRoute(router, services, 'post', '/api/v1/public/requests/:requestId/chunks', 'filerequest.chunks', async (ctx, r) => {
    await authorise(services, r, meta(ctx), bearer(ctx));
    binaryBody(ctx, 'the chunk frames');
    const declared = declaredLength(ctx, REQUEST_MAX_UPLOAD_BYTES);
    if (declared === null) throw new ApiError(411, ErrorCode.BadRequest, 'Content-Length is required');
    assertBudget(r, declared);
    const limits = { ...DEFAULT_CHUNK_BATCH_LIMITS, maxTotalBytes: REQUEST_MAX_UPLOAD_BYTES };
    const stored = await services.chunks.putBatch(r.org_id, r.space_id, services.chunks.framesOf(ctx.req, limits), limits);
    await countBytes(services, r, meta(ctx), stored);
    ctx.status = 201;
    ctx.body = { stored: stored.stored, duplicate: stored.duplicate, bytes: stored.bytes };
  });

  publicRequestRoute(router, services, 'post', '/api/v1/public/requests/:requestId/commit', 'filerequest.upload', async (ctx, r) => {
    await authorise(services, r, meta(ctx), bearer(ctx));
    const req = parse(RequestCommit, body(ctx));
    ctx.status = 201;
    ctx.body = await commitUpload(services, r, meta(ctx), req);
  });
}
