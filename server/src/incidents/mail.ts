// Mails about incidents to the organisation's security advisors (auditors) and main and backup admins, through the
// configured SMTP relay (nodemailer). A mail says which rule fired, its severity, counts and a link to the console;
// never a name, an address or content of a file (the server has none) nor who the subject is: the console shows that
// to those allowed to see it. Sending is at least once: a node claims an unsent incident (notify_due_at, a minute),
// sends, then marks it sent; a failure leaves it for the next round, up to 5 attempts. Each attempt is audited
// (incident.notify).
import nodemailer, { type Transporter } from 'nodemailer';
import type { Logger } from 'pino';
import type { Db } from '../db/db.js';
import type { AuditLog } from '../audit/types.js';
import type { IncidentConfig } from './config.js';
import { toIncident, type IncidentRow } from './store.js';
import type { Incident } from '@kluis/shared';

export const MAX_NOTIFY_ATTEMPTS = 5;
const CLAIM_MS = 60_000;

const TITLES: Record<Incident['rule'], string> = {
  mass_download: 'one account downloaded unusually much',
  repeated_denials: 'one account was refused many times',
  failed_logins: 'repeated failed logins',
  link_password: 'wrong passwords on a share link',
  new_network: 'a device was seen from a new network',
  after_hours: 'an admin acted outside office hours',
  chain_broken: 'the audit trail does not verify',
  witness_alert: 'the outside witness saw the audit trail rewritten or cut',
};
const SEVERITY: Record<Incident['severity'], string> = { low: 'Low', high: 'High', very_high: 'Very high' };

/** Subject and text of the mail about `i` (exported for tests of the wording). */
export function composeMail(i: Incident, orgName: string, consoleUrl: string): { subject: string; text: string } {
  const link = `${consoleUrl}/admin/#incident/${i.incidentId}`;
  if (i.leakAt !== null && i.deadlineAt !== null) {
    const deadline = new Date(i.deadlineAt).toISOString().replace(/\.\d{3}Z$/, 'Z');
    return {
      subject: `[Kluis] Suspected data leak in ${orgName}: notify by ${deadline}`,
      text: `Incident ${i.incidentId} (${TITLES[i.rule]}) was marked a suspected data leak.\n`
        + `A data leak must be reported within 72 hours of its discovery: by ${deadline} (UTC).\n\nOpen it in the console: ${link}\n`,
    };
  }
  const facts = Object.entries(i.details).filter(([, v]) => typeof v === 'number' || typeof v === 'boolean').map(([k, v]) => `  ${k}: ${String(v)}`).join('\n');
  return {
    subject: `[Kluis] ${SEVERITY[i.severity]} incident in ${orgName}: ${TITLES[i.rule]}`,
    text: `Kluis opened incident ${i.incidentId} at ${new Date(i.openedAt).toISOString()}.\nRule: ${i.rule}\nSeverity: ${SEVERITY[i.severity]}\n${facts ? `${facts}\n` : ''}`
      + `\nThe timeline of audit entries behind it, and what to do, are in the console: ${link}\n`
      + 'Acknowledge it there (or with kluis-admin incident ack) so that colleagues know it is being handled.\n',
  };
}

export class IncidentNotifier {
  private readonly transport: Transporter | null;

  constructor(private readonly db: Db, private readonly audit: AuditLog, private readonly config: IncidentConfig, private readonly log: Logger, private readonly now: () => number = Date.now) {
    this.transport = config.smtpUrl
      ? nodemailer.createTransport(config.smtpUrl, { from: config.from })
      : null;
    if (!this.transport) log.warn('KLUIS_SMTP_URL is not set: incidents open in the console but nobody is mailed');
  }

  /** Sends the mails of every incident not yet notified. */
  async flush(): Promise<number> {
    if (!this.transport) return 0;
    const now = this.now();
    const due = (await this.db('incidents as i').join('orgs as o', 'o.id', 'i.org_id').whereNull('i.notified_at').where('i.notify_attempts', '<', MAX_NOTIFY_ATTEMPTS)
      .where('i.notify_due_at', '<=', now).select('i.*', 'o.name as org_name').orderBy('i.opened_at').limit(50)) as (IncidentRow & { org_name: string; notify_attempts: number | string })[];
    let sent = 0;
    for (const row of due) {
      const attempts = Number(row.notify_attempts);
      const claimed = await this.db('incidents').where({ id: row.id, notify_attempts: attempts }).whereNull('notified_at').update({ notify_attempts: attempts + 1, notify_due_at: now + CLAIM_MS });
      if (claimed !== 1) continue; // another node has it
      if (await this.send(toIncident(row), row.org_id, row.org_name)) sent++;
    }
    return sent;
  }

  private async send(i: Incident, orgId: string, orgName: string): Promise<boolean> {
    const recipients = (await this.db('users').where({ org_id: orgId }).whereIn('role', ['auditor', 'main_admin', 'backup_admin']).whereNull('disabled_at').orderBy('email').select('email')).map((r) => r.email as string);
    const entry = { orgId: orgId, action: 'incident.notify', targetType: 'incident', targetId: i.incidentId };
    if (recipients.length === 0) {
      await this.db('incidents').where({ id: i.incidentId }).update({ notified_at: this.now() });
      await this.audit.appendStandalone({ ...entry, outcome: 'failed', details: { recipients: 0, code: 'no_recipients' } });
      return false;
    }
    const { subject, text } = composeMail(i, orgName, this.config.publicUrl);
    try {
      await this.transport!.sendMail({ to: recipients, subject, text });
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message, code: (err as { code?: unknown }).code }, incidentId: i.incidentId }, 'incident mail not sent');
      await this.audit.appendStandalone({ ...entry, outcome: 'failed', details: { recipients: recipients.length, code: String((err as { code?: unknown }).code ?? 'send_failed').slice(0, 40) } });
      return false;
    }
    await this.db('incidents').where({ id: i.incidentId }).update({ notified_at: this.now() });
    await this.audit.appendStandalone({ ...entry, outcome: 'success', details: { recipients: recipients.length, leak: i.leakAt !== null } });
    return true;
  }

  close(): void {
    this.transport?.close();
  }
}
