// The metadata database: sqlite (embedded, the default) or PostgreSQL (KLUIS_DATABASE_URL, postgres.ts). All SQL goes
// through Knex so that the same code runs on both (docs/architecture.md §8); engine-specific settings live here, in
// postgres.ts and in dialect branches of the migrations, never in services.
import { createRequire } from 'node:module';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { migrations } from './migrations.js';
import { DB_FILE, createDbFile } from '../data-dir.js';
import { openPostgres, postgresKnex } from './postgres.js';
import { knexLog } from './knex-log.js';
import { finalizeKept, keptStatement, runKept } from './sqlite-statements.js';

// Knex opens sqlite transactions with a deferred BEGIN: a transaction that reads and then writes fails with
// SQLITE_BUSY (no wait) when another process (kluis-admin beside the server) committed in between. BEGIN IMMEDIATE
// takes the write lock up front, so busy_timeout applies and transactions queue instead of failing.
const require = createRequire(import.meta.url);
/* eslint-disable @typescript-eslint/no-explicit-any */
const ClientSqlite3 = require('knex/lib/dialects/sqlite3/index.js') as any;
const TransactionSqlite = require('knex/lib/dialects/sqlite3/execution/sqlite-transaction.js') as any;
// A transaction opened with { readOnly: true } (a backup's snapshot on the query_only read connection) takes no write
// lock: a deferred BEGIN, whose first read fixes the snapshot it sees (WAL).
class ImmediateTransaction extends TransactionSqlite {
  begin(conn: unknown) {
    if ((this as any).readOnly) return (this as any).query(conn, 'BEGIN;');
    return (this as any).query(conn, 'BEGIN IMMEDIATE;');
  }
}
class KluisSqlite3Client extends ClientSqlite3 {
  transaction(...args: any[]) {
    return new (ImmediateTransaction as any)(this, ...args);
  }

  // Data statements through the connection's kept prepared statements (sqlite-statements.ts); the rest as Knex does.
  // The method choice is Knex's own (knex/lib/dialects/sqlite3/index.js).
  _query(connection: object, obj: any) {
    if (!obj.sql || !keptStatement(obj.sql)) return super._query(connection, obj);
    const m = obj.method;
    const method = m === 'insert' || m === 'update' ? (obj.returning ? 'all' : 'run') : m === 'counter' || m === 'del' ? 'run' : 'all';
    return runKept(connection, method, obj.sql, obj.bindings ?? []).then(({ response, context }) => {
      obj.response = response;
      obj.context = context;
      return obj;
    });
  }

  async destroyRawConnection(connection: object) {
    await finalizeKept(connection);
    return super.destroyRawConnection(connection);
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export type Db = Knex;
export type Tx = Knex.Transaction;

export interface DbOptions {
  /** Directory of the sqlite file (`kluis.sqlite3`). */
  dataDir: string;
  /** A PostgreSQL URL (KLUIS_DATABASE_URL): use it instead of the sqlite file. */
  url?: string;
  /** Apply pending migrations (default true). */
  migrate?: boolean;
}

type RawConnection = { run(sql: string, cb: (err: Error | null) => void): void };

/** A Knex over the sqlite file with `connections` pooled connections, each set up with `pragmas`. */
function sqliteKnex(dataDir: string, connections: number, pragmas: readonly string[]): Db {
  return knexFactory({
    client: KluisSqlite3Client as unknown as typeof Knex.Client,
    connection: { filename: path.join(dataDir, DB_FILE) },
    useNullAsDefault: true,
    log: knexLog,
    pool: {
      min: 1,
      max: connections,
      afterCreate(conn: RawConnection, done: (err: Error | null, conn: unknown) => void) {
        const next = (i: number): void => {
          if (i === pragmas.length) return done(null, conn);
          conn.run(pragmas[i]!, (err) => (err ? done(err, conn) : next(i + 1)));
        };
        next(0);
      },
    },
  });
}

/** Opens (creating if needed) the sqlite3 database with WAL, foreign keys and full fsync, then migrates. */
export async function openDatabase(options: DbOptions): Promise<Db> {
  if (options.url) return openPostgres(options.url, options.migrate !== false);
  // Created 0600 (in a 0700 directory) before sqlite opens it: it holds the password-sealed key bundles.
  createDbFile(options.dataDir);
  // One connection: sqlite has one writer anyway, and a single connection makes every transaction
  // serialisable without SQLITE_BUSY retries. Never await blob-store I/O inside a transaction.
  // busy_timeout: a writer of another process (the server's incident round or start-up checkpoint beside kluis-admin)
  // may hold the write lock for seconds on a loaded machine; transactions wait for it rather than fail.
  const db = sqliteKnex(options.dataDir, 1, ['PRAGMA busy_timeout = 30000', 'PRAGMA journal_mode = WAL', 'PRAGMA foreign_keys = ON', 'PRAGMA synchronous = FULL']);
  try {
    if (options.migrate !== false) {
      // Knex takes its migration lock (a write transaction) even when nothing is pending: look first, so that a tool
      // opening an up-to-date database never needs the write lock to start.
      const config = { migrationSource: migrations, tableName: 'schema_migrations' };
      const [, pending] = (await db.migrate.list(config)) as [unknown[], unknown[]];
      if (pending.length > 0) await db.migrate.latest(config);
    }
  } catch (err) {
    // Its pool would keep the process alive: a tool that could not open the database must exit, not hang.
    await db.destroy();
    throw err;
  }
  return db;
}

/**
 * Read-only connections to the same sqlite file (open it with openDatabase first), for the plain reads of hot
 * routes: session, membership, pages of changes. In WAL mode readers do not wait for the writer and see the last
 * COMMIT, so a read that starts after a write's promise resolved sees that write, as it would on the writer's
 * connection, but it does not queue behind the writer's transactions and their fsync. Not for reads that belong
 * in a transaction (use its `trx`). On PostgreSQL (`url`), read-only pooled connections to the same database.
 */
export function openReadDatabase(options: { dataDir: string; url?: string; connections?: number }): Db {
  // PostgreSQL: a pool of its own, so that plain reads never wait for a connection held by a transaction that
  // waits for the writer lock (postgres.ts); read-only, as sqlite's.
  if (options.url) return postgresKnex(options.url, { connections: options.connections ?? 4, readOnly: true });
  return sqliteKnex(options.dataDir, options.connections ?? 2, ['PRAGMA query_only = ON', 'PRAGMA busy_timeout = 5000']);
}

/** Milliseconds since 1970 UTC: every time column is an integer of these. */
export function nowMs(): number {
  return Date.now();
}
