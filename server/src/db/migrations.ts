// Numbered schema migrations, applied at start (Knex's migrator with an in-code source).
// A migration, once released, is never edited: add the next number. Times are integer ms since 1970 UTC;
// binary values are base64url text; ids are 16-byte base64url.
import type { Knex } from 'knex';
import { m003Membership } from './migration-003-membership.js';
import { m004Links } from './migration-004-links.js';
import { m005Policy } from './migration-005-policy.js';
import { m006FileShares } from './migration-006-file-shares.js';
import { m007FolderLinks } from './migration-007-folder-links.js';
import { m008FileRequests } from './migration-008-file-requests.js';
import { m010Admin } from './migration-010-admin.js';
import { m011DeviceWipe } from './migration-011-device-wipe.js';
import { m012Totp } from './migration-012-totp.js';
import { m013AuditIndexes } from './migration-013-audit-indexes.js';
import { m014AuditTsSeq } from './migration-014-audit-ts-seq.js';
import { m015AuditMerkle } from './migration-015-audit-merkle.js';
import { m016Incidents } from './migration-016-incidents.js';
import { m017BackupKeys } from './migration-017-backup-keys.js';
import { m018CacheGeneration } from './migration-018-cache-generation.js';
import { m019HeadCounter } from './migration-019-head-counter.js';

interface Migration {
  name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

const isSqlite = (knex: Knex) => String((knex.client as { dialect?: string }).dialect).startsWith('sqlite');

const m001: Migration = {
  name: '001_init',
  async up(knex) {
    await knex.schema.createTable('orgs', (t) => {
      t.string('id', 32).primary();
      t.string('name', 200).notNullable();
      t.string('enterprise_number', 10).notNullable().unique();
      t.bigInteger('created_at').notNullable();
    });
    await knex.schema.createTable('users', (t) => {
      t.string('id', 32).primary();
      t.string('org_id', 32).notNullable().references('orgs.id');
      t.string('email', 320).notNullable().unique();
      t.string('role', 20).notNullable(); // main_admin | backup_admin | domain_admin | auditor | member
      t.string('kdf_salt', 32).notNullable();
      t.integer('kdf_ops').notNullable();
      t.bigInteger('kdf_mem').notNullable();
      t.string('auth_verifier', 64).notNullable();
      t.string('enc_public_key', 64).notNullable();
      t.string('sign_public_key', 64).notNullable();
      t.string('identity_sig', 128).notNullable();
      t.text('key_bundle').notNullable(); // JSON KeyBundle (sealed secrets)
      t.bigInteger('created_at').notNullable();
      t.bigInteger('disabled_at');
      t.index(['org_id']);
    });
    await knex.schema.createTable('invites', (t) => {
      t.string('id', 32).primary();
      t.string('org_id', 32).notNullable().references('orgs.id');
      t.string('email', 320).notNullable();
      t.string('role', 20).notNullable();
      t.string('token_hash', 64).notNullable().unique();
      t.string('created_by', 32).references('users.id');
      t.bigInteger('created_at').notNullable();
      t.bigInteger('expires_at').notNullable();
      t.bigInteger('used_at');
    });
    await knex.schema.createTable('sessions', (t) => {
      t.string('id', 32).primary(); // the device id
      t.string('user_id', 32).notNullable().references('users.id');
      t.string('device_name', 200).notNullable();
      t.string('token_hash', 64).notNullable().unique();
      t.bigInteger('created_at').notNullable();
      t.bigInteger('last_seen_at').notNullable();
      t.bigInteger('expires_at').notNullable();
      t.bigInteger('revoked_at');
      t.string('client', 200);
      t.index(['user_id']);
    });
    await knex.schema.createTable('throttle', (t) => {
      t.string('key', 400).primary();
      t.integer('failures').notNullable();
      t.bigInteger('window_start').notNullable();
      t.bigInteger('locked_until').notNullable();
    });
    await knex.schema.createTable('domains', (t) => {
      t.string('id', 32).primary();
      t.string('org_id', 32).notNullable().references('orgs.id');
      t.string('name', 200).notNullable();
      t.unique(['org_id', 'name']);
    });
    await knex.schema.createTable('domain_admins', (t) => {
      t.string('domain_id', 32).notNullable().references('domains.id');
      t.string('user_id', 32).notNullable().references('users.id');
      t.primary(['domain_id', 'user_id']);
    });
    await knex.schema.createTable('spaces', (t) => {
      t.string('id', 32).primary();
      t.string('org_id', 32).notNullable().references('orgs.id');
      t.string('domain_id', 32).references('domains.id');
      t.string('name', 200).notNullable();
      t.string('classification', 32).notNullable();
      t.integer('key_epoch').notNullable();
      t.bigInteger('seq').notNullable(); // last assigned change-log sequence number
      t.integer('retention_days').notNullable();
      t.string('created_by', 32).notNullable().references('users.id');
      t.bigInteger('created_at').notNullable();
      t.index(['org_id']);
    });
    await knex.schema.createTable('space_epochs', (t) => {
      t.string('space_id', 32).notNullable().references('spaces.id');
      t.integer('key_epoch').notNullable();
      t.string('public_key', 64).notNullable();
      t.string('created_by', 32).notNullable().references('users.id');
      t.bigInteger('created_at').notNullable();
      t.primary(['space_id', 'key_epoch']);
    });
    await knex.schema.createTable('space_members', (t) => {
      t.string('space_id', 32).notNullable().references('spaces.id');
      t.string('user_id', 32).notNullable().references('users.id');
      t.string('role', 16).notNullable(); // viewer | editor | manager
      t.string('added_by', 32).notNullable().references('users.id');
      t.bigInteger('added_at').notNullable();
      t.primary(['space_id', 'user_id']);
      t.index(['user_id']);
    });
    await knex.schema.createTable('space_key_wraps', (t) => {
      t.string('space_id', 32).notNullable().references('spaces.id');
      t.integer('key_epoch').notNullable();
      t.string('user_id', 32).notNullable().references('users.id');
      t.text('wrap').notNullable(); // JSON SpaceKeyWrap
      t.bigInteger('created_at').notNullable();
      t.primary(['space_id', 'key_epoch', 'user_id']);
    });
    await knex.schema.createTable('files', (t) => {
      t.string('id', 32).primary();
      t.string('space_id', 32).notNullable().references('spaces.id');
      t.string('head_version_id', 32);
      t.bigInteger('created_at').notNullable();
      t.index(['space_id']);
    });
    await knex.schema.createTable('file_key_wraps', (t) => {
      t.string('file_id', 32).notNullable().references('files.id');
      t.integer('key_epoch').notNullable();
      t.string('recipient', 64).notNullable(); // X25519 public key the file key is sealed to
      t.text('wrap').notNullable(); // JSON FileKeyWrap
      t.bigInteger('created_at').notNullable();
      t.primary(['file_id', 'key_epoch', 'recipient']);
    });
    await knex.schema.createTable('versions', (t) => {
      t.string('id', 32).primary();
      t.string('file_id', 32).notNullable().references('files.id');
      t.string('space_id', 32).notNullable().references('spaces.id');
      t.bigInteger('seq').notNullable();
      t.string('parent_id', 32);
      t.integer('key_epoch').notNullable();
      t.binary('manifest').notNullable(); // sealed manifest (docs/crypto.md §8)
      t.boolean('deleted').notNullable();
      t.bigInteger('stored_bytes').notNullable(); // ciphertext bytes of its chunks (quota, retention)
      t.string('author_user_id', 32).notNullable().references('users.id');
      t.string('author_device_id', 32).notNullable();
      t.bigInteger('created_at').notNullable();
      t.bigInteger('expired_at'); // set when retention removed it from history
      t.unique(['space_id', 'seq']);
      t.index(['file_id']);
    });
    await knex.schema.createTable('version_chunks', (t) => {
      t.string('version_id', 32).notNullable().references('versions.id');
      t.integer('ord').notNullable();
      t.string('chunk_id', 64).notNullable();
      t.primary(['version_id', 'ord']);
      t.index(['chunk_id']);
    });
    await knex.schema.createTable('packs', (t) => {
      t.string('id', 32).primary();
      t.string('space_id', 32).notNullable().references('spaces.id');
      t.bigInteger('size').notNullable();
      t.bigInteger('dead_bytes').notNullable();
      t.string('state', 16).notNullable(); // live | retired (object deleted after its chunks moved)
      t.bigInteger('created_at').notNullable();
      t.index(['space_id', 'state']);
    });
    await knex.schema.createTable('chunks', (t) => {
      t.string('space_id', 32).notNullable().references('spaces.id');
      t.string('id', 64).notNullable();
      t.integer('length').notNullable(); // ciphertext bytes
      t.string('pack_id', 32).references('packs.id'); // null: an object of its own
      t.bigInteger('offset');
      t.boolean('live').notNullable(); // false once no retained version references it
      t.bigInteger('created_at').notNullable();
      t.primary(['space_id', 'id']);
      t.index(['pack_id']);
      t.index(['space_id', 'live']); // compaction: the dead standalone chunks of a space
    });
    await knex.schema.createTable('audit_log', (t) => {
      t.bigIncrements('seq').primary();
      t.string('org_id', 32); // null for system-wide events
      t.bigInteger('ts').notNullable();
      t.string('actor_user_id', 32);
      t.string('actor_device_id', 32);
      t.string('action', 64).notNullable();
      t.string('target_type', 32);
      t.string('target_id', 128);
      t.string('outcome', 16).notNullable(); // success | denied | failed
      t.string('ip', 64);
      t.string('user_agent', 300);
      t.string('client', 100);
      t.text('details'); // canonical JSON, never secrets or names
      t.string('prev_hash', 64).notNullable();
      t.string('hash', 64).notNullable();
      // seq is assigned by the audit log (last + 1, inside the appending transaction), never by the engine:
      // a PostgreSQL sequence is not transactional and would leave gaps on rollback.
      t.index(['org_id', 'seq']);
      t.index(['org_id', 'ts']);
      t.index(['actor_user_id', 'seq']);
      t.index(['target_id', 'seq']);
    });
    await knex.schema.createTable('audit_checkpoints', (t) => {
      t.bigInteger('seq').primary(); // audit_log.seq covered up to and including
      t.string('hash', 64).notNullable();
      t.bigInteger('ts').notNullable();
      t.string('signer', 64).notNullable(); // server Ed25519 public key
      t.string('signature', 128).notNullable();
    });
    // The audit log is append-only: the database itself refuses UPDATE and DELETE. It also refuses an INSERT
    // that does not extend the chain (seq must be last + 1 and prev_hash the last hash, or 64 zeros for the
    // first), and a checkpoint that does not name an existing entry's (seq, hash). verify() still recomputes
    // everything: someone with the database file can drop these triggers.
    if (isSqlite(knex)) {
      for (const table of ['audit_log', 'audit_checkpoints']) {
        await knex.raw(`CREATE TRIGGER ${table}_no_update BEFORE UPDATE ON ${table} BEGIN SELECT RAISE(ABORT, '${table} is append-only'); END`);
        await knex.raw(`CREATE TRIGGER ${table}_no_delete BEFORE DELETE ON ${table} BEGIN SELECT RAISE(ABORT, '${table} is append-only'); END`);
      }
      await knex.raw(`CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
        WHEN NEW.seq IS NOT COALESCE((SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1), 0) + 1
          OR NEW.prev_hash IS NOT COALESCE((SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1), '${'0'.repeat(64)}')
        BEGIN SELECT RAISE(ABORT, 'audit_log: an entry must extend the chain (seq = last + 1, prev_hash = last hash)'); END`);
      await knex.raw(`CREATE TRIGGER audit_checkpoints_entry BEFORE INSERT ON audit_checkpoints
        WHEN NOT EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq AND hash = NEW.hash)
        BEGIN SELECT RAISE(ABORT, 'audit_checkpoints: a checkpoint must name an existing entry (seq, hash)'); END`);
    } else {
      await knex.raw(`CREATE FUNCTION kluis_append_only() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql`);
      for (const table of ['audit_log', 'audit_checkpoints']) {
        await knex.raw(`CREATE TRIGGER ${table}_append_only BEFORE UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION kluis_append_only()`);
        // TRUNCATE fires no row trigger (sqlite has no TRUNCATE). Added to this branch before any PostgreSQL database
        // existed (the server could not open one before issue 21), so no released database lacks it.
        await knex.raw(`CREATE TRIGGER ${table}_no_truncate BEFORE TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION kluis_append_only()`);
      }
      await knex.raw(`CREATE FUNCTION kluis_audit_chain() RETURNS trigger AS $$
        DECLARE last_seq bigint; last_hash varchar(64);
        BEGIN
          SELECT seq, hash INTO last_seq, last_hash FROM audit_log ORDER BY seq DESC LIMIT 1;
          IF NEW.seq IS DISTINCT FROM COALESCE(last_seq, 0) + 1 OR NEW.prev_hash IS DISTINCT FROM COALESCE(last_hash, repeat('0', 64)) THEN
            RAISE EXCEPTION 'audit_log: an entry must extend the chain (seq = last + 1, prev_hash = last hash)';
          END IF;
          RETURN NEW;
        END $$ LANGUAGE plpgsql`);
      await knex.raw(`CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION kluis_audit_chain()`);
      await knex.raw(`CREATE FUNCTION kluis_audit_checkpoint_entry() RETURNS trigger AS $$
        BEGIN
          IF NOT EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq AND hash = NEW.hash) THEN
            RAISE EXCEPTION 'audit_checkpoints: a checkpoint must name an existing entry (seq, hash)';
          END IF;
          RETURN NEW;
        END $$ LANGUAGE plpgsql`);
      await knex.raw(`CREATE TRIGGER audit_checkpoints_entry BEFORE INSERT ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION kluis_audit_checkpoint_entry()`);
    }
  },
  async down() {
    throw new Error('001_init cannot be rolled back: restore from a backup');
  },
};

// Password reset with the recovery key (docs/api.md "Password reset"): one-use challenges, stored as tokenHash,
// valid 10 minutes.
const m002: Migration = {
  name: '002_recovery',
  async up(knex) {
    await knex.schema.createTable('recovery_challenges', (t) => {
      t.string('id', 32).primary();
      t.string('user_id', 32).notNullable().references('users.id');
      t.string('challenge_hash', 64).notNullable().unique();
      t.bigInteger('created_at').notNullable();
      t.bigInteger('expires_at').notNullable();
      t.bigInteger('used_at');
      t.index(['user_id']);
      t.index(['expires_at']);
    });
  },
  async down(knex) {
    await knex.schema.dropTable('recovery_challenges');
  },
};

// In numeric order (a released migration keeps its place; a database records which ones it ran).
const all: Migration[] = [m001, m002, m003Membership, m004Links, m005Policy, m006FileShares, m007FolderLinks, m008FileRequests, m010Admin, m011DeviceWipe, m012Totp, m013AuditIndexes, m014AuditTsSeq, m015AuditMerkle, m016Incidents, m017BackupKeys, m018CacheGeneration, m019HeadCounter];

/** Knex migration source over the in-code list above. */
export const migrations: Knex.MigrationSource<Migration> = {
  getMigrations: async () => all,
  getMigrationName: (m) => m.name,
  getMigration: async (m) => m,
};
