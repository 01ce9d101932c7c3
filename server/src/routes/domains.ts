// Domains and the admin view of spaces (docs/api.md "Administration: domains and spaces"). Routes parse, authorise
// with services/admin-scope.ts and call services/domains.ts; another organisation's ids answer 404.
import type Router from '@koa/router';
import { DomainAdminRequest, DomainRequest, ErrorCode, RemovalRequest, SpaceDomainRequest } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Caller, Services } from '../context.js';
import { actor, auditSuccess, body, type KCtx, parse, pathId, route } from '../http.js';
import { ownOrg } from './orgs.js';
import { adminScope, requireAdminister, type AdminScope } from '../services/admin-scope.js';
import { requireStepUp } from '../services/totp.js';
import {
  adminMembers, adminSpaces, appointDomainAdmin, assignSpace, createDomain, deleteDomain, findDomain, findSpace, listDomains, removeDomainAdmin,
  renameDomain, requestRemoval, type Who,
} from '../services/domains.js';

/**
 * The organisation in the path (own only) and the caller's reach in it. An admin whose session has not passed 2-step
 * verification (where the organisation's policy asks it) is refused here, before any act (docs/api.md "Two-step
 * verification"); members, whom the policy does not ask, go on to the role checks.
 */
export async function adminContext(services: Services, ctx: KCtx, caller: Caller): Promise<{ orgId: string; scope: AdminScope; who: Who }> {
  const orgId = ownOrg(ctx, caller);
  await requireStepUp(services, caller);
  return { orgId, scope: await adminScope(services.db, caller), who: actor(ctx, caller) };
}

export function domainRoutes(router: Router, services: Services): void {
  const { db, audit } = services;

  route(router, services, 'get', '/api/v1/orgs/:orgId/domains', { action: 'domain.list' }, async (ctx, caller) => {
    const { orgId, scope } = await adminContext(services, ctx, caller);
    if (scope.role !== 'domain_admin') requireAdminister(scope, { kind: 'org' });
    const domains = await listDomains(db, orgId, scope.role === 'domain_admin' ? scope.domains : undefined);
    await auditSuccess(services, ctx, caller, 'org', orgId, { count: domains.length });
    ctx.body = { domains };
  });

  route(router, services, 'post', '/api/v1/orgs/:orgId/domains', { action: 'domain.create' }, async (ctx, caller) => {
    const { scope, who } = await adminContext(services, ctx, caller);
    requireAdminister(scope, { kind: 'org' });
    const { name } = parse(DomainRequest, body(ctx));
    ctx.status = 201;
    ctx.body = await createDomain(db, audit, who, name);
  });

  route(router, services, 'patch', '/api/v1/orgs/:orgId/domains/:domainId', { action: 'domain.rename' }, async (ctx, caller) => {
    const { scope, who, orgId } = await adminContext(services, ctx, caller);
    const domainId = pathId(ctx, 'domainId', 'domain');
    await findDomain(db, orgId, domainId);
    requireAdminister(scope, { kind: 'org' });
    const { name } = parse(DomainRequest, body(ctx));
    await renameDomain(db, audit, who, domainId, name);
    ctx.body = { domainId, name: name.trim() };
  });

  route(router, services, 'delete', '/api/v1/orgs/:orgId/domains/:domainId', { action: 'domain.delete' }, async (ctx, caller) => {
    const { scope, who, orgId } = await adminContext(services, ctx, caller);
    const domainId = pathId(ctx, 'domainId', 'domain');
    await findDomain(db, orgId, domainId);
    requireAdminister(scope, { kind: 'org' });
    await deleteDomain(db, audit, who, domainId);
    ctx.status = 204;
  });

  route(router, services, 'post', '/api/v1/orgs/:orgId/domains/:domainId/admins', { action: 'domain.admin.appoint' }, async (ctx, caller) => {
    const { scope, who, orgId } = await adminContext(services, ctx, caller);
    const domainId = pathId(ctx, 'domainId', 'domain');
    await findDomain(db, orgId, domainId);
    requireAdminister(scope, { kind: 'org' });
    const { userId } = parse(DomainAdminRequest, body(ctx));
    await appointDomainAdmin(db, audit, who, domainId, userId);
    ctx.status = 201;
    ctx.body = { domainId, userId };
  });

  route(router, services, 'delete', '/api/v1/orgs/:orgId/domains/:domainId/admins/:userId', { action: 'domain.admin.remove' }, async (ctx, caller) => {
    const { scope, who, orgId } = await adminContext(services, ctx, caller);
    const domainId = pathId(ctx, 'domainId', 'domain');
    await findDomain(db, orgId, domainId);
    requireAdminister(scope, { kind: 'org' });
    await removeDomainAdmin(db, audit, who, domainId, String(ctx.params.userId));
    ctx.status = 204;
  });

  route(router, services, 'get', '/api/v1/orgs/:orgId/spaces', { action: 'admin.space.list' }, async (ctx, caller) => {
    const { orgId, scope } = await adminContext(services, ctx, caller);
    const domainId = typeof ctx.query.domainId === 'string' ? ctx.query.domainId : undefined;
    if (domainId !== undefined) {
      await findDomain(db, orgId, domainId);
      requireAdminister(scope, { kind: 'domain', domainId });
    } else if (scope.role !== 'domain_admin') {
      requireAdminister(scope, { kind: 'org' });
    }
    const spaces = await adminSpaces(db, orgId, domainId !== undefined ? [domainId] : scope.role === 'domain_admin' ? [...scope.domains] : undefined);
    await auditSuccess(services, ctx, caller, domainId !== undefined ? 'domain' : 'org', domainId ?? orgId, { count: spaces.length });
    ctx.body = { spaces };
  });

  route(router, services, 'get', '/api/v1/orgs/:orgId/spaces/:spaceId/members', { action: 'admin.space.members' }, async (ctx, caller) => {
    const { orgId, scope } = await adminContext(services, ctx, caller);
    const spaceId = pathId(ctx, 'spaceId', 'space');
    const space = await findSpace(db, orgId, spaceId);
    requireAdminister(scope, { kind: 'space', domainId: space.domainId });
    const members = await adminMembers(db, spaceId);
    await auditSuccess(services, ctx, caller, 'space', spaceId, { count: members.length });
    ctx.body = { spaceId, members };
  });

  route(router, services, 'put', '/api/v1/orgs/:orgId/spaces/:spaceId/domain', { action: 'space.domain.set' }, async (ctx, caller) => {
    const { orgId, scope, who } = await adminContext(services, ctx, caller);
    const spaceId = pathId(ctx, 'spaceId', 'space');
    await findSpace(db, orgId, spaceId);
    requireAdminister(scope, { kind: 'org' });
    const { domainId } = parse(SpaceDomainRequest, body(ctx));
    await assignSpace(db, audit, who, spaceId, domainId);
    ctx.body = { spaceId, domainId };
  });

  // A member's removal, asked by an admin: recorded as pending; a manager's client signs it and rotates the key.
  route(router, services, 'post', '/api/v1/orgs/:orgId/spaces/:spaceId/removals', { action: 'space.removal.request' }, async (ctx, caller) => {
    const { orgId, scope, who } = await adminContext(services, ctx, caller);
    const spaceId = pathId(ctx, 'spaceId', 'space');
    const space = await findSpace(db, orgId, spaceId);
    requireAdminister(scope, { kind: 'space', domainId: space.domainId });
    const { userId } = parse(RemovalRequest, body(ctx));
    if (userId === caller.userId) throw new DomainError(ErrorCode.Conflict, 'you leave a space through its managers, not as its admin');
    const { managers } = await requestRemoval(db, audit, who, spaceId, userId);
    // Their streams end (the reconnect no longer hears of the space's changes: they are refused it), managers hear.
    services.events.membershipChanged(spaceId, userId);
    services.events.removalPending(spaceId);
    ctx.status = 202;
    ctx.body = { spaceId, userId, managers };
  });
}
