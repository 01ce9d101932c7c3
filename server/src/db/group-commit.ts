// Group commit: many small transactions (an audit entry per read, a one-version commit) share ONE database
// transaction and so one COMMIT (one fsync with synchronous=FULL) instead of one each.
//
// `run(fn)` queues the work function. While a group is committing the next one collects; when the database
// is free the waiting functions (at most `maxGroup`) run one after the other inside one transaction, each in a
// savepoint of its own (a Knex nested transaction: SAVEPOINT / RELEASE, or ROLLBACK TO when it throws). So a
// function that throws loses only its own writes and gets its own error; the others commit together. No
// promise settles before the COMMIT: a caller that answers after `await run(...)` answers only once its writes
// (its audit entry) are durable. Alone in the queue, a function runs in a plain transaction right away: there
// is no timer and no added latency when the server is idle.
//
// Savepoints are standard SQL, so this works unchanged on PostgreSQL.
//
// Contract for `fn`:
// - database work through `trx` only, nothing slow besides (no blob-store or network I/O: the whole group
//   waits for it), and no query through the pool (`services.db`) inside it: with one pooled connection that
//   waits for the group, i.e. for itself;
// - it may run more than once: if the group's transaction breaks under it (a savepoint cannot be rolled back,
//   as when sqlite rolled the whole transaction back after an I/O error), every member that did not fail on its
//   own is run again, alone, in a fresh transaction. Its earlier attempt left nothing behind;
// - never call `run` from inside `fn` (it would wait for its own group).
import type { Db, Tx } from './db.js';

export interface GroupCommitterOptions {
  /** Most work functions in one transaction (default 256). */
  maxGroup?: number;
}

export interface GroupCommitStats {
  /** Transactions run (groups of one included). */
  groups: number;
  /** Work functions run. */
  members: number;
  /** Largest group so far. */
  largest: number;
  /** Groups whose transaction broke, their members retried alone. */
  broken: number;
}

/** Thrown by run() after close(). */
export class CommitterClosedError extends Error {
  override name = 'CommitterClosedError';
  constructor() {
    super('the transaction runner is closed (server shutting down)');
  }
}

interface Member {
  fn: (trx: Tx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  /** Set by a group run: its own outcome, still to be published after the COMMIT. */
  outcome?: { ok: true; value: unknown } | { ok: false; error: unknown };
}

/** The group's transaction cannot be trusted any more (a savepoint statement failed). */
class GroupBroken extends Error {
  constructor(readonly reason: unknown) {
    super('group transaction broken');
  }
}

export class GroupCommitter {
  private readonly maxGroup: number;
  private queue: Member[] = [];
  private busy = false;
  private closed = false;
  private idle: (() => void)[] = [];
  private readonly counters: GroupCommitStats = { groups: 0, members: 0, largest: 0, broken: 0 };

  constructor(
    private readonly db: Db,
    options: GroupCommitterOptions = {},
  ) {
    this.maxGroup = options.maxGroup ?? 256;
    if (!Number.isSafeInteger(this.maxGroup) || this.maxGroup < 1) throw new RangeError('maxGroup: a positive integer');
  }

  /** Runs `fn` in a transaction shared with concurrent callers; settles after that transaction committed. */
  run<T>(fn: (trx: Tx) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new CommitterClosedError());
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      if (!this.busy) void this.drain();
    });
  }

  /** Counters since start (metrics, tests). */
  stats(): GroupCommitStats {
    return { ...this.counters };
  }

  /** Resolves once everything queued so far has committed (or failed). */
  flush(): Promise<void> {
    if (!this.busy && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Refuses new work and waits for the queued work to finish (shutdown, before the database closes). */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0, this.maxGroup);
        this.counters.groups++;
        this.counters.members += group.length;
        if (group.length > this.counters.largest) this.counters.largest = group.length;
        if (group.length === 1) await this.runAlone(group[0]!);
        else await this.runGroup(group);
      }
    } finally {
      this.busy = false;
      for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  private async runAlone(m: Member): Promise<void> {
    try {
      m.resolve(await this.db.transaction((trx) => m.fn(trx)));
    } catch (err) {
      m.reject(err);
    }
  }

  private async runGroup(group: Member[]): Promise<void> {
    // A flag, not the error's identity: when sqlite already rolled the transaction back, Knex's ROLLBACK fails
    // too and the transaction rejects with that error instead.
    let broken = false;
    try {
      await this.db.transaction(async (trx) => {
        for (const m of group) {
          let own: { error: unknown } | undefined;
          try {
            const value = await trx.transaction(async (sp) => {
              try {
                return await m.fn(sp);
              } catch (error) {
                own = { error };
                throw error;
              }
            });
            m.outcome = { ok: true, value };
          } catch (err) {
            // Its own error, after a good ROLLBACK TO: only this member failed. Anything else is the savepoint
            // machinery failing (SAVEPOINT, RELEASE or ROLLBACK TO), so the transaction is in an unknown state.
            if (own && err === own.error) m.outcome = { ok: false, error: err };
            else {
              broken = true;
              throw new GroupBroken(err);
            }
          }
        }
      });
    } catch (err) {
      if (broken) {
        // Nothing of the group committed: members that failed on their own keep their error, the rest run again
        // alone (each gets the outcome of its own transaction).
        this.counters.broken++;
        for (const m of group) {
          if (m.outcome && !m.outcome.ok) m.reject(m.outcome.error);
          else {
            m.outcome = undefined;
            await this.runAlone(m);
          }
        }
        return;
      }
      // BEGIN or COMMIT failed: the group's writes are not known to be durable. Not retried (after a failed
      // COMMIT they might be): every member that did not fail on its own gets this error.
      for (const m of group) m.reject(m.outcome && !m.outcome.ok ? m.outcome.error : err);
      return;
    }
    for (const m of group) {
      const o = m.outcome!;
      if (o.ok) m.resolve(o.value);
      else m.reject(o.error);
    }
  }
}
