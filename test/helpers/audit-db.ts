// The audit tables as an attacker with the database file sees them: raw rows, and the triggers to drop first.
import type { Knex } from 'knex';

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
  const triggers = (await db('sqlite_master').select('name').where('type', 'trigger').whereIn('tbl_name', ['audit_log', 'audit_checkpoints'])) as { name: string }[];
  for (const { name } of triggers) await db.raw(`DROP TRIGGER "${name}"`);
}
