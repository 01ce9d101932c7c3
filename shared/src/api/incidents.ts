// Wire types of incidents (docs/api.md "Incidents"; docs/admin.md "Incidents"): what the rules over the audit trail
// open, and the thresholds an organisation's admins set for them. The console (web/admin/) parses answers with these.
import * as z from 'zod';
import { Id } from './schemas.js';

export const IncidentSeverity = z.enum(['low', 'high', 'very_high']);
export type IncidentSeverity = z.infer<typeof IncidentSeverity>;
export const IncidentStatus = z.enum(['open', 'acknowledged', 'escalated', 'closed']);
export type IncidentStatus = z.infer<typeof IncidentStatus>;
/** The rule that opened an incident. */
export const IncidentRule = z.enum(['mass_download', 'repeated_denials', 'failed_logins', 'link_password', 'new_network', 'after_hours', 'chain_broken', 'witness_alert']);
export type IncidentRule = z.infer<typeof IncidentRule>;

/** 72 hours: a suspected data leak is notified within this time of its discovery (privacy incident procedure). */
export const LEAK_NOTIFY_MS = 72 * 3_600_000;

const count = (max: number) => z.number().int().min(1).max(max);
const HHMM = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a time of day HH:MM');

/** The thresholds of one organisation (every field has a default: INCIDENT_DEFAULTS). */
export const IncidentSettings = z.object({
  /** mass download: more than this many chunks (a file is at least one chunk) by one account in the window */
  downloadChunks: count(10_000_000),
  /** mass download: or more than this many bytes */
  downloadBytes: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  downloadWindowMinutes: count(1440),
  /** refused requests (outcome denied) by one account in the window */
  denials: count(100_000),
  denialWindowMinutes: count(1440),
  /** failed logins for one account or from one address in the window */
  failedLogins: count(100_000),
  failedLoginWindowMinutes: count(1440),
  /** wrong link passwords for one link in the window */
  linkPasswordFailures: count(100_000),
  linkPasswordWindowMinutes: count(1440),
  /** open an incident when a known device appears from a network (IPv4 /24, IPv6 /48) it was never seen from */
  newNetwork: z.boolean(),
  /** IANA time zone of the organisation's office hours */
  timeZone: z.string().min(1).max(64).refine((tz) => {
    try {
      new Intl.DateTimeFormat('en', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  }, 'an IANA time zone such as Europe/Brussels'),
  officeStart: HHMM,
  officeEnd: HHMM,
  /** ISO weekdays (1 Monday … 7 Sunday) that are working days */
  officeDays: z.array(z.number().int().min(1).max(7)).max(7),
}).strict();
export type IncidentSettings = z.infer<typeof IncidentSettings>;

export const INCIDENT_DEFAULTS: IncidentSettings = {
  downloadChunks: 2000,
  downloadBytes: 2 * 1024 ** 3,
  downloadWindowMinutes: 10,
  denials: 20,
  denialWindowMinutes: 10,
  failedLogins: 10,
  failedLoginWindowMinutes: 15,
  linkPasswordFailures: 5,
  linkPasswordWindowMinutes: 15,
  newNetwork: true,
  timeZone: 'Europe/Brussels',
  officeStart: '07:00',
  officeEnd: '19:00',
  officeDays: [1, 2, 3, 4, 5],
};

/** PUT /api/v1/orgs/:orgId/incident-settings: any subset; the rest keeps its value. */
export const IncidentSettingsChange = IncidentSettings.partial().strict();
export type IncidentSettingsChange = z.infer<typeof IncidentSettingsChange>;

export const Incident = z.object({
  incidentId: Id,
  rule: IncidentRule,
  severity: IncidentSeverity,
  status: IncidentStatus,
  /** what the rule matched on: an account id, an address, a link id… (never a file name: the server has none) */
  subject: z.string(),
  /** small facts: counts, thresholds, window */
  details: z.record(z.string(), z.unknown()),
  ownerUserId: Id.nullable(),
  ownerEmail: z.string().nullable(),
  openedAt: z.number().int(),
  updatedAt: z.number().int(),
  closedAt: z.number().int().nullable(),
  /** how many audit entries are in its timeline */
  entries: z.number().int(),
  /** when it was marked a suspected data leak */
  leakAt: z.number().int().nullable(),
  /** leakAt + 72 h: the notification deadline */
  deadlineAt: z.number().int().nullable(),
});
export type Incident = z.infer<typeof Incident>;

export const IncidentNote = z.object({ noteId: Id, authorUserId: Id.nullable(), authorEmail: z.string().nullable(), text: z.string(), createdAt: z.number().int() });
export type IncidentNote = z.infer<typeof IncidentNote>;

/** One audit entry of an incident's timeline (the entry's fields, as the audit search answers them). */
export const IncidentTimelineEntry = z.object({
  seq: z.number().int(),
  ts: z.number().int(),
  actorUserId: z.string().nullable(),
  actorDeviceId: z.string().nullable(),
  action: z.string(),
  targetType: z.string().nullable(),
  targetId: z.string().nullable(),
  outcome: z.enum(['success', 'denied', 'failed']),
  ip: z.string().nullable(),
  details: z.record(z.string(), z.unknown()).nullable(),
});
export type IncidentTimelineEntry = z.infer<typeof IncidentTimelineEntry>;

export const IncidentDetail = z.object({ incident: Incident, timeline: z.array(IncidentTimelineEntry), notes: z.array(IncidentNote) });
export type IncidentDetail = z.infer<typeof IncidentDetail>;

export const IncidentList = z.object({ incidents: z.array(Incident) });
export type IncidentList = z.infer<typeof IncidentList>;

export const IncidentEscalateRequest = z.object({ severity: IncidentSeverity.optional() }).strict();
export const IncidentAssignRequest = z.object({ userId: Id.nullable() }).strict();
export const IncidentNoteRequest = z.object({ text: z.string().trim().min(1).max(4000) }).strict();
export const IncidentCloseRequest = z.object({ note: z.string().trim().min(1).max(4000).optional() }).strict();
export const IncidentEmptyRequest = z.object({}).strict();

/** Whole hours and minutes until `deadlineAt` (or since, when `late`), as the console and kluis-admin show them. */
export function timeToDeadline(deadlineAt: number, now: number): { hours: number; minutes: number; late: boolean } {
  const ms = deadlineAt - now;
  return { hours: Math.floor(Math.abs(ms) / 3_600_000), minutes: Math.floor((Math.abs(ms) % 3_600_000) / 60_000), late: ms < 0 };
}
