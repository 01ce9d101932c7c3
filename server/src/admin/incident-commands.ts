// `kluis-admin incident list|show|ack|close|settings` (docs/admin.md "Incidents"): the operator's view of an
// organisation's incidents and the same acts as the console's (incidents/service.ts), audited with kluis-admin as the
// client and no actor. Registered on the program of ./cli.ts, whose helpers it receives.
import type { Command } from 'commander';
import { IncidentSettingsChange, IncidentStatus, timeToDeadline, type Incident } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { OpenedServices } from '../services.js';
import { findIncident, incidentDetail, listIncidents, loadSettings } from '../incidents/store.js';
import { actOnIncident, changeIncidentSettings, type IncidentAct } from '../incidents/service.js';
import type { AdminHelpers } from './device-commands.js';

const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString().slice(0, 16).replace('T', ' '));

/** "71 h 59 min left", or how long ago the deadline passed. */
export function timeLeft(deadlineAt: number, now: number): string {
  const { hours, minutes, late } = timeToDeadline(deadlineAt, now);
  return late ? `deadline passed ${hours} h ${minutes} min ago` : `${hours} h ${minutes} min left`;
}

function line(i: Incident, now: number): string {
  const leak = i.deadlineAt !== null ? `  LEAK: notify by ${iso(i.deadlineAt)} UTC (${timeLeft(i.deadlineAt, now)})` : '';
  return `${i.incidentId}  ${i.severity.padEnd(9)}  ${i.status.padEnd(12)}  ${i.rule.padEnd(16)}  opened ${iso(i.openedAt)}  ${i.entries} entries${i.ownerEmail ? `  owner ${i.ownerEmail}` : ''}${leak}`;
}

export function registerIncidentCommands(program: Command, h: AdminHelpers): void {
  const incident = program.command('incident').description('incidents opened by the rules over the audit trail');
  const orgOption = (c: Command) => c.requiredOption('--org <org>', 'organisation id or enterprise number').option('--json', 'machine-readable output');
  const audited = (s: OpenedServices, orgId: string, action: string, targetType: string, targetId: string, details: Record<string, number>) =>
    s.db.transaction((trx) => s.audit.append(trx, { orgId, ...h.who, action, targetType, targetId, outcome: 'success', details }));

  orgOption(incident.command('list').description('the organisation\'s incidents, newest first (not closed ones unless --status)'))
    .option('--status <status>', 'open, acknowledged, escalated, closed or all')
    .action(async (o) => {
      h.setJson(Boolean(o.json));
      const status = o.status === undefined ? undefined : o.status === 'all' ? 'all' as const : IncidentStatus.safeParse(o.status).data;
      if (o.status !== undefined && status === undefined) throw new DomainError('validation_failed', '--status: open, acknowledged, escalated, closed or all');
      const incidents = await h.withServices(async (s) => {
        const org = await h.findOrg(s, o.org);
        const list = await listIncidents(s.db, org.id, status ? { status } : {});
        await audited(s, org.id, 'incident.list', 'org', org.id, { count: list.length });
        return list;
      });
      const now = Date.now();
      h.print(incidents.length ? incidents.map((i) => line(i, now)).join('\n') : 'no incidents', { incidents });
    });

  orgOption(incident.command('show').description('one incident with its timeline of audit entries and its notes').argument('<incident>', 'the incident id'))
    .action(async (id: string, o) => {
      h.setJson(Boolean(o.json));
      const detail = await h.withServices(async (s) => {
        const org = await h.findOrg(s, o.org);
        const found = await findIncident(s.db, org.id, id);
        if (!found) throw new DomainError('not_found', `no incident "${id}" in this organisation`);
        const d = await incidentDetail(s.db, found);
        await audited(s, org.id, 'incident.read', 'incident', id, { entries: d.timeline.length });
        return d;
      });
      const now = Date.now();
      const timeline = detail.timeline.map((e) => `  ${iso(e.ts)}  #${e.seq}  ${e.action} ${e.outcome}  ${e.actorUserId ?? '-'}  ${e.ip ?? '-'}  ${e.details ? JSON.stringify(e.details) : ''}`);
      const notes = detail.notes.map((n) => `  ${iso(n.createdAt)}  ${n.authorEmail ?? 'kluis-admin'}: ${n.text}`);
      h.print([line(detail.incident, now), `subject: ${detail.incident.subject}`, `details: ${JSON.stringify(detail.incident.details)}`, 'timeline:', ...timeline, 'notes:', ...(notes.length ? notes : ['  none'])].join('\n'), detail);
    });

  const act = (name: string, description: string, read: (o: Record<string, string | undefined>) => IncidentAct) => {
    const c = orgOption(incident.command(name).description(description).argument('<incident>', 'the incident id'));
    if (name === 'close') c.option('--note <text>', 'a closing note (kept with the incident, not in the trail)');
    c.action(async (id: string, o) => {
      h.setJson(Boolean(o.json));
      const done = await h.withServices(async (s) => {
        const org = await h.findOrg(s, o.org);
        return s.db.transaction((trx) => actOnIncident(trx, s.audit, org.id, id, read(o), h.who, Date.now()));
      });
      h.print(line(done, Date.now()), { incident: done });
    });
  };
  act('ack', 'acknowledge an open incident (someone is on it)', () => ({ kind: 'ack' }));
  act('close', 'close an incident', (o) => ({ kind: 'close', ...(o.note ? { note: o.note } : {}) }));

  orgOption(incident.command('settings').description('show the organisation\'s thresholds, or change some with --set'))
    .option('--set <json>', 'a JSON object of the fields to change, e.g. \'{"downloadChunks":5000,"timeZone":"Europe/Brussels"}\'')
    .action(async (o) => {
      h.setJson(Boolean(o.json));
      let change: IncidentSettingsChange | undefined;
      if (o.set !== undefined) {
        let raw: unknown;
        try {
          raw = JSON.parse(o.set);
        } catch {
          throw new DomainError('validation_failed', '--set: not JSON');
        }
        const parsed = IncidentSettingsChange.safeParse(raw);
        if (!parsed.success) throw new DomainError('validation_failed', `--set: ${parsed.error.issues[0]!.path.join('.') || 'value'}: ${parsed.error.issues[0]!.message}`);
        change = parsed.data;
      }
      const settings = await h.withServices(async (s) => {
        const org = await h.findOrg(s, o.org);
        if (change) return s.db.transaction((trx) => changeIncidentSettings(trx, s.audit, org.id, change, h.who, Date.now()));
        const current = await loadSettings(s.db, org.id);
        await audited(s, org.id, 'incident.settings.read', 'org', org.id, {});
        return current;
      });
      h.print(Object.entries(settings).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n'), { settings });
    });
}
