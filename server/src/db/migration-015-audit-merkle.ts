// The audit trail's Merkle tree log (docs/crypto.md §12, "Merkle tree log"; issue 20 §2). Two append-only tables:
//
//   audit_merkle      the perfect subtrees of the tree over the entries: (level, idx) covers the entries with
//                     seq in [idx·2^level + 1, (idx+1)·2^level], hash is its RFC 9162 hash (hex). Level 0 holds the
//                     leaves. An append inserts its leaf and the subtrees it completes (two rows on average), and a
//                     proof reads O(log n) of them, never the leaves of the whole log.
//   audit_tree_heads  the signed tree heads (size, root, ts, signer, signature), written with each checkpoint.
//
// Existing entries are backfilled here (catchUpMerkle: pages of 5000 by seq; about 2 rows per entry). Tree heads need the server's
// key, which a migration does not hold: the server signs one over the newest entry at its first start.
import type { Knex } from 'knex';
import { catchUpMerkle } from '../audit/merkle-store.js';

const isSqlite = (knex: Knex) => String((knex.client as { dialect?: string }).dialect).startsWith('sqlite');

async function appendOnly(knex: Knex, table: string): Promise<void> {
  if (isSqlite(knex)) {
    await knex.raw(`CREATE TRIGGER ${table}_no_update BEFORE UPDATE ON ${table} BEGIN SELECT RAISE(ABORT, '${table} is append-only'); END`);
    await knex.raw(`CREATE TRIGGER ${table}_no_delete BEFORE DELETE ON ${table} BEGIN SELECT RAISE(ABORT, '${table} is append-only'); END`);
  } else {
    // kluis_append_only() is migration 001's.
    await knex.raw(`CREATE TRIGGER ${table}_append_only BEFORE UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION kluis_append_only()`);
    await knex.raw(`CREATE TRIGGER ${table}_no_truncate BEFORE TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION kluis_append_only()`);
  }
}

export const m015AuditMerkle = {
  name: '015_audit_merkle',
  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable('audit_merkle', (t) => {
      t.integer('level').notNullable();
      t.bigInteger('idx').notNullable();
      t.string('hash', 64).notNullable();
      t.primary(['level', 'idx']);
    });
    await knex.schema.createTable('audit_tree_heads', (t) => {
      t.bigInteger('size').primary();
      t.string('root', 64).notNullable();
      t.bigInteger('ts').notNullable();
      t.string('signer', 64).notNullable();
      t.string('signature', 128).notNullable();
    });
    await appendOnly(knex, 'audit_merkle');
    await appendOnly(knex, 'audit_tree_heads');
    await catchUpMerkle(knex);
  },
  async down(): Promise<void> {
    throw new Error('015_audit_merkle cannot be rolled back: the Merkle log is part of the audit trail');
  },
};
