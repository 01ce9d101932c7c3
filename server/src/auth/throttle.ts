// Login throttling: attempts are counted per e-mail and per IP address in a sliding window; past the limit the key is
// locked for a while. Counts live in the database so a restart does not reset them.
//
// An attempt is counted BEFORE the password (or signature) is checked, in one atomic statement per key that also
// reads the count back (reserveAttempt): N simultaneous wrong attempts then see counts 1..N, and only those within the
// limit go on to be checked; the others are refused with 429 without any check. A successful attempt gives its count
// back (or clears the key); a failed one keeps it and locks the key once the window is full. Checking first and
// counting afterwards, as before, let every request of a parallel burst pass the check before any was counted.
import type { Tx } from '../db/db.js';

export interface ThrottlePolicy {
  maxFailures: number;
  windowMs: number;
  lockMs: number;
}

export const EMAIL_POLICY: ThrottlePolicy = { maxFailures: 5, windowMs: 15 * 60_000, lockMs: 15 * 60_000 };
export const IP_POLICY: ThrottlePolicy = { maxFailures: 50, windowMs: 15 * 60_000, lockMs: 15 * 60_000 };

/** Runs `fn` in a transaction: Services['tx'] (group commit) on the server. */
export type RunTx = <T>(fn: (trx: Tx) => Promise<T>) => Promise<T>;

export interface ThrottleKey {
  key: string;
  policy: ThrottlePolicy;
}

interface Held extends ThrottleKey {
  /** The window the attempt was counted in: a refund or lock must not touch a later window. */
  windowStart: number;
}

type Row = { failures: number | string; window_start: number | string; locked_until: number | string };

function rowsOf(result: unknown): Row[] {
  // sqlite3 answers the rows; PostgreSQL a result object holding them.
  return (Array.isArray(result) ? result : (result as { rows: Row[] }).rows) as Row[];
}

/**
 * Counts one attempt on `key` unless it is locked, and returns the row as it is afterwards. One INSERT … ON CONFLICT
 * DO UPDATE … RETURNING statement (sqlite ≥ 3.35 and PostgreSQL alike): no other attempt can come between the
 * read and the increment. A window older than `windowMs` starts again at 1.
 */
async function countAttempt(trx: Tx, key: string, policy: ThrottlePolicy, now: number): Promise<{ failures: number; windowStart: number; lockedUntil: number }> {
  const expired = now - policy.windowMs;
  const result = await trx.raw(
    `INSERT INTO throttle (key, failures, window_start, locked_until) VALUES (?, 1, ?, 0)
     ON CONFLICT (key) DO UPDATE SET
       failures = CASE WHEN throttle.locked_until > ? THEN throttle.failures WHEN throttle.window_start < ? THEN 1 ELSE throttle.failures + 1 END,
       window_start = CASE WHEN throttle.locked_until > ? THEN throttle.window_start WHEN throttle.window_start < ? THEN ? ELSE throttle.window_start END
     RETURNING failures, window_start, locked_until`,
    [key, now, now, expired, now, expired, now],
  );
  const row = rowsOf(result)[0]!;
  return { failures: Number(row.failures), windowStart: Number(row.window_start), lockedUntil: Number(row.locked_until) };
}

/** Gives back one counted attempt of the window it was counted in. */
async function refund(trx: Tx, held: Held): Promise<void> {
  await trx('throttle').where({ key: held.key, window_start: held.windowStart }).andWhere('failures', '>', 0).decrement('failures', 1);
}

/** An attempt counted on every key of a request; settle it with fail() or succeed() once the check is done. */
export class Attempt {
  private settled = false;
  constructor(
    private readonly tx: RunTx,
    private readonly held: Held[],
  ) {}

  /**
   * The attempt failed (or, for attempts that always count, is done): it stays counted, and a key whose window is
   * full is locked for `lockMs`. The count includes attempts still being checked, so a success that was in flight
   * at that moment can leave a key locked one failure early: the safe side.
   */
  async fail(now = Date.now()): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await this.tx(async (trx) => {
      for (const h of this.held) {
        await trx('throttle').where({ key: h.key, window_start: h.windowStart }).andWhere('failures', '>=', h.policy.maxFailures)
          .update({ locked_until: now + h.policy.lockMs });
      }
    });
  }

  /** The attempt succeeded: its counts are given back, and the keys in `clear` are forgotten with their failures. */
  async succeed(clear: string[] = []): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await this.tx(async (trx) => {
      for (const h of this.held) {
        if (clear.includes(h.key)) await trx('throttle').where({ key: h.key }).delete();
        else await refund(trx, h);
      }
    });
  }
}

/**
 * Counts an attempt on every key, in this order, before the expensive check. Answers the Attempt, or the
 * milliseconds to wait when a key is locked or its window already holds `maxFailures` attempts (counted or in
 * flight); then nothing stays counted.
 */
export async function reserveAttempt(tx: RunTx, keys: ThrottleKey[], now = Date.now()): Promise<{ attempt: Attempt } | { waitMs: number }> {
  return tx(async (trx) => {
    const held: Held[] = [];
    for (const k of keys) {
      const row = await countAttempt(trx, k.key, k.policy, now);
      let waitMs = 0;
      if (row.lockedUntil > now) waitMs = row.lockedUntil - now;
      else if (row.failures > k.policy.maxFailures) {
        await refund(trx, { ...k, windowStart: row.windowStart });
        // Full with attempts still being checked: they will lock the key or give their counts back soon.
        waitMs = Math.max(1000, row.windowStart + k.policy.windowMs - now);
      }
      if (waitMs > 0) {
        for (const h of held) await refund(trx, h);
        return { waitMs };
      }
      held.push({ ...k, windowStart: row.windowStart });
    }
    return { attempt: new Attempt(tx, held) };
  });
}

/** Forgets the failures of a key (after a successful login or password reset). */
export async function clearFailures(tx: RunTx, key: string): Promise<void> {
  await tx((trx) => trx('throttle').where({ key }).delete());
}
