// Password reset with the recovery key (docs/api.md "Password reset", docs/crypto.md §13). The recovery key never
// reaches the server: `start` hands out a one-use challenge and the recovery-sealed half of the key bundle (256-bit
// key, so nothing to guess offline); `finish` accepts a new password's verifier and a re-sealed bundle only when the
// account's own Ed25519 key signed them together with that challenge.
import type Router from '@koa/router';
import * as z from 'zod';
import {
  DeviceName, Email, ErrorCode, KdfParamsSchema, KeyBundleSchema, Key32, Sig, authKeyVerifier, b64u, fakeRecoveryMaterial, fromBase64Url,
  newId, newRecoveryChallenge, tokenHash, verifyRecoveryReset, RECOVERY_CHALLENGE_BYTES,
} from '@kluis/shared';
import type { Services } from '../context.js';
import { body, meta, parse, publicRoute, target, type KCtx } from '../http.js';
import { createSession } from '../auth/sessions.js';
import { clearFailures, IP_POLICY, reserveAttempt, type Attempt, type ThrottleKey, type ThrottlePolicy } from '../auth/throttle.js';
import { kdfFloor } from './auth.js';
import { DomainError } from '../domain-error.js';

/** A challenge is good for one `finish` within this time. */
export const RECOVERY_CHALLENGE_TTL_MS = 10 * 60_000;

/**
 * Every `start` counts against the address (it is not a failure, but each one hands out a challenge and the sealed
 * bundle); failed `finish` calls count separately. Both also count per IP like login.
 */
export const RECOVERY_START_POLICY: ThrottlePolicy = { maxFailures: 10, windowMs: 15 * 60_000, lockMs: 15 * 60_000 };
export const RECOVERY_FINISH_POLICY: ThrottlePolicy = { maxFailures: 5, windowMs: 15 * 60_000, lockMs: 15 * 60_000 };

export const RecoveryStartRequest = z.object({ email: Email }).strict();
export const RecoveryFinishRequest = z.object({
  email: Email,
  challenge: b64u(RECOVERY_CHALLENGE_BYTES),
  kdf: KdfParamsSchema,
  authKey: Key32,
  keyBundle: KeyBundleSchema,
  signature: Sig,
  deviceName: DeviceName,
}).strict();

/**
 * The one answer to every refused `finish` before the signature is known good: unknown or disabled address, wrong,
 * used or expired challenge, and a signature that does not verify. Separate answers would tell which addresses have
 * an account (an unknown address's challenge is never stored, so it could only ever get the first).
 */
export const RECOVERY_REFUSED = 'the recovery challenge is unknown, used or expired, or the reset is not signed by the account\'s key: start again';

export function recoveryRoutes(router: Router, services: Services, serverSecret: Uint8Array): void {
  const { db, audit } = services;

  /** Counts the attempt on every key before any check (auth/throttle.ts), or answers 429. */
  async function reserve(ctx: KCtx, keys: ThrottleKey[]): Promise<Attempt> {
    const reserved = await reserveAttempt(services.tx, keys);
    if ('waitMs' in reserved) {
      ctx.set('Retry-After', String(Math.ceil(reserved.waitMs / 1000)));
      throw new DomainError(ErrorCode.RateLimited, `too many password-reset attempts: try again in ${Math.ceil(reserved.waitMs / 60000)} minute(s)`);
    }
    return reserved.attempt;
  }

  publicRoute(router, 'post', '/api/v1/auth/recovery/start', 'auth.recovery.start', async (ctx) => {
    const { email } = parse(RecoveryStartRequest, body(ctx));
    const emailKey = `recovery:start:${email}`;
    const ipKey = `recovery:ip:${ctx.state.meta.ip}`;
    const user = await db('users').where({ email }).first('id', 'org_id', 'enc_public_key', 'sign_public_key', 'key_bundle', 'disabled_at');
    const known = user && user.disabled_at === null ? user : null;
    if (known) {
      ctx.state.orgId = known.org_id;
      target(ctx, 'user', known.id);
    }
    // Every start counts, for known and unknown addresses alike, so throttling does not tell them apart either.
    await (await reserve(ctx, [{ key: emailKey, policy: RECOVERY_START_POLICY }, { key: ipKey, policy: IP_POLICY }])).fail();
    const challenge = newRecoveryChallenge();
    const now = Date.now();
    if (!known) {
      // Same shape and lengths as a real answer; the challenge is random and stored nowhere, so `finish` fails
      // exactly as for a wrong challenge. The attempt is kept in the system-wide trail (no organisation).
      await db.transaction((trx) => audit.append(trx, { orgId: null, action: 'auth.recovery.start', targetType: 'user', targetId: null, outcome: 'denied', ...meta(ctx), details: { reason: 'unknown_account' } }));
      const fake = fakeRecoveryMaterial(serverSecret, email);
      // Members in the same order as the real answer below: even the JSON text must not tell them apart.
      ctx.body = { challenge, sealedByRecovery: fake.sealedByRecovery, encPublicKey: fake.encPublicKey, signPublicKey: fake.signPublicKey };
      return;
    }
    const bundle = JSON.parse(known.key_bundle) as { sealedByRecovery: string };
    await db.transaction(async (trx) => {
      // Expired or used challenges of this account are of no further use: keep the table small.
      await trx('recovery_challenges').where({ user_id: known.id }).andWhere((q) => q.where('expires_at', '<=', now).orWhereNotNull('used_at')).delete();
      await trx('recovery_challenges').insert({ id: newId(), user_id: known.id, challenge_hash: tokenHash(challenge), created_at: now, expires_at: now + RECOVERY_CHALLENGE_TTL_MS, used_at: null });
      await audit.append(trx, { orgId: known.org_id, actorUserId: null, actorDeviceId: null, action: 'auth.recovery.start', targetType: 'user', targetId: known.id, outcome: 'success', ...meta(ctx) });
    });
    // Only the recovery-sealed half: the password-sealed half would let anyone guess the password offline.
    ctx.body = { challenge, sealedByRecovery: bundle.sealedByRecovery, encPublicKey: known.enc_public_key, signPublicKey: known.sign_public_key };
  });

  publicRoute(router, 'post', '/api/v1/auth/recovery/finish', 'auth.recovery', async (ctx) => {
    const req = parse(RecoveryFinishRequest, body(ctx));
    const emailKey = `recovery:finish:${req.email}`;
    const ipKey = `recovery:ip:${ctx.state.meta.ip}`;
    const user = await db('users').where({ email: req.email }).first();
    if (user) {
      ctx.state.orgId = user.org_id;
      target(ctx, 'user', user.id);
    }
    const known = user && user.disabled_at === null ? user : null;
    const attempt = await reserve(ctx, [{ key: emailKey, policy: RECOVERY_FINISH_POLICY }, { key: ipKey, policy: IP_POLICY }]);
    /** Keeps the attempt counted; the caller throws the returned error (audited as failed by the error middleware). */
    const failed = async (error: DomainError): Promise<DomainError> => {
      await attempt.fail();
      error.auditOutcome = 'failed';
      return error;
    };
    const now = Date.now();
    // An unknown (or disabled) address goes through the same steps as an account, with the fake public key `start`
    // handed out for it, so that neither the answer nor the work done tells them apart (docs/crypto.md §13).
    const fake = fakeRecoveryMaterial(serverSecret, req.email);
    const signPublicKey: string = known ? known.sign_public_key : fake.signPublicKey;
    // The challenge is spent by this attempt whatever follows (one conditional UPDATE, so two concurrent replays
    // cannot both pass). For an unknown address the same UPDATE runs and matches nothing (no user id is empty).
    const spent = await db('recovery_challenges').where({ user_id: known ? known.id : '', challenge_hash: tokenHash(req.challenge) }).whereNull('used_at').andWhere('expires_at', '>', now)
      .update({ used_at: now });
    const authVerifier = authKeyVerifier(fromBase64Url(req.authKey));
    let signed = true;
    try {
      verifyRecoveryReset({ email: req.email, challenge: req.challenge, kdf: req.kdf, authVerifier, keyBundle: req.keyBundle }, req.signature, signPublicKey);
    } catch {
      signed = false;
    }
    if (!known || spent !== 1 || !signed) throw await failed(new DomainError(ErrorCode.Unauthenticated, RECOVERY_REFUSED));
    // Past this point the account's own key signed the request: the answers below can no longer tell anything to
    // someone who does not hold it.
    // The identity never changes in a reset: same public keys, only the password half is sealed anew.
    if (req.keyBundle.encPublicKey !== known.enc_public_key || req.keyBundle.signPublicKey !== known.sign_public_key) {
      throw await failed(new DomainError(ErrorCode.ValidationFailed, 'keyBundle: the new key bundle belongs to other public keys'));
    }
    const floor = kdfFloor(services);
    if (req.kdf.opsLimit < floor.opsLimit || req.kdf.memLimit < floor.memLimit) {
      throw await failed(new DomainError(ErrorCode.WeakKdfParams, `KDF parameters below this server's floor (ops ${floor.opsLimit}, mem ${floor.memLimit})`));
    }
    let result;
    try {
      result = await db.transaction(async (trx) => {
        await trx('users').where({ id: user.id }).update({
          kdf_salt: req.kdf.salt, kdf_ops: req.kdf.opsLimit, kdf_mem: req.kdf.memLimit, auth_verifier: authVerifier, key_bundle: JSON.stringify(req.keyBundle),
        });
        // Whoever knew the old password may hold a session: every device signs in again.
        const revoked = await trx('sessions').where({ user_id: user.id }).whereNull('revoked_at').update({ revoked_at: now });
        await trx('recovery_challenges').where({ user_id: user.id }).whereNull('used_at').update({ used_at: now });
        const session = await createSession(trx, user.id, req.deviceName, ctx.state.meta.client, now);
        await audit.append(trx, {
          orgId: user.org_id, actorUserId: user.id, actorDeviceId: session.deviceId, action: 'auth.recovery', targetType: 'user', targetId: user.id, outcome: 'success', ...meta(ctx),
          details: { revokedSessions: revoked, deviceName: req.deviceName },
        });
        return { userId: user.id as string, orgId: user.org_id as string, role: user.role as string, ...session, keyBundle: req.keyBundle };
      });
    } finally {
      // The account's key signed it: not a guess, whatever happened to the transaction.
      await attempt.succeed([emailKey]);
    }
    // The revoked sessions' open event streams end now too (after the commit: see EventBus.openStream).
    services.events.endSessions({ userId: user.id });
    await clearFailures(services.tx, `recovery:start:${req.email}`);
    // The password changed: earlier wrong guesses of the old one no longer matter.
    await clearFailures(services.tx, `login:email:${req.email}`);
    ctx.body = result;
  });
}
