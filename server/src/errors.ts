// DomainError (domain-error.ts) flows through one middleware into `{ error: { code, message } }` with the HTTP status of its code (HTTP_STATUS). Failures and
// denials of audited routes are written to the audit trail here, in a transaction of their own (the request's own
// transaction, if any, has rolled back), group-committed with concurrent requests (audit.appendStandalone); those
// of requests without a session are aggregated (audit.appendAnonymous).
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { ErrorCode, KluisError } from '@kluis/shared';
import type { AuditEntryInput, AuditLog } from './audit/types.js';
import { auditSafeTargetId } from './audit/input.js';
import type { KluisState } from './context.js';
import { DomainError } from './domain-error.js';
import { CLIENT_CLOSED_REQUEST, clientAborted, watchClientAbort } from './client-abort.js';

/**
 * The one table from error code to HTTP status. Services throw DomainError (domain-error.ts) with a code and no
 * status; the error middleware answers with the status found here. Codes of the crypto and format layer are the
 * client's mistake (400) when a route lets them through.
 */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  bad_envelope: 400, unsupported_version: 400, decrypt_failed: 400, bad_signature: 400, untrusted_signer: 400, wrong_recipient: 400,
  key_changed: 400, bad_key: 400, bad_recovery_key: 400, bad_manifest: 400, chunk_id_mismatch: 400, weak_kdf_params: 400, unsafe_path: 400,
  bad_canonical_json: 400, bad_membership: 400, membership_rollback: 400,
  bad_request: 400, validation_failed: 400, payload_too_large: 413, unsupported_media_type: 415, method_not_allowed: 405, not_implemented: 501,
  client_aborted: CLIENT_CLOSED_REQUEST, unauthenticated: 401, forbidden: 403, not_found: 404, conflict: 409, missing_chunks: 409,
  link_gone: 410, bad_link_auth: 401, request_gone: 410, policy_refused: 403, rate_limited: 429, totp_required: 403, space_frozen: 409,
  internal: 500, unavailable: 503,
};

/** The HTTP status of a domain error: the table's, 409 for a refusal by the state of things, or an ApiError's own. */
export function statusOf(err: DomainError): number {
  if (err instanceof ApiError) return err.status;
  return err.byState ? 409 : HTTP_STATUS[err.code];
}

/**
 * The audit facts of a refusal that a route writes itself (link and file request access, finality rules): its outcome
 * (denied for 401, 403, 404, 410, 429 unless the error says), status, code and reason, after `facts`.
 */
export function refusalFacts(err: DomainError, facts: Record<string, unknown>): Pick<AuditEntryInput, 'outcome' | 'details'> {
  const status = statusOf(err);
  const reason = (err.extra as { reason?: string } | undefined)?.reason;
  return {
    outcome: err.auditOutcome ?? ([401, 403, 404, 410, 429].includes(status) ? 'denied' : 'failed'),
    details: { ...facts, status, code: err.code, ...(reason ? { reason } : {}) } as AuditEntryInput['details'],
  };
}

/**
 * A refusal whose status no code names (411 Length Required): the HTTP layer's own, never a service's. Everything
 * else is a DomainError.
 */
export class ApiError extends DomainError {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    code: ErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}

/** Turns every thrown error into the JSON error shape; unknown errors become a logged 500 without details. */
export function errorMiddleware(log: Logger, audit?: AuditLog) {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      watchClientAbort(ctx.req);
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new DomainError(ErrorCode.NotFound, 'no such endpoint');
      // The router's bare 405 and 501 (router.allowedMethods): the JSON shape too; its Allow header stays.
      if (ctx.status === 405 && ctx.body === undefined) throw new DomainError(ErrorCode.MethodNotAllowed, `method not allowed here; allowed: ${ctx.response.get('Allow') || 'none'}`);
      if (ctx.status === 501 && ctx.body === undefined) throw new DomainError(ErrorCode.NotImplemented, 'this method is not implemented');
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
      } else if (err instanceof DomainError) {
        ({ code, message } = err);
        status = statusOf(err);
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
