// Counts the SQL statements the server sends, per pool (write: the transactions, read: the Knex read pool, hot: the
// prepared hot reads), for /metrics (`kluis_db_statements_total`) and scripts/bench/api.ts, which divides them by the
// requests of a phase. Statements per request are the figure that query batching and the caches of db/cache.ts change.
import type { Db } from './db.js';

export interface StatementCounts {
  write: number;
  read: number;
  hot: number;
}

/** Starts counting the statements of `write` and `read` (Knex `query` events); hot reads add to `hot` themselves. */
export function countStatements(write: Db, read: Db): StatementCounts {
  const counts: StatementCounts = { write: 0, read: 0, hot: 0 };
  write.on('query', () => void counts.write++);
  // On sqlite the read pool is a Knex of its own; where it is the same object, its statements are counted once.
  if (read !== write) read.on('query', () => void counts.read++);
  return counts;
}
