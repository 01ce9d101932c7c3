// Sharing policy by class (docs/api.md "Policy"): every member of an organisation reads it (clients explain a refusal
// before asking); its main and backup admins change it; a space's manager raises the space's class, never lowers it,
// and not while the space shares what the new class forbids (services/class-change.ts).
import type Router from '@koa/router';
import { ChangeClassRequest, ClassPolicy, CLASS_ORDER, ErrorCode, type ClassName } from '@kluis/shared';
import * as z from 'zod';
import { DomainError } from '../domain-error.js';
import type { Services } from '../context.js';
import { actor, auditSuccess, body, parse, pathId, route } from '../http.js';
import { spaceAccess } from '../services/access.js';
import { orgPolicies, setClassPolicy } from '../services/policy.js';
import { raiseClass } from '../services/class-change.js';
import { requireStepUp } from '../services/totp.js';

const ClassParam = z.enum(CLASS_ORDER);
/** PUT body: a whole policy, or `{ "default": true }` to go back to the documented default. */
const PolicyBody = z.union([ClassPolicy, z.object({ default: z.literal(true) }).strict()]);

export function policyRoutes(router: Router, services: Services): void {
  const { db, audit } = services;

  route(router, services, 'get', '/api/v1/orgs/:orgId/policy', { action: 'policy.read' }, async (ctx, caller) => {
    const orgId = pathId(ctx, 'orgId', 'org');
    if (orgId !== caller.orgId) throw new DomainError(ErrorCode.NotFound, 'no such organisation');
    const policies = await orgPolicies(db, orgId);
    await auditSuccess(services, ctx, caller, 'org', orgId);
    ctx.body = { orgId, policies };
  });

  route(router, services, 'put', '/api/v1/orgs/:orgId/policy/:classification', { action: 'policy.change' }, async (ctx, caller) => {
    const orgId = pathId(ctx, 'orgId', 'org');
    if (orgId !== caller.orgId) throw new DomainError(ErrorCode.NotFound, 'no such organisation');
    if (caller.role !== 'main_admin' && caller.role !== 'backup_admin') throw new DomainError(ErrorCode.Forbidden, 'only the main or a backup access admin changes the sharing policy');
    await requireStepUp(services, caller);
    const classification = parse(ClassParam, String(ctx.params.classification)) as ClassName;
    const req = parse(PolicyBody, body(ctx));
    const policy = 'default' in req ? null : req;
    await services.tx(async (trx) => {
      await setClassPolicy(trx, orgId, classification, policy, caller.userId);
      await audit.append(trx, { ...actor(ctx, caller), action: 'policy.change', targetType: 'org', targetId: orgId, outcome: 'success', details: { classification, policy: policy ?? 'default' } });
    });
    ctx.body = { orgId, classification, policy: (await orgPolicies(db, orgId))[classification] };
  });

  route(router, services, 'patch', '/api/v1/spaces/:spaceId', { action: 'space.class.change' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    const { space } = await spaceAccess(db, caller, spaceId, 'manager');
    const { classification } = parse(ChangeClassRequest, body(ctx));
    // Refusals (lowering; what the space shares that the new class forbids) are audited as denied by the middleware.
    await services.tx(async (trx) => {
      const { from } = await raiseClass(trx, space, classification);
      await audit.append(trx, { ...actor(ctx, caller), action: 'space.class.change', targetType: 'space', targetId: spaceId, outcome: 'success', details: { from, to: classification } });
    });
    ctx.body = { spaceId, classification };
  });
}
