// Organisation administration (CSAM-style roles) and the public-key directory, scoped to the caller's organisation
// (people of other organisations only as services/directory.ts allows).
import type Router from '@koa/router';
import * as z from 'zod';
import { Email, ErrorCode, InviteRequest, RoleChangeRequest, type OrgRole } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Caller, Services } from '../context.js';
import { actor, auditSuccess, body, type KCtx, parse, pathId, route, target } from '../http.js';
import { insertInvite } from '../services/orgs.js';
import { lookupPerson } from '../services/directory.js';
import { requireStepUp } from '../services/totp.js';

const ADMINS: OrgRole[] = ['main_admin', 'backup_admin'];

/** The organisation in the path must be the caller's; another organisation answers 404 (its existence is not revealed). */
export function ownOrg(ctx: KCtx, caller: Caller): string {
  const orgId = pathId(ctx, 'orgId', 'org');
  if (orgId !== caller.orgId) throw new DomainError(ErrorCode.NotFound, 'no such organisation');
  return orgId;
}

function requireRole(caller: Caller, roles: OrgRole[]): void {
  if (!roles.includes(caller.role)) throw new DomainError(ErrorCode.Forbidden, `this needs one of the roles: ${roles.join(', ')}`);
}

/** The address of a directory look-up, normalised as at sign-up (docs/crypto.md §0). */
const DirectoryQuery = z.object({ email: Email });

export function orgRoutes(router: Router, services: Services): void {
  const { db, audit } = services;

  route(router, services, 'get', '/api/v1/orgs/:orgId', { action: 'org.read' }, async (ctx, caller) => {
    const orgId = ownOrg(ctx, caller);
    const org = await db('orgs').where({ id: orgId }).first('id', 'name', 'enterprise_number', 'created_at');
    await auditSuccess(services, ctx, caller, 'org', orgId);
    ctx.body = { orgId: org.id, name: org.name, enterpriseNumber: org.enterprise_number, createdAt: Number(org.created_at) };
  });

  route(router, services, 'post', '/api/v1/orgs/:orgId/invites', { action: 'invite.create' }, async (ctx, caller) => {
    const orgId = ownOrg(ctx, caller);
    requireRole(caller, ADMINS);
    await requireStepUp(services, caller);
    const req = parse(InviteRequest, body(ctx));
    if (req.role === 'main_admin') throw new DomainError(ErrorCode.Forbidden, 'an organisation has one main access admin');
    if (req.role === 'backup_admin' && caller.role !== 'main_admin') throw new DomainError(ErrorCode.Forbidden, 'only the main access admin appoints backup admins');
    const invite = await db.transaction((trx) => insertInvite(trx, audit, { orgId, email: req.email, role: req.role, createdBy: caller.userId, accountsVisible: 'org' }, actor(ctx, caller)));
    ctx.status = 201;
    ctx.body = invite;
  });

  route(router, services, 'get', '/api/v1/orgs/:orgId/users', { action: 'org.users.list' }, async (ctx, caller) => {
    const orgId = ownOrg(ctx, caller);
    // Who is who: admins, and auditors, who read the trail by name (the console's audit view). Domain admins see
    // their domains' people (GET …/people).
    requireRole(caller, [...ADMINS, 'auditor']);
    await requireStepUp(services, caller);
    const users = await db('users').where({ org_id: orgId }).orderBy('email').select('id', 'email', 'role', 'created_at', 'disabled_at');
    await auditSuccess(services, ctx, caller, 'org', orgId, { count: users.length });
    ctx.body = { users: users.map((u) => ({ userId: u.id, email: u.email, role: u.role, createdAt: Number(u.created_at), disabled: u.disabled_at !== null })) };
  });

  route(router, services, 'put', '/api/v1/orgs/:orgId/users/:userId/role', { action: 'org.role.change' }, async (ctx, caller) => {
    const orgId = ownOrg(ctx, caller);
    requireRole(caller, ADMINS);
    await requireStepUp(services, caller);
    const userId = pathId(ctx, 'userId', 'user');
    const { role } = parse(RoleChangeRequest, body(ctx));
    await db.transaction(async (trx) => {
      const user = await trx('users').where({ id: userId, org_id: orgId }).first('id', 'role');
      if (!user) throw new DomainError(ErrorCode.NotFound, 'no such user');
      // Delegating never removes the main admin's rights; only the main admin names backup admins.
      if (user.role === 'main_admin' || role === 'main_admin') throw new DomainError(ErrorCode.Forbidden, 'the main access admin role cannot be given or taken here');
      if ((role === 'backup_admin' || user.role === 'backup_admin') && caller.role !== 'main_admin') throw new DomainError(ErrorCode.Forbidden, 'only the main access admin appoints or removes backup admins');
      await trx('users').where({ id: userId }).update({ role });
      // Only domain admins administer domains (services/admin-scope.ts).
      if (role !== 'domain_admin') await trx('domain_admins').where({ user_id: userId }).delete();
      await audit.append(trx, { ...actor(ctx, caller), action: 'org.role.change', targetType: 'user', targetId: userId, outcome: 'success', details: { from: user.role, to: role } });
    });
    ctx.body = { userId, role };
  });

  route(router, services, 'get', '/api/v1/directory', { action: 'directory.read' }, async (ctx, caller) => {
    const email = typeof ctx.query.email === 'string' ? parse(DirectoryQuery, { email: ctx.query.email }).email : null;
    const userId = typeof ctx.query.userId === 'string' ? ctx.query.userId : null;
    const spaceId = typeof ctx.query.space === 'string' ? ctx.query.space : null;
    if (!email && !userId) throw new DomainError(ErrorCode.ValidationFailed, 'query: email or userId is required');
    if (spaceId !== null && !email) throw new DomainError(ErrorCode.ValidationFailed, 'query: space goes with email (people of other organisations are found by their exact address)');
    target(ctx, 'user', userId ?? null);
    const entry = await lookupPerson(db, caller, { email, userId, spaceId });
    const details = { by: email ? 'email' : 'userId', ...(entry.org ? { personOrgId: entry.org.orgId } : {}), ...(spaceId ? { spaceId } : {}) };
    await auditSuccess(services, ctx, caller, 'user', entry.userId, details);
    ctx.body = entry;
  });
}
