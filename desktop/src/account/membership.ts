// The client's view of a space's membership (docs/crypto.md §4.1): the log verified from its first entry against
// the newest position this client saw before, and everything derived from it: who may grant an epoch's key, who
// may write, and the key pair of every epoch this account is entitled to (the epoch chain).
import {
  CryptoError, ErrorCode, openPreviousEpoch, openSpaceKeyWrap, verifyMembershipLog,
  type MembershipState, type SpaceKeyPair,
} from '@kluis/shared';
import type { SpaceDetails } from '../api/endpoints.js';
import { loadMembershipAnchor, saveMembershipAnchor, type Account } from './state.js';
import { checkPins } from './pins.js';

/**
 * Verifies the space's membership log and moves this client's anchor forward. Throws CryptoError when an entry
 * breaks a rule, or (membership_rollback) when the log no longer holds the position this client verified before.
 */
export function verifiedMembership(account: Account, details: SpaceDetails): MembershipState {
  if (details.log.length === 0) {
    throw new CryptoError(ErrorCode.BadMembership, `"${details.name}" has no membership log (it was made before logs existed): a manager should create a new space`);
  }
  const anchor = loadMembershipAnchor(account, details.spaceId);
  const state = verifyMembershipLog(details.log, details.spaceId, anchor);
  if (state.keyEpoch !== details.keyEpoch) throw new CryptoError(ErrorCode.BadMembership, `the server says key epoch ${details.keyEpoch} of "${details.name}" is current, its membership log says ${state.keyEpoch}`);
  // The members the log names now must be the colleagues this device pinned (first use pins them).
  checkPins(account, [...state.members.values()].map((m) => m.identity), true);
  saveMembershipAnchor(account, details.spaceId, { seq: state.seq, hash: state.hash });
  return state;
}

/**
 * Opens every key epoch of the space this account may hold: each of its own wraps that a manager of that epoch
 * signed (as the log says), then, walking back from each opened epoch, the previous epochs sealed to it. Every key
 * pair is checked against the epoch's public key in the verified log, never the server's list. A wrap that does
 * not open leaves only that epoch closed; the current epoch must open.
 */
export function openEpochKeys(account: Account, details: SpaceDetails, state: MembershipState): Map<number, SpaceKeyPair> {
  const out = new Map<number, SpaceKeyPair>();
  let currentError: unknown = new CryptoError(ErrorCode.BadKey, `the server holds no key of epoch ${state.keyEpoch} of "${details.name}" for you`);
  for (const wrap of details.myWraps) {
    const logKey = state.epochs.get(wrap.keyEpoch);
    try {
      if (logKey === undefined || wrap.spacePublicKey !== logKey) throw new CryptoError(ErrorCode.BadKey, `the key of epoch ${wrap.keyEpoch} is not the one in the membership log`);
      const grants = (signer: string) => state.heldRoleDuringEpoch(signer, wrap.keyEpoch, ['manager']);
      out.set(wrap.keyEpoch, openSpaceKeyWrap(wrap, { spaceId: details.spaceId, keyEpoch: wrap.keyEpoch }, account.keys, grants));
    } catch (err) {
      if (wrap.keyEpoch === state.keyEpoch) currentError = err;
    }
  }
  if (!out.has(state.keyEpoch)) throw currentError;
  const sealedBefore = new Map(details.epochs.map((e) => [e.keyEpoch, e.prevSealed]));
  for (let epoch = state.keyEpoch; epoch > 1; epoch--) {
    const pair = out.get(epoch);
    const sealed = sealedBefore.get(epoch);
    const previousKey = state.epochs.get(epoch - 1);
    if (!pair || out.has(epoch - 1) || !sealed || !previousKey) continue;
    try {
      out.set(epoch - 1, openPreviousEpoch(sealed, pair, previousKey));
    } catch {
      // that epoch stays closed: its versions are reported as unreadable, nothing else is affected
    }
  }
  return out;
}

/** Who may have written a manifest: a writer at the log position it names (v2), or at any position so far (v1). */
export function manifestPolicy(state: MembershipState): (signer: string, memberSeq: number | null) => boolean {
  return (signer, memberSeq) => (memberSeq === null ? state.everWriter(signer) : state.writerAt(signer, memberSeq));
}

/** Who may have sealed a file key to epoch `keyEpoch`: a writer while that epoch was current. */
export function fileKeyPolicy(state: MembershipState, keyEpoch: number): (signer: string) => boolean {
  return (signer) => state.heldRoleDuringEpoch(signer, keyEpoch, ['editor', 'manager']);
}
