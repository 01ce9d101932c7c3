// Multi-row INSERTs of many rows (a commit's files, versions, chunk lists and wraps: services/commit-batch.ts). On
// sqlite (issue 22) the rows of a part go as one JSON array bound to one statement read with json_each: Knex compiling
// a multi-row VALUES statement and node-sqlite3 converting its thousands of parameters on the main thread were a third
// of the server's CPU for a first sync of 10,000 small files; a kept statement with one string parameter leaves the
// parsing to sqlite on libuv's thread (that parameter itself as UTF-8 bytes: json-bytes.ts). Every value is still a
// bound parameter, the SQL text is built from the rows' own column names (code, never input), and sqlite reads JSON
// numbers as the 64-bit integers or doubles node-sqlite3 bound, booleans as 1 and 0 as it bound them.
//
// Long values ride beside the JSON, in one BLOB parameter: a column of Buffers (a version's manifest) or of strings
// some of which are long (a wrap's JSON) gives each row an offset and a length into it, and the statement takes
// `substr` of the BLOB there (`CAST … AS TEXT` for strings, read as UTF-8 like a bound string). node-sqlite3 copies a
// Buffer parameter as it is, where a string parameter is flattened, measured and converted to UTF-8 on the main
// thread: with the manifests as hex and the wraps escaped inside the JSON, that conversion was most of W2's
// node-sqlite3 time on the server (18 MB of versions JSON per run).
//
// PostgreSQL keeps Knex's multi-row INSERT (its driver sends parameters in one message; nothing to gain there).
import type { Knex } from 'knex';
import { isPostgres } from './postgres.js';
import { jsonBytes } from './json-bytes.js';

/** Rows per sqlite statement: a part of a commit's versions is about 1.5 MB of JSON. */
const SQLITE_PART = 500;
/** A string column goes beside the JSON when one of its values has this many UTF-16 units. */
export const SIDE_MIN_CHARS = 256;

type Kind = 'json' | 'blob' | 'text';

/** How each column travels: a column of Buffers (and nulls) as a BLOB, one of strings with a long one as text. */
function columnKinds(table: string, columns: readonly string[], rows: readonly Record<string, unknown>[]): Kind[] {
  return columns.map((c) => {
    let buffers = 0;
    let strings = 0;
    let long = false;
    let others = 0;
    for (const row of rows) {
      const v = row[c];
      if (v === null || v === undefined) continue;
      if (Buffer.isBuffer(v)) buffers++;
      else if (typeof v === 'string') {
        strings++;
        if (v.length >= SIDE_MIN_CHARS) long = true;
      } else others++;
    }
    if (buffers && (strings || others)) throw new Error(`insertRows(${table}): column ${c} mixes Buffers with other values`);
    if (buffers) return 'blob';
    return long && !others ? 'text' : 'json';
  });
}

/** The statement: the side BLOB first (one parameter, named once through `side`), then the rows' JSON array. */
function jsonInsert(table: string, columns: readonly string[], kinds: readonly Kind[]): string {
  let at = 0;
  const fields = columns.map((_, i) => {
    const k = kinds[i]!;
    if (k === 'json') return `value ->> ${at++}`;
    const slice = `substr(side.b, (value ->> ${at}) + 1, value ->> ${at + 1})`;
    at += 2;
    return k === 'blob' ? slice : `CAST(${slice} AS TEXT)`;
  });
  return `WITH side(b) AS (SELECT ?) INSERT INTO ${table} (${columns.join(', ')}) SELECT ${fields.join(', ')} FROM json_each(CAST(? AS TEXT)), side`;
}

/** One part's parameters: the side BLOB (long values, in order) and the JSON array of rows (UTF-8, jsonBytes). */
function partParams(columns: readonly string[], kinds: readonly Kind[], rows: readonly Record<string, unknown>[]): [Buffer, Buffer] {
  const pieces: Buffer[] = [];
  let offset = 0;
  const out = rows.map((row) => {
    const values: unknown[] = [];
    columns.forEach((c, i) => {
      const v = row[c];
      if (kinds[i] === 'json') return void values.push(v);
      if (v === null || v === undefined) return void values.push(null, null);
      const bytes = Buffer.isBuffer(v) ? v : Buffer.from(v as string, 'utf8');
      pieces.push(bytes);
      values.push(offset, bytes.length);
      offset += bytes.length;
    });
    return values;
  });
  return [Buffer.concat(pieces, offset), jsonBytes(out)];
}

/**
 * Inserts `rows` (all with the same columns, in the same order) into `table`: on PostgreSQL in parts of `pgPart`
 * rows through Knex, on sqlite in parts of 500 as JSON. Fails as a plain INSERT would (constraints, foreign keys).
 */
export async function insertRows(trx: Knex, table: string, rows: readonly Record<string, unknown>[], pgPart: number): Promise<void> {
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0]!);
  for (const row of rows) {
    const keys = Object.keys(row);
    if (keys.length !== columns.length || keys.some((k, i) => k !== columns[i])) throw new Error(`insertRows(${table}): rows with different columns`);
  }
  const kinds = columnKinds(table, columns, rows);
  if (isPostgres(trx)) {
    for (let i = 0; i < rows.length; i += pgPart) await trx(table).insert(rows.slice(i, i + pgPart));
    return;
  }
  const sql = jsonInsert(table, columns, kinds);
  for (let i = 0; i < rows.length; i += SQLITE_PART) await trx.raw(sql, partParams(columns, kinds, rows.slice(i, i + SQLITE_PART)));
}
