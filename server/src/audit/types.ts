// The audit trail's contract (docs/architecture.md §7). Every state change, and every read of a key bundle, manifest or chunk
// batch, appends an entry in the same transaction as the change; denied and failed attempts are appended too.
import type { CanonicalValue, SignedTreeHead } from '@kluis/shared';
import type { Tx } from '../db/db.js';

export type AuditOutcome = 'success' | 'denied' | 'failed';

/** Who, what, how and the outcome of one access. Never secrets, tokens, file names or plaintext. */
export interface AuditEntryInput {
  orgId: string | null;
  actorUserId?: string | null;
  actorDeviceId?: string | null;
  /** dotted verb, e.g. "auth.login", "space.create", "chunks.download", "audit.export" */
  action: string;
  targetType?: string | null;
  targetId?: string | null;
  outcome: AuditOutcome;
  ip?: string | null;
  userAgent?: string | null;
  /** "kluis-cli/0.1.0", from the X-Kluis-Client header */
  client?: string | null;
  /** small, non-secret facts: counts, roles, error codes */
  details?: { [key: string]: CanonicalValue } | null;
}

/** A stored entry (all times integer ms since 1970 UTC). */
export interface AuditEntry {
  seq: number;
  ts: number;
  orgId: string | null;
  actorUserId: string | null;
  actorDeviceId: string | null;
  action: string;
  targetType: string | null;
  targetId: string | null;
  outcome: AuditOutcome;
  ip: string | null;
  userAgent: string | null;
  client: string | null;
  details: { [key: string]: CanonicalValue } | null;
  prevHash: string;
  hash: string;
}

/**
 * Criteria are ANDed; absent criteria match everything. Results come in seq order, oldest first unless
 * `order: 'desc'`. Page oldest-first with `afterSeq` = the last seq seen, newest-first with `beforeSeq`.
 */
export interface AuditFilter {
  /** An organisation's entries only; `null`: system-wide entries only; absent: every organisation (operators only). */
  orgId?: string | null;
  actorUserId?: string;
  actorDeviceId?: string;
  action?: string;
  targetType?: string;
  targetId?: string;
  outcome?: AuditOutcome;
  /** ts >= since (ms, inclusive) */
  since?: number;
  /** ts < until (ms, exclusive) */
  until?: number;
  /** default 1000, at most 10000 (larger values are clamped) */
  limit?: number;
  /** return entries with seq greater than this (paging) */
  afterSeq?: number;
  /** return entries with seq less than this (paging newest-first) */
  beforeSeq?: number;
  /** 'asc' (default): oldest first; 'desc': newest first */
  order?: 'asc' | 'desc';
}

/** A signed checkpoint over the chain up to and including `seq` (docs/crypto.md §12). */
export interface AuditCheckpointRecord {
  seq: number;
  hash: string;
  ts: number;
  /** the signer's Ed25519 public key (base64url) */
  signer: string;
  /** base64url Ed25519 signature */
  signature: string;
}

export interface AuditVerifyResult {
  ok: boolean;
  entries: number;
  checkpoints: number;
  /** the first entry (or checkpoint) that does not verify */
  firstBroken?: { seq: number; reason: string };
  /** seq and hash of the last entry verified (0 and the genesis hash when none): anchor these elsewhere */
  lastSeq?: number;
  lastHash?: string;
  /** seq of the newest checkpoint verified (0 when none) */
  lastCheckpointSeq?: number;
}

/** The highest entry a verifier has seen intact, kept outside the database (docs/crypto.md §12, rule V5). */
export interface AuditAnchor {
  seq: number;
  /** hash of entry `seq` (64 hex digits) */
  hash: string;
  /** when it was verified (ms since 1970 UTC), for messages */
  verifiedAt?: number;
}

export interface AuditVerifyOptions {
  /** The log must reach `anchor.seq`, and entry `anchor.seq` must have `anchor.hash` (rule V5). */
  anchor?: AuditAnchor | null;
  /** Verification time (default: the log's clock). */
  now?: number;
}

export interface AuditLog {
  /** Appends inside the caller's transaction (commits or rolls back with it); returns the entry's seq. */
  append(trx: Tx, entry: AuditEntryInput): Promise<number>;
  /**
   * Tells the log the organisation of a space read inside `trx`, so that appends in that same transaction need not
   * read it again (audit/org-sides.ts). Optional: a log that copies nothing across organisations ignores it.
   */
  noteSpaceOrg?(trx: Tx, spaceId: string, orgId: string): void;
  /** Appends in a transaction of its own: for denials and failures whose main transaction rolled back. */
  /** Appends entries in order in one multi-row INSERT, with their copies for the spaces' organisations (audit/org-sides.ts). */
  appendBatch?(trx: Tx, entries: readonly AuditEntryInput[]): Promise<number[]>;
  appendStandalone(entry: AuditEntryInput): Promise<number>;
  /** Writes a signed checkpoint over the newest entry (no-op if none since the last). */
  checkpoint(): Promise<void>;
  /**
   * Recomputes the chain, checks every checkpoint signature, demands the checkpoints the server must have written
   * and, given an anchor, a log that reaches it unchanged (docs/crypto.md §12, rules V1–V5).
   */
  verify(options?: AuditVerifyOptions): Promise<AuditVerifyResult>;
  /**
   * Audits a request that has no authenticated caller (no or a bad session, prelogin, failed login), aggregated so
   * that a flood does not write one row per request: see anonymous.ts. Resolves once the entry is written or counted.
   */
  appendAnonymous(entry: AuditEntryInput): Promise<void>;
  query(filter: AuditFilter): Promise<AuditEntry[]>;
  /** Checkpoints with fromSeq <= seq <= toSeq, oldest first, at most `limit` (for exports). */
  listCheckpoints?(range: { fromSeq: number; toSeq: number; limit?: number }): Promise<AuditCheckpointRecord[]>;
  /** The server's checkpoint-signing public key (base64url). */
  readonly publicKey: string;
  /** The Merkle tree log (docs/crypto.md §12 "Merkle tree log"): signed tree heads with size > after, oldest first. */
  treeHeads(after: number, limit: number): Promise<SignedTreeHead[]>;
  /** The signed tree head of `size` entries (null: none signed at that size), or the newest one without `size`. */
  treeHead(size?: number): Promise<SignedTreeHead | null>;
  /** Entry `seq`'s organisation and leaf hash (hex), or null when there is no such entry. */
  leaf(seq: number): Promise<{ orgId: string | null; leafHash: string } | null>;
  /** The audit path of entry `seq` in the tree of the first `size` entries (1 <= seq <= size), hex. */
  inclusionProof(seq: number, size: number): Promise<string[]>;
  /** The consistency proof between the trees of the first `from` and `to` entries (1 <= from <= to), hex. */
  consistencyProof(from: number, to: number): Promise<string[]>;
}
