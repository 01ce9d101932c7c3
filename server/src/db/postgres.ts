// The metadata database on PostgreSQL (KLUIS_DATABASE_URL), through the `pg` driver. The rest of the server sees the
// same Knex as on sqlite; what differs is kept here.
//
// One writer at a time. sqlite gives Kluis one writing transaction at a time (BEGIN IMMEDIATE, db.ts), and the code
// relies on it: a commit reads a file's head and then moves it, signup checks an e-mail and then inserts it, the
// audit chain reads its last entry and then extends it. So every read-write transaction here starts by taking one
// transaction-scoped advisory lock (WRITER_LOCK), across every process on the database (API nodes, kluis-admin).
// Taken first and held to COMMIT, it also orders every other lock after it, so transactions cannot deadlock on each
// other's row locks. It costs little: nearly every write transaction appends to the audit chain, which is one total
// order and so serialises them anyway (the chain's own lock, AUDIT_LOCK in services.ts, is then never contended). Plain
// statements outside transactions and read-only transactions ({ readOnly: true }) do not take it.
//
// Numbers. bigint columns (ms timestamps, seqs, byte counts) and COUNT(*) come back from `pg` as strings; here they
// come back as numbers, as on sqlite, whenever they are safe integers (all of Kluis's are), else as the string so
// that nothing is silently rounded (readers' Number.isSafeInteger checks then refuse it).
import { createRequire } from 'node:module';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { migrations } from './migrations.js';
import { knexLog } from './knex-log.js';

const require = createRequire(import.meta.url);
/* eslint-disable @typescript-eslint/no-explicit-any */
const ClientPg = require('knex/lib/dialects/postgres/index.js') as any;
const TransactionPg = require('knex/lib/dialects/postgres/execution/pg-transaction.js') as any;

/** Advisory lock keys (two int4: Kluis's namespace, then the lock), so that other users of the database can avoid them. */
export const LOCK_NAMESPACE = 0x4b4c5553; // "KLUS"
export const WRITER_LOCK = 1;
export const AUDIT_LOCK = 2;
const MIGRATION_LOCK = 3;
/** Session lock held for a whole maintenance run, so that it runs on one node at a time (maintenance-lock.ts). */
export const MAINTENANCE_LOCK = 4;

class WriterTransaction extends TransactionPg {
  begin(conn: unknown) {
    const begun = super.begin(conn) as Promise<unknown>;
    if ((this as any).readOnly) return begun;
    return begun.then(() => (this as any).query(conn, `SELECT pg_advisory_xact_lock(${LOCK_NAMESPACE}, ${WRITER_LOCK});`));
  }
}
class KluisPgClient extends ClientPg {
  transaction(...args: any[]) {
    return new (WriterTransaction as any)(this, ...args);
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

const INT8_OID = 20;
function parseInt8(text: string): number | string {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return parseInt8;
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

type PgConnection = { query(sql: string, cb: (err: Error | null) => void): void };

/** A Knex over the database; `readOnly` connections refuse writes (as sqlite's query_only read connections do). */
export function postgresKnex(url: string, options: { connections: number; readOnly?: boolean }): Knex {
  return knexFactory({
    client: KluisPgClient as unknown as typeof Knex.Client,
    connection: { connectionString: url, application_name: options.readOnly ? 'kluis-read' : 'kluis', keepAlive: true, types } as Knex.PgConnectionConfig,
    log: knexLog,
    pool: {
      min: 0,
      max: options.connections,
      afterCreate(conn: PgConnection, done: (err: Error | null, conn: unknown) => void) {
        // A node that hangs inside a transaction (stopped, cut off with its TCP connection still open) would hold the
        // writer lock for every node: the database ends such a session after a minute. No Kluis transaction waits
        // that long between statements (never on blob-store I/O: db.ts).
        const setting = options.readOnly ? 'SET default_transaction_read_only = on' : 'SET idle_in_transaction_session_timeout = 60000';
        conn.query(setting, (err) => done(err, conn));
      },
    },
  });
}

/**
 * Opens the PostgreSQL database and migrates it. Migrations run under a session advisory lock, so that nodes
 * starting together migrate one after the other (Knex's own migration lock would fail the second one instead).
 */
export async function openPostgres(url: string, migrate: boolean): Promise<Knex> {
  const db = postgresKnex(url, { connections: 10 });
  try {
    if (migrate) {
      const lock = new pg.Client({ connectionString: url, application_name: 'kluis-migrate' });
      lock.on('error', () => {}); // a dropped connection fails the query below; it must not crash the process
      await lock.connect();
      try {
        await lock.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACE, MIGRATION_LOCK]);
        await db.migrate.latest({ migrationSource: migrations, tableName: 'schema_migrations' });
      } finally {
        await lock.end(); // ends the session, and with it the lock
      }
    } else {
      await db.raw('select 1');
    }
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return db;
}

/** True for a Knex on PostgreSQL (the dialect branches of migrations and services). */
export function isPostgres(db: Knex): boolean {
  return String((db.client as { dialect?: unknown }).dialect) === 'postgresql';
}
