// 2-step verification with TOTP (RFC 6238; docs/admin.md "Two-step verification", docs/api.md): enrolment, the
// step-up of a session, the reset of a lost authenticator by another admin, and the organisation's policy. No Koa here.
//
// The codes are checked by `otpauth` (HMAC-SHA-1 over the time step, RFC 4226 truncation, a window of one step each
// side), not by code of ours. What this module adds: the secret is sealed with a server subkey (never stored in the
// clear), a code is accepted once (a step must be newer than the last accepted one, set in one conditional UPDATE, so
// two parallel requests with one code cannot both pass), and wrong codes are throttled per user (auth/throttle.ts).
import { randomBytes } from 'node:crypto';
import { Secret, TOTP } from 'otpauth';
import { ErrorCode, TOTP_ROLES, openTotpSecret, sealTotpSecret, type OrgRole, type TotpEnrolment, type TotpStatus } from '@kluis/shared';
import { DomainError, RetryLater } from '../domain-error.js';
import type { Caller, Services } from '../context.js';
import type { Db, Tx } from '../db/db.js';
import { reserveAttempt, type ThrottlePolicy } from '../auth/throttle.js';
import type { Who } from './links.js';

const PERIOD_S = 30;
/** Wrong codes per user: 5 in 15 minutes, then 15 minutes locked (the same as wrong passwords per address). */
export const TOTP_POLICY: ThrottlePolicy = { maxFailures: 5, windowMs: 15 * 60_000, lockMs: 15 * 60_000 };

function totpOf(secret: Uint8Array, email: string): TOTP {
  return new TOTP({ issuer: 'Kluis', label: email, algorithm: 'SHA1', digits: 6, period: PERIOD_S, secret: new Secret({ buffer: secret.slice().buffer }) });
}

/** Whether the organisation asks for 2-step verification of its admins and auditors (default: yes). */
export async function totpRequiredByPolicy(db: Db | Tx, orgId: string): Promise<boolean> {
  const row = await db('org_security').where({ org_id: orgId }).first('totp_required_for_admins');
  return row ? Boolean(row.totp_required_for_admins) : true;
}

export async function setTotpPolicy(trx: Tx, orgId: string, required: boolean, userId: string, now = Date.now()): Promise<void> {
  await trx('org_security').where({ org_id: orgId }).delete();
  await trx('org_security').insert({ org_id: orgId, totp_required_for_admins: required, updated_by: userId, updated_at: now });
}

export function roleNeedsTotp(role: OrgRole): boolean {
  return TOTP_ROLES.includes(role);
}

export async function totpStatus(services: Services, caller: Caller): Promise<TotpStatus> {
  const { read } = services;
  const [secret, session, required] = await Promise.all([
    read('totp_secrets').where({ user_id: caller.userId }).first('confirmed_at'),
    read('totp_sessions').where({ session_id: caller.deviceId }).first('verified_at'),
    totpRequiredByPolicy(read, caller.orgId),
  ]);
  return { enrolled: Boolean(secret && secret.confirmed_at !== null), required: required && roleNeedsTotp(caller.role), verified: Boolean(session) };
}

/**
 * Refuses (403 totp_required) an admin act on a session that has not passed 2-step verification, when the policy asks
 * it of the caller's role. `reason` tells the client what to do: enrol an authenticator first, or verify a code.
 */
export async function requireStepUp(services: Services, caller: Caller): Promise<void> {
  const status = await totpStatus(services, caller);
  if (!status.required || status.verified) return;
  const reason = status.enrolled ? 'verify' : 'enrol';
  const err = new DomainError(ErrorCode.TotpRequired, status.enrolled
    ? 'this needs a session that passed 2-step verification: POST /api/v1/auth/totp/verify with a code'
    : 'this needs 2-step verification: enrol an authenticator first (POST /api/v1/auth/totp/enrol)');
  err.extra = { reason };
  throw err;
}

/** Starts (or restarts) enrolment: a fresh 20-byte secret, sealed; not counted until confirmed with a code. */
export async function startEnrolment(services: Services, totpKey: Uint8Array, caller: Caller, who: Who, now = Date.now()): Promise<TotpEnrolment> {
  const secret = new Uint8Array(randomBytes(20));
  await services.db.transaction(async (trx) => {
    const existing = await trx('totp_secrets').where({ user_id: caller.userId }).first('confirmed_at');
    if (existing && existing.confirmed_at !== null) {
      throw new DomainError(ErrorCode.Conflict, 'an authenticator is already set up: another admin resets it if it is lost');
    }
    await trx('totp_secrets').where({ user_id: caller.userId }).delete();
    await trx('totp_secrets').insert({ user_id: caller.userId, sealed: sealTotpSecret(totpKey, caller.userId, secret), created_at: now, confirmed_at: null, last_step: 0 });
    await services.audit.append(trx, { ...who, orgId: caller.orgId, action: 'totp.enrol.start', targetType: 'user', targetId: caller.userId, outcome: 'success' });
  });
  const totp = totpOf(secret, caller.email);
  return { secret: totp.secret.base32, uri: totp.toString(), period: PERIOD_S, digits: 6, algorithm: 'SHA1' };
}

/**
 * Checks a code against the caller's secret (pending for `confirm`, confirmed for `verify`), throttled per user, and
 * on success marks this session verified (and confirms the enrolment). Audits both outcomes.
 */
export async function checkCode(services: Services, totpKey: Uint8Array, caller: Caller, who: Who, code: string, mode: 'confirm' | 'verify', now = Date.now()): Promise<void> {
  const action = mode === 'confirm' ? 'totp.enrol.confirm' : 'totp.verify';
  const row = await services.db('totp_secrets').where({ user_id: caller.userId }).first('sealed', 'confirmed_at', 'last_step');
  if (!row || (mode === 'confirm') !== (row.confirmed_at === null)) {
    throw new DomainError(ErrorCode.Conflict, mode === 'confirm' ? 'no enrolment to confirm: start one first' : 'no authenticator is set up: enrol one first');
  }
  const reserved = await reserveAttempt(services.tx, [{ key: `totp:user:${caller.userId}`, policy: TOTP_POLICY }], now);
  if ('waitMs' in reserved) {
    throw new RetryLater(Math.ceil(reserved.waitMs / 1000), `too many wrong codes: try again in ${Math.ceil(reserved.waitMs / 60000)} minute(s)`);
  }
  const totp = totpOf(openTotpSecret(totpKey, caller.userId, row.sealed), caller.email);
  const delta = totp.validate({ token: code, timestamp: now, window: 1 });
  const step = delta === null ? null : Math.floor(now / 1000 / PERIOD_S) + delta;
  let accepted = false;
  if (step !== null && step > Number(row.last_step)) {
    accepted = await services.db.transaction(async (trx) => {
      // Conditional: of two requests carrying one code, only the first moves last_step; the second finds it taken.
      const n = await trx('totp_secrets').where({ user_id: caller.userId }).andWhere('last_step', '<', step)
        .update({ last_step: step, ...(mode === 'confirm' ? { confirmed_at: now } : {}) });
      if (n !== 1) return false;
      await trx('totp_sessions').where({ session_id: caller.deviceId }).delete();
      await trx('totp_sessions').insert({ session_id: caller.deviceId, verified_at: now });
      await services.audit.append(trx, { ...who, orgId: caller.orgId, action, targetType: 'user', targetId: caller.userId, outcome: 'success' });
      return true;
    });
  }
  if (!accepted) {
    await reserved.attempt.fail(now);
    const replayed = step !== null;
    throw new DomainError(ErrorCode.Unauthenticated, replayed ? 'this code was already used: wait for the next one' : 'wrong code', { auditOutcome: 'failed', extra: { reason: replayed ? 'replayed' : 'wrong' } });
  }
  await reserved.attempt.succeed([`totp:user:${caller.userId}`]);
}

/**
 * Another admin resets a user's lost authenticator: the secret goes, the user's sessions lose their verification, and
 * the user enrols again at their next login. One's own authenticator cannot be reset this way (it would let a stolen
 * password remove the second step).
 */
export async function resetTotp(services: Services, caller: Caller, who: Who, userId: string): Promise<void> {
  if (userId === caller.userId) throw new DomainError(ErrorCode.Forbidden, 'another admin resets your authenticator, not you');
  await services.db.transaction(async (trx) => {
    const user = await trx('users').where({ id: userId, org_id: caller.orgId }).first('id', 'role');
    if (!user) throw new DomainError(ErrorCode.NotFound, 'no such user');
    const had = await clearAuthenticator(trx, userId);
    await services.audit.append(trx, { ...who, orgId: caller.orgId, action: 'totp.reset', targetType: 'user', targetId: userId, outcome: 'success', details: { hadAuthenticator: had } });
  });
}

/** Removes a user's authenticator and the verification of their sessions; true if they had one (also kluis-admin). */
export async function clearAuthenticator(trx: Tx, userId: string): Promise<boolean> {
  const had = await trx('totp_secrets').where({ user_id: userId }).delete();
  await trx('totp_sessions').whereIn('session_id', trx('sessions').where({ user_id: userId }).select('id')).delete();
  return had > 0;
}
