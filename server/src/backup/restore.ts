// `kluis-admin restore DIR` (docs/backup.md §5): brings one organisation back into a server that does not have it.
// Order: check the whole backup (as `backup verify`), the key (before anything is written), the schema and that the
// organisation, its addresses and ids are new here; then the objects; then every row and the `org.restore` entry in ONE
// transaction. A failure before the commit leaves no row (objects already written stay; a second restore rewrites them).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ErrorCode, backupKeyPairFromSecret, contentHash, openBackupContentKey, openTotpSecret, sameBackupKey } from '@kluis/shared';
import type { OpenedServices } from '../services.js';
import type { Tx } from '../db/db.js';
import { DomainError } from '../domain-error.js';
import { BACKUP_TABLES } from './tables.js';
import { AUDIT_FILE, OBJECTS_FILE, parseObjectRecord, readRecords, tableFile, type BackupManifest } from './format.js';
import { appliedMigrations, decodeRow } from './rows.js';
import { checkBackup } from './verify.js';

/** Where restored organisations' audit exports are kept, under the data directory. */
export const AUDIT_ARCHIVE_DIR = 'audit-archive';
const INSERT_BATCH = 100;

export interface RestoreResult {
  orgId: string;
  backupId: string;
  rows: number;
  objects: number;
  auditEntries: number;
  /** The organisation's audit export from the backup, kept for `kluis-admin audit verify-export`. */
  auditArchive: string;
  /** Rows left out, by table: they name people of another organisation this server does not have (docs/backup.md §5). */
  skipped: Record<string, number>;
  /** TOTP secrets sealed under another server key: those people set up their authenticator again. */
  totpDropped: number;
}

function fail(message: string): never {
  throw new DomainError(ErrorCode.ValidationFailed, message);
}

async function* tableRows(dir: string, m: BackupManifest, contentKey: Uint8Array, table: string): AsyncGenerator<Record<string, unknown>> {
  const index = m.files.findIndex((f) => f.name === tableFile(table));
  if (index < 0) fail(`the backup has no ${tableFile(table)}: it was made with another schema`);
  for await (const rec of readRecords(path.join(dir, tableFile(table)), m.files[index]!, m.backupId, contentKey, index + 1)) {
    yield decodeRow(JSON.parse(Buffer.from(rec).toString('utf8')) as Record<string, unknown>);
  }
}

async function* fileRecords(dir: string, m: BackupManifest, contentKey: Uint8Array, name: string): AsyncGenerator<Uint8Array> {
  const index = m.files.findIndex((f) => f.name === name);
  yield* readRecords(path.join(dir, name), m.files[index]!, m.backupId, contentKey, index + 1);
}

export interface OpenedBackup {
  dir: string;
  manifest: BackupManifest;
  contentKey: Uint8Array;
}

/** Checks the whole backup (as `backup verify`) and opens it with the organisation's secret key; touches no server. */
export async function openBackup(dir: string, secretKey: Uint8Array): Promise<OpenedBackup> {
  const check = await checkBackup(dir);
  if (!check.ok) fail(`the backup does not verify: ${check.problem}`);
  const m = check.manifest!;
  const pair = backupKeyPairFromSecret(secretKey);
  if (!sameBackupKey(pair.publicKey, m.backupPublicKey)) fail(`this is not the backup key of the organisation of this backup (the backup is sealed to ${m.backupPublicKey}, the key given is ${pair.publicKey})`);
  try {
    return { dir, manifest: m, contentKey: openBackupContentKey(m.sealedKey, pair) };
  } catch {
    fail('the backup key does not open this backup');
  }
}

/** Restores an opened backup into the server of `s`. */
export async function restoreBackup(s: OpenedServices, opened: OpenedBackup, who: { client: string }): Promise<RestoreResult> {
  const { dir, manifest: m, contentKey } = opened;
  const schema = await appliedMigrations(s.db);
  if (schema.join('\n') !== m.schema.join('\n')) fail(`the backup was made with schema ${m.schema.at(-1) ?? '(none)'} and this server has ${schema.at(-1) ?? '(none)'}: restore with the server version that made it`);

  // The organisation must be new here: its id, enterprise number, addresses and ids.
  const orgs = [];
  for await (const row of tableRows(dir, m, contentKey, 'orgs')) orgs.push(row);
  if (orgs.length !== 1 || orgs[0]!.id !== m.orgId) fail('the backup\'s organisation row does not match its manifest');
  const org = orgs[0]! as { id: string; enterprise_number: string; name: string };
  if (await s.db('orgs').where({ id: org.id }).orWhere({ enterprise_number: org.enterprise_number }).first('id')) {
    throw new DomainError(ErrorCode.Conflict, `this server already has the organisation ${org.id} (${org.enterprise_number}): restore into a server without it`);
  }
  const emails: string[] = [];
  for await (const u of tableRows(dir, m, contentKey, 'users')) emails.push(String(u.email));
  for (let i = 0; i < emails.length; i += 500) {
    const taken = await s.db('users').whereIn('email', emails.slice(i, i + 500)).first('email');
    if (taken) throw new DomainError(ErrorCode.Conflict, `this server already has an account ${taken.email}`);
  }

  let objects = 0;
  const blobs = s.blobs.forOrg(m.orgId);
  for await (const rec of fileRecords(dir, m, contentKey, OBJECTS_FILE)) {
    const o = parseObjectRecord(rec);
    await blobs.put(o.key, o.bytes);
    objects++;
  }

  const auditParts: Uint8Array[] = [];
  for await (const rec of fileRecords(dir, m, contentKey, AUDIT_FILE)) auditParts.push(rec);
  const exported = Buffer.concat(auditParts);
  const archiveDir = path.join(s.config.dataDir, AUDIT_ARCHIVE_DIR);
  mkdirSync(archiveDir, { recursive: true, mode: 0o700 });
  const archive = path.join(archiveDir, `${m.orgId}-${m.backupId}.json`);
  writeFileSync(archive, exported, { mode: 0o600 });

  const skipped: Record<string, number> = {};
  let rows = 0;
  let totpDropped = 0;
  try {
    await s.db.transaction(async (trx: Tx) => {
      const known = new Map<string, boolean>();
      const userExists = async (id: string) => {
        if (!known.has(id)) known.set(id, Boolean(await trx('users').where({ id }).first('id')));
        return known.get(id)!;
      };
      const leftOutShares = new Set<string>();
      for (const t of BACKUP_TABLES) {
        let batch: Record<string, unknown>[] = [];
        const flush = async () => {
          if (batch.length) await trx(t.name).insert(batch);
          rows += batch.length;
          batch = [];
        };
        for await (const row of tableRows(dir, m, contentKey, t.name)) {
          let keep = true;
          for (const col of t.external ?? []) if (row[col] != null && !(await userExists(String(row[col])))) keep = false;
          if (t.name === 'file_share_wraps' && leftOutShares.has(String(row.share_id))) keep = false;
          if (!keep && (t.name === 'versions' || t.name === 'space_epochs')) {
            fail(`${t.name} of this organisation name a person of another organisation this server does not have (${t.external!.map((c) => row[c]).join(', ')}): restore that organisation first`);
          }
          if (t.name === 'totp_secrets') {
            try {
              openTotpSecret(s.totpKey, String(row.user_id), String(row.sealed));
            } catch {
              keep = false; // sealed under the key of the server that made the backup (docs/backup.md §5)
              totpDropped++;
              continue;
            }
          }
          if (!keep) {
            if (t.name === 'file_shares') leftOutShares.add(String(row.id));
            skipped[t.name] = (skipped[t.name] ?? 0) + 1;
            continue;
          }
          batch.push(row);
          if (batch.length >= INSERT_BATCH) await flush();
        }
        await flush();
      }
      await s.audit.append(trx, {
        orgId: m.orgId, action: 'org.restore', targetType: 'org', targetId: m.orgId, outcome: 'success', client: who.client,
        details: {
          backupId: m.backupId, backupCreatedAt: m.createdAt, sourceServerKey: m.serverPublicKey, rows, objects,
          auditEntries: m.counts.auditEntries, auditArchive: path.basename(archive), auditArchiveHash: contentHash(exported),
          skipped: Object.values(skipped).reduce((a, b) => a + b, 0), totpDropped,
        },
      });
    });
  } catch (err) {
    rmSync(archive, { force: true });
    throw err;
  } finally {
    contentKey.fill(0);
  }
  return { orgId: m.orgId, backupId: m.backupId, rows, objects, auditEntries: m.counts.auditEntries, auditArchive: archive, skipped, totpDropped };
}
