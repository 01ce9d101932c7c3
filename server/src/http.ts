// Route plumbing: every route declares its audited action and whether it needs a session; request bodies and
// queries are parsed with zod schemas at the boundary.
import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import type * as z from 'zod';
import { ErrorCode } from '@kluis/shared';
import { DomainError, RetryLater } from './domain-error.js';
import { statusOf } from './errors.js';
import type { Caller, KluisState, Services } from './context.js';
import { authenticate } from './auth/sessions.js';
import type { AuditEntryInput } from './audit/types.js';

export type KCtx = Context & { state: KluisState };

export interface RouteOptions {
  /** Audited action name, e.g. "space.create". */
  action: string;
  /** Whether a valid session is required (default true). */
  auth?: boolean;
}

type Handler = (ctx: KCtx, caller: Caller) => Promise<void> | void;
type PublicHandler = (ctx: KCtx) => Promise<void> | void;

/** Registers an authenticated route. */
export function route(router: Router, services: Services, method: 'get' | 'post' | 'put' | 'patch' | 'delete', path: string, options: RouteOptions, handler: Handler): void {
  router[method](path, async (ctx: Context, next: Next) => {
    const k = ctx as KCtx;
    k.state.action = options.action;
    const caller = await authenticate(services, k);
    k.state.caller = caller;
    k.state.orgId = caller.orgId;
    await nulMeansNotFound(k, () => handler(k, caller));
    void next;
  });
}

/**
 * A path or query value holding a NUL can match no stored id. sqlite looks it up and finds nothing (404); PostgreSQL
 * refuses to compare it at all (text cannot hold NUL: SQLSTATE 22021), which would be a 500. So that refusal, for a
 * request that carried a NUL, is the same "not found".
 */
async function nulMeansNotFound(ctx: KCtx, run: () => Promise<void> | void): Promise<void> {
  try {
    await run();
  } catch (err) {
    const values = [...Object.values(ctx.params ?? {}), ...Object.values(ctx.query).flat()];
    if ((err as { code?: unknown }).code === '22021' && values.some((v) => typeof v === 'string' && v.includes('\u0000'))) {
      throw new DomainError(ErrorCode.NotFound, 'not found');
    }
    throw err;
  }
}

/** Registers a route that needs no session (login, prelogin, signup, link access). */
export function publicRoute(router: Router, method: 'get' | 'post', path: string, action: string, handler: PublicHandler): void {
  router[method](path, async (ctx: Context) => {
    const k = ctx as KCtx;
    k.state.action = action;
    await nulMeansNotFound(k, () => handler(k));
  });
}

/** Answers a refusal in the error middleware's shape, for the routes that audit their refusals themselves. */
export function answerRefusal(ctx: KCtx, err: DomainError): void {
  if (err instanceof RetryLater) ctx.set('Retry-After', String(err.seconds));
  ctx.status = statusOf(err);
  ctx.body = { error: { code: err.code, message: err.message }, ...err.extra };
}

/** Parses `data` with `schema`, or answers 400 validation_failed naming the first bad field. */
export function parse<T extends z.ZodTypeAny>(schema: T, data: unknown): z.infer<T> {
  const result = schema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const where = issue.path.length ? issue.path.join('.') : 'body';
    throw new DomainError(ErrorCode.ValidationFailed, `${where}: ${issue.message}`);
  }
  return result.data;
}

/** The JSON body (already parsed by the body parser); a missing body is an empty object. */
export function body(ctx: KCtx): unknown {
  return (ctx.request as unknown as { body?: unknown }).body ?? {};
}

/** The id in path parameter `name`, set as the request's audit target of `type`: the preamble of most routes. */
export function pathId(ctx: KCtx, name: string, type: string): string {
  const id = String(ctx.params[name]);
  target(ctx, type, id);
  return id;
}

/**
 * Writes the audit entry of a successful request under the route's action (an access with nothing else to write: a
 * read), with the entries of concurrent reads in one batch (audit/batch.ts); resolves once it is committed.
 */
export async function auditSuccess(services: Services, ctx: KCtx, caller: Caller, targetType: string, targetId: string, details?: AuditEntryInput['details']): Promise<void> {
  const entry: AuditEntryInput = { ...actor(ctx, caller), action: ctx.state.action!, targetType, targetId, outcome: 'success', ...(details ? { details } : {}) };
  await services.auditReads.record(entry);
}

/** Sets the audit target of the request. */
export function target(ctx: KCtx, type: string, id: string | null): void {
  ctx.state.target = { type, id };
}

/** The request facts every audit entry carries. */
export function meta(ctx: KCtx): { ip: string; userAgent: string | null; client: string | null } {
  return { ip: ctx.state.meta.ip, userAgent: ctx.state.meta.userAgent, client: ctx.state.meta.client };
}

/** Actor and request facts of an authenticated caller, to spread into an audit entry. */
export function actor(ctx: KCtx, caller: Caller) {
  return { orgId: caller.orgId, actorUserId: caller.userId, actorDeviceId: caller.deviceId, ...meta(ctx) };
}
