// Which rows belong to an organisation's backup (docs/backup.md §3). Every table of the schema is named here, either
// with the query of one organisation's rows or with the reason it is left out; a backup refuses a database that has a
// table named nowhere, so a table added by a later migration cannot be left out silently.
// The list is in insertion order: a table comes after every table its foreign keys point at (restore inserts in this
// order, on PostgreSQL too, whose foreign keys are not deferrable).
import type { Knex } from 'knex';

type Db = Knex | Knex.Transaction;

export interface BackupTable {
  name: string;
  /** One organisation's rows of the table. */
  rows(db: Db, orgId: string): Knex.QueryBuilder;
  /** Columns that give the rows a stable order (the primary key). */
  order: string[];
  /**
   * Columns naming a user who may belong to another organisation (a colleague of another organisation in one of this
   * organisation's spaces). Restore leaves such a row out when that user is on neither the backup nor the server.
   */
  external?: string[];
}

const usersOf = (db: Db, orgId: string) => db('users').select('id').where({ org_id: orgId });
const spacesOf = (db: Db, orgId: string) => db('spaces').select('id').where({ org_id: orgId });
const sessionsOf = (db: Db, orgId: string) => db('sessions').select('id').whereIn('user_id', usersOf(db, orgId));
const byOrg = (table: string) => (db: Db, orgId: string) => db(table).where({ org_id: orgId });
const bySpace = (table: string) => (db: Db, orgId: string) => db(table).whereIn('space_id', spacesOf(db, orgId));

export const BACKUP_TABLES: readonly BackupTable[] = [
  { name: 'orgs', rows: (db, orgId) => db('orgs').where({ id: orgId }), order: ['id'] },
  { name: 'users', rows: byOrg('users'), order: ['id'] },
  { name: 'org_backup_keys', rows: byOrg('org_backup_keys'), order: ['org_id'] },
  { name: 'org_class_policy', rows: byOrg('org_class_policy'), order: ['org_id', 'classification'] },
  { name: 'org_security', rows: byOrg('org_security'), order: ['org_id'] },
  { name: 'incident_settings', rows: byOrg('incident_settings'), order: ['org_id'] },
  { name: 'domains', rows: byOrg('domains'), order: ['id'] },
  { name: 'domain_admins', rows: (db, orgId) => db('domain_admins').whereIn('domain_id', db('domains').select('id').where({ org_id: orgId })), order: ['domain_id', 'user_id'] },
  { name: 'invites', rows: byOrg('invites'), order: ['id'] },
  { name: 'sessions', rows: (db, orgId) => db('sessions').whereIn('user_id', usersOf(db, orgId)), order: ['id'] },
  { name: 'totp_secrets', rows: (db, orgId) => db('totp_secrets').whereIn('user_id', usersOf(db, orgId)), order: ['user_id'] },
  { name: 'totp_sessions', rows: (db, orgId) => db('totp_sessions').whereIn('session_id', sessionsOf(db, orgId)), order: ['session_id'] },
  { name: 'incident_networks', rows: (db, orgId) => db('incident_networks').whereIn('device_id', sessionsOf(db, orgId)), order: ['device_id', 'network'] },
  { name: 'admin_successions', rows: byOrg('admin_successions'), order: ['id'] },
  { name: 'device_wipes', rows: byOrg('device_wipes'), order: ['id'] },
  { name: 'spaces', rows: byOrg('spaces'), order: ['id'] },
  { name: 'space_epochs', rows: bySpace('space_epochs'), order: ['space_id', 'key_epoch'], external: ['created_by'] },
  { name: 'space_members', rows: bySpace('space_members'), order: ['space_id', 'user_id'], external: ['user_id', 'added_by'] },
  { name: 'space_key_wraps', rows: bySpace('space_key_wraps'), order: ['space_id', 'key_epoch', 'user_id'], external: ['user_id'] },
  { name: 'space_log', rows: bySpace('space_log'), order: ['space_id', 'seq'] },
  { name: 'pending_removals', rows: bySpace('pending_removals'), order: ['space_id', 'user_id'], external: ['user_id', 'requested_by'] },
  { name: 'files', rows: bySpace('files'), order: ['id'] },
  { name: 'file_key_wraps', rows: (db, orgId) => db('file_key_wraps').whereIn('file_id', db('files').select('id').whereIn('space_id', spacesOf(db, orgId))), order: ['file_id', 'key_epoch', 'recipient'] },
  { name: 'versions', rows: bySpace('versions'), order: ['id'], external: ['author_user_id'] },
  { name: 'version_chunks', rows: (db, orgId) => db('version_chunks').whereIn('version_id', db('versions').select('id').whereIn('space_id', spacesOf(db, orgId))), order: ['version_id', 'ord'] },
  // Retired packs have no chunk left and their object is on its way out (storage/sweep.ts).
  { name: 'packs', rows: (db, orgId) => bySpace('packs')(db, orgId).where({ state: 'live' }), order: ['id'] },
  { name: 'chunks', rows: bySpace('chunks'), order: ['space_id', 'id'] },
  { name: 'links', rows: byOrg('links'), order: ['id'] },
  { name: 'link_versions', rows: (db, orgId) => db('link_versions').whereIn('link_id', db('links').select('id').where({ org_id: orgId })), order: ['link_id', 'version_id'] },
  { name: 'file_shares', rows: byOrg('file_shares'), order: ['id'], external: ['recipient_user_id'] },
  { name: 'file_share_wraps', rows: (db, orgId) => db('file_share_wraps').whereIn('share_id', db('file_shares').select('id').where({ org_id: orgId })), order: ['share_id', 'key_epoch'] },
  { name: 'file_requests', rows: byOrg('file_requests'), order: ['id'] },
  { name: 'request_uploads', rows: (db, orgId) => db('request_uploads').whereIn('request_id', db('file_requests').select('id').where({ org_id: orgId })), order: ['version_id'] },
  { name: 'incidents', rows: byOrg('incidents'), order: ['id'] },
  { name: 'incident_notes', rows: (db, orgId) => db('incident_notes').whereIn('incident_id', db('incidents').select('id').where({ org_id: orgId })), order: ['id'] },
];

/** Tables no organisation's backup holds, and why (docs/backup.md §3). */
export const NOT_BACKED_UP: Readonly<Record<string, string>> = {
  audit_log: 'one chain for every organisation: the organisation\'s entries travel as a signed audit export (audit.json)',
  audit_checkpoints: 'signatures over the whole server\'s chain',
  audit_merkle: 'subtrees of the whole server\'s Merkle log',
  audit_tree_heads: 'signatures over the whole server\'s Merkle log',
  incident_entries: 'point at entries of the old chain by seq; the audit export keeps those entries',
  incident_cursor: 'the evaluator\'s place in the whole server\'s chain',
  throttle: 'failed sign-in counters of minutes, by address and network',
  recovery_challenges: 'one-use challenges valid for 10 minutes',
  link_tokens: 'download tokens valid for minutes',
  schema_migrations: 'the schema\'s own bookkeeping (a restore requires the same migrations)',
  schema_migrations_lock: 'the schema\'s own bookkeeping',
  sqlite_sequence: 'sqlite\'s own bookkeeping',
  cache_generation: 'the counter that tells the servers\' access caches to refresh (a restore\'s inserts bump it)',
};

/** Every table of the database, by engine. */
export async function databaseTables(db: Db): Promise<string[]> {
  const dialect = String((db.client as { dialect?: string }).dialect);
  if (dialect.startsWith('sqlite')) {
    const rows = (await db.raw("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")) as { name: string }[];
    return rows.map((r) => r.name);
  }
  const res = (await db.raw("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name")) as { rows: { name: string }[] };
  return res.rows.map((r) => r.name);
}

/** Tables of the database that this file does not name: a backup refuses to run while there is one. */
export async function unclassifiedTables(db: Db): Promise<string[]> {
  const known = new Set([...BACKUP_TABLES.map((t) => t.name), ...Object.keys(NOT_BACKED_UP)]);
  return (await databaseTables(db)).filter((t) => !known.has(t));
}
