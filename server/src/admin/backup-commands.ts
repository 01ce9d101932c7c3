// `kluis-admin backup keygen|key set|verify`, `kluis-admin backup --org O --out DIR` and `kluis-admin restore DIR`
// (docs/backup.md, docs/cli.md "kluis-admin backup"). Registered on the program of ./cli.ts, whose helpers it receives.
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { ErrorCode, fromBase64Url, generateBackupKeyPair, initCrypto, toBase64Url } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import { withMaintenanceLock } from '../db/maintenance-lock.js';
import { loadOrCreateServerSigningKey, loadServerSigningKeyFile } from '../audit/signing-key.js';
import { createBackup } from '../backup/create.js';
import { checkBackup } from '../backup/verify.js';
import { openBackup, restoreBackup } from '../backup/restore.js';
import type { AdminHelpers } from './device-commands.js';

export const SECRET_KEY_FORMAT = 'kluis-backup-secret-key/v1';

/** The 32-byte secret key from a key file's text (as keygen writes it) or from its bare base64url value. */
export function parseSecretKey(text: string): Uint8Array {
  const trimmed = text.trim();
  let value = trimmed;
  if (trimmed.startsWith('{')) {
    try {
      const doc = JSON.parse(trimmed) as { format?: unknown; secretKey?: unknown };
      if (doc.format !== SECRET_KEY_FORMAT || typeof doc.secretKey !== 'string') throw new Error('format');
      value = doc.secretKey;
    } catch {
      throw new DomainError(ErrorCode.ValidationFailed, `standard input: not a backup secret key (${SECRET_KEY_FORMAT})`);
    }
  }
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(value);
  } catch {
    throw new DomainError(ErrorCode.ValidationFailed, 'standard input: not a backup secret key (base64url)');
  }
  if (bytes.length !== 32) throw new DomainError(ErrorCode.ValidationFailed, 'standard input: a backup secret key is 32 bytes');
  return bytes;
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new DomainError(ErrorCode.ValidationFailed, 'give the secret key on standard input (restore DIR < backup-key.json), never as an argument');
  const parts: Buffer[] = [];
  for await (const p of process.stdin as AsyncIterable<Buffer>) parts.push(p);
  return Buffer.concat(parts).toString('utf8');
}

/** Options a subcommand of `backup` shares with `backup` itself are parsed by `backup` (commander): read either. */
function need(o: Record<string, unknown>, parent: Command, name: string, flag: string): string {
  const v = o[name] ?? parent.opts()[name];
  if (typeof v !== 'string' || v === '') throw new DomainError(ErrorCode.ValidationFailed, `give ${flag}`);
  return v;
}

export function registerBackupCommands(program: Command, h: AdminHelpers): void {
  const backup = program.command('backup').description('organisation backups sealed to the organisation\'s offline key (docs/backup.md)')
    .option('--org <org>', 'organisation id or enterprise number')
    .option('--out <dir>', 'a new (or empty) directory for the backup')
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      h.setJson(Boolean(o.json));
      if (!o.org || !o.out) throw new DomainError(ErrorCode.ValidationFailed, 'give --org and --out (or a subcommand: keygen, key set, verify)');
      const r = await h.withServices(async (s) => {
        const org = await h.findOrg(s, o.org);
        const key = s.config.serverKeyFile ? await loadServerSigningKeyFile(s.config.serverKeyFile) : await loadOrCreateServerSigningKey(s.config.dataDir);
        // Compaction and the sweep delete objects: not while a backup copies them (db/maintenance-lock.ts).
        const turn = await withMaintenanceLock(s.config.databaseUrl, () => createBackup(s, key, org.id, path.resolve(o.out)));
        if (!turn.ran) throw new DomainError(ErrorCode.Conflict, 'maintenance is running on another node: try again when it has finished');
        return turn.result;
      });
      h.print(`backup ${r.backupId} of ${r.orgId} written to ${r.dir}: ${r.rows} rows, ${r.objects} objects (${r.objectBytes} bytes), ${r.auditEntries} audit entries, ${r.bytes} bytes in all`, r);
    });

  backup.command('keygen').description('make an organisation backup key pair (offline): writes the secret key to FILE (0600) and prints the public key')
    .option('--out <file>', 'the secret key file to create (keep it offline)')
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      h.setJson(Boolean(o.json ?? backup.opts().json));
      await initCrypto();
      o.out = need(o, backup, 'out', '--out FILE');
      if (existsSync(o.out)) throw new DomainError(ErrorCode.Conflict, `${o.out} exists: not overwriting a key`);
      const pair = generateBackupKeyPair();
      writeFileSync(o.out, `${JSON.stringify({ format: SECRET_KEY_FORMAT, publicKey: pair.publicKey, secretKey: toBase64Url(pair.secretKey) })}\n`, { mode: 0o600, flag: 'wx' });
      pair.secretKey.fill(0);
      h.print(`secret key written to ${o.out} (keep it offline; restore reads it on standard input)\npublic key: ${pair.publicKey}\nregister it: kluis-admin backup key set --org ORG --public-key ${pair.publicKey}`, { publicKey: pair.publicKey, file: path.resolve(o.out) });
    });

  backup.command('key').description('the organisation\'s backup public key').command('set').description('register the organisation\'s backup public key (audited)')
    .option('--org <org>', 'organisation id or enterprise number')
    .requiredOption('--public-key <key>', 'the public key printed by backup keygen')
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      h.setJson(Boolean(o.json ?? backup.opts().json));
      await initCrypto();
      o.org = need(o, backup, 'org', '--org ORG');
      let bytes: Uint8Array | null = null;
      try {
        bytes = fromBase64Url(String(o.publicKey));
      } catch {
        bytes = null;
      }
      if (!bytes || bytes.length !== 32) throw new DomainError(ErrorCode.ValidationFailed, '--public-key: not a backup public key (32 bytes, base64url)');
      const r = await h.withServices(async (s) => {
        const org = await h.findOrg(s, o.org);
        return s.db.transaction(async (trx) => {
          const before = (await trx('org_backup_keys').where({ org_id: org.id }).first('public_key')) as { public_key: string } | undefined;
          if (before) await trx('org_backup_keys').where({ org_id: org.id }).update({ public_key: o.publicKey, set_by: null, set_at: Date.now() });
          else await trx('org_backup_keys').insert({ org_id: org.id, public_key: o.publicKey, set_by: null, set_at: Date.now() });
          await s.audit.append(trx, { ...h.who, orgId: org.id, action: 'backup.key.set', targetType: 'org', targetId: org.id, outcome: 'success', details: { publicKey: o.publicKey, replaced: before?.public_key ?? null } });
          return { orgId: org.id, publicKey: o.publicKey as string, replaced: before?.public_key ?? null };
        });
      });
      h.print(`backup key of ${r.orgId} set to ${r.publicKey}${r.replaced ? ` (it was ${r.replaced})` : ''}`, r);
    });

  backup.command('verify').description('check a backup completely without its secret key: manifest signature, every file\'s hash and size, the counts')
    .argument('<dir>', 'the backup directory')
    .option('--server-key <key>', 'trust only this server key (as published at /api/v1/info); without it the manifest\'s own key is used, which proves consistency, not origin')
    .option('--json', 'machine-readable output')
    .action(async (dir: string, o) => {
      h.setJson(Boolean(o.json ?? backup.opts().json));
      await initCrypto();
      const r = await checkBackup(dir, o.serverKey);
      const m = r.manifest;
      const summary = { ok: r.ok, problem: r.problem, files: r.files, bytes: r.bytes, backupId: m?.backupId ?? null, orgId: m?.orgId ?? null, createdAt: m?.createdAt ?? null, serverPublicKey: m?.serverPublicKey ?? null, backupPublicKey: m?.backupPublicKey ?? null, counts: m?.counts ?? null };
      h.print(r.ok
        ? `backup intact: ${m!.backupId} of ${m!.orgId}, made ${new Date(m!.createdAt).toISOString()}, signed by server key ${m!.serverPublicKey}; ${r.files} files, ${r.bytes} bytes, ${Object.values(m!.counts.rows).reduce((a, b) => a + b, 0)} rows, ${m!.counts.objects} objects, ${m!.counts.auditEntries} audit entries`
        : `BACKUP BROKEN: ${r.problem}`, summary);
      if (!r.ok) process.exitCode = 1;
    });

  program.command('restore').description('bring an organisation back from its backup into a server that does not have it; the secret backup key is read from standard input')
    .argument('<dir>', 'the backup directory')
    .option('--json', 'machine-readable output')
    .action(async (dir: string, o) => {
      h.setJson(Boolean(o.json));
      await initCrypto();
      const secretKey = parseSecretKey(await readStdin());
      // The backup and the key are checked before the server is opened: a wrong key writes nothing anywhere.
      const opened = await openBackup(path.resolve(dir), secretKey);
      secretKey.fill(0);
      const r = await h.withServices((s) => restoreBackup(s, opened, { client: h.who.client ?? 'kluis-admin' }));
      const skipped = Object.entries(r.skipped).map(([t, n]) => `${n} ${t}`).join(', ');
      h.print(`organisation ${r.orgId} restored from backup ${r.backupId}: ${r.rows} rows, ${r.objects} objects; its ${r.auditEntries} earlier audit entries are kept in ${r.auditArchive} (kluis-admin audit verify-export)${skipped ? `; left out (people of other organisations not on this server): ${skipped}` : ''}${r.totpDropped ? `; ${r.totpDropped} authenticator(s) to set up again` : ''}`, r);
    });
}
