// The membership log of each space (docs/crypto.md §4.1): signed entries, one row each, in log order, and beside
// each key epoch the previous epoch's secret key sealed to it (the epoch chain). Entries are stored as the client
// sent them (canonical JSON); the server checks every rule before it stores one, and clients check them again.
import type { Knex } from 'knex';

export const m003Membership = {
  name: '003_membership_log',
  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable('space_log', (t) => {
      t.string('space_id', 32).notNullable().references('spaces.id');
      t.bigInteger('seq').notNullable();
      t.text('entry').notNullable();
      t.string('hash', 64).notNullable();
      t.bigInteger('created_at').notNullable();
      t.primary(['space_id', 'seq']);
    });
    await knex.schema.alterTable('space_epochs', (t) => {
      t.text('prev_sealed');
    });
  },
  async down(knex: Knex): Promise<void> {
    await knex.schema.alterTable('space_epochs', (t) => {
      t.dropColumn('prev_sealed');
    });
    await knex.schema.dropTable('space_log');
  },
};
