// Read endpoints of the admin console (docs/api.md "Admin views"): every space of the organisation with its class and
// members, every link with its maker (and an admin's revocation of any of them), and the audit chain's status. For
// the main and backup access admins, on a session that passed 2-step verification where the policy asks it; the chain
// status also for auditors. Every read is audited, as every denial (the error middleware).
import type Router from '@koa/router';
import * as z from 'zod';
import { ErrorCode, type AuditChainStatus, type AdminSpace, type ClassName, type OrgRole, type SpaceRole } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Caller, Services } from '../context.js';
import { actor, auditSuccess, type KCtx, parse, route, target } from '../http.js';
import { listOrgLinks, revokeLink } from '../services/links.js';
import { requireStepUp } from '../services/totp.js';

const ADMINS: OrgRole[] = ['main_admin', 'backup_admin'];
const IdParam = z.string().regex(/^[A-Za-z0-9_-]{22}$/, 'must be a 16-byte base64url id');
/** A full chain verification is heavy (every entry of every organisation): one at a time, reused for this long. */
const CHAIN_STATUS_TTL_MS = 60_000;

async function guard(services: Services, ctx: KCtx, caller: Caller, roles: OrgRole[]): Promise<string> {
  const orgId = String(ctx.params.orgId);
  target(ctx, 'org', orgId.slice(0, 64));
  if (orgId !== caller.orgId) throw new DomainError(ErrorCode.NotFound, 'no such organisation');
  if (!roles.includes(caller.role)) throw new DomainError(ErrorCode.Forbidden, `this needs one of the roles: ${roles.join(', ')}`);
  await requireStepUp(services, caller);
  return orgId;
}

async function orgSpaces(services: Services, orgId: string): Promise<AdminSpace[]> {
  const { read } = services;
  const spaces = await read('spaces as s').join('users as u', 'u.id', 's.created_by').where('s.org_id', orgId).orderBy('s.name')
    .select('s.id', 's.name', 's.classification', 's.created_at', 's.key_epoch', 'u.email as creator');
  const members = await read('space_members as m').join('spaces as s', 's.id', 'm.space_id').join('users as u', 'u.id', 'm.user_id')
    .where('s.org_id', orgId).orderBy('u.email').select('m.space_id', 'm.user_id', 'm.role', 'u.email');
  const bySpace = new Map<string, AdminSpace['members']>();
  for (const m of members) {
    const list = bySpace.get(m.space_id) ?? [];
    list.push({ userId: m.user_id, email: m.email, role: m.role as SpaceRole });
    bySpace.set(m.space_id, list);
  }
  return spaces.map((s) => ({
    spaceId: s.id, name: s.name, classification: s.classification as ClassName, createdAt: Number(s.created_at), createdBy: s.creator,
    keyEpoch: Number(s.key_epoch), members: bySpace.get(s.id) ?? [],
  }));
}

export function adminViewRoutes(router: Router, services: Services): void {
  const { audit } = services;
  let chain: { at: number; status: Promise<AuditChainStatus> } | null = null;

  route(router, services, 'get', '/api/v1/orgs/:orgId/admin/spaces', { action: 'admin.spaces.list' }, async (ctx, caller) => {
    const orgId = await guard(services, ctx, caller, ADMINS);
    const spaces = await orgSpaces(services, orgId);
    await auditSuccess(services, ctx, caller, 'org', orgId, { count: spaces.length });
    ctx.body = { spaces };
  });

  route(router, services, 'get', '/api/v1/orgs/:orgId/admin/links', { action: 'admin.links.list' }, async (ctx, caller) => {
    const orgId = await guard(services, ctx, caller, ADMINS);
    const links = await listOrgLinks(services, orgId);
    await auditSuccess(services, ctx, caller, 'org', orgId, { count: links.length });
    ctx.body = { links };
  });

  route(router, services, 'delete', '/api/v1/orgs/:orgId/admin/links/:linkId', { action: 'link.revoke' }, async (ctx, caller) => {
    await guard(services, ctx, caller, ADMINS);
    const linkId = String(ctx.params.linkId);
    target(ctx, 'link', linkId.slice(0, 64));
    if (!IdParam.safeParse(linkId).success) throw new DomainError(ErrorCode.NotFound, 'no such link');
    await revokeLink(services, caller, actor(ctx, caller), linkId, Date.now(), true);
    ctx.status = 204;
  });

  route(router, services, 'get', '/api/v1/orgs/:orgId/audit/status', { action: 'audit.verify' }, async (ctx, caller) => {
    const orgId = await guard(services, ctx, caller, [...ADMINS, 'auditor']);
    parse(z.object({}).strict(), ctx.query);
    const now = Date.now();
    if (!chain || now - chain.at > CHAIN_STATUS_TTL_MS) {
      const status = audit.verify().then((r) => ({
        ok: r.ok, verifiedAt: Date.now(), entries: r.entries, lastCheckpointSeq: r.lastCheckpointSeq ?? 0, firstBroken: r.firstBroken ?? null,
      }));
      chain = { at: now, status };
      status.catch(() => { chain = null; });
    }
    const status = await chain.status;
    await auditSuccess(services, ctx, caller, 'org', orgId, { ok: status.ok });
    ctx.body = status;
  });
}
