// The audit trail's time-range bounds on PostgreSQL (issue 18 benchmark, scripts/bench/audit-queries.ts). A search
// with a time range first reads the lowest and highest seq of the organisation's entries in it (audit/log.ts). On
// sqlite the (org_id, ts) index answers that alone: every index holds the row's seq (its rowid). A PostgreSQL index
// does not, so each entry of the range was fetched from the table (a month of a large organisation: hundreds of
// thousands of reads). (org_id, ts, seq) lets PostgreSQL answer from the index alone; it replaces (org_id, ts), which
// served nothing it does not. Nothing changes on sqlite.
import type { Knex } from 'knex';

const isSqlite = (knex: Knex) => String((knex.client as { dialect?: string }).dialect).startsWith('sqlite');

export const m014AuditTsSeq = {
  name: '014_audit_ts_seq',
  async up(knex: Knex): Promise<void> {
    if (isSqlite(knex)) return;
    await knex.schema.alterTable('audit_log', (t) => t.index(['org_id', 'ts', 'seq']));
    await knex.schema.alterTable('audit_log', (t) => t.dropIndex(['org_id', 'ts']));
  },
  async down(knex: Knex): Promise<void> {
    if (isSqlite(knex)) return;
    await knex.schema.alterTable('audit_log', (t) => t.index(['org_id', 'ts']));
    await knex.schema.alterTable('audit_log', (t) => t.dropIndex(['org_id', 'ts', 'seq']));
  },
};
