// The organisation's admins and the two-step replacement of the main access admin (docs/api.md "Administration:
// admins and succession"; docs/admin.md). Appointing backup admins and auditors is PUT /orgs/:orgId/users/:userId/role
// (routes/orgs.ts); domain admins are appointed per domain (routes/domains.ts).
import type Router from '@koa/router';
import { ErrorCode, SuccessionRequest } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Services } from '../context.js';
import { auditSuccess, body, parse, pathId, route } from '../http.js';
import { adminContext } from './domains.js';
import { requireAdminister } from '../services/admin-scope.js';
import { cancelSuccession, confirmSuccession, currentSuccession, listAdmins, proposeSuccession } from '../services/succession.js';

export function adminRoutes(router: Router, services: Services): void {
  const { db, audit } = services;

  route(router, services, 'get', '/api/v1/orgs/:orgId/admins', { action: 'admin.list' }, async (ctx, caller) => {
    const { orgId, scope } = await adminContext(services, ctx, caller);
    requireAdminister(scope, { kind: 'org' });
    const admins = await listAdmins(db, orgId);
    await auditSuccess(services, ctx, caller, 'org', orgId, { count: admins.length });
    ctx.body = { admins };
  });

  route(router, services, 'get', '/api/v1/orgs/:orgId/succession', { action: 'admin.succession.read' }, async (ctx, caller) => {
    const { orgId, scope } = await adminContext(services, ctx, caller);
    requireAdminister(scope, { kind: 'org' });
    const proposal = await currentSuccession(db, orgId);
    await auditSuccess(services, ctx, caller, 'org', orgId);
    ctx.body = { proposal };
  });

  route(router, services, 'post', '/api/v1/orgs/:orgId/succession', { action: 'admin.succession.propose' }, async (ctx, caller) => {
    const { scope, who } = await adminContext(services, ctx, caller);
    requireAdminister(scope, { kind: 'org' });
    if (caller.role !== 'backup_admin') throw new DomainError(ErrorCode.Forbidden, 'a backup admin proposes the successor of the main access admin');
    const { successorUserId } = parse(SuccessionRequest, body(ctx));
    ctx.status = 201;
    ctx.body = await proposeSuccession(db, audit, { ...who, actorUserId: caller.userId }, successorUserId);
  });

  route(router, services, 'post', '/api/v1/orgs/:orgId/succession/:proposalId/confirm', { action: 'admin.succession.confirm' }, async (ctx, caller) => {
    const { scope, who } = await adminContext(services, ctx, caller);
    const proposalId = pathId(ctx, 'proposalId', 'succession');
    requireAdminister(scope, { kind: 'org' });
    ctx.body = await confirmSuccession(db, audit, { ...who, actorUserId: caller.userId }, proposalId);
  });

  route(router, services, 'delete', '/api/v1/orgs/:orgId/succession/:proposalId', { action: 'admin.succession.cancel' }, async (ctx, caller) => {
    const { scope, who } = await adminContext(services, ctx, caller);
    const proposalId = pathId(ctx, 'proposalId', 'succession');
    requireAdminister(scope, { kind: 'org' });
    await cancelSuccession(db, audit, who, proposalId);
    ctx.status = 204;
  });
}
