// Organisation backups (issue 20 §3; docs/backup.md): each organisation's backup public key (X25519), whose secret half
// the organisation keeps offline. `kluis-admin backup` seals to it and refuses an organisation without one.
import type { Knex } from 'knex';

export const m017BackupKeys = {
  name: '017_backup_keys',
  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable('org_backup_keys', (t) => {
      t.string('org_id', 32).primary().references('orgs.id');
      t.string('public_key', 64).notNullable(); // base64url, 32 bytes
      t.string('set_by', 32); // null: the operator (kluis-admin)
      t.bigInteger('set_at').notNullable();
    });
  },
  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTable('org_backup_keys');
  },
};
