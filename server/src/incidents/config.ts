// Configuration of incidents from the environment (docs/operations.md "Incidents and their e-mail"), validated at
// start beside the rest (config.ts): the SMTP relay that mails security advisors and admins, and the watcher's pace.
import * as z from 'zod';
import { ConfigError, type Config } from '../config.js';

export interface IncidentConfig {
  /** smtp:// or smtps:// URL of the relay (credentials in it); absent: incidents open, no mail is sent */
  smtpUrl?: string;
  /** the From address of the mails */
  from: string;
  /** the console's origin, for the link in the mail */
  publicUrl: string;
  intervalMs: number;
  verifyEveryMs: number;
}

const schema = z.object({
  KLUIS_SMTP_URL: z.string().optional(),
  KLUIS_SMTP_FROM: z.string().optional(),
  KLUIS_INCIDENT_INTERVAL_MS: z.coerce.number().int().min(100).max(3_600_000).default(10_000),
  KLUIS_INCIDENT_VERIFY_MS: z.coerce.number().int().min(0).max(7 * 86_400_000).default(3_600_000),
});

const EMAIL = /^[^\s@<>]+@[^\s@<>]+$/;

export function loadIncidentConfig(env: NodeJS.ProcessEnv, config: Pick<Config, 'publicUrl'>): IncidentConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const e = parsed.data;
  let smtpUrl: string | undefined;
  if (e.KLUIS_SMTP_URL) {
    let url: URL;
    try {
      url = new URL(e.KLUIS_SMTP_URL);
    } catch {
      throw new ConfigError('KLUIS_SMTP_URL: not a URL; use smtp://[USER:PASSWORD@]HOST:PORT or smtps://… (value not shown: it may hold a password)');
    }
    if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') throw new ConfigError(`KLUIS_SMTP_URL: smtp:// or smtps:// only (got ${url.protocol}//…)`);
    if (!url.hostname) throw new ConfigError('KLUIS_SMTP_URL: no host');
    smtpUrl = e.KLUIS_SMTP_URL;
  }
  const from = e.KLUIS_SMTP_FROM ?? `kluis@${new URL(config.publicUrl).hostname || 'localhost'}`;
  if (!EMAIL.test(from)) throw new ConfigError(`KLUIS_SMTP_FROM: an e-mail address (got ${JSON.stringify(from)})`);
  return { ...(smtpUrl ? { smtpUrl } : {}), from, publicUrl: config.publicUrl.replace(/\/+$/, ''), intervalMs: e.KLUIS_INCIDENT_INTERVAL_MS, verifyEveryMs: e.KLUIS_INCIDENT_VERIFY_MS };
}
