// The membership log on the server (docs/crypto.md §4.1). The server is not trusted to keep it honest (clients
// verify it from the first entry), but it refuses any entry that breaks a rule, so that the log and the member
// tables it serves never disagree: each route appends its entry in the same transaction as the change it records.
import { CryptoError, ErrorCode, membershipEntryHash, verifyMembershipLog, type MembershipEntry, type MembershipState, type SpaceRole } from '@kluis/shared';
import type { Db, Tx } from '../db/db.js';
import { DomainError } from '../domain-error.js';

/** The log's entries in order (as stored: the clients' canonical JSON, parsed). */
export async function readLog(db: Db | Tx, spaceId: string): Promise<MembershipEntry[]> {
  const rows = await db('space_log').where({ space_id: spaceId }).orderBy('seq').select('entry');
  return rows.map((r: { entry: string }) => JSON.parse(r.entry) as MembershipEntry);
}

/** Verifies the stored log (a database that disagrees with its own log is refused, not served silently). */
export async function logState(trx: Tx, spaceId: string): Promise<MembershipState> {
  const entries = await readLog(trx, spaceId);
  if (entries.length === 0) throw new DomainError(ErrorCode.Conflict, 'this space has no membership log (it was made before logs existed): create a new space');
  return verifyMembershipLog(entries, spaceId);
}

/** What the request says the entry must record; an entry that records anything else is refused. */
export interface EntryExpectation {
  op: MembershipEntry['op'];
  /** The caller's signing key: every entry is signed by whoever sends it. */
  signer: string;
  /** The member concerned, with the keys the directory holds for them. */
  user?: { userId: string; encPublicKey: string; signPublicKey: string; email: string };
  role?: SpaceRole;
  spacePublicKey?: string;
}

function matches(entry: MembershipEntry, expect: EntryExpectation): string | null {
  if (entry.op !== expect.op) return `the entry must record "${expect.op}"`;
  if (entry.signer !== expect.signer) return 'the entry must be signed by you';
  if (expect.user) {
    const u = entry.user;
    if (!u || u.userId !== expect.user.userId) return 'the entry names another member';
    if (u.encPublicKey !== expect.user.encPublicKey || u.signPublicKey !== expect.user.signPublicKey || u.email !== expect.user.email) return 'the entry names other keys than the directory holds for the member';
  }
  if (expect.role !== undefined && entry.role !== expect.role) return 'the entry records another role';
  if (expect.spacePublicKey !== undefined && entry.spacePublicKey !== expect.spacePublicKey) return 'the entry records another space key';
  return null;
}

/**
 * Checks `entry` against the request and every rule of the log (on `state`, the verified log so far; null for a
 * new space), then stores it. A stale position (another manager appended first) answers 409 with the log's head.
 */
export async function appendEntry(trx: Tx, spaceId: string, state: MembershipState | null, entry: MembershipEntry, expect: EntryExpectation, now: number): Promise<void> {
  const mismatch = matches(entry, expect);
  if (mismatch) throw new DomainError(ErrorCode.BadMembership, `entry: ${mismatch}`);
  const headSeq = state?.seq ?? 0;
  if (entry.seq !== headSeq + 1 || (state && entry.prev !== state.hash)) {
    const err = new DomainError(ErrorCode.Conflict, `entry: the membership log has moved on (head ${headSeq}): fetch the space and try again`);
    err.extra = { logHead: headSeq };
    throw err;
  }
  try {
    if (state) state.apply(entry);
    else verifyMembershipLog([entry], spaceId);
  } catch (err) {
    if (err instanceof CryptoError) throw new DomainError(err.code === ErrorCode.BadSignature ? ErrorCode.BadSignature : ErrorCode.BadMembership, `entry: ${err.message}`);
    throw err;
  }
  await trx('space_log').insert({ space_id: spaceId, seq: entry.seq, entry: JSON.stringify(entry), hash: membershipEntryHash(entry), created_at: now });
}
