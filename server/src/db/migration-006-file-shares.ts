// Direct shares (docs/api.md "Direct shares", docs/crypto.md §5 "Direct shares"): one file shared with one colleague
// of the same organisation. A share row says who may read which file; its wraps hold the file's key, one per key
// epoch, sealed to the colleague's encPublicKey (the server cannot open them). Revocation sets revoked_at: the row
// stays for the audit trail and for the sharer's list.
import type { Knex } from 'knex';

export const m006FileShares = {
  name: '006_file_shares',
  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable('file_shares', (t) => {
      t.string('id', 32).primary();
      t.string('org_id', 32).notNullable().references('orgs.id');
      t.string('space_id', 32).notNullable().references('spaces.id');
      t.string('file_id', 32).notNullable().references('files.id');
      t.string('recipient_user_id', 32).notNullable().references('users.id');
      t.string('role', 20).notNullable(); // 'viewer' (the only role a direct share gives)
      t.string('created_by', 32).notNullable().references('users.id');
      t.bigInteger('created_at').notNullable();
      t.bigInteger('revoked_at');
      t.index(['recipient_user_id']);
      t.index(['space_id', 'file_id']);
    });
    await knex.schema.createTable('file_share_wraps', (t) => {
      t.string('share_id', 32).notNullable().references('file_shares.id');
      t.integer('key_epoch').notNullable();
      t.text('wrap').notNullable(); // JSON FileKeyWrap sealed to the recipient
      t.string('created_by', 32).notNullable().references('users.id'); // the signer's account
      t.bigInteger('created_at').notNullable();
      t.primary(['share_id', 'key_epoch']);
    });
  },
  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTable('file_share_wraps');
    await knex.schema.dropTable('file_shares');
  },
};
