// Login throttling: failures are counted per e-mail and per IP address in a sliding window; past the limit the
// key is locked for a while. Counts live in the database so a restart does not reset them.
import type { Db } from '../db/db.js';

export interface ThrottlePolicy {
  maxFailures: number;
  windowMs: number;
  lockMs: number;
}

export const EMAIL_POLICY: ThrottlePolicy = { maxFailures: 5, windowMs: 15 * 60_000, lockMs: 15 * 60_000 };
export const IP_POLICY: ThrottlePolicy = { maxFailures: 50, windowMs: 15 * 60_000, lockMs: 15 * 60_000 };

/** Milliseconds until `key` may try again (0 = now). */
export async function lockedFor(db: Db, key: string, now = Date.now()): Promise<number> {
  const row = await db('throttle').where({ key }).first('locked_until');
  return row ? Math.max(0, Number(row.locked_until) - now) : 0;
}

/** Counts one failure; locks the key when the window holds too many. */
export async function recordFailure(db: Db, key: string, policy: ThrottlePolicy, now = Date.now()): Promise<void> {
  await db.transaction(async (trx) => {
    const row = await trx('throttle').where({ key }).first();
    if (!row || now - Number(row.window_start) > policy.windowMs) {
      await trx('throttle').insert({ key, failures: 1, window_start: now, locked_until: 0 }).onConflict('key').merge();
      return;
    }
    const failures = Number(row.failures) + 1;
    const lockedUntil = failures >= policy.maxFailures ? now + policy.lockMs : Number(row.locked_until);
    await trx('throttle').where({ key }).update({ failures, locked_until: lockedUntil });
  });
}

/** Forgets the failures of a key (after a successful login). */
export async function clearFailures(db: Db, key: string): Promise<void> {
  await db('throttle').where({ key }).delete();
}
