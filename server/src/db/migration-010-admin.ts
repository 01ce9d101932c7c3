// Delegated administration (issue 18; docs/admin.md "Roles"): one main access admin per organisation, enforced by the
// database; the two-step replacement of the main admin; people's status (blocked is users.disabled_at, offboarded
// adds offboarded_at); and the space memberships an admin asked to end that a manager's client must still sign
// (docs/admin.md "Offboarding").
import type { Knex } from 'knex';

export const m010Admin = {
  name: '010_admin',
  async up(knex: Knex): Promise<void> {
    // Before this migration two main admin invites of one organisation (kluis-admin org create, then invite --role
    // main_admin before the first was used) could both be used. The earliest such account stays main admin; the
    // others become backup admins, which keeps every right they used except appointing backup admins.
    const doubled = await knex('users').where({ role: 'main_admin' }).groupBy('org_id').havingRaw('COUNT(*) > 1').select('org_id');
    for (const { org_id: orgId } of doubled) {
      const [first] = await knex('users').where({ org_id: orgId, role: 'main_admin' }).orderBy([{ column: 'created_at' }, { column: 'id' }]).limit(1).select('id');
      await knex('users').where({ org_id: orgId, role: 'main_admin' }).whereNot({ id: first.id }).update({ role: 'backup_admin' });
    }
    // A partial unique index: the same statement on sqlite and PostgreSQL. A second main admin of an organisation
    // (whatever path writes it: API, kluis-admin, a bug) is refused by the database itself.
    await knex.raw("CREATE UNIQUE INDEX users_one_main_admin ON users (org_id) WHERE role = 'main_admin'");
    await knex.schema.alterTable('users', (t) => {
      t.bigInteger('offboarded_at');
    });
    await knex.schema.createTable('admin_successions', (t) => {
      t.string('id', 32).primary();
      t.string('org_id', 32).notNullable().references('orgs.id');
      t.string('successor_user_id', 32).notNullable().references('users.id');
      t.string('proposed_by', 32).notNullable().references('users.id');
      t.bigInteger('proposed_at').notNullable();
      t.bigInteger('expires_at').notNullable();
      t.string('confirmed_by', 32).references('users.id');
      t.bigInteger('confirmed_at');
      t.bigInteger('cancelled_at');
      t.index(['org_id']);
    });
    await knex.schema.createTable('pending_removals', (t) => {
      t.string('space_id', 32).notNullable().references('spaces.id');
      t.string('user_id', 32).notNullable().references('users.id');
      t.string('reason', 16).notNullable(); // offboard | admin
      t.string('requested_by', 32).references('users.id'); // null: the operator (kluis-admin)
      t.bigInteger('requested_at').notNullable();
      t.primary(['space_id', 'user_id']);
      t.index(['user_id']);
    });
    await knex.schema.alterTable('domain_admins', (t) => {
      t.index(['user_id']);
    });
  },
  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTable('pending_removals');
    await knex.schema.dropTable('admin_successions');
    await knex.schema.alterTable('users', (t) => t.dropColumn('offboarded_at'));
    await knex.raw('DROP INDEX users_one_main_admin');
  },
};
