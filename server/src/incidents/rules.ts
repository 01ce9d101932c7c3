// The rules over the audit stream (docs/admin.md "Incidents"). Each committed entry is shown to every rule once, in
// seq order (watcher.ts); a rule answers the incidents the entry opens or feeds. Windows are read back from the
// trail itself (the entries of the same account, address or link in the last T minutes), so the rules hold no state
// of their own and give the same answer on whichever node evaluates them. The chain rule is not here: it runs on the
// verification's result (watcher.ts). The witness rule reads the alarm an outside witness reported.
import type { IncidentRule, IncidentSettings, IncidentSeverity, OrgRole } from '@kluis/shared';
import type { AuditEntry } from '../audit/types.js';
import { networkOf } from './network.js';
import { withinOfficeHours } from './office-hours.js';

/** The fields of an audit entry the rules read. */
export type RuleEntry = Pick<AuditEntry, 'seq' | 'ts' | 'orgId' | 'actorUserId' | 'actorDeviceId' | 'action' | 'targetId' | 'outcome' | 'ip' | 'details'>;

/** An incident to open, or to feed when one for the same (organisation, rule, subject) is not closed. */
export interface RuleMatch {
  orgId: string;
  rule: IncidentRule;
  subject: string;
  severity: IncidentSeverity;
  /** the entries behind it (its timeline) */
  seqs: number[];
  details: { [key: string]: string | number | boolean | null };
  /** only feeds an incident that is not closed (the rule did not count again); opens nothing */
  feedOnly?: boolean;
}

/** A window of earlier entries: same organisation, the criteria given, ts >= since and seq <= upTo. */
export interface WindowQuery {
  orgId: string;
  /** any action when absent */
  actions?: readonly string[];
  since: number;
  upTo: number;
  actorUserId?: string;
  targetId?: string;
  ip?: string;
  outcome?: RuleEntry['outcome'];
}

/** What the rules ask of the database. */
export interface RuleContext {
  settings(orgId: string): Promise<IncidentSettings>;
  window(q: WindowQuery): Promise<RuleEntry[]>;
  roleOf(userId: string): Promise<OrgRole | null>;
  /** records the network; 'first' for a device never seen, 'known' or 'new' otherwise */
  sawNetwork(deviceId: string, network: string, ts: number): Promise<'first' | 'known' | 'new'>;
  /** an incident for (organisation, rule, subject) is open (not closed): the entry only feeds it */
  isOpen(orgId: string, rule: IncidentRule, subject: string): Promise<boolean>;
}

/** Chunk reads by an account (a file is at least one chunk; the server cannot tell files apart). */
export const DOWNLOAD_ACTIONS = ['chunks.download', 'shared.chunks'] as const;
/** Acts of administration: done outside office hours by an admin, they open an incident. */
const ADMIN_PREFIXES = ['person.', 'org.role.', 'invite.', 'domain.', 'admin.', 'policy.change', 'security.change', 'device.revoke', 'device.admin.', 'audit.search', 'audit.export', 'totp.reset', 'link.revoke', 'incident.settings.change'];
const ADMIN_ROLES: ReadonlySet<string> = new Set(['main_admin', 'backup_admin', 'domain_admin']);

const MINUTE = 60_000;
/** An aggregated summary of requests without a session stands for `count` requests (audit/anonymous.ts). */
const weight = (e: RuleEntry) => (e.details?.aggregated === true && typeof e.details.count === 'number' ? e.details.count : 1);
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** The incidents `e` opens or feeds. */
export async function evaluate(e: RuleEntry, ctx: RuleContext): Promise<RuleMatch[]> {
  const orgId = e.orgId;
  // System-wide entries belong to no organisation; incident acts are not themselves watched.
  if (orgId === null || e.action.startsWith('incident.')) return [];
  const s = await ctx.settings(orgId);
  const out: RuleMatch[] = [];
  const feedOrCount = async (rule: IncidentRule, subject: string, build: () => Promise<RuleMatch | null>) => {
    if (await ctx.isOpen(orgId, rule, subject)) {
      out.push({ orgId, rule, subject, severity: 'low', seqs: [e.seq], details: {}, feedOnly: true });
      return;
    }
    const m = await build();
    if (m) out.push(m);
  };

  if ((DOWNLOAD_ACTIONS as readonly string[]).includes(e.action) && e.outcome === 'success' && e.actorUserId) {
    const user = e.actorUserId;
    await feedOrCount('mass_download', user, async () => {
      const rows = await ctx.window({ orgId, actions: DOWNLOAD_ACTIONS, actorUserId: user, outcome: 'success', since: e.ts - s.downloadWindowMinutes * MINUTE, upTo: e.seq });
      const chunks = rows.reduce((n, r) => n + num(r.details?.count), 0);
      const bytes = rows.reduce((n, r) => n + num(r.details?.bytes), 0);
      if (chunks <= s.downloadChunks && bytes <= s.downloadBytes) return null;
      return { orgId, rule: 'mass_download', subject: user, severity: 'high', seqs: rows.map((r) => r.seq), details: { chunks, bytes, windowMinutes: s.downloadWindowMinutes, chunkLimit: s.downloadChunks, byteLimit: s.downloadBytes } };
    });
  }

  if (e.outcome === 'denied' && e.actorUserId && e.action !== 'link.access') {
    const user = e.actorUserId;
    await feedOrCount('repeated_denials', user, async () => {
      const rows = await ctx.window({ orgId, actorUserId: user, outcome: 'denied', since: e.ts - s.denialWindowMinutes * MINUTE, upTo: e.seq });
      if (rows.length < s.denials) return null;
      return { orgId, rule: 'repeated_denials', subject: user, severity: 'low', seqs: rows.map((r) => r.seq), details: { denials: rows.length, windowMinutes: s.denialWindowMinutes, limit: s.denials } };
    });
  }

  if (e.action === 'auth.login' && e.outcome !== 'success') {
    // A wrong password is `failed`; once the address is throttled (auth/throttle.ts) the refusals are `denied`
    // (429): both are attempts. Per account when the server could tell it, per address otherwise (and for summaries).
    const byAccount = e.targetId !== null;
    const subject = byAccount ? e.targetId! : `ip:${e.ip ?? 'unknown'}`;
    await feedOrCount('failed_logins', subject, async () => {
      const rows = (await ctx.window({ orgId, actions: ['auth.login'], since: e.ts - s.failedLoginWindowMinutes * MINUTE, upTo: e.seq, ...(byAccount ? { targetId: e.targetId! } : e.ip ? { ip: e.ip } : {}) }))
        .filter((r) => r.outcome !== 'success');
      const failures = rows.reduce((n, r) => n + weight(r), 0);
      if (failures < s.failedLogins) return null;
      return { orgId, rule: 'failed_logins', subject, severity: 'high', seqs: rows.map((r) => r.seq), details: { failures, windowMinutes: s.failedLoginWindowMinutes, limit: s.failedLogins } };
    });
  }

  // A wrong secret or password, and the refusals once the link is throttled (services/links.ts).
  const guess = (r: RuleEntry) => r.outcome === 'denied' && (r.details?.code === 'bad_link_auth' || r.details?.code === 'rate_limited');
  if (e.action === 'link.access' && guess(e) && e.targetId) {
    const link = e.targetId;
    await feedOrCount('link_password', link, async () => {
      const rows = (await ctx.window({ orgId, actions: ['link.access'], targetId: link, outcome: 'denied', since: e.ts - s.linkPasswordWindowMinutes * MINUTE, upTo: e.seq }))
        .filter(guess);
      if (rows.length < s.linkPasswordFailures) return null;
      return { orgId, rule: 'link_password', subject: link, severity: 'high', seqs: rows.map((r) => r.seq), details: { failures: rows.length, windowMinutes: s.linkPasswordWindowMinutes, limit: s.linkPasswordFailures } };
    });
  }

  const network = e.actorDeviceId && e.outcome === 'success' ? networkOf(e.ip) : null;
  if (network && e.actorDeviceId) {
    const seen = await ctx.sawNetwork(e.actorDeviceId, network, e.ts);
    if (seen === 'new' && s.newNetwork) {
      out.push({ orgId, rule: 'new_network', subject: e.actorDeviceId, severity: 'low', seqs: [e.seq], details: { network, userId: e.actorUserId } });
    }
  }

  // The organisation's own witness (kluis-admin audit witness, docs/operations.md "Audit witness") saw a fork, a
  // rollback, a bad signature or a changed key: whoever could rewrite the trail could also hide it from `verify`.
  if (e.action === 'audit.witness.alert' && e.outcome === 'failed') {
    const kind = typeof e.details?.kind === 'string' ? e.details.kind : 'unknown';
    await feedOrCount('witness_alert', 'audit-witness', async () => ({ orgId, rule: 'witness_alert', subject: 'audit-witness', severity: 'very_high', seqs: [e.seq], details: { kind, heldSize: num(e.details?.heldSize), seenSize: num(e.details?.seenSize) } }));
  }

  if (e.actorUserId && e.outcome === 'success' && ADMIN_PREFIXES.some((p) => e.action.startsWith(p)) && !withinOfficeHours(e.ts, s)) {
    const role = await ctx.roleOf(e.actorUserId);
    if (role && ADMIN_ROLES.has(role)) {
      out.push({ orgId, rule: 'after_hours', subject: e.actorUserId, severity: 'low', seqs: [e.seq], details: { role, timeZone: s.timeZone, officeStart: s.officeStart, officeEnd: s.officeEnd } });
    }
  }
  return out;
}
