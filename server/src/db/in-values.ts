// `column IN (values)` for the long lists of a commit (its 500 files, versions and chunks: services/commit-batch.ts,
// commit-combiner.ts). On sqlite (issue 22) the list is one JSON parameter read with json_each instead of 500 bound
// parameters that node-sqlite3 converts one by one on the main thread (as UTF-8 bytes: json-bytes.ts); the plan is
// unchanged (EXPLAIN QUERY PLAN: SEARCH … USING INDEX (id=?) over the list). PostgreSQL keeps Knex's whereIn.
import type { Knex } from 'knex';
import { isPostgres } from './postgres.js';
import { jsonBytes } from './json-bytes.js';

/** `qb` with `column IN (values)` added (AND); an empty list matches no row, as Knex's whereIn. */
export function whereInValues<T extends Knex.QueryBuilder>(trx: Knex, qb: T, column: string, values: readonly string[]): T {
  if (isPostgres(trx)) return qb.whereIn(column, values as string[]) as T;
  return qb.whereRaw('?? IN (SELECT value FROM json_each(CAST(? AS TEXT)))', [column, jsonBytes(values)]) as T;
}
