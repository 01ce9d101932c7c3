// Incidents of an organisation (docs/api.md "Incidents"): for its main and backup admins and its security advisors
// (auditors), who read and act on them; nobody else (403), and never another organisation's (404). The thresholds
// are read by the same people and changed by the main and backup admins. Every read and act is audited.
import type Router from '@koa/router';
import * as z from 'zod';
import {
  ErrorCode, Id, IncidentAssignRequest, IncidentCloseRequest, IncidentEmptyRequest, IncidentEscalateRequest, IncidentNoteRequest, IncidentSettingsChange, IncidentStatus,
  type OrgRole,
} from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Caller, Services } from '../context.js';
import { actor, auditSuccess, body, type KCtx, parse, pathId, route } from '../http.js';
import { canReadAudit } from '../services/admin-scope.js';
import { requireStepUp } from '../services/totp.js';
import { findIncident, incidentDetail, listIncidents, loadSettings } from '../incidents/store.js';
import { actOnIncident, changeIncidentSettings, type IncidentAct } from '../incidents/service.js';

const ListQuery = z.object({
  status: z.union([IncidentStatus, z.literal('all')]).optional(),
  limit: z.string().regex(/^\d{1,4}$/).transform(Number).pipe(z.number().min(1).max(1000)).optional(),
}).strict();
const NoQuery = z.object({}).strict();

export function incidentRoutes(router: Router, services: Services): void {
  const { audit } = services;

  /** The organisation of the path, if the caller reads its incidents (and passed 2-step verification where asked). */
  const guard = async (ctx: KCtx, caller: Caller, admins: OrgRole[] | null = null): Promise<string> => {
    const orgId = pathId(ctx, 'orgId', 'org');
    if (orgId !== caller.orgId) throw new DomainError(ErrorCode.NotFound, 'no such organisation');
    if (!canReadAudit(caller)) throw new DomainError(ErrorCode.Forbidden, 'incidents are for security advisors (auditors) and main and backup admins');
    if (admins && !admins.includes(caller.role)) throw new DomainError(ErrorCode.Forbidden, 'the thresholds are changed by the main and backup admins');
    await requireStepUp(services, caller);
    return orgId;
  };
  const incidentParam = (ctx: KCtx): string => {
    const id = pathId(ctx, 'incidentId', 'incident');
    if (!Id.safeParse(id).success) throw new DomainError(ErrorCode.NotFound, 'no such incident');
    return id;
  };

  route(router, services, 'get', '/api/v1/orgs/:orgId/incidents', { action: 'incident.list' }, async (ctx, caller) => {
    const orgId = await guard(ctx, caller);
    const q = parse(ListQuery, ctx.query);
    const incidents = await listIncidents(services.db, orgId, q);
    await auditSuccess(services, ctx, caller, 'org', orgId, { count: incidents.length });
    ctx.body = { incidents };
  });

  route(router, services, 'get', '/api/v1/orgs/:orgId/incidents/:incidentId', { action: 'incident.read' }, async (ctx, caller) => {
    const orgId = await guard(ctx, caller);
    parse(NoQuery, ctx.query);
    const incidentId = incidentParam(ctx);
    const incident = await findIncident(services.db, orgId, incidentId);
    if (!incident) throw new DomainError(ErrorCode.NotFound, 'no such incident');
    const detail = await incidentDetail(services.db, incident);
    await auditSuccess(services, ctx, caller, 'incident', incidentId, { entries: detail.timeline.length });
    ctx.body = detail;
  });

  const acts: { path: string; action: string; read: (ctx: KCtx) => IncidentAct }[] = [
    { path: 'ack', action: 'incident.ack', read: (ctx) => (parse(IncidentEmptyRequest, body(ctx)), { kind: 'ack' }) },
    { path: 'escalate', action: 'incident.escalate', read: (ctx) => ({ kind: 'escalate', ...parse(IncidentEscalateRequest, body(ctx)) }) },
    { path: 'assign', action: 'incident.assign', read: (ctx) => ({ kind: 'assign', userId: parse(IncidentAssignRequest, body(ctx)).userId }) },
    { path: 'notes', action: 'incident.note', read: (ctx) => ({ kind: 'note', text: parse(IncidentNoteRequest, body(ctx)).text }) },
    { path: 'leak', action: 'incident.leak', read: (ctx) => (parse(IncidentEmptyRequest, body(ctx)), { kind: 'leak' }) },
    { path: 'close', action: 'incident.close', read: (ctx) => ({ kind: 'close', ...parse(IncidentCloseRequest, body(ctx)) }) },
  ];
  for (const a of acts) {
    route(router, services, 'post', `/api/v1/orgs/:orgId/incidents/:incidentId/${a.path}`, { action: a.action }, async (ctx, caller) => {
      const orgId = await guard(ctx, caller);
      const incidentId = incidentParam(ctx);
      const act = a.read(ctx);
      ctx.body = { incident: await services.tx((trx) => actOnIncident(trx, audit, orgId, incidentId, act, actor(ctx, caller), Date.now())) };
    });
  }

  route(router, services, 'get', '/api/v1/orgs/:orgId/incident-settings', { action: 'incident.settings.read' }, async (ctx, caller) => {
    const orgId = await guard(ctx, caller);
    parse(NoQuery, ctx.query);
    const settings = await loadSettings(services.db, orgId);
    await auditSuccess(services, ctx, caller, 'org', orgId);
    ctx.body = { settings };
  });

  route(router, services, 'put', '/api/v1/orgs/:orgId/incident-settings', { action: 'incident.settings.change' }, async (ctx, caller) => {
    const orgId = await guard(ctx, caller, ['main_admin', 'backup_admin']);
    const change = parse(IncidentSettingsChange, body(ctx));
    ctx.body = { settings: await services.tx((trx) => changeIncidentSettings(trx, audit, orgId, change, actor(ctx, caller), Date.now())) };
  });
}
