// `kluis-admin backup --org O --out DIR` (docs/backup.md): one organisation's rows, read in one snapshot, its objects
// and its audit entries, sealed to the organisation's backup key, with a manifest signed by the server.
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { ErrorCode, newBackupContentKey, newId, signBackupManifest, type ServerSigningKey } from '@kluis/shared';
import type { OpenedServices } from '../services.js';
import type { Tx } from '../db/db.js';
import { DomainError } from '../domain-error.js';
import { exportAudit } from '../audit/export.js';
import { fsyncDirSync } from '../fsync-dir.js';
import { BACKUP_TABLES, unclassifiedTables } from './tables.js';
import { AUDIT_FILE, BACKUP_FORMAT, MANIFEST_FILE, OBJECTS_FILE, RecordFileWriter, objectRecord, tableFile, type BackupFileEntry, type BackupManifest } from './format.js';
import { appliedMigrations, columnKinds, encodeRow } from './rows.js';

const PAGE = 2000;
const AUDIT_RECORD_BYTES = 1024 * 1024;

export interface BackupResult {
  backupId: string;
  orgId: string;
  dir: string;
  rows: number;
  objects: number;
  objectBytes: number;
  auditEntries: number;
  bytes: number;
}

/** An object the snapshot points at was deleted meanwhile (a compaction in another process, on sqlite). */
export class ObjectGoneError extends Error {
  override name = 'ObjectGoneError';
}

/** Refuses a directory that exists and is not empty; creates it (0700) otherwise. */
function prepareOut(dir: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (names.length) throw new DomainError(ErrorCode.Conflict, `${dir} is not empty: give a new directory for each backup`);
  mkdirSync(path.join(dir, 'tables'), { recursive: true, mode: 0o700 });
}

/**
 * Writes the backup of `orgId` into `dir`; the caller holds the maintenance lock. On sqlite that lock does not reach
 * the server's process, whose compaction may delete a pack the snapshot still names: then the half-written backup is
 * removed and a new snapshot taken (a compaction leaves the next snapshot consistent), up to `attempts` times.
 */
export async function createBackup(s: OpenedServices, key: ServerSigningKey, orgId: string, dir: string, attempts = 3): Promise<BackupResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createBackupOnce(s, key, orgId, dir);
    } catch (err) {
      if (!(err instanceof ObjectGoneError)) throw err;
      rmSync(dir, { recursive: true, force: true });
      if (attempt >= attempts) throw new DomainError(ErrorCode.Conflict, `${err.message} in ${attempts} snapshots in a row (maintenance is compacting): try again later`);
    }
  }
}

async function createBackupOnce(s: OpenedServices, key: ServerSigningKey, orgId: string, dir: string): Promise<BackupResult> {
  const opened: RecordFileWriter[] = [];
  try {
    return await writeBackup(s, key, orgId, dir, opened);
  } catch (err) {
    // Every file is closed before the caller removes the directory (createBackup's retry, or the failure).
    await Promise.all(opened.map((w) => w.discard()));
    throw err;
  }
}

async function writeBackup(s: OpenedServices, key: ServerSigningKey, orgId: string, dir: string, opened: RecordFileWriter[]): Promise<BackupResult> {
  const registered = (await s.db('org_backup_keys').where({ org_id: orgId }).first('public_key')) as { public_key: string } | undefined;
  if (!registered) throw new DomainError(ErrorCode.Conflict, 'the organisation has no backup key: generate one offline (kluis-admin backup keygen) and register its public half (kluis-admin backup key set)');
  const unknown = await unclassifiedTables(s.db);
  if (unknown.length) throw new DomainError(ErrorCode.Internal, `table(s) ${unknown.join(', ')} not classified for backups (server/src/backup/tables.ts): refusing to leave them out silently`);
  prepareOut(dir);
  const backupId = newId();
  const { contentKey, sealedKey } = newBackupContentKey(registered.public_key);
  const files: BackupFileEntry[] = [];
  let fileIndex = 0;
  const writer = (name: string) => {
    const w = new RecordFileWriter(path.join(dir, name), name, backupId, contentKey, ++fileIndex);
    opened.push(w);
    return w;
  };
  const rows: Record<string, number> = {};
  const objectKeys: string[] = [];
  const kinds = new Map<string, Map<string, 'boolean' | 'binary' | 'number' | 'other'>>();
  for (const t of BACKUP_TABLES) kinds.set(t.name, await columnKinds(s.db, t.name));

  // One snapshot for every table: sqlite's read transaction in WAL mode, PostgreSQL's REPEATABLE READ.
  const postgres = Boolean(s.config.databaseUrl);
  await s.read.transaction(async (trx: Tx) => {
    for (const t of BACKUP_TABLES) {
      const w = writer(tableFile(t.name));
      let n = 0;
      for (let offset = 0; ; offset += PAGE) {
        const page = (await t.rows(trx, orgId).select('*').orderBy(t.order).limit(PAGE).offset(offset)) as Record<string, unknown>[];
        for (const row of page) {
          await w.add(Buffer.from(JSON.stringify(encodeRow(row, kinds.get(t.name)!)), 'utf8'));
          if (t.name === 'packs') objectKeys.push(`spaces/${row.space_id}/packs/${row.id}`);
          if (t.name === 'chunks' && row.pack_id === null) objectKeys.push(`spaces/${row.space_id}/chunks/${row.id}`);
        }
        n += page.length;
        if (page.length < PAGE) break;
      }
      rows[t.name] = n;
      files.push(await w.close());
    }
  }, postgres ? { isolationLevel: 'repeatable read', readOnly: true } : { readOnly: true });

  // Objects are immutable and the maintenance lock keeps compaction and the sweep from deleting them meanwhile.
  const blobs = s.blobs.forOrg(orgId);
  const objects = writer(OBJECTS_FILE);
  let objectBytes = 0;
  for (const k of objectKeys) {
    const read = await blobs.get(k).catch((err: unknown) => {
      throw new ObjectGoneError(`object ${k} is missing (${(err as Error).message})`);
    });
    const parts: Buffer[] = [];
    for await (const p of read.stream as AsyncIterable<Buffer>) parts.push(p);
    const bytes = Buffer.concat(parts);
    objectBytes += bytes.length;
    await objects.add(objectRecord(k, bytes));
  }
  files.push(await objects.close());

  // The organisation's audit entries, as the export `kluis-admin audit verify-export` checks offline.
  const chunks: Buffer[] = [];
  const sink = new Writable({ write(c: Buffer, _e, cb) { chunks.push(c); cb(); } });
  const { entries: auditEntries } = await exportAudit(s.audit, { orgId }, 'json', sink, { proofs: true });
  const exported = Buffer.concat(chunks.map((c) => Buffer.from(c)));
  const audit = writer(AUDIT_FILE);
  for (let at = 0; at < exported.length; at += AUDIT_RECORD_BYTES) await audit.add(exported.subarray(at, at + AUDIT_RECORD_BYTES));
  files.push(await audit.close());

  const manifest: BackupManifest = {
    format: BACKUP_FORMAT, backupId, orgId, createdAt: Date.now(), serverPublicKey: key.publicKey, backupPublicKey: registered.public_key, sealedKey,
    schema: await appliedMigrations(s.db), files, counts: { rows, objects: objectKeys.length, objectBytes, auditEntries }, signature: '',
  };
  manifest.signature = signBackupManifest(manifest, key.secretKey);
  // Files first, each fsynced; the manifest last, so a directory with a manifest holds a whole backup.
  for (const f of files) {
    const fd = openSync(path.join(dir, f.name), 'r');
    fsyncSync(fd);
    closeSync(fd);
  }
  fsyncDirSync(path.join(dir, 'tables'));
  const tmp = path.join(dir, `.${MANIFEST_FILE}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(manifest, null, 1)}\n`, { mode: 0o600 });
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path.join(dir, MANIFEST_FILE));
  fsyncDirSync(dir);
  contentKey.fill(0);
  const total = Object.values(rows).reduce((a, b) => a + b, 0);
  await s.db.transaction((trx) => s.audit.append(trx, {
    orgId, action: 'org.backup', targetType: 'org', targetId: orgId, outcome: 'success', client: 'kluis-admin/0.1.0',
    details: { backupId, rows: total, objects: objectKeys.length, objectBytes, auditEntries, backupKey: registered.public_key },
  }));
  return { backupId, orgId, dir, rows: total, objects: objectKeys.length, objectBytes, auditEntries, bytes: files.reduce((a, f) => a + f.bytes, 0) };
}
