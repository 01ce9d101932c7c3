// Rows in a backup are engine-neutral JSON (docs/backup.md §2.3): booleans as true/false (sqlite stores 0/1), integers
// as numbers, binary columns as {"$b": base64url}, so that a backup taken on sqlite restores into PostgreSQL and back.
import { fromBase64Url, toBase64Url } from '@kluis/shared';
import type { Knex } from 'knex';

export type ColumnKind = 'boolean' | 'binary' | 'number' | 'other';

/** The kind of every column of `table`, from the engine's own description. */
export async function columnKinds(db: Knex, table: string): Promise<Map<string, ColumnKind>> {
  const info = await db(table).columnInfo();
  const kinds = new Map<string, ColumnKind>();
  for (const [name, c] of Object.entries(info)) {
    const type = String(c.type).toLowerCase();
    kinds.set(name, type === 'boolean' ? 'boolean' : type === 'blob' || type === 'bytea' ? 'binary' : /int|numeric|decimal/.test(type) ? 'number' : 'other');
  }
  return kinds;
}

export function encodeRow(row: Record<string, unknown>, kinds: Map<string, ColumnKind>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(row)) {
    if (v === null || v === undefined) {
      out[name] = null;
      continue;
    }
    const kind = kinds.get(name) ?? 'other';
    if (kind === 'boolean') out[name] = v === true || v === 1 || v === '1';
    else if (kind === 'binary') out[name] = { $b: toBase64Url(v as Uint8Array) };
    else if (kind === 'number') out[name] = Number(v);
    else out[name] = v;
  }
  return out;
}

export function decodeRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(row)) {
    out[name] = v !== null && typeof v === 'object' && typeof (v as { $b?: unknown }).$b === 'string' ? Buffer.from(fromBase64Url((v as { $b: string }).$b)) : v;
  }
  return out;
}

/** Names of the migrations the database has run, in order: a restore needs the same schema. */
export async function appliedMigrations(db: Knex): Promise<string[]> {
  return ((await db('schema_migrations').orderBy('id').select('name')) as { name: string }[]).map((r) => r.name);
}
