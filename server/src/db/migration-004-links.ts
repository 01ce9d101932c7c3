// Share links (docs/api.md "Share links", docs/crypto.md §9): one row per link, a snapshot of one version of one file,
// and the short-lived download tokens an access hands out. The link secret never reaches the server: a row holds
// the KDF parameters of a password link, hex(BLAKE2b-256(linkAuth)) and `wrapped` (the file key under linkKey);
// a token row holds only hex(BLAKE2b-256("kluis/token/v1" || token)).
import type { Knex } from 'knex';

export const m004Links = {
  name: '004_links',
  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable('links', (t) => {
      t.string('id', 32).primary(); // made by the client: bound into `wrapped`
      t.string('org_id', 32).notNullable().references('orgs.id');
      t.string('space_id', 32).notNullable().references('spaces.id');
      t.string('file_id', 32).notNullable().references('files.id');
      t.string('version_id', 32).notNullable().references('versions.id');
      t.text('kdf'); // JSON LinkKdf, null without a password
      t.string('auth_hash', 64).notNullable();
      t.string('wrapped', 128).notNullable();
      t.bigInteger('expires_at').notNullable();
      t.integer('max_downloads'); // null: no limit
      t.integer('downloads').notNullable();
      t.text('purpose').notNullable(); // the finality, shown in every access's audit entry
      t.string('created_by', 32).notNullable().references('users.id');
      t.bigInteger('created_at').notNullable();
      t.bigInteger('revoked_at');
      t.index(['created_by']);
      t.index(['space_id']);
    });
    await knex.schema.createTable('link_tokens', (t) => {
      t.string('token_hash', 64).primary();
      t.string('link_id', 32).notNullable().references('links.id');
      t.string('version_id', 32).notNullable();
      t.bigInteger('created_at').notNullable();
      t.bigInteger('expires_at').notNullable();
      t.index(['link_id']);
    });
  },
  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTable('link_tokens');
    await knex.schema.dropTable('links');
  },
};
