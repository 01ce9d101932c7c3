// The stored Merkle tree log of the audit trail (docs/crypto.md §12 "Merkle tree log", migration 015): the perfect
// subtrees in `audit_merkle`, the signed tree heads in `audit_tree_heads`. Appending inserts a leaf and the subtrees
// it completes; roots and proofs read O(log n) stored subtrees in one query.
import {
  auditLeafHash,
  fromHex,
  initCrypto,
  MerkleFrontier,
  merkleConsistencyProof,
  merkleInclusionProof,
  merkleRootAt,
  signAuditTreeHead,
  toHex,
  type MerkleNodeReader,
  type CanonicalValue,
  type ServerSigningKey,
  type SignedTreeHead,
} from '@kluis/shared';
import type { Knex } from 'knex';
import type { Db, Tx } from '../db/db.js';
import { toInt } from './input.js';
import { auditChainEntry, rowChainFields, type AuditRow } from './rows.js';

/** Rows per multi-row INSERT of nodes (3 parameters each). */
const INSERT_ROWS = 300;

interface NodeRow {
  level: number | string;
  idx: number | string;
  hash: string;
}

interface HeadRow {
  size: number | string;
  root: string;
  ts: number | string;
  signer: string;
  signature: string;
}

/** A stored subtree the tree needs is missing: the Merkle tables are damaged (kluis-admin audit verify says where). */
export class AuditMerkleError extends Error {
  override name = 'AuditMerkleError';
}

function rowToHead(row: HeadRow): SignedTreeHead {
  return { size: toInt(row.size, 'tree head size'), root: row.root, ts: toInt(row.ts, 'tree head ts'), signer: row.signer, signature: row.signature };
}

/** Reads stored subtrees through `q` (the database or a transaction). */
export function merkleReader(q: Db | Tx): MerkleNodeReader {
  return async (nodes) => {
    if (nodes.length === 0) return [];
    const rows = (await q('audit_merkle')
      .select('level', 'idx', 'hash')
      .where((b) => {
        for (const n of nodes) void b.orWhere({ level: n.level, idx: n.index });
      })) as NodeRow[];
    const byKey = new Map(rows.map((r) => [`${Number(r.level)}/${Number(r.idx)}`, r.hash]));
    return nodes.map((n) => {
      const hash = byKey.get(`${n.level}/${n.index}`);
      if (hash === undefined || !/^[0-9a-f]{64}$/.test(hash)) throw new AuditMerkleError(`audit_merkle: subtree (${n.level}, ${n.index}) is missing or malformed`);
      return fromHex(hash);
    });
  };
}

/** The right edge of the stored tree of `size` leaves. */
export async function loadFrontier(q: Db | Tx, size: number): Promise<MerkleFrontier> {
  const parts = MerkleFrontier.parts(size);
  const hashes = await merkleReader(q)(parts);
  const frontier: Uint8Array[] = [];
  parts.forEach((p, i) => {
    frontier[p.level] = hashes[i]!;
  });
  return new MerkleFrontier(size, frontier);
}

/** Inserts nodes made by MerkleFrontier.push. */
export async function insertNodes(trx: Tx, nodes: readonly { level: number; index: number; hash: Uint8Array }[]): Promise<void> {
  const rows = nodes.map((n) => ({ level: n.level, idx: n.index, hash: toHex(n.hash) }));
  for (let i = 0; i < rows.length; i += INSERT_ROWS) await trx('audit_merkle').insert(rows.slice(i, i + INSERT_ROWS));
}

/** Signs and inserts the tree head of `size` leaves with `root` (hex). */
export async function insertTreeHead(trx: Tx, key: ServerSigningKey, size: number, root: string, ts: number): Promise<SignedTreeHead> {
  const head = { size, root, ts, signer: key.publicKey, signature: signAuditTreeHead({ size, root, ts }, key) };
  await trx('audit_tree_heads').insert(head).onConflict('size').ignore();
  return head;
}

/** MTH of the first `size` entries, hex. */
export async function rootAt(q: Db | Tx, size: number): Promise<string> {
  return toHex(await merkleRootAt(merkleReader(q), size));
}

export async function newestTreeHead(q: Db | Tx): Promise<SignedTreeHead | null> {
  const row = (await q('audit_tree_heads').select('*').orderBy('size', 'desc').first()) as HeadRow | undefined;
  return row ? rowToHead(row) : null;
}

export async function treeHeadOfSize(q: Db | Tx, size: number): Promise<SignedTreeHead | null> {
  const row = (await q('audit_tree_heads').select('*').where({ size }).first()) as HeadRow | undefined;
  return row ? rowToHead(row) : null;
}

/** Tree heads with size > after, oldest first. */
export async function listTreeHeads(q: Db | Tx, after: number, limit: number): Promise<SignedTreeHead[]> {
  const rows = (await q('audit_tree_heads').select('*').where('size', '>', after).orderBy('size', 'asc').limit(limit)) as HeadRow[];
  return rows.map(rowToHead);
}

/** The audit path of entry `seq` in the tree of `size` entries, hex. */
export async function inclusionPath(q: Db | Tx, seq: number, size: number): Promise<string[]> {
  return (await merkleInclusionProof(merkleReader(q), seq - 1, size)).map(toHex);
}

/** The consistency proof between the trees of `from` and `to` entries, hex. */
export async function consistencyPath(q: Db | Tx, from: number, to: number): Promise<string[]> {
  return (await merkleConsistencyProof(merkleReader(q), from, to)).map(toHex);
}

/**
 * Adds the Merkle subtrees of the entries that have none yet (migration 015 over an existing trail, or entries written
 * by a tool that knows only the chain), in pages of 5000 entries, one write transaction each; returns how many were
 * added. A trail that is complete (the usual case: every append writes its subtrees in its own transaction) costs one
 * read and never takes the write lock. Each page reads what it extends inside its own transaction, so an append by
 * another process (the server beside kluis-admin) between the check and the page is extended, never written twice.
 */
export async function catchUpMerkle(db: Knex): Promise<number> {
  await initCrypto();
  let added = 0;
  while (await merkleBehind(db)) {
    const n = await db.transaction((trx) => catchUpPage(trx));
    if (n === 0) break;
    added += n;
  }
  return added;
}

/** Whether some entry lacks its leaf: one statement, so one snapshot of both tables. */
async function merkleBehind(q: Knex): Promise<boolean> {
  const row = (await q
    .select(q('audit_log').max('seq').as('seq'), q('audit_merkle').where({ level: 0 }).max('idx').as('idx'))
    .first()) as { seq: number | string | null; idx: number | string | null } | undefined;
  const entries = row?.seq === null || row?.seq === undefined ? 0 : Number(row.seq);
  const leaves = row?.idx === null || row?.idx === undefined ? 0 : Number(row.idx) + 1;
  return leaves < entries;
}

/** The subtrees of up to 5000 entries after the last leaf; returns how many entries got theirs. */
async function catchUpPage(trx: Tx): Promise<number> {
  const last = (await trx('audit_merkle').where({ level: 0 }).max({ n: 'idx' }).first()) as { n: number | string | null } | undefined;
  const start = last?.n === null || last?.n === undefined ? 0 : Number(last.n) + 1;
  const tree = start > 0 ? await loadFrontier(trx, start) : new MerkleFrontier();
  const rows = (await trx('audit_log').select('*').where('seq', '>', tree.size).orderBy('seq', 'asc').limit(5000)) as AuditRow[];
  const nodes: ReturnType<MerkleFrontier['push']> = [];
  for (const row of rows) {
    const seq = Number(row.seq);
    if (seq !== tree.size + 1) throw new AuditMerkleError(`audit_log: entry ${tree.size + 1} is missing; run kluis-admin audit verify`);
    const details = row.details === null ? null : (JSON.parse(row.details) as { [key: string]: CanonicalValue });
    nodes.push(...tree.push(fromHex(auditLeafHash(auditChainEntry({ seq, ts: Number(row.ts), ...rowChainFields(row), details })))));
  }
  await insertNodes(trx, nodes);
  return rows.length;
}
