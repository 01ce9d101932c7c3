// Indexes for the audit trail's filters (issue 18 benchmark, scripts/bench/audit-queries.ts): every search is scoped
// to one organisation and pages by seq, so a filter on the action or the target needs (org_id, column, seq) to read
// just its page. Without them such a page walked the organisation's entries newest first until it had found 100: over
// 10 million entries, seconds for a rare action (device revocations, exports) or a single space. Measured before and
// after in the commit that added this migration. Building them on an existing trail takes a while at the first start
// (about a minute per 10 million entries on 2 cores): see docs/operations.md.
import type { Knex } from 'knex';

export const m013AuditIndexes = {
  name: '013_audit_indexes',
  async up(knex: Knex): Promise<void> {
    await knex.schema.alterTable('audit_log', (t) => {
      t.index(['org_id', 'action', 'seq']);
      t.index(['org_id', 'target_id', 'seq']);
    });
  },
  async down(knex: Knex): Promise<void> {
    await knex.schema.alterTable('audit_log', (t) => {
      t.dropIndex(['org_id', 'action', 'seq']);
      t.dropIndex(['org_id', 'target_id', 'seq']);
    });
  },
};
