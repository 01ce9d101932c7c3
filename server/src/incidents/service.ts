// What security advisors (auditors) and main and backup admins do with their organisation's incidents: acknowledge,
// escalate, assign, note, mark a suspected data leak (the 72-hour clock), close; and the thresholds. Each act is
// audited in its transaction. Errors are DomainErrors (the routes and kluis-admin show them as they are).
import { ErrorCode, LEAK_NOTIFY_MS, newId, type Incident, type IncidentSettings, type IncidentSeverity, type IncidentStatus } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Tx } from '../db/db.js';
import type { AuditEntryInput, AuditLog } from '../audit/types.js';
import { findIncident, saveSettings } from './store.js';

/** Who acts (a person, or kluis-admin with null ids) and how, spread into the audit entry. */
export type IncidentActor = Pick<AuditEntryInput, 'actorUserId' | 'actorDeviceId' | 'ip' | 'userAgent' | 'client'>;

export type IncidentAct =
  | { kind: 'ack' }
  | { kind: 'escalate'; severity?: IncidentSeverity }
  | { kind: 'assign'; userId: string | null }
  | { kind: 'note'; text: string }
  | { kind: 'leak' }
  | { kind: 'close'; note?: string };

const ACTIONS: Record<IncidentAct['kind'], string> = { ack: 'incident.ack', escalate: 'incident.escalate', assign: 'incident.assign', note: 'incident.note', leak: 'incident.leak', close: 'incident.close' };
const RANK: Record<IncidentSeverity, number> = { low: 0, high: 1, very_high: 2 };
/** Roles that may own an incident: those who read the organisation's incidents. */
const OWNER_ROLES = ['main_admin', 'backup_admin', 'auditor'];

const conflict = (message: string) => new DomainError(ErrorCode.Conflict, message);

/** Does `act` on the organisation's incident; answers it as it now stands. 404 for another organisation's. */
export async function actOnIncident(trx: Tx, audit: AuditLog, orgId: string, incidentId: string, act: IncidentAct, who: IncidentActor, now: number): Promise<Incident> {
  const incident = await findIncident(trx, orgId, incidentId);
  if (!incident) throw new DomainError(ErrorCode.NotFound, 'no such incident');
  const closed = incident.status === 'closed';
  const change: Record<string, unknown> = { updated_at: now };
  const details: Record<string, string | number | boolean | null> = {};
  const setStatus = (to: IncidentStatus) => {
    change.status = to;
    details.from = incident.status;
    details.to = to;
  };
  switch (act.kind) {
    case 'ack':
      if (incident.status !== 'open') throw conflict(`the incident is ${incident.status}: only an open incident is acknowledged`);
      setStatus('acknowledged');
      if (incident.ownerUserId === null && who.actorUserId) change.owner_user_id = who.actorUserId; // who acknowledges owns it until assigned
      break;
    case 'escalate': {
      if (closed) throw conflict('the incident is closed');
      const severity = act.severity ?? (incident.severity === 'low' ? 'high' : 'very_high');
      if (RANK[severity] < RANK[incident.severity]) throw new DomainError(ErrorCode.ValidationFailed, `severity: escalating cannot lower it from ${incident.severity}`);
      setStatus('escalated');
      change.severity = severity;
      details.severity = severity;
      break;
    }
    case 'assign': {
      if (closed) throw conflict('the incident is closed');
      if (act.userId !== null) {
        const owner = await trx('users').where({ id: act.userId, org_id: orgId }).whereNull('disabled_at').first('role');
        if (!owner) throw new DomainError(ErrorCode.NotFound, 'userId: no such person in the organisation');
        if (!OWNER_ROLES.includes(owner.role as string)) throw new DomainError(ErrorCode.ValidationFailed, 'userId: an owner is a security advisor (auditor) or a main or backup admin');
      }
      change.owner_user_id = act.userId;
      details.ownerUserId = act.userId;
      break;
    }
    case 'note':
      await trx('incident_notes').insert({ id: newId(), incident_id: incidentId, author_user_id: who.actorUserId ?? null, text: act.text, created_at: now });
      details.length = act.text.length; // the note itself is in the incident, not in the trail
      break;
    case 'leak':
      if (closed) throw conflict('the incident is closed');
      if (incident.leakAt !== null) throw conflict('the incident is already marked a suspected data leak');
      change.leak_at = now;
      change.deadline_at = now + LEAK_NOTIFY_MS;
      if (RANK[incident.severity] < RANK.high) change.severity = 'high';
      // Mail the advisors again, now about the leak and its deadline (mail.ts).
      Object.assign(change, { notified_at: null, notify_attempts: 0, notify_due_at: 0 });
      details.deadlineAt = now + LEAK_NOTIFY_MS;
      break;
    case 'close':
      if (closed) throw conflict('the incident is already closed');
      setStatus('closed');
      change.closed_at = now;
      if (act.note) {
        await trx('incident_notes').insert({ id: newId(), incident_id: incidentId, author_user_id: who.actorUserId ?? null, text: act.note, created_at: now });
        details.note = true;
      }
      break;
  }
  await trx('incidents').where({ id: incidentId }).update(change);
  await audit.append(trx, { ...who, orgId, action: ACTIONS[act.kind], targetType: 'incident', targetId: incidentId, outcome: 'success', details: { rule: incident.rule, ...details } });
  return (await findIncident(trx, orgId, incidentId))!;
}

/** Changes the organisation's thresholds (audited with the names of the fields changed). */
export async function changeIncidentSettings(trx: Tx, audit: AuditLog, orgId: string, change: Partial<IncidentSettings>, who: IncidentActor, now: number): Promise<IncidentSettings> {
  const next = await saveSettings(trx, orgId, change, now);
  await audit.append(trx, { ...who, orgId, action: 'incident.settings.change', targetType: 'org', targetId: orgId, outcome: 'success', details: { fields: Object.keys(change).sort().join(',') } });
  return next;
}
