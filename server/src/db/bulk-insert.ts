// Multi-row INSERTs of many rows (a commit's files, versions, chunk lists and wraps: services/commit-batch.ts).
// On sqlite (issue 22) the rows of a part go as one JSON array bound to one statement read with json_each:
// Knex compiling a multi-row VALUES statement and node-sqlite3 converting its thousands of parameters on the main
// thread were a third of the server's CPU for a first sync of 10,000 small files; a kept statement with one string
// parameter leaves the parsing to sqlite on libuv's thread. Every value is still a bound parameter, the SQL text is
// built from the rows' own column names (code, never input), and sqlite reads JSON numbers as the 64-bit integers or
// doubles node-sqlite3 bound, booleans as 1 and 0 as it bound them, a Buffer (sent as hex, `unhex`) as the same BLOB.
// PostgreSQL keeps Knex's multi-row INSERT (its driver sends parameters in one message; nothing to gain there).
import type { Knex } from 'knex';
import { isPostgres } from './postgres.js';

/** Rows per sqlite statement: a part of a commit's versions is about 1.5 MB of JSON. */
const SQLITE_PART = 500;

/** The column expression of each column: a Buffer in any row makes it a BLOB column (`unhex`). */
function jsonInsert(table: string, columns: readonly string[], blob: ReadonlySet<string>): string {
  const fields = columns.map((c, i) => (blob.has(c) ? `unhex(value ->> ${i})` : `value ->> ${i}`));
  return `INSERT INTO ${table} (${columns.join(', ')}) SELECT ${fields.join(', ')} FROM json_each(?)`;
}

/**
 * Inserts `rows` (all with the same columns, in the same order) into `table`: on PostgreSQL in parts of `pgPart`
 * rows through Knex, on sqlite in parts of 500 as JSON. Fails as a plain INSERT would (constraints, foreign keys).
 */
export async function insertRows(trx: Knex, table: string, rows: readonly Record<string, unknown>[], pgPart: number): Promise<void> {
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0]!);
  const blob = new Set<string>();
  for (const row of rows) {
    const keys = Object.keys(row);
    if (keys.length !== columns.length || keys.some((k, i) => k !== columns[i])) throw new Error(`insertRows(${table}): rows with different columns`);
    for (const c of columns) if (Buffer.isBuffer(row[c])) blob.add(c);
  }
  if (isPostgres(trx)) {
    for (let i = 0; i < rows.length; i += pgPart) await trx(table).insert(rows.slice(i, i + pgPart));
    return;
  }
  const sql = jsonInsert(table, columns, blob);
  for (let i = 0; i < rows.length; i += SQLITE_PART) {
    const part = rows.slice(i, i + SQLITE_PART).map((row) => columns.map((c) => {
      const value = row[c];
      return Buffer.isBuffer(value) ? value.toString('hex') : value;
    }));
    await trx.raw(sql, [JSON.stringify(part)]);
  }
}
