// Incidents (issue 20 §1; docs/admin.md "Incidents"): what the rules over the audit trail open, their timeline (the
// audit entries behind them, by seq), notes, per-organisation thresholds, the networks each device was seen from, and
// the evaluator's cursor. The cursor starts at the trail's head: rules apply to what happens after the upgrade, not to
// years of history read at the first start.
import type { Knex } from 'knex';

export const m016Incidents = {
  name: '016_incidents',
  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable('incidents', (t) => {
      t.string('id', 32).primary();
      t.string('org_id', 32).notNullable().references('orgs.id');
      t.string('rule', 32).notNullable();
      t.string('subject', 160).notNullable();
      t.string('severity', 16).notNullable(); // low | high | very_high
      t.string('status', 16).notNullable(); // open | acknowledged | escalated | closed
      t.text('details').notNullable(); // JSON: counts, thresholds (never names or content)
      t.string('owner_user_id', 32).references('users.id');
      t.bigInteger('opened_at').notNullable();
      t.bigInteger('updated_at').notNullable();
      t.bigInteger('closed_at');
      t.bigInteger('leak_at');
      t.bigInteger('deadline_at');
      t.bigInteger('notified_at'); // the mail to security advisors and admins went out
      t.integer('notify_attempts').notNullable().defaultTo(0);
      t.bigInteger('notify_due_at').notNullable().defaultTo(0); // a node sending it holds it until then (mail.ts)
      t.index(['org_id', 'status', 'opened_at']);
      t.index(['org_id', 'rule', 'subject', 'status']);
    });
    await knex.schema.createTable('incident_entries', (t) => {
      t.string('incident_id', 32).notNullable().references('incidents.id');
      t.bigInteger('seq').notNullable(); // audit_log.seq
      t.primary(['incident_id', 'seq']);
    });
    await knex.schema.createTable('incident_notes', (t) => {
      t.string('id', 32).primary();
      t.string('incident_id', 32).notNullable().references('incidents.id');
      t.string('author_user_id', 32).references('users.id');
      t.text('text').notNullable();
      t.bigInteger('created_at').notNullable();
      t.index(['incident_id', 'created_at']);
    });
    await knex.schema.createTable('incident_settings', (t) => {
      t.string('org_id', 32).primary().references('orgs.id');
      t.text('settings').notNullable(); // JSON IncidentSettings (only the fields changed from the defaults)
      t.bigInteger('updated_at').notNullable();
    });
    await knex.schema.createTable('incident_networks', (t) => {
      t.string('device_id', 32).notNullable();
      t.string('network', 64).notNullable();
      t.bigInteger('first_seen').notNullable();
      t.primary(['device_id', 'network']);
    });
    await knex.schema.createTable('incident_cursor', (t) => {
      t.integer('id').primary(); // always 1
      t.bigInteger('seq').notNullable(); // the last audit entry the rules have seen
      t.bigInteger('verified_at').notNullable(); // the last verification of the chain by the evaluator
    });
    const head = (await knex('audit_log').max({ seq: 'seq' }).first()) as { seq: number | string | null } | undefined;
    await knex('incident_cursor').insert({ id: 1, seq: Number(head?.seq ?? 0), verified_at: 0 });
  },
  async down(knex: Knex): Promise<void> {
    for (const table of ['incident_cursor', 'incident_networks', 'incident_settings', 'incident_notes', 'incident_entries', 'incidents']) await knex.schema.dropTable(table);
  },
};
