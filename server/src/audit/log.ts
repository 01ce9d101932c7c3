// The audit trail (DESIGN §7) over the `audit_log` and `audit_checkpoints` tables, with the hash chain and
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
// Verifying streams the table in pages by seq and keeps O(page) memory.
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsc, fstatSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readSync, unlinkSync, writeSync, fchmodSync } from 'node:fs';
import path from 'node:path';
import {
  AUDIT_GENESIS,
  auditChainHash,
  canonicalJson,
  initCrypto,
  serverSigningKeyFromSeed,
  signAuditCheckpoint,
  verifyAuditCheckpoint,
  type CanonicalValue,
  type ServerSigningKey,
} from '@kluis/shared';
import type { Db, Tx } from '../db/db.js';
import type { AuditCheckpointRecord, AuditEntry, AuditEntryInput, AuditFilter, AuditLog, AuditOutcome, AuditVerifyResult } from './types.js';

/** Thrown for an entry or filter the audit log refuses (a programming error of the caller: answer 500). */
export class AuditInputError extends Error {
  override name = 'AuditInputError';
}

export interface SqlAuditLogOptions {
  /** Checkpoint every N entries, inside the appending transaction (default 1000; 0 turns it off). */
  checkpointEvery?: number;
  /** Interval of the checkpoint timer run by start() (default 60 000 ms). */
  checkpointIntervalMs?: number;
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

/** The audit_log_chain trigger's refusal (migration 001). */
function isChainRefusal(err: unknown): boolean {
  return err instanceof Error && err.message.includes('an entry must extend the chain');
}

export const AUDIT_QUERY_DEFAULT_LIMIT = 1000;
export const AUDIT_QUERY_MAX_LIMIT = 10_000;
/** Longest canonical JSON text of `details` (characters). */
export const AUDIT_DETAILS_MAX = 8192;

const ACTION_RE = /^[a-z][a-z0-9_.-]{1,63}$/;
const OUTCOMES: ReadonlySet<string> = new Set<AuditOutcome>(['success', 'denied', 'failed']);
const HASH_RE = /^[0-9a-f]{64}$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

/** Identifiers chosen by the server: longer values are refused (never silently truncated). */
const ID_LIMITS = { orgId: 32, actorUserId: 32, actorDeviceId: 32, targetType: 32, targetId: 128 } as const;
/** Request facts supplied by the client: cleaned and truncated, so that an odd header never loses an entry. */
const TEXT_LIMITS = { ip: 64, userAgent: 300, client: 100 } as const;

interface AuditRow {
  seq: number | string;
  ts: number | string;
  org_id: string | null;
  actor_user_id: string | null;
  actor_device_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: string;
  ip: string | null;
  user_agent: string | null;
  client: string | null;
  details: string | null;
  prev_hash: string;
  hash: string;
}

interface CheckpointRow {
  seq: number | string;
  hash: string;
  ts: number | string;
  signer: string;
  signature: string;
}

/** The object that is hashed into the chain (docs/crypto.md §12): exactly these keys, absent values null. */
export interface AuditChainEntry {
  seq: number;
  ts: number;
  orgId: string | null;
  actorUserId: string | null;
  actorDeviceId: string | null;
  action: string;
  targetType: string | null;
  targetId: string | null;
  outcome: string;
  ip: string | null;
  userAgent: string | null;
  client: string | null;
  details: { [key: string]: CanonicalValue } | null;
}

/** The chained fields of a stored or exported entry. */
export function auditChainEntry(e: AuditChainEntry): AuditChainEntry {
  return {
    seq: e.seq,
    ts: e.ts,
    orgId: e.orgId,
    actorUserId: e.actorUserId,
    actorDeviceId: e.actorDeviceId,
    action: e.action,
    targetType: e.targetType,
    targetId: e.targetId,
    outcome: e.outcome,
    ip: e.ip,
    userAgent: e.userAgent,
    client: e.client,
    details: e.details,
  };
}

function toInt(value: number | string, what: string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw new AuditInputError(`${what} is not an integer`);
  return n;
}

function checkId(name: keyof typeof ID_LIMITS, value: string | null | undefined): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw new AuditInputError(`audit ${name}: must be a string or null`);
  if (value.length > ID_LIMITS[name]) throw new AuditInputError(`audit ${name}: longer than ${ID_LIMITS[name]} characters`);
  if (LONE_SURROGATE.test(value) || value.includes('\u0000')) {
    throw new AuditInputError(`audit ${name}: contains a NUL or a lone surrogate`);
  }
  return value;
}

/** Replaces NUL and lone surrogates (unstorable, not canonical-JSON encodable) and truncates to `max` code points. */
function cleanText(value: string | null | undefined, max: number, name: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw new AuditInputError(`audit ${name}: must be a string or null`);
  let s = value.replace(LONE_SURROGATES, '\uFFFD');
  if (s.includes('\u0000')) s = s.replaceAll('\u0000', '\uFFFD');
  if (s.length > max) {
    const points = Array.from(s);
    if (points.length > max) s = points.slice(0, max).join('');
  }
  return s;
}

function checkDetails(details: AuditEntryInput['details']): { value: { [key: string]: CanonicalValue } | null; text: string | null } {
  if (details === undefined || details === null) return { value: null, text: null };
  if (typeof details !== 'object' || Array.isArray(details)) throw new AuditInputError('audit details: must be a plain object or null');
  let text: string;
  try {
    text = canonicalJson(details);
  } catch (err) {
    throw new AuditInputError(`audit details: ${(err as Error).message}`);
  }
  if (text.length > AUDIT_DETAILS_MAX) throw new AuditInputError(`audit details: longer than ${AUDIT_DETAILS_MAX} characters as JSON`);
  // Hash what will be read back: a fresh copy, so a caller mutating its object later changes nothing.
  return { value: JSON.parse(text) as { [key: string]: CanonicalValue }, text };
}

/** Validates and normalises an entry; throws AuditInputError. */
export function normaliseAuditInput(entry: AuditEntryInput): Omit<AuditChainEntry, 'seq' | 'ts'> & { detailsText: string | null } {
  if (entry === null || typeof entry !== 'object') throw new AuditInputError('audit entry: must be an object');
  if (typeof entry.action !== 'string' || !ACTION_RE.test(entry.action)) {
    throw new AuditInputError(`audit action ${JSON.stringify(entry.action)}: must match ${ACTION_RE.source}`);
  }
  if (typeof entry.outcome !== 'string' || !OUTCOMES.has(entry.outcome)) {
    throw new AuditInputError(`audit outcome ${JSON.stringify(entry.outcome)}: must be success, denied or failed`);
  }
  if (entry.orgId === undefined) throw new AuditInputError('audit orgId: required (null for system-wide events)');
  const details = checkDetails(entry.details);
  return {
    orgId: checkId('orgId', entry.orgId),
    actorUserId: checkId('actorUserId', entry.actorUserId),
    actorDeviceId: checkId('actorDeviceId', entry.actorDeviceId),
    action: entry.action,
    targetType: checkId('targetType', entry.targetType),
    targetId: checkId('targetId', entry.targetId),
    outcome: entry.outcome,
    ip: cleanText(entry.ip, TEXT_LIMITS.ip, 'ip'),
    userAgent: cleanText(entry.userAgent, TEXT_LIMITS.userAgent, 'userAgent'),
    client: cleanText(entry.client, TEXT_LIMITS.client, 'client'),
    details: details.value,
    detailsText: details.text,
  };
}

function rowToEntry(row: AuditRow): AuditEntry {
  return {
    seq: toInt(row.seq, 'seq'),
    ts: toInt(row.ts, 'ts'),
    orgId: row.org_id,
    actorUserId: row.actor_user_id,
    actorDeviceId: row.actor_device_id,
    action: row.action,
    targetType: row.target_type,
    targetId: row.target_id,
    outcome: row.outcome as AuditOutcome,
    ip: row.ip,
    userAgent: row.user_agent,
    client: row.client,
    details: row.details === null ? null : (JSON.parse(row.details) as { [key: string]: CanonicalValue }),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

function rowToCheckpoint(row: CheckpointRow): AuditCheckpointRecord {
  return { seq: toInt(row.seq, 'checkpoint seq'), hash: row.hash, ts: toInt(row.ts, 'checkpoint ts'), signer: row.signer, signature: row.signature };
}

function optionalInt(value: number | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value)) throw new AuditInputError(`audit filter ${name}: must be an integer`);
  return value;
}

export class SqlAuditLog implements AuditLog {
  readonly publicKey: string;
  private readonly checkpointEvery: number;
  private readonly checkpointIntervalMs: number;
  private readonly trusted: ReadonlySet<string>;
  private readonly now: () => number;
  private readonly onError: (err: unknown) => void;
  private readonly beforeAppend: ((trx: Tx) => Promise<void>) | undefined;
  private readonly verifyPageSize: number;
  /** Appends issued concurrently in one transaction run one after the other. */
  private readonly queues = new WeakMap<object, Promise<unknown>>();
  /** The head after this process's last successful append: a guess, checked by the database (see the top). */
  private guess: Head | undefined;
  private readonly guessHead: boolean;
  private readonly transact: <T>(fn: (trx: Tx) => Promise<T>) => Promise<T>;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<unknown> | undefined;

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
    this.trusted = new Set([key.publicKey, ...(options.trustedPublicKeys ?? [])]);
    this.now = options.now ?? Date.now;
    this.onError = options.onError ?? ((err) => console.error('audit checkpoint failed:', err));
    this.beforeAppend = options.beforeAppend;
    this.verifyPageSize = options.verifyPageSize ?? 5000;
    this.guessHead = options.guessHead ?? String((db.client as { dialect?: unknown }).dialect).startsWith('sqlite');
    this.transact = options.transact ?? ((fn) => db.transaction(fn));
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

  private async readHead(trx: Tx): Promise<Head> {
    const head = (await trx('audit_log').select('seq', 'hash').orderBy('seq', 'desc').first()) as Pick<AuditRow, 'seq' | 'hash'> | undefined;
    return head ? { seq: toInt(head.seq, 'seq'), hash: head.hash } : { seq: 0, hash: AUDIT_GENESIS };
  }

  private async appendNow(trx: Tx, inputs: readonly ReturnType<typeof normaliseAuditInput>[]): Promise<number[]> {
    if (this.beforeAppend) await this.beforeAppend(trx);
    const guessed = this.guessHead ? this.guess : undefined;
    this.guess = undefined; // re-learnt below once this append has succeeded
    let head = guessed ?? (await this.readHead(trx));
    for (let attempt = 1; ; attempt++) {
      const rows: AuditRow[] = [];
      const due: Head[] = [];
      let { seq, hash: prevHash } = head;
      for (const input of inputs) {
        seq++;
        const ts = this.now();
        if (!Number.isSafeInteger(ts)) throw new AuditInputError('audit clock: not an integer of ms');
        const { detailsText, ...fields } = input;
        const hash = auditChainHash(prevHash, auditChainEntry({ seq, ts, ...fields }));
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
        if (this.checkpointEvery > 0 && seq % this.checkpointEvery === 0) due.push({ seq, hash });
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
      for (const cp of due) await this.insertCheckpoint(trx, cp.seq, cp.hash);
      this.guess = { seq, hash: prevHash };
      return rows.map((r) => r.seq as number);
    }
  }

  // ------------------------------------------------------------------------------------------ checkpoints

  private async insertCheckpoint(trx: Tx, seq: number, hash: string, ignoreExisting = false): Promise<AuditCheckpointRecord> {
    const ts = this.now();
    const signature = signAuditCheckpoint({ seq, hash, ts }, this.key);
    const record = { seq, hash, ts, signer: this.key.publicKey, signature };
    const insert = trx('audit_checkpoints').insert(record);
    await (ignoreExisting ? insert.onConflict('seq').ignore() : insert);
    return record;
  }

  /** Signs the newest entry unless a checkpoint already covers it. */
  async checkpoint(): Promise<void> {
    await this.writeCheckpoint();
  }

  /** checkpoint(), returning the new checkpoint (null: nothing new to cover). */
  writeCheckpoint(): Promise<AuditCheckpointRecord | null> {
    return this.db.transaction(async (trx) => {
      const head = (await trx('audit_log').select('seq', 'hash').orderBy('seq', 'desc').first()) as Pick<AuditRow, 'seq' | 'hash'> | undefined;
      if (!head) return null;
      const seq = toInt(head.seq, 'seq');
      const last = (await trx('audit_checkpoints').select('seq').orderBy('seq', 'desc').first()) as Pick<CheckpointRow, 'seq'> | undefined;
      if (last && toInt(last.seq, 'checkpoint seq') >= seq) return null;
      return this.insertCheckpoint(trx, seq, head.hash, true);
    });
  }

  /** Starts the checkpoint timer (idempotent). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.ticking) return; // the previous one is still running
      this.ticking = this.checkpoint()
        .catch((err: unknown) => this.onError(err))
        .finally(() => {
          this.ticking = undefined;
        });
    }, this.checkpointIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a running checkpoint. Call checkpoint() afterwards to seal the tail at shutdown. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
  }

  async listCheckpoints(range: { fromSeq: number; toSeq: number; limit?: number }): Promise<AuditCheckpointRecord[]> {
    const limit = Math.min(Math.max(1, Math.trunc(range.limit ?? AUDIT_QUERY_DEFAULT_LIMIT)), AUDIT_QUERY_MAX_LIMIT);
    const rows = (await this.db('audit_checkpoints')
      .select('seq', 'hash', 'ts', 'signer', 'signature')
      .where('seq', '>=', range.fromSeq)
      .andWhere('seq', '<=', range.toSeq)
      .orderBy('seq', 'asc')
      .limit(limit)) as CheckpointRow[];
    return rows.map(rowToCheckpoint);
  }

  // ------------------------------------------------------------------------------------------ verifying

  async verify(): Promise<AuditVerifyResult> {
    // Bounds first, checkpoints before entries: every checkpoint up to cpEnd names an entry committed before
    // endSeq was read, so entries appended while we verify are simply not looked at.
    const cpHead = (await this.db('audit_checkpoints').select('seq').orderBy('seq', 'desc').first()) as Pick<CheckpointRow, 'seq'> | undefined;
    const cpEnd = cpHead ? toInt(cpHead.seq, 'checkpoint seq') : 0;
    const head = (await this.db('audit_log').select('seq').orderBy('seq', 'desc').first()) as Pick<AuditRow, 'seq'> | undefined;
    const endSeq = head ? toInt(head.seq, 'seq') : 0;

    let entries = 0;
    let checkpoints = 0;
    let expected = 1;
    let prevHash = AUDIT_GENESIS;
    const result = (firstBroken?: { seq: number; reason: string }): AuditVerifyResult => ({
      ok: !firstBroken,
      entries,
      checkpoints,
      ...(firstBroken ? { firstBroken } : {}),
      lastSeq: expected - 1,
      lastHash: prevHash,
    });

    // Checkpoints, streamed alongside the entries.
    let cpPage: CheckpointRow[] = [];
    let cpIndex = 0;
    let cpAfter = 0;
    let cpDone = cpEnd === 0;
    const nextCheckpoint = async (): Promise<AuditCheckpointRecord | null> => {
      if (cpIndex >= cpPage.length) {
        if (cpDone) return null;
        cpPage = (await this.db('audit_checkpoints')
          .select('seq', 'hash', 'ts', 'signer', 'signature')
          .where('seq', '>', cpAfter)
          .andWhere('seq', '<=', cpEnd)
          .orderBy('seq', 'asc')
          .limit(1000)) as CheckpointRow[];
        cpIndex = 0;
        if (cpPage.length < 1000) cpDone = true;
        if (cpPage.length === 0) return null;
        cpAfter = Number(cpPage[cpPage.length - 1]!.seq);
        if (!Number.isSafeInteger(cpAfter)) cpDone = true; // reported when that row is reached
      }
      const row = cpPage[cpIndex++]!;
      // Leniently: a malformed row is reported by checkCheckpoint, not thrown.
      return { seq: Number(row.seq), hash: row.hash, ts: Number(row.ts), signer: row.signer, signature: row.signature };
    };
    const checkCheckpoint = (cp: AuditCheckpointRecord): string | null => {
      if (!Number.isSafeInteger(cp.ts)) return `checkpoint at ${cp.seq}: ts is not an integer`;
      if (!this.trusted.has(cp.signer)) return `checkpoint at ${cp.seq}: signed by an untrusted key ${cp.signer}`;
      if (!HASH_RE.test(cp.hash)) return `checkpoint at ${cp.seq}: malformed hash`;
      try {
        verifyAuditCheckpoint({ seq: cp.seq, hash: cp.hash, ts: cp.ts }, cp.signature, cp.signer);
      } catch {
        return `checkpoint at ${cp.seq}: signature invalid`;
      }
      if (cp.hash !== prevHash) return `checkpoint at ${cp.seq}: hash does not match entry ${cp.seq}`;
      return null;
    };

    let cp = await nextCheckpoint();
    if (cp && !(cp.seq >= 1)) return result({ seq: cp.seq, reason: `checkpoint at ${cp.seq}: refers to no entry` });

    // Pages by seq; the next page is read while this one is hashed.
    const fetchPage = (after: number): Promise<AuditRow[]> => {
      const page = this.db('audit_log')
        .select('*')
        .where('seq', '>', after)
        .andWhere('seq', '<=', endSeq)
        .orderBy('seq', 'asc')
        .limit(this.verifyPageSize)
        .then((rows) => rows as AuditRow[]);
      page.catch(() => undefined); // awaited below unless verification stops early
      return page;
    };
    let next: Promise<AuditRow[]> | null = endSeq > 0 ? fetchPage(0) : null;
    while (next) {
      const rows = await next;
      if (rows.length === 0) break;
      const pageEnd = Number(rows[rows.length - 1]!.seq);
      next = rows.length === this.verifyPageSize && pageEnd < endSeq ? fetchPage(pageEnd) : null;
      for (const row of rows) {
        const seq = Number(row.seq);
        if (!Number.isSafeInteger(seq)) return result({ seq: expected, reason: `entry ${expected}: seq is not an integer` });
        if (seq !== expected) {
          const reason = expected === 1 ? `entry 1 missing (the log starts at ${seq})` : `entry ${expected} missing (gap after ${expected - 1})`;
          return result({ seq: expected, reason });
        }
        const broken = this.checkEntry(row, seq, prevHash);
        if (broken) return result({ seq, reason: broken });
        prevHash = row.hash;
        expected = seq + 1;
        entries++;
        while (cp && cp.seq <= seq) {
          if (cp.seq !== seq) return result({ seq: cp.seq, reason: `checkpoint at ${cp.seq}: refers to no entry` });
          const bad = checkCheckpoint(cp);
          if (bad) return result({ seq: cp.seq, reason: bad });
          checkpoints++;
          cp = await nextCheckpoint();
        }
      }
    }
    if (cp) {
      return result({ seq: cp.seq, reason: `checkpoint at ${cp.seq}: entry ${cp.seq} is missing (the log ends at ${expected - 1})` });
    }
    return result();
  }

  /** Why a row does not verify as entry `seq` after `prevHash`, or null. */
  private checkEntry(row: AuditRow, seq: number, prevHash: string): string | null {
    if (row.prev_hash !== prevHash) {
      return seq === 1 ? 'entry 1: prev_hash is not the genesis hash' : `entry ${seq}: prev_hash does not match the hash of entry ${seq - 1}`;
    }
    const ts = Number(row.ts);
    if (!Number.isSafeInteger(ts)) return `entry ${seq}: ts is not an integer`;
    let details: { [key: string]: CanonicalValue } | null = null;
    if (row.details !== null) {
      try {
        details = JSON.parse(row.details) as { [key: string]: CanonicalValue };
        if (canonicalJson(details) !== row.details) return `entry ${seq}: details are not canonical JSON`;
      } catch {
        return `entry ${seq}: details are not canonical JSON`;
      }
    }
    let hash: string;
    try {
      hash = auditChainHash(
        prevHash,
        auditChainEntry({
          seq,
          ts,
          orgId: row.org_id,
          actorUserId: row.actor_user_id,
          actorDeviceId: row.actor_device_id,
          action: row.action,
          targetType: row.target_type,
          targetId: row.target_id,
          outcome: row.outcome,
          ip: row.ip,
          userAgent: row.user_agent,
          client: row.client,
          details,
        }),
      );
    } catch {
      return `entry ${seq}: content cannot be hashed`;
    }
    if (hash !== row.hash) return `entry ${seq}: hash does not match its content`;
    return null;
  }

  // ------------------------------------------------------------------------------------------ querying

  async query(filter: AuditFilter = {}): Promise<AuditEntry[]> {
    const limitIn = optionalInt(filter.limit, 'limit') ?? AUDIT_QUERY_DEFAULT_LIMIT;
    if (limitIn < 1) throw new AuditInputError('audit filter limit: at least 1');
    const limit = Math.min(limitIn, AUDIT_QUERY_MAX_LIMIT);
    const order = filter.order ?? 'asc';
    if (order !== 'asc' && order !== 'desc') throw new AuditInputError("audit filter order: 'asc' or 'desc'");
    const since = optionalInt(filter.since, 'since');
    const until = optionalInt(filter.until, 'until');
    const afterSeq = optionalInt(filter.afterSeq, 'afterSeq');
    const beforeSeq = optionalInt(filter.beforeSeq, 'beforeSeq');
    if (filter.outcome !== undefined && !OUTCOMES.has(filter.outcome)) throw new AuditInputError('audit filter outcome: success, denied or failed');

    const q = this.db('audit_log').select('*');
    if (filter.orgId === null) q.whereNull('org_id');
    else if (filter.orgId !== undefined) q.where('org_id', filter.orgId);
    if (filter.actorUserId !== undefined) q.where('actor_user_id', filter.actorUserId);
    if (filter.actorDeviceId !== undefined) q.where('actor_device_id', filter.actorDeviceId);
    if (filter.action !== undefined) q.where('action', filter.action);
    if (filter.targetType !== undefined) q.where('target_type', filter.targetType);
    if (filter.targetId !== undefined) q.where('target_id', filter.targetId);
    if (filter.outcome !== undefined) q.where('outcome', filter.outcome);
    if (since !== undefined) q.where('ts', '>=', since);
    if (until !== undefined) q.where('ts', '<', until);
    if (afterSeq !== undefined) q.where('seq', '>', afterSeq);
    if (beforeSeq !== undefined) q.where('seq', '<', beforeSeq);
    const rows = (await q.orderBy('seq', order).limit(limit)) as AuditRow[];
    return rows.map(rowToEntry);
  }
}

// ------------------------------------------------------------------------------------------ signing key

export const SIGNING_KEY_FILE = 'audit-signing.key';

/** Thrown when the signing key file cannot be trusted; the server must not start. */
export class SigningKeyFileError extends Error {
  override name = 'SigningKeyFileError';
}

function readSeed(file: string): Uint8Array {
  const fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new SigningKeyFileError(`${file}: not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw new SigningKeyFileError(`${file}: readable or writable by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); run chmod 600 on it`);
    }
    if (st.size !== 32) throw new SigningKeyFileError(`${file}: ${st.size} bytes, a signing seed is exactly 32 bytes`);
    const seed = new Uint8Array(32);
    let got = 0;
    while (got < 32) {
      const n = readSync(fd, seed, got, 32 - got, got);
      if (n === 0) throw new SigningKeyFileError(`${file}: shorter than 32 bytes`);
      got += n;
    }
    return seed;
  } finally {
    closeSync(fd);
  }
}

function writeSeedAtomically(dir: string, file: string): void {
  const tmp = path.join(dir, `.${SIGNING_KEY_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const seed = randomBytes(32);
  const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    fchmodSync(fd, 0o600); // whatever the umask
    let put = 0;
    while (put < 32) put += writeSync(fd, seed, put, 32 - put);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
    seed.fill(0);
  }
  try {
    // link() never replaces: if another process created the key meanwhile, keep theirs.
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(tmp);
  }
  try {
    const dfd = openSync(dir, fsc.O_RDONLY);
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // directories cannot be fsynced everywhere; the key file itself is durable
  }
}

/**
 * The server's checkpoint-signing key from `<dataDir>/audit-signing.key` (a raw 32-byte Ed25519 seed, mode
 * 0600), created atomically on first start. Throws SigningKeyFileError if the file is a symlink, not a regular
 * file, readable or writable by group or others, or not exactly 32 bytes.
 */
export async function loadOrCreateServerSigningKey(dataDir: string): Promise<ServerSigningKey> {
  await initCrypto();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, SIGNING_KEY_FILE);
  let exists = true;
  try {
    const st = lstatSync(file);
    if (st.isSymbolicLink()) throw new SigningKeyFileError(`${file}: is a symbolic link; the key must be a regular file`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    exists = false;
  }
  if (!exists) writeSeedAtomically(dataDir, file);
  const seed = readSeed(file);
  try {
    return serverSigningKeyFromSeed(seed);
  } finally {
    seed.fill(0);
  }
}
