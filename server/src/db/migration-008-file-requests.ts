// File requests, upload-only links (docs/api.md "File requests", docs/crypto.md §9.2). A request row holds its limits,
// the creator's signed grant (which the server passes on and never opens: the folder in it is sealed) and
// hex(BLAKE2b-256(requestAuth)); never the link's secret. Each version committed through a request has a row in
// request_uploads with its receipt; (request_id, slot) is unique, so a request never takes more than max_files files.
import type { Knex } from 'knex';

export const m008FileRequests = {
  name: '008_file_requests',
  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable('file_requests', (t) => {
      t.string('id', 32).primary(); // made by the client: bound into the grant
      t.string('org_id', 32).notNullable().references('orgs.id');
      t.string('space_id', 32).notNullable().references('spaces.id');
      t.integer('key_epoch').notNullable(); // the epoch the grant seals to: a rotation ends the request
      t.string('request_public_key', 64).notNullable();
      t.string('auth_hash', 64).notNullable();
      t.text('grant').notNullable(); // JSON UploadGrant
      t.bigInteger('expires_at').notNullable();
      t.integer('max_files').notNullable();
      t.integer('files').notNullable();
      t.bigInteger('bytes').notNullable(); // ciphertext stored through the request
      t.text('purpose').notNullable();
      t.string('created_by', 32).notNullable().references('users.id');
      t.bigInteger('created_at').notNullable();
      t.bigInteger('revoked_at');
      t.index(['created_by']);
      t.index(['space_id']);
    });
    await knex.schema.createTable('request_uploads', (t) => {
      t.string('version_id', 32).primary().references('versions.id');
      t.string('request_id', 32).notNullable().references('file_requests.id');
      t.string('file_id', 32).notNullable().references('files.id');
      t.integer('slot').notNullable();
      t.text('receipt').notNullable(); // JSON UploadReceipt
      t.bigInteger('created_at').notNullable();
      t.unique(['request_id', 'slot']);
      t.index(['file_id']);
    });
  },
  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTable('request_uploads');
    await knex.schema.dropTable('file_requests');
  },
};
