// Sharing policy per organisation and space class (docs/api.md "Policy"): one row per class an organisation's admins
// changed; classes without a row follow the documented defaults (shared/src/api/policy.ts).
import type { Knex } from 'knex';

export const m005Policy = {
  name: '005_class_policy',
  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable('org_class_policy', (t) => {
      t.string('org_id', 32).notNullable().references('orgs.id');
      t.string('classification', 32).notNullable();
      t.text('policy').notNullable();
      t.string('updated_by', 32);
      t.bigInteger('updated_at').notNullable();
      t.primary(['org_id', 'classification']);
    });
  },
  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTable('org_class_policy');
  },
};
