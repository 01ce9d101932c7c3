// Accounts: prelogin (KDF parameters), sign-up with an invite and a client-made key bundle, login with the
// authKey proof, logout, the caller's profile and key bundle, and device (session) management.
import type Router from '@koa/router';
import {
  ErrorCode, KDF_MODERATE, authKeyVerifier, checkAuthKey, fakeSalt, fromBase64Url, newId, tokenHash, verifyIdentity,
  PreloginRequest, SignupRequest, LoginRequest, type KdfParams,
} from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import { defaultKdfFloor } from '../config.js';
import type { Services } from '../context.js';
import { auditSuccess, body, meta, parse, pathId, publicRoute, route, target } from '../http.js';
import { createSession } from '../auth/sessions.js';
import { EMAIL_POLICY, IP_POLICY, reserveAttempt } from '../auth/throttle.js';

/** The weakest KDF parameters an account may have here: KLUIS_KDF_*, or the environment's default (docs/architecture.md §2, §6). */
export function kdfFloor(services: Services): KdfParams {
  return services.config.kdf ?? defaultKdfFloor(services.config.env);
}

/**
 * The KDF limits a new account gets from a client left at its defaults: component-wise max(this server's floor,
 * MODERATE) (docs/crypto.md §2; desktop chooseKdf). Prelogin answers these for unknown addresses in every environment,
 * so that they look like such an account (the floor alone would single them out where it is below MODERATE).
 */
export function kdfDefaults(services: Services): KdfParams {
  const floor = kdfFloor(services);
  return { opsLimit: Math.max(floor.opsLimit, KDF_MODERATE.opsLimit), memLimit: Math.max(floor.memLimit, KDF_MODERATE.memLimit) };
}

export function authRoutes(router: Router, services: Services, serverSecret: Uint8Array): void {
  const { db, audit } = services;

  publicRoute(router, 'post', '/api/v1/auth/prelogin', 'auth.prelogin', async (ctx) => {
    const { email } = parse(PreloginRequest, body(ctx));
    const user = await db('users').where({ email }).first('kdf_salt', 'kdf_ops', 'kdf_mem');
    // Unknown e-mails get stable, plausible parameters: the answer does not reveal whether the account exists.
    const fake = kdfDefaults(services);
    // A request without a session: counted per window (audit/anonymous.ts), with no organisation and no target, so
    // neither the rows nor the time they take tell known addresses from unknown ones.
    await audit.appendAnonymous({ orgId: null, action: 'auth.prelogin', outcome: 'success', ...meta(ctx) });
    ctx.body = user
      ? { kdf: { salt: user.kdf_salt, opsLimit: Number(user.kdf_ops), memLimit: Number(user.kdf_mem) } }
      : { kdf: { salt: fakeSalt(serverSecret, email), opsLimit: fake.opsLimit, memLimit: fake.memLimit } };
  });

  publicRoute(router, 'post', '/api/v1/auth/signup', 'auth.signup', async (ctx) => {
    const req = parse(SignupRequest, body(ctx));
    const floor = kdfFloor(services);
    if (req.kdf.opsLimit < floor.opsLimit || req.kdf.memLimit < floor.memLimit) {
      throw new DomainError(ErrorCode.WeakKdfParams, `KDF parameters below this server's floor (ops ${floor.opsLimit}, mem ${floor.memLimit})`);
    }
    if (req.keyBundle.encPublicKey !== req.encPublicKey || req.keyBundle.signPublicKey !== req.signPublicKey) {
      throw new DomainError(ErrorCode.ValidationFailed, 'the key bundle belongs to other public keys');
    }
    try {
      verifyIdentity({ encPublicKey: req.encPublicKey, signPublicKey: req.signPublicKey }, req.email, req.identitySig);
    } catch {
      throw new DomainError(ErrorCode.BadSignature, 'the identity signature does not verify');
    }
    const now = Date.now();
    const result = await db.transaction(async (trx) => {
      const invite = await trx('invites').where({ token_hash: tokenHash(req.inviteToken) }).first();
      if (!invite || invite.used_at !== null || Number(invite.expires_at) <= now || invite.email !== req.email) {
        throw new DomainError(ErrorCode.Forbidden, 'the invite is unknown, used, expired or for another e-mail address');
      }
      if (await trx('users').where({ email: req.email }).first('id')) throw new DomainError(ErrorCode.Conflict, 'an account with this e-mail address exists');
      // One main access admin per organisation (migration 010 enforces it too): a second such invite is refused here.
      if (invite.role === 'main_admin' && await trx('users').where({ org_id: invite.org_id, role: 'main_admin' }).first('id')) throw new DomainError(ErrorCode.Conflict, 'this organisation has a main access admin');
      const userId = newId();
      await trx('users').insert({
        id: userId, org_id: invite.org_id, email: req.email, role: invite.role, kdf_salt: req.kdf.salt, kdf_ops: req.kdf.opsLimit, kdf_mem: req.kdf.memLimit,
        auth_verifier: authKeyVerifier(fromBase64Url(req.authKey)), enc_public_key: req.encPublicKey, sign_public_key: req.signPublicKey,
        identity_sig: req.identitySig, key_bundle: JSON.stringify(req.keyBundle), created_at: now, disabled_at: null,
      });
      await trx('invites').where({ id: invite.id }).update({ used_at: now });
      const session = await createSession(trx, userId, req.deviceName, ctx.state.meta.client, now);
      ctx.state.orgId = invite.org_id;
      target(ctx, 'user', userId);
      await audit.append(trx, { orgId: invite.org_id, actorUserId: userId, actorDeviceId: session.deviceId, action: 'auth.signup', targetType: 'user', targetId: userId, outcome: 'success', ...meta(ctx), details: { role: invite.role, inviteId: invite.id } });
      return { userId, orgId: invite.org_id as string, role: invite.role, ...session, keyBundle: req.keyBundle };
    });
    ctx.status = 201;
    ctx.body = result;
  });

  publicRoute(router, 'post', '/api/v1/auth/login', 'auth.login', async (ctx) => {
    const req = parse(LoginRequest, body(ctx));
    const emailKey = `login:email:${req.email}`;
    const ipKey = `login:ip:${ctx.state.meta.ip}`;
    const user = await db('users').where({ email: req.email }).first();
    if (user) {
      ctx.state.orgId = user.org_id;
      target(ctx, 'user', user.id);
    }
    // Counted before the check (auth/throttle.ts), so that a burst of parallel guesses gets at most the limit checked.
    const reserved = await reserveAttempt(services.tx, [{ key: emailKey, policy: EMAIL_POLICY }, { key: ipKey, policy: IP_POLICY }]);
    if ('waitMs' in reserved) {
      ctx.set('Retry-After', String(Math.ceil(reserved.waitMs / 1000)));
      throw new DomainError(ErrorCode.RateLimited, `too many failed logins: try again in ${Math.ceil(reserved.waitMs / 60000)} minute(s)`);
    }
    const { attempt } = reserved;
    if (!user || user.disabled_at !== null || !checkAuthKey(fromBase64Url(req.authKey), user.auth_verifier)) {
      await attempt.fail();
      throw new DomainError(ErrorCode.Unauthenticated, 'wrong e-mail address or password', { auditOutcome: 'failed' });
    }
    let result;
    try {
      result = await db.transaction(async (trx) => {
        const session = await createSession(trx, user.id, req.deviceName, ctx.state.meta.client);
        await audit.append(trx, { orgId: user.org_id, actorUserId: user.id, actorDeviceId: session.deviceId, action: 'auth.login', targetType: 'user', targetId: user.id, outcome: 'success', ...meta(ctx), details: { deviceName: req.deviceName } });
        await audit.append(trx, { orgId: user.org_id, actorUserId: user.id, actorDeviceId: session.deviceId, action: 'keys.bundle.read', targetType: 'user', targetId: user.id, outcome: 'success', ...meta(ctx) });
        return { userId: user.id, orgId: user.org_id, role: user.role, ...session, keyBundle: JSON.parse(user.key_bundle) };
      });
    } finally {
      // The password was right: the address's failures are forgotten, the IP's count of this attempt given back.
      await attempt.succeed([emailKey]);
    }
    ctx.body = result;
  });

  route(router, services, 'post', '/api/v1/auth/logout', { action: 'auth.logout' }, async (ctx, caller) => {
    await db.transaction(async (trx) => {
      await trx('sessions').where({ id: caller.deviceId }).update({ revoked_at: Date.now() });
      await audit.append(trx, { orgId: caller.orgId, actorUserId: caller.userId, actorDeviceId: caller.deviceId, action: 'auth.logout', targetType: 'device', targetId: caller.deviceId, outcome: 'success', ...meta(ctx) });
    });
    // The device's open event streams end with its token (after the commit: see EventBus.openStream).
    services.events.endSessions({ deviceId: caller.deviceId });
    ctx.status = 204;
  });

  route(router, services, 'get', '/api/v1/me', { action: 'keys.bundle.read' }, async (ctx, caller) => {
    const user = await db('users as u').join('orgs as o', 'o.id', 'u.org_id').where('u.id', caller.userId)
      .first('u.id', 'u.email', 'u.role', 'u.org_id', 'o.name as orgName', 'u.enc_public_key', 'u.sign_public_key', 'u.identity_sig', 'u.key_bundle');
    await auditSuccess(services, ctx, caller, 'user', caller.userId);
    ctx.body = {
      userId: user.id, email: user.email, role: user.role, orgId: user.org_id, orgName: user.orgName, deviceId: caller.deviceId,
      encPublicKey: user.enc_public_key, signPublicKey: user.sign_public_key, identitySig: user.identity_sig, keyBundle: JSON.parse(user.key_bundle),
    };
  });

  route(router, services, 'get', '/api/v1/devices', { action: 'device.list' }, async (ctx, caller) => {
    const rows = await db('sessions').where({ user_id: caller.userId }).orderBy('created_at', 'asc')
      .select('id', 'device_name', 'created_at', 'last_seen_at', 'expires_at', 'revoked_at', 'client');
    await auditSuccess(services, ctx, caller, 'user', caller.userId, { count: rows.length });
    ctx.body = {
      devices: rows.map((r) => ({
        deviceId: r.id, name: r.device_name, client: r.client, createdAt: Number(r.created_at), lastSeenAt: Number(r.last_seen_at),
        expiresAt: Number(r.expires_at), revokedAt: r.revoked_at === null ? null : Number(r.revoked_at), current: r.id === caller.deviceId,
      })),
    };
  });

  route(router, services, 'delete', '/api/v1/devices/:deviceId', { action: 'device.revoke' }, async (ctx, caller) => {
    const deviceId = pathId(ctx, 'deviceId', 'device');
    await db.transaction(async (trx) => {
      // Another user's device answers exactly like a missing one: nothing leaks.
      const n = await trx('sessions').where({ id: deviceId, user_id: caller.userId }).whereNull('revoked_at').update({ revoked_at: Date.now() });
      if (n === 0) throw new DomainError(ErrorCode.NotFound, 'no such active device');
      await audit.append(trx, { orgId: caller.orgId, actorUserId: caller.userId, actorDeviceId: caller.deviceId, action: 'device.revoke', targetType: 'device', targetId: deviceId, outcome: 'success', ...meta(ctx) });
    });
    services.events.endSessions({ userId: caller.userId, deviceId });
    ctx.status = 204;
  });
}
