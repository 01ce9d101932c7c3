// The index's sqlite3 connection (index-db.ts): opened directly for every read and write, with Knex loaded on the same
// connection only when the index is created or migrated (and by tests that look at its schema).
import { createRequire } from 'node:module';
import type { Knex, knex as KnexFactory } from 'knex';
import type * as Sqlite3 from 'sqlite3';
import type { Database } from 'sqlite3';

// Lazy Knex (issue 22). Every statement of a sync goes straight to the one sqlite3 connection (writes as JSON
// parameters, index-writes.ts), and Knex (about 70 files with lodash, a tenth of a no-op `kluis sync --once`, about
// 6 MB of RSS) is loaded only to create or migrate the index. Knex then runs on that same connection
// (IndexSqlite3Client below), so there is still one connection, one writer.
const require = createRequire(import.meta.url);
export const PRAGMAS = ['PRAGMA journal_mode = WAL', 'PRAGMA foreign_keys = ON', 'PRAGMA synchronous = NORMAL', 'PRAGMA busy_timeout = 5000'];

/** Opens the sqlite3 file (read-write, created if missing: the driver's default, as Knex opened it). */
export function openConnection(filename: string): Promise<Database> {
  const sqlite3 = require('sqlite3') as typeof Sqlite3;
  return new Promise((resolve, reject) => {
    const conn: Database = new sqlite3.Database(filename, (err) => (err ? reject(err) : resolve(conn)));
  });
}

/* eslint-disable @typescript-eslint/no-explicit-any */
/**
 * A Knex instance on `conn`. Knex starts sqlite transactions with a deferred BEGIN, which fails at once with
 * SQLITE_BUSY when another process (a `kluis status` beside the engine) wrote in between. BEGIN IMMEDIATE takes the
 * write lock first, so busy_timeout applies. Same idea as server/src/db/db.ts.
 */
export function knexOn(conn: Database, filename: string): Knex {
  const knexFactory = require('knex') as typeof KnexFactory;
  const ClientSqlite3 = require('knex/lib/dialects/sqlite3/index.js') as any;
  const TransactionSqlite = require('knex/lib/dialects/sqlite3/execution/sqlite-transaction.js') as any;
  class ImmediateTransaction extends TransactionSqlite {
    begin(c: unknown) {
      return (this as any).query(c, 'BEGIN IMMEDIATE;');
    }
  }
  class IndexSqlite3Client extends ClientSqlite3 {
    transaction(...args: any[]) {
      return new (ImmediateTransaction as any)(this, ...args);
    }

    // The index's own connection (pragmas set when it was opened), closed by IndexDb.close, not by the pool.
    acquireRawConnection() {
      return Promise.resolve(conn);
    }

    async destroyRawConnection() {
      // IndexDb.close closes it
    }
  }
  // One connection: one writer, every transaction serialisable, no SQLITE_BUSY inside the process.
  return knexFactory({ client: IndexSqlite3Client as unknown as typeof Knex.Client, connection: { filename }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
}
/* eslint-enable @typescript-eslint/no-explicit-any */
