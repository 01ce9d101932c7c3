#!/usr/bin/env node
// kluis-admin: the operator's command line (docs/architecture.md §10). Reads KLUIS_DATA_DIR (and the rest of the KLUIS_*
// configuration) like the server; works on the same database, so run it on the server's machine.
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { CLASS_ORDER, ClassPolicy, Email, OrgRole, type ClassName } from '@kluis/shared';
import { loadConfig, ConfigError, withoutDatabasePassword } from '../config.js';
import { openServices, type OpenedServices } from '../services.js';
import { createOrg, insertInvite } from '../services/orgs.js';
import { statusOf } from '../errors.js';
import { exportAudit } from '../audit/export.js';
import { AUDIT_STATE_FILE, AuditStateError, verifyWithState } from '../audit/anchor.js';
import type { AuditVerifyResult } from '../audit/types.js';
import { runMaintenance } from '../services/maintenance.js';
import { withMaintenanceLock } from '../db/maintenance-lock.js';
import { orgPolicies, setClassPolicy } from '../services/policy.js';
import { registerDeviceCommands } from './device-commands.js';
import { registerWitnessCommands } from './witness-commands.js';
import { registerIncidentCommands } from './incident-commands.js';
import { registerBackupCommands } from './backup-commands.js';
import { listAdmins, replaceMainAdmin } from '../services/succession.js';
import { clearAuthenticator } from '../services/totp.js';
import { DomainError } from '../domain-error.js';

const program = new Command();
program.name('kluis-admin').description('Administer a Kluis server: organisations, invites, audit trail.').showHelpAfterError();

let json = false;
const who = { actorUserId: null, actorDeviceId: null, ip: null, userAgent: null, client: 'kluis-admin/0.1.0' };

function print(human: string, value: unknown): void {
  console.log(json ? JSON.stringify(value) : human);
}

/** Runs `fn` on the server's services; on close the newest entries are signed unless `seal(result)` says no. */
async function withServices<T>(fn: (s: OpenedServices) => Promise<T>, seal: (result: T) => boolean = () => true): Promise<T> {
  const config = loadConfig();
  const services = await openServices(config, pino({ level: 'silent' }));
  let checkpoint = true;
  try {
    const result = await fn(services);
    checkpoint = seal(result);
    return result;
  } finally {
    await services.close({ checkpoint });
  }
}

/** Accepts an organisation id or its enterprise number. */
async function findOrg(s: OpenedServices, ref: string): Promise<{ id: string; name: string }> {
  const digits = ref.replace(/[\s.]/g, '');
  const org = await s.db('orgs').where({ id: ref }).orWhere({ enterprise_number: digits }).first('id', 'name');
  if (!org) throw new DomainError('not_found', `no organisation "${ref}"`);
  return org;
}

function parseTime(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  // Safe integers only: a larger number of ms is no time, and the audit query refuses it.
  if (!Number.isSafeInteger(ms)) throw new DomainError('validation_failed', `${name}: not a time (use ISO 8601, e.g. 2026-11-01T00:00:00Z)`);
  return ms;
}

program.option('--json', 'machine-readable output').hook('preAction', (cmd) => {
  json = Boolean(cmd.opts().json);
});

const org = program.command('org').description('organisations');
org.command('create').description('create an organisation and a one-time invite for its main access admin')
  .requiredOption('--name <name>', 'organisation name')
  .requiredOption('--enterprise-number <number>', 'KBO/BCE enterprise number (10 digits, mod-97 checked)')
  .requiredOption('--admin-email <email>', 'e-mail address of the main access admin')
  .option('--json', 'machine-readable output')
  .action(async (o) => {
    json ||= Boolean(o.json);
    const r = await withServices((s) => createOrg(s.db, s.audit, { name: o.name, enterpriseNumber: o.enterpriseNumber, adminEmail: o.adminEmail }, who));
    print(`organisation ${r.orgId} created\ninvite for ${r.invite.email} (main access admin), valid until ${new Date(r.invite.expiresAt).toISOString()}:\n${r.invite.token}\n(shown once: hand it over privately)`,
      { orgId: r.orgId, inviteId: r.invite.inviteId, email: r.invite.email, role: r.invite.role, inviteToken: r.invite.token, expiresAt: r.invite.expiresAt });
  });
org.command('list').description('list organisations').option('--json', 'machine-readable output').action(async (o) => {
  json ||= Boolean(o.json);
  const rows = await withServices((s) => s.db('orgs as o').leftJoin('users as u', 'u.org_id', 'o.id').groupBy('o.id', 'o.name', 'o.enterprise_number', 'o.created_at')
    .orderBy('o.name').select('o.id', 'o.name', 'o.enterprise_number', 'o.created_at').count({ users: 'u.id' })) as unknown as { id: string; name: string; enterprise_number: string; created_at: number; users: number }[];
  const list = rows.map((r) => ({ orgId: r.id, name: r.name, enterpriseNumber: r.enterprise_number, users: Number(r.users), createdAt: Number(r.created_at) }));
  print(list.length ? list.map((r) => `${r.orgId}  ${r.enterpriseNumber}  ${r.users} user(s)  ${r.name}`).join('\n') : 'no organisations', list);
});

org.command('admins').description("the organisation's main, backup and domain admins and its auditors")
  .requiredOption('--org <org>', 'organisation id or enterprise number')
  .option('--json', 'machine-readable output')
  .action(async (o) => {
    json ||= Boolean(o.json);
    const r = await withServices(async (s) => {
      const found = await findOrg(s, o.org);
      const admins = await listAdmins(s.db, found.id);
      await s.db.transaction((trx) => s.audit.append(trx, { ...who, orgId: found.id, action: 'admin.list', targetType: 'org', targetId: found.id, outcome: 'success', details: { count: admins.length } }));
      return { orgId: found.id, admins };
    });
    print(r.admins.length ? r.admins.map((a) => `${a.role.padEnd(13)} ${a.email}${a.status === 'active' ? '' : ` (${a.status})`}`).join('\n') : 'no admins', r);
  });
org.command('replace-main-admin').description('emergency: make a person of the organisation its main access admin now (the former one becomes a backup admin; audited)')
  .requiredOption('--org <org>', 'organisation id or enterprise number')
  .requiredOption('--email <email>', 'e-mail address of the new main access admin')
  .option('--json', 'machine-readable output')
  .action(async (o) => {
    json ||= Boolean(o.json);
    const r = await withServices(async (s) => {
      const found = await findOrg(s, o.org);
      const user = await s.db('users').where({ org_id: found.id, email: String(o.email).trim().toLowerCase() }).first('id');
      if (!user) throw new DomainError('not_found', `no person ${o.email} in this organisation`);
      return { orgId: found.id, ...(await replaceMainAdmin(s.db, s.audit, { ...who, orgId: found.id }, user.id)) };
    });
    print(`${o.email} is now the main access admin${r.formerMainAdmin ? ` (the former one, ${r.formerMainAdmin}, is a backup admin)` : ''}`, r);
  });

program.command('invite').description('invite someone into an organisation')
  .requiredOption('--org <org>', 'organisation id or enterprise number')
  .requiredOption('--email <email>', 'e-mail address')
  .addOption(new Option('--role <role>', 'role in the organisation').choices(OrgRole.options).default('member'))
  .option('--json', 'machine-readable output')
  .action(async (o) => {
    json ||= Boolean(o.json);
    const invite = await withServices(async (s) => {
      const found = await findOrg(s, o.org);
      if (o.role === 'main_admin' && (await s.db('users').where({ org_id: found.id, role: 'main_admin' }).first('id'))) {
        throw new DomainError('conflict', 'the organisation has its main access admin');
      }
      return s.db.transaction((trx) => insertInvite(trx, s.audit, { orgId: found.id, email: o.email, role: o.role, createdBy: null }, who));
    });
    print(`invite for ${invite.email} (${invite.role}), valid until ${new Date(invite.expiresAt).toISOString()}:\n${invite.token}`, { ...invite, inviteToken: invite.token });
  });

program.command('maintenance').description('apply version retention, compact packs and sweep orphan objects now')
  .option('--json', 'machine-readable output')
  .action(async (o) => {
    json ||= Boolean(o.json);
    // On PostgreSQL, not while a server node (or another kluis-admin) is running it (db/maintenance-lock.ts).
    const turn = await withServices((s) => withMaintenanceLock(s.config.databaseUrl, () => runMaintenance(s)));
    if (!turn.ran) return print('maintenance runs on another node: skipped (it does the same work)', { skipped: true, reason: 'maintenance runs on another node' });
    const r = turn.result;
    print(`retention: ${r.retention.expiredVersions} version(s) expired, ${r.retention.deadChunks} chunk(s) freed; compaction: ${r.compaction.packsRewritten} pack(s) rewritten, ${r.compaction.bytesFreed + r.sweep.bytesFreed} bytes freed`, r);
  });

const policy = program.command('policy').description('sharing policy by space class (docs/api.md "Policy")');
policy.command('show').description('what each class allows in an organisation, and whether it is the default')
  .requiredOption('--org <org>', 'organisation id or enterprise number')
  .option('--json', 'machine-readable output')
  .action(async (o) => {
    json ||= Boolean(o.json);
    const r = await withServices(async (s) => {
      const found = await findOrg(s, o.org);
      return { orgId: found.id, policies: await orgPolicies(s.db, found.id) };
    });
    const yes = (b: boolean) => (b ? 'yes' : 'no');
    print(Object.entries(r.policies).map(([c, x]) => `${c.padEnd(16)} links ${yes(x.linksAllowed)}, ${x.maxLinkDays} day(s), password ${x.passwordRequired ? 'required' : 'optional'}, downloads ${x.maxDownloads ?? 'any'}, other organisations ${yes(x.externalMembers)}${x.isDefault ? ' (default)' : ''}`).join('\n'), r);
  });
policy.command('set').description('change what one class allows in an organisation (options not given keep their current value)')
  .requiredOption('--org <org>', 'organisation id or enterprise number')
  .addOption(new Option('--class <class>', 'the space class').choices([...CLASS_ORDER]).makeOptionMandatory())
  .addOption(new Option('--links <yes|no>', 'whether share links are allowed').choices(['yes', 'no']))
  .option('--max-days <days>', 'longest life of a link (1-90)')
  .addOption(new Option('--password <required|optional>', 'whether links need a password').choices(['required', 'optional']))
  .option('--max-downloads <n|any>', 'most downloads a link may allow, or any')
  .addOption(new Option('--external <yes|no>', 'whether people of other organisations on this server may be members of such spaces or receive their files').choices(['yes', 'no']))
  .option('--default', 'go back to the documented default for this class')
  .option('--json', 'machine-readable output')
  .action(async (o) => {
    json ||= Boolean(o.json);
    const r = await withServices(async (s) => {
      const found = await findOrg(s, o.org);
      const cls = o.class as ClassName;
      let next: ClassPolicy | null = null;
      if (!o.default) {
        const { isDefault: _ignored, ...current } = (await orgPolicies(s.db, found.id))[cls];
        const parsed = ClassPolicy.safeParse({
          ...current,
          ...(o.links ? { linksAllowed: o.links === 'yes' } : {}),
          ...(o.maxDays !== undefined ? { maxLinkDays: Number(o.maxDays) } : {}),
          ...(o.password ? { passwordRequired: o.password === 'required' } : {}),
          ...(o.maxDownloads !== undefined ? { maxDownloads: o.maxDownloads === 'any' ? null : Number(o.maxDownloads) } : {}),
          ...(o.external ? { externalMembers: o.external === 'yes' } : {}),
        });
        if (!parsed.success) throw new DomainError('validation_failed', `${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`);
        next = parsed.data;
      }
      await s.db.transaction(async (trx) => {
        await setClassPolicy(trx, found.id, cls, next, null);
        await s.audit.append(trx, { ...who, orgId: found.id, action: 'policy.change', targetType: 'org', targetId: found.id, outcome: 'success', details: { classification: cls, policy: next ?? 'default' } });
      });
      return { orgId: found.id, classification: cls, policy: (await orgPolicies(s.db, found.id))[cls] };
    });
    print(`${r.classification} in ${r.orgId}: ${JSON.stringify(r.policy)}`, r);
  });

const totp = program.command('totp').description('2-step verification (docs/admin.md "The admin console")');
totp.command('reset').description("remove a person's authenticator (lost, and no other admin to reset it): they set up a new one at their next sign-in")
  .requiredOption('--email <email>', 'the account')
  .option('--json', 'machine-readable output')
  .action(async (o) => {
    json ||= Boolean(o.json);
    const r = await withServices(async (s) => {
      const email = Email.safeParse(o.email);
      if (!email.success) throw new DomainError('validation_failed', '--email: not an e-mail address');
      const user = await s.db('users').where({ email: email.data }).first('id', 'org_id');
      if (!user) throw new DomainError('not_found', `no account "${email.data}"`);
      const had = await s.db.transaction(async (trx) => {
        const removed = await clearAuthenticator(trx, user.id);
        await s.audit.append(trx, { ...who, orgId: user.org_id, action: 'totp.reset', targetType: 'user', targetId: user.id, outcome: 'success', details: { hadAuthenticator: removed } });
        return removed;
      });
      return { userId: user.id, email: email.data, hadAuthenticator: had };
    });
    print(r.hadAuthenticator ? `${r.email}: authenticator removed; a new one is set up at the next sign-in` : `${r.email} had no authenticator`, r);
  });

const audit = program.command('audit').description('the audit trail');
audit.command('verify').description('recompute the hash chain, demand the signed checkpoints the log must have, and refuse a log shorter than or different from the one verified before (docs/crypto.md §12)')
  .option('--state <file>', `the verifier's state file (default: $KLUIS_DATA_DIR/${AUDIT_STATE_FILE}); keep it off the server's disk`)
  .option('--no-state', 'read and write no state file (only the rules that need no memory)')
  .option('--require-state', 'fail if the state file does not exist (so that deleting it cannot reset the verifier)')
  .option('--json', 'machine-readable output')
  .action(async (o) => {
    json ||= Boolean(o.json);
    const r = await withServices(async (s) => {
      const file = o.state === false ? null : typeof o.state === 'string' ? path.resolve(o.state) : path.join(s.config.dataDir, AUDIT_STATE_FILE);
      // Verifying reads the whole trail: it is audited like any access (system-wide). A verification that passed
      // appends its entry to the chain it has just verified and records that entry in the state file (anchor.ts).
      const record = (r: AuditVerifyResult) => s.db.transaction(async (trx) => {
        const details: Record<string, number> = r.ok ? { entries: r.entries, checkpoints: r.checkpoints } : { entries: r.entries, brokenAt: r.firstBroken!.seq };
        const seq = await s.audit.append(trx, { orgId: null, ...who, action: 'audit.verify', outcome: r.ok ? 'success' : 'failed', details });
        const row = (await trx('audit_log').where({ seq }).first('hash')) as { hash: string };
        return { seq, hash: row.hash };
      });
      let v: Awaited<ReturnType<typeof verifyWithState>>;
      try {
        v = await verifyWithState(s.audit, { file, require: Boolean(o.requireState), onVerified: record });
      } catch (err) {
        if (err instanceof AuditStateError) throw new DomainError('validation_failed', err.message);
        throw err;
      }
      if (!v.ok || !v.state) await record(v);
      return v;
    }, (v) => v.ok); // never sign a checkpoint over a trail that did not verify
    const since = r.state?.previous ? `; earlier verified up to entry ${r.state.previous.seq} at ${new Date(r.state.previous.verifiedAt).toISOString()}` : r.state ? `; no earlier verification in ${r.state.file}` : '; no state file used';
    const human = r.ok
      ? `audit trail intact: ${r.entries} entries, ${r.checkpoints} signed checkpoints (newest at entry ${r.lastCheckpointSeq})${since}${r.state?.saved ? `; recorded entry ${r.state.saved.seq} in ${r.state.file}` : ''}`
      : `AUDIT TRAIL BROKEN at entry ${r.firstBroken!.seq}: ${r.firstBroken!.reason}`;
    print(human, r);
    if (!r.ok) process.exitCode = 1;
  });
audit.command('export').description('export an organisation\'s (or the system-wide) audit entries')
  .option('--org <org>', 'organisation id or enterprise number')
  .option('--system', 'the entries of no organisation instead (unknown addresses, requests without a session)')
  .addOption(new Option('--format <format>', 'output format').choices(['csv', 'json']).default('json'))
  .option('--since <time>', 'from this time (ISO 8601 or ms)')
  .option('--until <time>', 'up to this time (ISO 8601 or ms)')
  .option('--out <file>', 'write to a file instead of standard output')
  .option('--proofs', 'JSON: add the newest signed tree head and each entry\'s inclusion proof (checked offline by audit verify-export)')
  .action(async (o) => {
    if (Boolean(o.org) === Boolean(o.system)) throw new DomainError('validation_failed', 'give either --org or --system');
    await withServices(async (s) => {
      const orgId = o.system ? null : (await findOrg(s, o.org)).id;
      const filter = { orgId, since: parseTime(o.since, '--since'), until: parseTime(o.until, '--until') };
      const out = o.out ? createWriteStream(o.out, { mode: 0o600 }) : process.stdout;
      // A file is ended below (waiting for its close); exportAudit ending it too made --out fail with "Cannot call end after a stream was finished".
      await exportAudit(s.audit, filter, o.format, out, { proofs: Boolean(o.proofs), end: !o.out });
      await s.db.transaction((trx) => s.audit.append(trx, { orgId, ...who, action: 'audit.export', targetType: orgId ? 'org' : null, targetId: orgId, outcome: 'success', details: { format: o.format } }));
      if (o.out) await new Promise<void>((resolve, reject) => (out as ReturnType<typeof createWriteStream>).end((err?: Error | null) => (err ? reject(err) : resolve())));
    });
  });

registerWitnessCommands(audit, { print, setJson: (on) => { json ||= on; } });
registerDeviceCommands(program, { withServices, findOrg, print, setJson: (on) => { json ||= on; }, who });
registerIncidentCommands(program, { withServices, findOrg, print, setJson: (on) => { json ||= on; }, who });
registerBackupCommands(program, { withServices, findOrg, print, setJson: (on) => { json ||= on; }, who });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // Never the database password (config.ts), whatever the message quotes.
  // A database error quotes its whole statement before " - "; the reason after it is what an operator can act on.
  const internal = String((err as Error)?.message ?? err);
  const reason = internal.length > 300 && internal.includes(' - ') ? internal.slice(internal.lastIndexOf(' - ') + 3) : internal;
  const message = withoutDatabasePassword(err instanceof ConfigError ? `configuration error: ${err.message}` : err instanceof DomainError ? err.message : reason, process.env.KLUIS_DATABASE_URL);
  if (json) console.log(JSON.stringify({ error: { code: err instanceof DomainError ? err.code : 'internal', message } }));
  else console.error(`kluis-admin: ${message}`);
  process.exitCode = err instanceof DomainError && statusOf(err) < 500 ? 2 : 1;
  // It has said why it failed; nothing it left open (a pool's timer, a socket) may keep it from exiting.
  setTimeout(() => process.exit(), 5000).unref();
}
