// Background maintenance (retention, compaction, the orphan sweep: services/maintenance.ts) on one node at a time.
// On PostgreSQL several API nodes and kluis-admin share the database and the object store, and two compactions of
// one space at once are not safe; so every run first tries the session advisory lock (LOCK_NAMESPACE,
// MAINTENANCE_LOCK) = (0x4b4c5553, 4) on a connection of its own, held for the whole run. A process that does not
// get it skips the run (the holder is doing the same work; the server tries again next round). The lock goes when
// the run ends and the connection closes, or when the process dies (the database ends its session, and with it the
// lock). The connection is idle during the run: a server setting `idle_session_timeout` (PostgreSQL 14+) shorter
// than a run would end it, and with it the lock, early; leave it at 0 (the default) for the kluis role.
// On sqlite one process owns the data directory: the run simply runs.
import pg from 'pg';
import { LOCK_NAMESPACE, MAINTENANCE_LOCK } from './postgres.js';

export type MaintenanceTurn<T> = { ran: true; result: T } | { ran: false };

/** Runs `fn` if this process gets the maintenance lock on the database at `url` (always, without a URL). */
export async function withMaintenanceLock<T>(url: string | undefined, fn: () => Promise<T>): Promise<MaintenanceTurn<T>> {
  if (!url) return { ran: true, result: await fn() };
  const lock = new pg.Client({ connectionString: url, application_name: 'kluis-maintenance', keepAlive: true });
  lock.on('error', () => {}); // a dropped connection (and with it the lock) must not crash the process mid-run
  await lock.connect();
  try {
    const got = await lock.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [LOCK_NAMESPACE, MAINTENANCE_LOCK]);
    if (!got.rows[0]?.ok) return { ran: false };
    return { ran: true, result: await fn() };
  } finally {
    await lock.end().catch(() => {}); // ends the session, and with it the lock
  }
}
