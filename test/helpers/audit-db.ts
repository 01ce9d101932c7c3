// The audit tables as an attacker with the database file sees them: raw rows, and the triggers to drop first.
import type { Knex } from 'knex';
import * as k from '@kluis/shared';

/** One audit_log row as sqlite returns it (docs/crypto.md §12 names the fields). */
export interface AuditDbRow {
  seq: number;
  ts: number;
  org_id: string | null;
  actor_user_id: string | null;
  actor_device_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: string;
  ip: string | null;
  user_agent: string | null;
  client: string | null;
  details: string | null;
  prev_hash: string;
  hash: string;
}

/** What an attacker with the database file does first: drop the triggers that refuse UPDATE and DELETE. */
export async function dropTriggers(db: Knex): Promise<void> {
  if (!String((db.client as { dialect?: string }).dialect).startsWith('sqlite')) {
    // PostgreSQL: the tables' owner (the server's role, which the attacker holds) switches its triggers off.
    for (const table of ['audit_log', 'audit_checkpoints', 'audit_merkle', 'audit_tree_heads']) await db.raw(`ALTER TABLE ${table} DISABLE TRIGGER USER`);
    return;
  }
  const triggers = (await db('sqlite_master').select('name').where('type', 'trigger').whereIn('tbl_name', ['audit_log', 'audit_checkpoints', 'audit_merkle', 'audit_tree_heads'])) as { name: string }[];
  for (const { name } of triggers) await db.raw(`DROP TRIGGER "${name}"`);
}

/** The chained entry of a raw row (docs/crypto.md §12). */
export function chainEntryOf(r: AuditDbRow): Record<string, unknown> {
  return {
    seq: Number(r.seq), ts: Number(r.ts), orgId: r.org_id, actorUserId: r.actor_user_id, actorDeviceId: r.actor_device_id, action: r.action, targetType: r.target_type,
    targetId: r.target_id, outcome: r.outcome, ip: r.ip, userAgent: r.user_agent, client: r.client, details: r.details === null ? null : JSON.parse(r.details),
  };
}

/** What an attacker who rewrote entries does next: rebuild the Merkle tree log's stored subtrees from the entries. */
export async function rebuildMerkle(db: Knex): Promise<void> {
  await db('audit_merkle').delete();
  const tree = new k.MerkleFrontier();
  const rows = (await db('audit_log').orderBy('seq').select('*')) as AuditDbRow[];
  const nodes: { level: number; idx: number; hash: string }[] = [];
  for (const r of rows) for (const n of tree.push(k.fromHex(k.auditLeafHash(chainEntryOf(r))))) nodes.push({ level: n.level, idx: n.index, hash: k.toHex(n.hash) });
  for (let i = 0; i < nodes.length; i += 300) await db('audit_merkle').insert(nodes.slice(i, i + 300));
}

/** Cuts the Merkle tree log back to `size` entries: the subtrees over later entries, and the later tree heads. */
export async function cutMerkle(db: Knex, size: number): Promise<void> {
  await db('audit_merkle').whereRaw('(idx + 1) * (1 << level) > ?', [size]).delete();
  await db('audit_tree_heads').where('size', '>', size).delete();
}
