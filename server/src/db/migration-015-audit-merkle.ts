// The audit trail's Merkle tree log (docs/crypto.md §12, "Merkle tree log"; issue 20 §2). Two append-only tables:
//
//   audit_merkle      the perfect subtrees of the tree over the entries: (level, idx) covers the entries with
//                     seq in [idx·2^level + 1, (idx+1)·2^level], hash is its RFC 9162 hash (hex). Level 0 holds the
//                     leaves. An append inserts its leaf and the subtrees it completes (two rows on average), and a
//                     proof reads O(log n) of them, never the leaves of the whole log.
//   audit_tree_heads  the signed tree heads (size, root, ts, signer, signature), written with each checkpoint.
//
// Existing entries are backfilled here (pages of 5000 by seq; about 2 rows per entry). Tree heads need the server's
// key, which a migration does not hold: the server signs one over the newest entry at its first start.
import type { Knex } from 'knex';
import { auditLeafHash, fromHex, initCrypto, MerkleFrontier, toHex, type CanonicalValue } from '@kluis/shared';
import { auditChainEntry, rowChainFields, type AuditRow } from '../audit/rows.js';

const isSqlite = (knex: Knex) => String((knex.client as { dialect?: string }).dialect).startsWith('sqlite');
const PAGE = 5000;
const INSERT_ROWS = 300;

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

async function backfill(knex: Knex): Promise<void> {
  await initCrypto();
  const tree = new MerkleFrontier();
  let after = 0;
  for (;;) {
    const rows = (await knex('audit_log').select('*').where('seq', '>', after).orderBy('seq', 'asc').limit(PAGE)) as AuditRow[];
    if (rows.length === 0) return;
    const nodes: { level: number; idx: number; hash: string }[] = [];
    for (const row of rows) {
      const seq = Number(row.seq);
      if (seq !== tree.size + 1) throw new Error(`audit_log: entry ${tree.size + 1} is missing; run kluis-admin audit verify before upgrading`);
      const details = row.details === null ? null : (JSON.parse(row.details) as { [key: string]: CanonicalValue });
      const leaf = auditLeafHash(auditChainEntry({ seq, ts: Number(row.ts), ...rowChainFields(row), details }));
      for (const n of tree.push(fromHex(leaf))) nodes.push({ level: n.level, idx: n.index, hash: toHex(n.hash) });
    }
    for (let i = 0; i < nodes.length; i += INSERT_ROWS) await knex('audit_merkle').insert(nodes.slice(i, i + INSERT_ROWS));
    after = Number(rows[rows.length - 1]!.seq);
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
    await backfill(knex);
  },
  async down(): Promise<void> {
    throw new Error('015_audit_merkle cannot be rolled back: the Merkle log is part of the audit trail');
  },
};
