// 2-step verification (docs/admin.md "Two-step verification"): one authenticator per user, the sessions that passed
// it, and each organisation's 2-step policy. The secret is stored sealed with a server subkey (docs/crypto.md §12):
// a database dump alone does not reveal it. `last_step` is the newest RFC 6238 time step accepted: a code is
// accepted once, and never one older than the last.
import type { Knex } from 'knex';

export const m012Totp = {
  name: '012_totp',
  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable('totp_secrets', (t) => {
      t.string('user_id', 32).primary().references('users.id');
      t.string('sealed', 128).notNullable();
      t.bigInteger('created_at').notNullable();
      t.bigInteger('confirmed_at'); // null: enrolment started, not confirmed with a code
      t.bigInteger('last_step').notNullable();
    });
    await knex.schema.createTable('totp_sessions', (t) => {
      t.string('session_id', 32).primary().references('sessions.id');
      t.bigInteger('verified_at').notNullable();
    });
    await knex.schema.createTable('org_security', (t) => {
      t.string('org_id', 32).primary().references('orgs.id');
      t.boolean('totp_required_for_admins').notNullable();
      t.string('updated_by', 32);
      t.bigInteger('updated_at').notNullable();
    });
  },
  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTable('org_security');
    await knex.schema.dropTable('totp_sessions');
    await knex.schema.dropTable('totp_secrets');
  },
};
