// Prepared statements for the few plain reads every request makes (its session, its membership, a page of changes).
// Through Knex each of them is built, compiled to SQL, handed a pooled connection and prepared by sqlite anew: the
// profile of `GET changes` under load (scripts/bench/api.ts) put the sqlite3 wrapper's statement setup and Knex's
// query building at a quarter of the server's main thread. Here each SQL text is prepared once per connection and
// run again with new bindings.
//
// sqlite: connections of their own to the same file, read-only (query_only), in WAL mode like `services.read`: a read
// that starts after a write's promise resolved sees that write. node-sqlite3 queues the work of one connection and of
// one statement, so calls are spread over the connections in turn without a pool. PostgreSQL: the same SQL on the
// read pool's connections (`?` placeholders become `$n`), as named prepared statements (viaPg).
//
// Only portable SQL here (both engines run it), with `?` placeholders and never string-built values.
import { createRequire } from 'node:module';
import path from 'node:path';
import { DB_FILE } from '../data-dir.js';
import type { Db } from './db.js';
import type { StatementCounts } from './statement-count.js';

type Row = Record<string, unknown>;

export interface HotReads {
  readonly hot: true;
  /** Every row of `sql` with `bindings`. */
  all<T = Row>(sql: string, bindings: readonly unknown[]): Promise<T[]>;
  /** The first row, or undefined. */
  first<T = Row>(sql: string, bindings: readonly unknown[]): Promise<T | undefined>;
  close(): Promise<void>;
}

interface Statement {
  all(params: unknown[], cb: (err: Error | null, rows: Row[]) => void): void;
  finalize(cb: () => void): void;
}
interface Connection {
  prepare(sql: string, cb: (err: Error | null) => void): Statement;
  run(sql: string, cb: (err: Error | null) => void): void;
  close(cb: (err: Error | null) => void): void;
}

const require = createRequire(import.meta.url);

interface PgConnection {
  query(config: { name: string; text: string; values: unknown[] }, cb: (err: (Error & { code?: string }) | null, result: { rows: Row[] }) => void): void;
}
interface PgPool {
  acquireConnection(): Promise<PgConnection>;
  releaseConnection(conn: PgConnection): Promise<unknown>;
}

/**
 * The PostgreSQL side: connections of the read pool (counted with its statements), each SQL text a named prepared
 * statement (the `pg` driver parses it once per connection, then only binds and executes it; issue 21: parsing and
 * planning the page's and the key wraps' statements anew was most of PostgreSQL's time on `GET changes`). Texts here
 * are few (inList pads IN lists to powers of two). A statement whose result columns changed under it (`s.*` after
 * another node's migration added a column) fails with 0A000 once: it is then prepared again under a new name.
 */
function viaPg(read: Db, counts: StatementCounts | undefined): HotReads {
  const pool = read.client as unknown as PgPool;
  const prepared = new Map<string, { name: string; text: string }>();
  let names = 0;
  let closed = false;
  const statement = (sql: string) => {
    let st = prepared.get(sql);
    if (!st) {
      let n = 0;
      st = { name: `kluis_hot_${++names}`, text: sql.replace(/\?/g, () => `$${++n}`) };
      prepared.set(sql, st);
    }
    return st;
  };
  const run = (conn: PgConnection, st: { name: string; text: string }, bindings: readonly unknown[]) => new Promise<Row[]>((resolve, reject) => {
    conn.query({ name: st.name, text: st.text, values: [...bindings] }, (err, result) => (err ? reject(err) : resolve(result.rows)));
  });
  const all = async <T>(sql: string, bindings: readonly unknown[]): Promise<T[]> => {
    if (closed) throw new Error('hot reads: closed');
    if (counts) counts.read++;
    const st = statement(sql);
    const conn = await pool.acquireConnection();
    try {
      try {
        return (await run(conn, st, bindings)) as T[];
      } catch (err) {
        if ((err as { code?: string }).code !== '0A000') throw err;
        st.name = `kluis_hot_${++names}`;
        return (await run(conn, st, bindings)) as T[];
      }
    } finally {
      await pool.releaseConnection(conn);
    }
  };
  // The read pool is the caller's to destroy.
  return { hot: true, all, first: async <T>(sql: string, bindings: readonly unknown[]) => (await all<T>(sql, bindings))[0], close: async () => void (closed = true) };
}

/** Opens the hot reads of the database (`url` set: PostgreSQL through `read`; else the sqlite file in `dataDir`). */
export async function openHotReads(options: { dataDir: string; url?: string; read: Db; connections?: number; counts?: StatementCounts }): Promise<HotReads> {
  if (options.url) return viaPg(options.read, options.counts);
  const sqlite3 = require('sqlite3') as { Database: new (file: string, mode: number, cb: (err: Error | null) => void) => Connection; OPEN_READONLY: number };
  const file = path.join(options.dataDir, DB_FILE);
  const open = () => new Promise<Connection>((resolve, reject) => {
    const conn: Connection = new sqlite3.Database(file, sqlite3.OPEN_READONLY, (err) => (err ? reject(err) : resolve(conn)));
  });
  const exec = (conn: Connection, sql: string) => new Promise<void>((resolve, reject) => conn.run(sql, (err) => (err ? reject(err) : resolve())));
  const connections: { conn: Connection; statements: Map<string, Promise<Statement>> }[] = [];
  for (let i = 0; i < (options.connections ?? 2); i++) {
    const conn = await open();
    await exec(conn, 'PRAGMA query_only = ON');
    await exec(conn, 'PRAGMA busy_timeout = 5000');
    connections.push({ conn, statements: new Map() });
  }
  let turn = 0;
  let closed = false;
  const all = async <T>(sql: string, bindings: readonly unknown[]): Promise<T[]> => {
    if (closed) throw new Error('hot reads: closed');
    if (options.counts) options.counts.hot++;
    const c = connections[turn++ % connections.length]!;
    let prepared = c.statements.get(sql);
    if (!prepared) {
      // node-sqlite3 never calls back the runs of a statement that failed to prepare: wait for the prepare. A failed
      // one is not kept (its error goes to the callers that waited for it).
      prepared = new Promise<Statement>((resolve, reject) => {
        const st = c.conn.prepare(sql, (err) => (err ? reject(err) : resolve(st)));
      });
      c.statements.set(sql, prepared);
      prepared.catch(() => c.statements.delete(sql));
    }
    const st = await prepared;
    return new Promise<T[]>((resolve, reject) => st.all([...bindings], (err, rows) => (err ? reject(err) : resolve(rows as T[]))));
  };
  return {
    hot: true,
    all,
    first: async (sql, bindings) => (await all(sql, bindings))[0] as never,
    async close() {
      if (closed) return;
      closed = true;
      for (const c of connections) {
        // sqlite refuses to close a connection with live statements: finalize them first.
        const settled = await Promise.allSettled(c.statements.values());
        await Promise.all(settled.map((p) => (p.status === 'fulfilled' ? new Promise<void>((resolve) => p.value.finalize(resolve)) : undefined)));
        c.statements.clear();
        await new Promise<void>((resolve, reject) => c.conn.close((err) => (err ? reject(err) : resolve())));
      }
    },
  };
}

/** Whether `db` is the hot reads rather than a Knex. */
export function isHotReads(db: unknown): db is HotReads {
  return (db as { hot?: unknown }).hot === true;
}

/**
 * `?, ?, …` for an IN list of `values`, padded with its last value to a power of two (at most 512 values a call),
 * so that a few SQL texts, and so a few prepared statements, serve lists of every length. Repeats change nothing
 * in an IN list.
 */
export function inList(values: readonly unknown[]): { marks: string; bindings: unknown[] } {
  if (values.length === 0 || values.length > 512) throw new RangeError(`inList: 1 to 512 values, not ${values.length}`);
  let n = 1;
  while (n < values.length) n *= 2;
  const bindings = [...values];
  while (bindings.length < n) bindings.push(values[values.length - 1]);
  return { marks: new Array<string>(n).fill('?').join(', '), bindings };
}
