// The errors services throw: a shared ErrorCode and a message for people, and nothing of HTTP. Which status a code
// answers is decided in one place, errors.ts HTTP_STATUS, when the error middleware turns it into
// `{ error: { code, message } }`; the CLI maps the same errors to its exit codes.
import { ErrorCode, KluisError } from '@kluis/shared';

export type AuditDetails = Record<string, string | number | boolean | null>;

export interface DomainErrorOptions {
  /** Extra top-level members of the error body (e.g. `conflicts`, `missing`, `reason`). */
  extra?: Record<string, unknown>;
  /** How the audit trail records this refusal, when the code alone does not say (a wrong password: failed). */
  auditOutcome?: 'denied' | 'failed';
  /** Small, non-secret facts the audit entry of this refusal adds to `{status, code}` (a policy refusal names the class). */
  auditDetails?: AuditDetails;
  /** Refused by the present state of things rather than by a rule: a policy refusal then answers 409, not 403. */
  byState?: boolean;
}

export class DomainError extends KluisError {
  override name = 'DomainError';
  extra?: Record<string, unknown>;
  auditOutcome?: 'denied' | 'failed';
  auditDetails?: AuditDetails;
  byState?: boolean;
  constructor(code: ErrorCode, message: string, options: DomainErrorOptions = {}) {
    super(code, message);
    if (options.extra) this.extra = options.extra;
    if (options.auditOutcome) this.auditOutcome = options.auditOutcome;
    if (options.auditDetails) this.auditDetails = options.auditDetails;
    if (options.byState) this.byState = true;
  }
}

/** `rate_limited` with the seconds to wait (the route sets Retry-After). */
export class RetryLater extends DomainError {
  constructor(readonly seconds: number, message: string) {
    super(ErrorCode.RateLimited, message);
  }
}
