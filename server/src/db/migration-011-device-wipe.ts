// Device administration and remote wipe (docs/api.md "Device administration and remote wipe", docs/crypto.md §14).
// sessions.device_public_key: the Ed25519 key the client made for itself, registered once per session; it signs the
// wipe report. device_wipes: one row per ordered wipe; delivered_at when the device first learnt of it, reported_at
// and the signed report when it said what it removed. Rows are never deleted (they are the record an admin reads).
import type { Knex } from 'knex';

export const m011DeviceWipe = {
  name: '011_device_wipe',
  async up(knex: Knex): Promise<void> {
    await knex.schema.alterTable('sessions', (t) => {
      t.string('device_public_key', 64);
    });
    await knex.schema.createTable('device_wipes', (t) => {
      t.string('id', 32).primary(); // the order id the device signs
      t.string('device_id', 32).notNullable().unique().references('sessions.id');
      t.string('org_id', 32).notNullable().references('orgs.id');
      t.string('user_id', 32).notNullable().references('users.id');
      t.string('ordered_by', 32).references('users.id'); // null: ordered by the operator (kluis-admin)
      t.bigInteger('ordered_at').notNullable();
      t.bigInteger('delivered_at');
      t.bigInteger('reported_at');
      t.text('report'); // JSON WipeReport as signed
      t.string('signature', 128);
      t.index(['org_id']);
    });
  },
  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTable('device_wipes');
    await knex.schema.alterTable('sessions', (t) => {
      t.dropColumn('device_public_key');
    });
  },
};
