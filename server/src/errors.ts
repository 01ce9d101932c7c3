// ApiError flows through one middleware into `{ error: { code, message } }` with its HTTP status. Failures and
// denials of audited routes are written to the audit trail here, in a transaction of their own (the request's own
// transaction, if any, has rolled back), group-committed with concurrent requests (audit.appendStandalone); those
// of requests without a session are aggregated (audit.appendAnonymous).
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { ErrorCode, KluisError } from '@kluis/shared';
import type { AuditEntryInput, AuditLog } from './audit/types.js';
import { auditSafeTargetId } from './audit/input.js';
import type { KluisState } from './context.js';
import { CLIENT_CLOSED_REQUEST, clientAborted, watchClientAbort } from './client-abort.js';

export class ApiError extends Error {
  override name = 'ApiError';
  /** Extra top-level members of the error body (e.g. `conflicts`, `missing`). */
  extra?: Record<string, unknown>;
  /** How the audit trail records this refusal, when the status alone does not say (a wrong password: failed). */
  auditOutcome?: 'denied' | 'failed';
  /** Small, non-secret facts the audit entry of this refusal adds to `{status, code}` (a policy refusal names the class). */
  auditDetails?: Record<string, string | number | boolean | null>;
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Turns every thrown error into the JSON error shape; unknown errors become a logged 500 without details. */
export function errorMiddleware(log: Logger, audit?: AuditLog) {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      watchClientAbort(ctx.req);
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new ApiError(404, ErrorCode.NotFound, 'no such endpoint');
      // The router's bare 405 and 501 (router.allowedMethods): the JSON shape too; its Allow header stays.
      if (ctx.status === 405 && ctx.body === undefined) throw new ApiError(405, ErrorCode.MethodNotAllowed, `method not allowed here; allowed: ${ctx.response.get('Allow') || 'none'}`);
      if (ctx.status === 501 && ctx.body === undefined) throw new ApiError(501, ErrorCode.NotImplemented, 'this method is not implemented');
    } catch (err) {
      const e = err as { status?: number; expose?: boolean; message?: string; type?: string };
      let status = 500;
      let code: ErrorCode = ErrorCode.Internal;
      let message = 'internal error';
      let extra: Record<string, unknown> | undefined;
      let outcome: 'denied' | 'failed' | undefined;
      let auditDetails: Record<string, string | number | boolean | null> | undefined;
      if (clientAborted(ctx.req, err)) {
        // The client closed the connection mid-body: nothing can be answered, and it is neither the store's fault nor
        // a bug, whatever error the route's read of the body ended with.
        log.info({ method: ctx.method, path: ctx.path }, 'client aborted the upload');
        status = CLIENT_CLOSED_REQUEST;
        code = ErrorCode.ClientAborted;
        message = 'the client closed the connection before the request body was complete';
      } else if (err instanceof ApiError) {
        ({ status, code, message } = err);
        extra = err.extra;
        outcome = err.auditOutcome;
        auditDetails = err.auditDetails;
      } else if (err instanceof KluisError && typeof (err as { httpStatus?: unknown }).httpStatus === 'number') {
        // Typed errors of the storage layer and the frame parser carry their own status (bad frame 400, ...).
        status = (err as unknown as { httpStatus: number }).httpStatus;
        code = err.code;
        message = err.message;
        const ids = (err as { ids?: unknown }).ids;
        if (Array.isArray(ids)) extra = { missing: ids.slice(0, 10_000) };
      } else if (storeUnavailable(err)) {
        // The object store is down or overloaded: a retryable 503, not a bug.
        log.warn({ err, method: ctx.method, path: ctx.path }, 'blob store unavailable');
        status = 503;
        code = ErrorCode.Unavailable;
        message = 'storage is unavailable: try again shortly';
      } else if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
        // Errors raised by Koa and its body parser (malformed JSON, body too large, bad encoding ...). Their
        // messages may quote the body, so only fixed texts go back (and nothing of them to the log).
        status = e.status;
        code = status === 413 ? ErrorCode.PayloadTooLarge : ErrorCode.BadRequest;
        message = status === 413 ? 'request body too large' : err instanceof SyntaxError ? 'malformed JSON body' : 'bad request';
      } else {
        log.error({ err, method: ctx.method, path: ctx.path }, 'unhandled error');
      }
      ctx.status = status;
      ctx.body = { error: { code, message }, ...extra };
      const state = ctx.state as KluisState;
      if (audit) {
        const caller = state.caller;
        // A request refused before a route took it (no such endpoint or method, an unreadable body) is audited too,
        // under `request.refused` with its path as the target.
        const target = state.action ? state.target : { type: 'path', id: ctx.path };
        // Ids in paths and queries are the client's: a NUL or an over-long id is stored cleaned or shortened (and
        // said so in details) rather than losing the entry to the audit's limits.
        const safe = auditSafeTargetId(target?.id);
        const entry: AuditEntryInput = {
          orgId: caller?.orgId ?? state.orgId ?? null,
          actorUserId: caller?.userId ?? null,
          actorDeviceId: caller?.deviceId ?? null,
          action: state.action ?? 'request.refused',
          targetType: target?.type ?? null,
          targetId: safe.id,
          outcome: outcome ?? (status === 401 || status === 403 || status === 404 || status === 429 ? 'denied' : 'failed'),
          ip: state.meta?.ip ?? ctx.ip,
          userAgent: state.meta?.userAgent ?? null,
          client: state.meta?.client ?? null,
          details: { ...auditDetails, status, code, ...safe.details },
        };
        try {
          // Without a session anyone can send these as fast as they like: counted per window (audit/anonymous.ts).
          await (caller ? audit.appendStandalone(entry) : audit.appendAnonymous(entry));
        } catch (auditErr) {
          log.error({ err: auditErr }, 'could not write the audit entry of a failed request');
        }
      }
    }
  };
}

/** Connection failures and S3 "busy" answers: the object store is away or overloaded (retryable), not a bug. */
const UNAVAILABLE = new Set(['ERR_BLOB_UNAVAILABLE', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'SlowDown', 'ServiceUnavailable', 'RequestTimeout']);
function storeUnavailable(err: unknown): boolean {
  let e = err as { code?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 4; depth++) {
    if (typeof e.code === 'string' && UNAVAILABLE.has(e.code)) return true;
    e = e.cause as typeof e;
  }
  return false;
}
