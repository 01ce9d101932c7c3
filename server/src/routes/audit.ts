// The audit trail for an organisation's main/backup admins and auditors (security advisors): search and export.
// Every search and export is itself audited. Auditors see their organisation's entries and nothing else.
import type Router from '@koa/router';
import { PassThrough } from 'node:stream';
import * as z from 'zod';
import { ErrorCode, Id, type OrgRole } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Services } from '../context.js';
import { actor, auditSuccess, parse, pathId, route } from '../http.js';
import { exportAudit } from '../audit/export.js';
import type { AuditFilter } from '../audit/types.js';
import { requireStepUp } from '../services/totp.js';

const READERS: OrgRole[] = ['main_admin', 'backup_admin', 'auditor'];

const time = z.string().transform((s, c) => {
  const ms = /^\d+$/.test(s) ? Number(s) : Date.parse(s);
  // Safe integers only: 2^53 ms and beyond are no time, and the audit query refuses them (that was a 500).
  if (!Number.isSafeInteger(ms)) {
    c.addIssue({ code: 'custom', message: 'a time: ISO 8601 or ms since 1970' });
    return z.NEVER;
  }
  return ms;
});
const seqParam = z.string().regex(/^\d{1,15}$/).transform(Number);

const AuditQuery = z.object({
  actor: Id.optional(),
  device: Id.optional(),
  action: z.string().regex(/^[a-z][a-z0-9_.-]{1,63}$/).optional(),
  targetType: z.string().max(32).optional(),
  target: z.string().max(128).optional(),
  outcome: z.enum(['success', 'denied', 'failed']).optional(),
  since: time.optional(),
  until: time.optional(),
  afterSeq: seqParam.optional(),
  beforeSeq: seqParam.optional(),
  order: z.enum(['asc', 'desc']).optional(),
  limit: z.string().regex(/^\d{1,5}$/).transform(Number).pipe(z.number().min(1).max(10_000)).optional(),
  format: z.enum(['csv', 'json']).optional(),
}).strict();

export function auditRoutes(router: Router, services: Services): void {
  const { audit } = services;

  const filterFor = (orgId: string, q: z.infer<typeof AuditQuery>): AuditFilter => ({
    orgId, actorUserId: q.actor, actorDeviceId: q.device, action: q.action, targetType: q.targetType, targetId: q.target, outcome: q.outcome,
    since: q.since, until: q.until, afterSeq: q.afterSeq, beforeSeq: q.beforeSeq, order: q.order, limit: q.limit,
  });

  const guard = (orgId: string, callerOrg: string, role: OrgRole) => {
    if (orgId !== callerOrg) throw new DomainError(ErrorCode.NotFound, 'no such organisation');
    if (!READERS.includes(role)) throw new DomainError(ErrorCode.Forbidden, 'the audit trail is for admins and auditors');
  };

  route(router, services, 'get', '/api/v1/orgs/:orgId/audit', { action: 'audit.search' }, async (ctx, caller) => {
    const orgId = pathId(ctx, 'orgId', 'org');
    guard(orgId, caller.orgId, caller.role);
    await requireStepUp(services, caller);
    const q = parse(AuditQuery, ctx.query);
    const entries = await audit.query(filterFor(orgId, q));
    await auditSuccess(services, ctx, caller, 'org', orgId, { results: entries.length });
    ctx.body = { entries, publicKey: audit.publicKey };
  });

  route(router, services, 'get', '/api/v1/orgs/:orgId/audit/export', { action: 'audit.export' }, async (ctx, caller) => {
    const orgId = pathId(ctx, 'orgId', 'org');
    guard(orgId, caller.orgId, caller.role);
    await requireStepUp(services, caller);
    const q = parse(AuditQuery, ctx.query);
    const format = q.format ?? 'json';
    await auditSuccess(services, ctx, caller, 'org', orgId, { format });
    const body = new PassThrough();
    ctx.type = format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8';
    ctx.attachment(`kluis-audit-${orgId}.${format}`);
    ctx.body = body;
    // The answer has begun (200) when the export fails: the trail says so in a second entry, since the first one
    // only records that the export started.
    exportAudit(audit, { ...filterFor(orgId, q), limit: undefined }, format, body).catch((err: unknown) => {
      const aborted = body.destroyed; // Koa destroys the body when the client goes away
      if (!aborted) services.log.error({ err }, 'audit export failed');
      body.destroy(err as Error);
      const code = aborted ? ErrorCode.ClientAborted : ErrorCode.Internal;
      audit.appendStandalone({ ...actor(ctx, caller), action: 'audit.export', targetType: 'org', targetId: orgId, outcome: 'failed', details: { format, code } })
        .catch((auditErr: unknown) => services.log.error({ err: auditErr }, 'could not write the audit entry of a failed export'));
    });
  });
}
