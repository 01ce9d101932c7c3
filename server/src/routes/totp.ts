// 2-step verification (docs/api.md "Two-step verification"): a user's own authenticator (status, enrol, confirm, the
// step-up of the current session), another admin's reset of a lost one, and the organisation's 2-step policy.
// The logic is in services/totp.ts.
import type Router from '@koa/router';
import * as z from 'zod';
import { ErrorCode, Id, SecurityPolicy, TotpCodeRequest } from '@kluis/shared';
import { DomainError, RetryLater } from '../domain-error.js';
import type { Services } from '../context.js';
import { actor, auditSuccess, body, type KCtx, parse, route, target } from '../http.js';
import { checkCode, requireStepUp, resetTotp, setTotpPolicy, startEnrolment, totpRequiredByPolicy, totpStatus } from '../services/totp.js';

/** The organisation in the path must be the caller's; another answers 404. */
function ownOrg(ctx: KCtx, orgId: string): string {
  const id = String(ctx.params.orgId);
  target(ctx, 'org', id.slice(0, 64));
  if (id !== orgId) throw new DomainError(ErrorCode.NotFound, 'no such organisation');
  return id;
}

async function withRetryAfter(ctx: KCtx, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    if (err instanceof RetryLater) ctx.set('Retry-After', String(err.seconds));
    throw err;
  }
}

export function totpRoutes(router: Router, services: Services, totpKey: Uint8Array): void {
  const { audit } = services;

  route(router, services, 'get', '/api/v1/auth/totp', { action: 'totp.status' }, async (ctx, caller) => {
    target(ctx, 'user', caller.userId);
    const status = await totpStatus(services, caller);
    await auditSuccess(services, ctx, caller, 'user', caller.userId);
    ctx.body = status;
  });

  route(router, services, 'post', '/api/v1/auth/totp/enrol', { action: 'totp.enrol.start' }, async (ctx, caller) => {
    target(ctx, 'user', caller.userId);
    parse(z.object({}).strict(), body(ctx)); // no fields: the server makes the secret
    ctx.status = 201;
    ctx.body = await startEnrolment(services, totpKey, caller, actor(ctx, caller));
  });

  for (const mode of ['confirm', 'verify'] as const) {
    const action = mode === 'confirm' ? 'totp.enrol.confirm' : 'totp.verify';
    route(router, services, 'post', `/api/v1/auth/totp/${mode}`, { action }, async (ctx, caller) => {
      target(ctx, 'user', caller.userId);
      const { code } = parse(TotpCodeRequest, body(ctx));
      await withRetryAfter(ctx, () => checkCode(services, totpKey, caller, actor(ctx, caller), code, mode));
      ctx.body = await totpStatus(services, caller);
    });
  }

  route(router, services, 'delete', '/api/v1/orgs/:orgId/users/:userId/totp', { action: 'totp.reset' }, async (ctx, caller) => {
    ownOrg(ctx, caller.orgId);
    const userId = parse(Id, String(ctx.params.userId));
    target(ctx, 'user', userId);
    if (caller.role !== 'main_admin' && caller.role !== 'backup_admin') throw new DomainError(ErrorCode.Forbidden, 'only the main or a backup access admin resets an authenticator');
    await requireStepUp(services, caller);
    await resetTotp(services, caller, actor(ctx, caller), userId);
    ctx.status = 204;
  });

  route(router, services, 'get', '/api/v1/orgs/:orgId/security', { action: 'security.read' }, async (ctx, caller) => {
    const orgId = ownOrg(ctx, caller.orgId);
    if (caller.role === 'member') throw new DomainError(ErrorCode.Forbidden, 'the security policy is for admins and auditors');
    await requireStepUp(services, caller);
    const required = await totpRequiredByPolicy(services.read, orgId);
    const enrolled = await services.read('totp_secrets as t').join('users as u', 'u.id', 't.user_id').where('u.org_id', orgId).whereNotNull('t.confirmed_at')
      .orderBy([{ column: 't.confirmed_at' }, { column: 't.user_id' }]).select('t.user_id', 't.confirmed_at');
    await auditSuccess(services, ctx, caller, 'org', orgId);
    ctx.body = { totpRequiredForAdmins: required, authenticators: enrolled.map((r) => ({ userId: r.user_id, since: Number(r.confirmed_at) })) };
  });

  route(router, services, 'put', '/api/v1/orgs/:orgId/security', { action: 'security.change' }, async (ctx, caller) => {
    const orgId = ownOrg(ctx, caller.orgId);
    if (caller.role !== 'main_admin') throw new DomainError(ErrorCode.Forbidden, 'only the main access admin changes the 2-step policy');
    await requireStepUp(services, caller);
    const req = parse(SecurityPolicy, body(ctx));
    await services.tx(async (trx) => {
      await setTotpPolicy(trx, orgId, req.totpRequiredForAdmins, caller.userId);
      await audit.append(trx, { ...actor(ctx, caller), action: 'security.change', targetType: 'org', targetId: orgId, outcome: 'success', details: { totpRequiredForAdmins: req.totpRequiredForAdmins } });
    });
    ctx.body = req;
  });
}
