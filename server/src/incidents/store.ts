// Incidents in the database (migration 016): opening or feeding one from a rule's match, reading them with their
// timeline and notes, and the organisation's thresholds. No HTTP here; the acts people do are in service.ts.
import { INCIDENT_DEFAULTS, IncidentSettings, newId, type Incident, type IncidentDetail, type IncidentNote, type IncidentStatus, type IncidentTimelineEntry } from '@kluis/shared';
import type { Db, Tx } from '../db/db.js';
import type { AuditLog } from '../audit/types.js';
import type { RuleMatch } from './rules.js';

export interface IncidentRow {
  id: string;
  org_id: string;
  rule: string;
  subject: string;
  severity: string;
  status: string;
  details: string;
  owner_user_id: string | null;
  owner_email?: string | null;
  opened_at: number | string;
  updated_at: number | string;
  closed_at: number | string | null;
  leak_at: number | string | null;
  deadline_at: number | string | null;
  entries?: number | string;
}

const n = (v: number | string) => Number(v);
const nn = (v: number | string | null | undefined) => (v === null || v === undefined ? null : Number(v));

export function toIncident(r: IncidentRow): Incident {
  return {
    incidentId: r.id, rule: r.rule as Incident['rule'], severity: r.severity as Incident['severity'], status: r.status as IncidentStatus, subject: r.subject,
    details: JSON.parse(r.details) as Record<string, unknown>, ownerUserId: r.owner_user_id, ownerEmail: r.owner_email ?? null,
    openedAt: n(r.opened_at), updatedAt: n(r.updated_at), closedAt: nn(r.closed_at), entries: Number(r.entries ?? 0), leakAt: nn(r.leak_at), deadlineAt: nn(r.deadline_at),
  };
}

/** The fields the organisation changed (a stored value that no longer parses, after a later version narrowed it, is dropped). */
async function overrides(db: Db | Tx, orgId: string): Promise<Partial<IncidentSettings>> {
  const row = (await db('incident_settings').where({ org_id: orgId }).first('settings')) as { settings: string } | undefined;
  if (!row) return {};
  const stored = IncidentSettings.partial().safeParse(JSON.parse(row.settings));
  return stored.success ? stored.data : {};
}

/** The organisation's thresholds: its changes over the defaults. */
export async function loadSettings(db: Db | Tx, orgId: string): Promise<IncidentSettings> {
  return { ...INCIDENT_DEFAULTS, ...(await overrides(db, orgId)) };
}

/**
 * Applies `change` to the organisation's thresholds; answers the new whole. Only the changed fields are stored, so a
 * default improved by a later version reaches every organisation that did not choose its own value.
 */
export async function saveSettings(trx: Tx, orgId: string, change: Partial<IncidentSettings>, now: number): Promise<IncidentSettings> {
  const chosen = { ...(await overrides(trx, orgId)), ...change };
  const next = IncidentSettings.parse({ ...INCIDENT_DEFAULTS, ...chosen });
  const settings = JSON.stringify(chosen);
  const exists = await trx('incident_settings').where({ org_id: orgId }).first('org_id');
  if (exists) await trx('incident_settings').where({ org_id: orgId }).update({ settings, updated_at: now });
  else await trx('incident_settings').insert({ org_id: orgId, settings, updated_at: now });
  return next;
}

/** The not-closed incident of (organisation, rule, subject), if any. */
export async function openIncidentId(db: Db | Tx, orgId: string, rule: string, subject: string): Promise<string | null> {
  const row = (await db('incidents').where({ org_id: orgId, rule, subject }).whereNot('status', 'closed').first('id')) as { id: string } | undefined;
  return row?.id ?? null;
}

/**
 * Feeds the not-closed incident of the match's (organisation, rule, subject) with its entries, or opens one (audited
 * as `incident.open` by the server itself). Answers the incident id and whether it is new.
 */
export async function openOrFeed(trx: Tx, audit: AuditLog, m: RuleMatch, now: number): Promise<{ incidentId: string | null; opened: boolean }> {
  const existing = await openIncidentId(trx, m.orgId, m.rule, m.subject);
  if (!existing && m.feedOnly) return { incidentId: null, opened: false }; // closed meanwhile: the next count decides
  const incidentId = existing ?? newId();
  if (!existing) {
    await trx('incidents').insert({
      id: incidentId, org_id: m.orgId, rule: m.rule, subject: m.subject, severity: m.severity, status: 'open', details: JSON.stringify(m.details),
      owner_user_id: null, opened_at: now, updated_at: now, closed_at: null, leak_at: null, deadline_at: null, notified_at: null, notify_attempts: 0,
    });
    await audit.append(trx, { orgId: m.orgId, action: 'incident.open', targetType: 'incident', targetId: incidentId, outcome: 'success', details: { rule: m.rule, severity: m.severity, entries: m.seqs.length } });
  } else {
    await trx('incidents').where({ id: incidentId }).update({ updated_at: now });
  }
  const rows = m.seqs.map((seq) => ({ incident_id: incidentId, seq }));
  for (let i = 0; i < rows.length; i += 300) await trx('incident_entries').insert(rows.slice(i, i + 300)).onConflict(['incident_id', 'seq']).ignore();
  return { incidentId, opened: !existing };
}

const SELECT = (db: Db | Tx) => db('incidents as i')
  .leftJoin('users as u', 'u.id', 'i.owner_user_id')
  .select('i.*', 'u.email as owner_email', db('incident_entries as e').count('*').whereRaw('e.incident_id = i.id').as('entries'));

/** An organisation's incidents, newest first; not-closed ones only unless `status` asks. */
export async function listIncidents(db: Db | Tx, orgId: string, filter: { status?: IncidentStatus | 'all'; limit?: number } = {}): Promise<Incident[]> {
  const q = SELECT(db).where('i.org_id', orgId);
  if (filter.status === undefined) q.whereNot('i.status', 'closed');
  else if (filter.status !== 'all') q.where('i.status', filter.status);
  const rows = (await q.orderBy('i.opened_at', 'desc').orderBy('i.id').limit(filter.limit ?? 200)) as IncidentRow[];
  return rows.map(toIncident);
}

/** One incident of the organisation, or null (another organisation's is not found). */
export async function findIncident(db: Db | Tx, orgId: string, incidentId: string): Promise<Incident | null> {
  const row = (await SELECT(db).where({ 'i.org_id': orgId, 'i.id': incidentId }).first()) as IncidentRow | undefined;
  return row ? toIncident(row) : null;
}

/** The incident with its timeline (oldest first, at most `limit` entries) and notes. */
export async function incidentDetail(db: Db | Tx, incident: Incident, limit = 500): Promise<IncidentDetail> {
  const entries = await db('incident_entries as e').join('audit_log as a', 'a.seq', 'e.seq').where('e.incident_id', incident.incidentId)
    .orderBy('a.seq', 'asc').limit(limit)
    .select('a.seq', 'a.ts', 'a.actor_user_id', 'a.actor_device_id', 'a.action', 'a.target_type', 'a.target_id', 'a.outcome', 'a.ip', 'a.details');
  const timeline: IncidentTimelineEntry[] = entries.map((r) => ({
    seq: Number(r.seq), ts: Number(r.ts), actorUserId: r.actor_user_id, actorDeviceId: r.actor_device_id, action: r.action, targetType: r.target_type, targetId: r.target_id,
    outcome: r.outcome, ip: r.ip, details: r.details === null ? null : JSON.parse(r.details as string),
  }));
  const noteRows = await db('incident_notes as n').leftJoin('users as u', 'u.id', 'n.author_user_id').where('n.incident_id', incident.incidentId)
    .orderBy('n.created_at', 'asc').orderBy('n.id').select('n.id', 'n.author_user_id', 'u.email', 'n.text', 'n.created_at');
  const notes: IncidentNote[] = noteRows.map((r) => ({ noteId: r.id, authorUserId: r.author_user_id, authorEmail: r.email ?? null, text: r.text, createdAt: Number(r.created_at) }));
  return { incident, timeline, notes };
}
