// The verifier's memory (docs/crypto.md §12, rule V5): the highest entry `kluis-admin audit verify` has found intact,
// kept in a state file OUTSIDE the database, so that a log cut back to an earlier consistent state (checkpoints and
// all) or rewritten below that entry is refused. Someone who can write the database file can usually write the data
// directory too, which is why the file can (and in production should) live elsewhere: `--state FILE`.
//
// The file: {"format":"kluis-audit-verified/v1","seq":N,"hash":"<hash of entry N>","verifiedAt":ms,
// "serverPublicKey":"<b64u>"}, mode 0600, replaced atomically (write a temporary file, fsync, rename) and only after a
// verification that passed. A file that cannot be read or parsed stops verification: it is never silently replaced.
import { readFileSync } from 'node:fs';
import type { AuditLog, AuditVerifyResult } from './types.js';
import { HASH_RE } from './rows.js';
import { writeFileAtomicallySync } from '../fsync-dir.js';

export const AUDIT_STATE_FILE = 'audit-verified.json';
export const AUDIT_STATE_FORMAT = 'kluis-audit-verified/v1';

export interface AuditState {
  format: typeof AUDIT_STATE_FORMAT;
  /** The highest seq verified (0: an empty log). */
  seq: number;
  /** The hash of entry `seq` (the genesis hash for 0). */
  hash: string;
  /** When it was verified, ms since 1970 UTC. */
  verifiedAt: number;
  /** The server key the checkpoints were checked against (informative). */
  serverPublicKey: string;
}

/** The state file is unreadable, malformed, or required and missing: verification must not go on. */
export class AuditStateError extends Error {
  override name = 'AuditStateError';
}

/** Reads the state file; null if it does not exist. Throws AuditStateError for anything else that is wrong. */
export function readAuditState(file: string): AuditState | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new AuditStateError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let v: Partial<AuditState>;
  try {
    v = JSON.parse(text) as Partial<AuditState>;
  } catch {
    throw new AuditStateError(`${file}: not JSON; it is not replaced (move it aside to start over)`);
  }
  if (!v || typeof v !== 'object' || v.format !== AUDIT_STATE_FORMAT || !Number.isSafeInteger(v.seq) || (v.seq as number) < 0
    || typeof v.hash !== 'string' || !HASH_RE.test(v.hash) || !Number.isSafeInteger(v.verifiedAt) || typeof v.serverPublicKey !== 'string') {
    throw new AuditStateError(`${file}: not a ${AUDIT_STATE_FORMAT} state file; it is not replaced (move it aside to start over)`);
  }
  return { format: AUDIT_STATE_FORMAT, seq: v.seq!, hash: v.hash, verifiedAt: v.verifiedAt!, serverPublicKey: v.serverPublicKey };
}

/** Replaces the state file atomically (mode 0600). */
export function writeAuditState(file: string, state: AuditState): void {
  writeFileAtomicallySync(file, JSON.stringify(state) + '\n');
}

export interface VerifyWithStateOptions {
  /** The state file; null: verify without one (rules V1–V4 only), reading and writing nothing. */
  file: string | null;
  /** Refuse to run when the state file does not exist (so that deleting it cannot reset the verifier). */
  require?: boolean;
  /** Verification time (default: the log's clock). */
  now?: number;
  /**
   * Called after a verification that passed; returns the entry to record instead of the last one verified. kluis-admin
   * appends its own `audit.verify` entry to the verified chain here and records that, so that cutting the log back
   * to just before the verifier's entry (erasing the record of the verification) is refused next time.
   */
  onVerified?: (result: AuditVerifyResult) => Promise<{ seq: number; hash: string }>;
}

export interface VerifyWithStateResult extends AuditVerifyResult {
  /** null when run without a state file. */
  state: { file: string; previous: AuditState | null; saved: { seq: number; hash: string } | null } | null;
}

/**
 * Verifies the log against the state file's anchor (rule V5) as well as rules V1–V4, and on success records the
 * newest entry verified. Throws AuditStateError (before verifying) for a bad or required-but-missing state file.
 */
export async function verifyWithState(log: AuditLog, options: VerifyWithStateOptions): Promise<VerifyWithStateResult> {
  if (options.file === null) return { ...(await log.verify({ now: options.now })), state: null };
  const file = options.file;
  const previous = readAuditState(file);
  if (!previous && options.require) throw new AuditStateError(`${file}: no state file, and --require-state was given (was it deleted?)`);
  const now = options.now ?? Date.now();
  const r = await log.verify({ now, anchor: previous ? { seq: previous.seq, hash: previous.hash, verifiedAt: previous.verifiedAt } : null });
  let saved: { seq: number; hash: string } | null = null;
  if (r.ok && r.lastSeq !== undefined && r.lastHash !== undefined) {
    const head = options.onVerified ? await options.onVerified(r) : { seq: r.lastSeq, hash: r.lastHash };
    // Rule V5 refused a shorter log already; the check keeps the anchor from ever moving back.
    if (head.seq >= (previous?.seq ?? 0)) {
      writeAuditState(file, { format: AUDIT_STATE_FORMAT, seq: head.seq, hash: head.hash, verifiedAt: now, serverPublicKey: log.publicKey });
      saved = head;
    }
  }
  return { ...r, state: { file, previous, saved } };
}
