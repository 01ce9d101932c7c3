// Prepared statements for every query Knex sends to sqlite (issue 21 §2). node-sqlite3's `Database#all` and `#run`
// prepare the SQL text anew, run it and finalize it: three trips through libuv's thread pool and a compile per
// statement. The profile of `POST commits` (scripts/bench/api.ts) spent most of its database time there, on the
// write connection's ~10 statements a commit. Here each connection keeps its statements by SQL text (Knex builds the
// same text for the same query shape, with `?` placeholders), so a repeated statement costs one trip: bind and step.
//
// Only data statements are kept (SELECT, INSERT, UPDATE, DELETE, WITH): transaction control (BEGIN, SAVEPOINT with
// its per-transaction names, COMMIT), PRAGMAs and the migrations' DDL run as before. sqlite recompiles a kept statement
// by itself when the schema changed under it (sqlite3_prepare_v2). A bounded number per connection: the least recently
// used is finalized beyond it (node-sqlite3 runs a statement's calls in order, so its pending calls finish first).
// A statement that finished with SQLITE_DONE holds no lock; one that failed is reset before it is used again.

interface Statement {
  all(params: unknown[], cb: (this: Statement, err: Error | null, rows: unknown[]) => void): void;
  run(params: unknown[], cb: (this: Statement, err: Error | null) => void): void;
  reset(cb: () => void): void;
  finalize(cb?: () => void): void;
}
interface Connection {
  prepare(sql: string, cb: (err: Error | null) => void): Statement;
}

/** Kept statements of one connection, most recently used last. */
type Cache = Map<string, Promise<Statement>>;

const caches = new WeakMap<object, Cache>();
const KEEP = /^\s*(select|insert|update|delete|with)\b/i;

/** Most statements kept per connection. */
export const STATEMENTS_PER_CONNECTION = 256;

/** Whether `sql` is run through a kept statement. */
export function keptStatement(sql: string): boolean {
  return KEEP.test(sql);
}

function statementOf(conn: Connection, sql: string): Promise<Statement> {
  let found = caches.get(conn);
  if (!found) caches.set(conn, (found = new Map()));
  const cache = found;
  let prepared = cache.get(sql);
  if (prepared) {
    // Most recently used last: re-insert.
    cache.delete(sql);
    cache.set(sql, prepared);
    return prepared;
  }
  // node-sqlite3 never calls back the runs of a statement that failed to prepare: wait for the prepare. A failed one
  // is not kept (its error goes to the callers that waited for it, as Knex would have had it from `all`/`run`).
  prepared = new Promise<Statement>((resolve, reject) => {
    const st = conn.prepare(sql, (err) => (err ? reject(err) : resolve(st)));
  });
  cache.set(sql, prepared);
  prepared.catch(() => cache.get(sql) === prepared && cache.delete(sql));
  if (cache.size > STATEMENTS_PER_CONNECTION) {
    const [oldest, st] = cache.entries().next().value as [string, Promise<Statement>];
    cache.delete(oldest);
    st.then((s) => s.finalize(), () => undefined);
  }
  return prepared;
}

/**
 * Runs `sql` with `bindings` on `conn` through its kept statement: 'all' answers the rows, 'run' answers nothing but
 * leaves `lastID` and `changes` on the context, as node-sqlite3's Database methods do (Knex reads them from there).
 */
export async function runKept(conn: object, method: 'all' | 'run', sql: string, bindings: readonly unknown[]): Promise<{ response: unknown; context: unknown }> {
  const st = await statementOf(conn as Connection, sql);
  return new Promise((resolve, reject) => {
    const done = function (this: Statement, err: Error | null, rows?: unknown[]) {
      if (err) {
        st.reset(() => undefined);
        reject(err);
      } else resolve({ response: rows, context: this });
    };
    if (method === 'all') st.all([...bindings], done);
    else st.run([...bindings], done);
  });
}

/** Finalizes the kept statements of `conn` (before it closes: sqlite refuses to close a connection with statements). */
export async function finalizeKept(conn: object): Promise<void> {
  const cache = caches.get(conn);
  if (!cache) return;
  caches.delete(conn);
  const settled = await Promise.allSettled(cache.values());
  await Promise.all(settled.map((p) => (p.status === 'fulfilled' ? new Promise<void>((resolve) => p.value.finalize(resolve)) : undefined)));
}
