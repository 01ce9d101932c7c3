// The audit trail (docs/architecture.md §7) over the `audit_log` and `audit_checkpoints` tables, with the hash chain and
// signed checkpoints of docs/crypto.md §12.
//
// Appending. Entries are numbered by `seq` from 1 and the chain hashes `seq`, so the seq is chosen before the
// INSERT. The database is the arbiter: the audit_log_chain trigger (migration 001) refuses any INSERT whose
// seq is not last + 1 or whose prev_hash is not the last hash, as the chain stands inside the inserting
// transaction. So the log may guess the head: on sqlite it inserts after the head this process last wrote (one
// statement per append); when that guess is stale (a transaction that appended rolled back, a savepoint was
// rolled back, another process appended) the trigger refuses the row before anything is written, the
// transaction goes on, and the append reads the head and tries once more. Nothing unverified is ever trusted,
// and a rollback needs no bookkeeping. Elsewhere (PostgreSQL: a failed statement aborts the transaction) it
// reads the head first. The single pooled sqlite connection serialises transactions; appends issued
// concurrently inside ONE transaction are queued here. On PostgreSQL with concurrent transactions the second
// appender is refused by the trigger; supply `beforeAppend` (a transaction-scoped advisory lock) to make them wait.
//
// Checkpoints. Every `checkpointEvery` entries (default 1000) the append that produces seq = k·N also inserts a
// checkpoint over that entry in the same transaction (so it commits or rolls back with it), and `start()` runs
// a timer that checkpoints the newest entry if it is not yet covered. `checkpoint()` does that on demand (call
// it at shutdown).
//
// Verifying (rules V1–V5 of docs/crypto.md §12) lives in verify.ts, searching in query.ts, signing checkpoints in checkpoints.ts, validating
// entries in input.ts, the server key in signing-key.ts; requests without a session are audited through the
// aggregating gate of anonymous.ts.
import { AUDIT_GENESIS, auditChainHashOfBody, canonicalBytes, merkleLeafHash, MerkleFrontier, toHex, type ServerSigningKey, type SignedTreeHead } from '@kluis/shared';
import type { Db, Tx } from '../db/db.js';
import type { AuditCheckpointRecord, AuditEntry, AuditEntryInput, AuditFilter, AuditLog, AuditVerifyOptions, AuditVerifyResult } from './types.js';
import { auditChainEntry, type AuditRow } from './rows.js';
import { verifyAuditTrail } from './verify.js';
import { AnonymousAuditGate, type AnonymousAuditOptions } from './anonymous.js';
import { AuditCheckpointer } from './checkpoints.js';
import { AuditInputError, normaliseAuditInput, toInt } from './input.js';
import { AUDIT_QUERY_DEFAULT_LIMIT, AUDIT_QUERY_MAX_LIMIT, queryAuditLog } from './query.js';
import { consistencyPath, inclusionPath, insertNodes, listTreeHeads, loadFrontier, newestTreeHead, treeHeadOfSize } from './merkle-store.js';

export { auditChainEntry, type AuditChainEntry } from './rows.js';
export { AUDIT_DETAILS_MAX, AuditInputError, auditSafeTargetId, normaliseAuditInput } from './input.js';
// Kept for callers outside server/src (tests, benchmarks); the server imports signing-key.ts itself.
export { SIGNING_KEY_FILE, SigningKeyFileError, loadOrCreateServerSigningKey, loadServerSigningKeyFile } from './signing-key.js';

export interface SqlAuditLogOptions {
  /** Checkpoint every N entries, inside the appending transaction (default 1000; 0 turns it off). */
  checkpointEvery?: number;
  /** Interval of the checkpoint timer run by start() (default 60 000 ms). */
  checkpointIntervalMs?: number;
  /**
   * verify() demands a checkpoint over every entry older than checkpointIntervalMs + this grace (default 30 000 ms:
   * a tick may run late under load). docs/crypto.md §12, rule V4.
   */
  checkpointGraceMs?: number;
  /** Windows and bounds of the aggregation of requests without a session (anonymous.ts). */
  anonymous?: AnonymousAuditOptions;
  /** Earlier server public keys whose checkpoints verify() still accepts (after a key rotation). */
  trustedPublicKeys?: readonly string[];
  /** Clock in ms since 1970 UTC (default Date.now; tests fix it). */
  now?: () => number;
  /** Called with errors of the checkpoint timer (default: console.error). */
  onError?: (err: unknown) => void;
  /**
   * Called inside the appending transaction before the head is read. sqlite needs nothing (one connection);
   * PostgreSQL with several API nodes should take a transaction-scoped lock here.
   */
  beforeAppend?: (trx: Tx) => Promise<void>;
  /**
   * Keep the Merkle tree log and sign tree heads (default true). false keeps the hash chain and checkpoints alone: only
   * for scripts/bench/audit-merkle.ts, which measures what the tree costs; a server always keeps it.
   */
  merkle?: boolean;
  /** Rows per page when verifying (default 5000). */
  verifyPageSize?: number;
  /**
   * Insert after the head this process last wrote instead of reading it first (one statement per append
   * instead of two). Safe because the audit_log_chain trigger refuses an entry that does not extend the chain
   * as it stands in the transaction; a refused guess is retried after reading the head. Default: on for
   * sqlite; off elsewhere (a failed statement aborts a PostgreSQL transaction, so a wrong guess cannot be retried).
   */
  guessHead?: boolean;
  /**
   * Runs appendStandalone's transaction (default: `db.transaction`). The server passes its group committer, so
   * the standalone entries of failed requests share a COMMIT with concurrent requests (db/group-commit.ts).
   */
  transact?: <T>(fn: (trx: Tx) => Promise<T>) => Promise<T>;
}

interface Head {
  seq: number;
  hash: string;
}

/** A head with the right edge of the Merkle tree over entries 1..seq. */
interface TreeHead extends Head {
  tree: MerkleFrontier;
}

export { AUDIT_QUERY_DEFAULT_LIMIT, AUDIT_QUERY_MAX_LIMIT } from './query.js';

/** The audit_log_chain trigger's refusal (migration 001). */
function isChainRefusal(err: unknown): boolean {
  return err instanceof Error && err.message.includes('an entry must extend the chain');
}


export class SqlAuditLog implements AuditLog {
  readonly publicKey: string;
  private readonly checkpointEvery: number;
  private readonly checkpointIntervalMs: number;
  private readonly checkpointGraceMs: number;
  private readonly trusted: ReadonlySet<string>;
  private readonly now: () => number;
  private readonly onError: (err: unknown) => void;
  private readonly beforeAppend: ((trx: Tx) => Promise<void>) | undefined;
  private readonly verifyPageSize: number;
  /** Appends issued concurrently in one transaction run one after the other. */
  private readonly queues = new WeakMap<object, Promise<unknown>>();
  /** The head after this process's last successful append: a guess, checked by the database (see the top). */
  private guess: TreeHead | undefined;
  /**
   * The Merkle right edge after this process's last append. Entry seq's chain hash commits to entries 1..seq, so when
   * the head read from the database has this seq and hash, the stored tree has this edge and need not be read.
   */
  private lastTree: TreeHead | undefined;
  private readonly guessHead: boolean;
  private readonly transact: <T>(fn: (trx: Tx) => Promise<T>) => Promise<T>;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<unknown> | undefined;
  private readonly anonymous: AnonymousAuditGate;
  private readonly checkpoints: AuditCheckpointer;
  private readonly merkle: boolean;

  constructor(
    private readonly db: Db,
    private readonly key: ServerSigningKey,
    options: SqlAuditLogOptions = {},
  ) {
    this.publicKey = key.publicKey;
    this.checkpointEvery = options.checkpointEvery ?? 1000;
    if (!Number.isSafeInteger(this.checkpointEvery) || this.checkpointEvery < 0) throw new RangeError('checkpointEvery: a non-negative integer');
    this.checkpointIntervalMs = options.checkpointIntervalMs ?? 60_000;
    if (!(this.checkpointIntervalMs > 0)) throw new RangeError('checkpointIntervalMs: a positive number');
    this.checkpointGraceMs = options.checkpointGraceMs ?? 30_000;
    if (!(this.checkpointGraceMs >= 0)) throw new RangeError('checkpointGraceMs: a non-negative number');
    this.trusted = new Set([key.publicKey, ...(options.trustedPublicKeys ?? [])]);
    this.now = options.now ?? Date.now;
    this.onError = options.onError ?? ((err) => console.error('audit checkpoint failed:', err));
    this.beforeAppend = options.beforeAppend;
    this.verifyPageSize = options.verifyPageSize ?? 5000;
    this.guessHead = options.guessHead ?? String((db.client as { dialect?: unknown }).dialect).startsWith('sqlite');
    this.transact = options.transact ?? ((fn) => db.transaction(fn));
    this.merkle = options.merkle ?? true;
    this.checkpoints = new AuditCheckpointer(db, key, this.now, this.merkle);
    // Summaries go through a plain transaction: they are also written at shutdown, after the group committer closed.
    this.anonymous = new AnonymousAuditGate(
      (entry) => this.appendStandalone(entry),
      (entries) => db.transaction((trx) => this.appendMany(trx, entries)),
      { now: this.now, onError: this.onError, ...options.anonymous },
    );
  }

  // ------------------------------------------------------------------------------------------ appending

  append(trx: Tx, entry: AuditEntryInput): Promise<number> {
    if (!trx || (trx as { isTransaction?: boolean }).isTransaction !== true) {
      return Promise.reject(new AuditInputError('audit append: needs a transaction (use appendStandalone outside one)'));
    }
    let input: ReturnType<typeof normaliseAuditInput>;
    try {
      input = normaliseAuditInput(entry);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.enqueue(trx, async () => (await this.appendNow(trx, [input]))[0]!);
  }

  appendStandalone(entry: AuditEntryInput): Promise<number> {
    return this.transact((trx) => this.append(trx, entry));
  }

  appendAnonymous(entry: AuditEntryInput): Promise<void> {
    try {
      normaliseAuditInput(entry); // a malformed entry is refused now, not when its window's summary is written
    } catch (err) {
      return Promise.reject(err);
    }
    return this.anonymous.record(entry);
  }

  /**
   * Appends several entries, in order, inside the caller's transaction (bulk operations): at most one read of
   * the head and one multi-row INSERT per 500 entries; returns their seqs. Entries are validated before anything
   * is written; if an INSERT fails the error propagates and the transaction must be rolled back.
   */
  appendMany(trx: Tx, entries: readonly AuditEntryInput[]): Promise<number[]> {
    if (!trx || (trx as { isTransaction?: boolean }).isTransaction !== true) {
      return Promise.reject(new AuditInputError('audit appendMany: needs a transaction'));
    }
    let inputs: ReturnType<typeof normaliseAuditInput>[];
    try {
      inputs = entries.map(normaliseAuditInput);
    } catch (err) {
      return Promise.reject(err);
    }
    if (inputs.length === 0) return Promise.resolve([]);
    return this.enqueue(trx, () => this.appendNow(trx, inputs));
  }

  private enqueue<T>(trx: Tx, fn: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(trx) ?? Promise.resolve();
    const run = previous.then(fn);
    this.queues.set(trx, run.catch(() => undefined));
    return run;
  }

  private async readHead(trx: Tx): Promise<TreeHead> {
    const row = (await trx('audit_log').select('seq', 'hash').orderBy('seq', 'desc').first()) as Pick<AuditRow, 'seq' | 'hash'> | undefined;
    const head = row ? { seq: toInt(row.seq, 'seq'), hash: row.hash } : { seq: 0, hash: AUDIT_GENESIS };
    const known = this.lastTree;
    if (known && known.seq === head.seq && known.hash === head.hash) return known;
    return { ...head, tree: this.merkle ? await loadFrontier(trx, head.seq) : new MerkleFrontier() };
  }

  private async appendNow(trx: Tx, inputs: readonly ReturnType<typeof normaliseAuditInput>[]): Promise<number[]> {
    if (this.beforeAppend) await this.beforeAppend(trx);
    const guessed = this.guessHead ? this.guess : undefined;
    this.guess = undefined; // re-learnt below once this append has succeeded
    let head = guessed ?? (await this.readHead(trx));
    for (let attempt = 1; ; attempt++) {
      const rows: AuditRow[] = [];
      const due: (Head & { root: string | null })[] = [];
      const nodes: ReturnType<MerkleFrontier['push']> = [];
      const tree = head.tree.clone();
      let { seq, hash: prevHash } = head;
      for (const input of inputs) {
        seq++;
        const ts = this.now();
        if (!Number.isSafeInteger(ts)) throw new AuditInputError('audit clock: not an integer of ms');
        const { detailsText, ...fields } = input;
        const chained = auditChainEntry({ seq, ts, ...fields });
        const body = canonicalBytes(chained); // the chain's input and the Merkle leaf's: encoded once
        const hash = auditChainHashOfBody(prevHash, body);
        if (this.merkle) nodes.push(...tree.push(merkleLeafHash(body)));
        rows.push({
          seq,
          ts,
          org_id: fields.orgId,
          actor_user_id: fields.actorUserId,
          actor_device_id: fields.actorDeviceId,
          action: fields.action,
          target_type: fields.targetType,
          target_id: fields.targetId,
          outcome: fields.outcome,
          ip: fields.ip,
          user_agent: fields.userAgent,
          client: fields.client,
          details: detailsText,
          prev_hash: prevHash,
          hash,
        });
        if (this.checkpointEvery > 0 && seq % this.checkpointEvery === 0) due.push({ seq, hash, root: this.merkle ? toHex(tree.root()) : null });
        prevHash = hash;
      }
      try {
        // 15 parameters a row: 500 rows stay far below every engine's limit on bound parameters.
        await trx('audit_log').insert(rows.slice(0, 500));
      } catch (err) {
        // A guessed head that is no longer the head (a transaction that appended rolled back, or another
        // process appended) is refused by the chain trigger before anything is written; on sqlite the
        // transaction goes on, so read the real head and try once more.
        if (attempt === 1 && guessed && isChainRefusal(err)) {
          head = await this.readHead(trx);
          continue;
        }
        throw err;
      }
      for (let i = 500; i < rows.length; i += 500) await trx('audit_log').insert(rows.slice(i, i + 500));
      await insertNodes(trx, nodes);
      for (const cp of due) await this.checkpoints.insert(trx, cp.seq, cp.hash, cp.root);
      this.guess = { seq, hash: prevHash, tree };
      this.lastTree = this.guess;
      return rows.map((r) => r.seq as number);
    }
  }

  /** Signs the newest entry unless a checkpoint already covers it. */
  async checkpoint(): Promise<void> {
    await this.writeCheckpoint();
  }

  /** checkpoint(), returning the new checkpoint (null: nothing new to cover). */
  writeCheckpoint(): Promise<AuditCheckpointRecord | null> {
    return this.checkpoints.writeLatest();
  }

  /**
   * Starts the checkpoint timer (idempotent), with a first checkpoint at once: after a crash the entries written since
   * the last checkpoint are signed now rather than an interval later (verify() demands it: rule V4).
   */
  start(): void {
    if (this.timer) return;
    const tick = (): void => {
      if (this.ticking) return; // the previous one is still running
      this.ticking = this.checkpoint()
        .catch((err: unknown) => this.onError(err))
        .finally(() => {
          this.ticking = undefined;
        });
    };
    this.timer = setInterval(tick, this.checkpointIntervalMs);
    this.timer.unref();
    tick();
  }

  /**
   * Stops the timer, waits for a running checkpoint and writes the counts of requests without a session not yet
   * summarised. Call checkpoint() afterwards to seal the tail at shutdown.
   */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    await this.anonymous.stop();
  }

  listCheckpoints(range: { fromSeq: number; toSeq: number; limit?: number }): Promise<AuditCheckpointRecord[]> {
    const limit = Math.min(Math.max(1, Math.trunc(range.limit ?? AUDIT_QUERY_DEFAULT_LIMIT)), AUDIT_QUERY_MAX_LIMIT);
    return this.checkpoints.list(range.fromSeq, range.toSeq, limit);
  }

  // ------------------------------------------------------------------------------------------ Merkle tree log

  treeHeads(after: number, limit: number): Promise<SignedTreeHead[]> {
    return listTreeHeads(this.db, after, Math.min(Math.max(1, Math.trunc(limit)), AUDIT_QUERY_MAX_LIMIT));
  }

  treeHead(size?: number): Promise<SignedTreeHead | null> {
    return size === undefined ? newestTreeHead(this.db) : treeHeadOfSize(this.db, size);
  }

  async leaf(seq: number): Promise<{ orgId: string | null; leafHash: string } | null> {
    const entry = (await this.db('audit_log').select('org_id').where({ seq }).first()) as Pick<AuditRow, 'org_id'> | undefined;
    const node = (await this.db('audit_merkle').select('hash').where({ level: 0, idx: seq - 1 }).first()) as { hash: string } | undefined;
    return entry && node ? { orgId: entry.org_id, leafHash: node.hash } : null;
  }

  inclusionProof(seq: number, size: number): Promise<string[]> {
    return inclusionPath(this.db, seq, size);
  }

  consistencyProof(from: number, to: number): Promise<string[]> {
    return consistencyPath(this.db, from, to);
  }

  // ------------------------------------------------------------------------------------------ verifying

  verify(options: AuditVerifyOptions = {}): Promise<AuditVerifyResult> {
    return verifyAuditTrail(this.db, {
      trusted: this.trusted,
      checkpointEvery: this.checkpointEvery,
      maxUncoveredAgeMs: this.checkpointIntervalMs + this.checkpointGraceMs,
      now: options.now ?? this.now(),
      pageSize: this.verifyPageSize,
      anchor: options.anchor ?? null,
    });
  }

  // ------------------------------------------------------------------------------------------ querying

  query(filter: AuditFilter = {}): Promise<AuditEntry[]> {
    return queryAuditLog(this.db, filter);
  }
}
