// The membership log of a space (docs/crypto.md §4.1): a signed, hash-chained, append-only list of who is a member
// with which role and which key epoch is current. Clients verify it from its first entry and judge every version by
// the writers at the log position the version names, so a colleague who left keeps their past versions valid, and
// a server can withhold the log's tail but not add, change, reorder or roll back an entry a client has seen.
import { CryptoError, ErrorCode } from '../errors.js';
import { concatBytes, toBase64Url, toHex, utf8 } from '../encoding.js';
import { canonicalBytes } from '../canonical.js';
import type { AccountKeys, SpaceKeyPair } from './keys.js';
import { verifyIdentity } from './keys.js';
import { blake2b, constantTimeEqual, decodeB64, idBytes, openSealedBox, sealBox, signDetached, verifyDetached, x25519Base } from './primitives.js';

export type MemberRole = 'viewer' | 'editor' | 'manager';
export type MembershipOp = 'create' | 'add' | 'remove' | 'role' | 'rotate';

/** A member's public identity as the log records it (the directory entry, self-signed: docs/crypto.md §3). */
export interface MemberIdentity {
  userId: string;
  email: string;
  encPublicKey: string;
  signPublicKey: string;
  identitySig: string;
}

/** One entry. `sig` covers every other field; `hash` (not stored in the entry) chains it to the next. */
export interface MembershipEntry {
  v: 1;
  kind: 'membership';
  spaceId: string;
  /** 1 for the first entry, then +1. */
  seq: number;
  /** hex hash of the previous entry; 64 zeros for seq 1. */
  prev: string;
  op: MembershipOp;
  /** ms since 1970 UTC, as the author's clock says (informational). */
  ts: number;
  /** create: the creator; add, remove, role: the member concerned; rotate: null. */
  user: MemberIdentity | null;
  /** create: "manager"; add and role: the new role; remove and rotate: null. */
  role: MemberRole | null;
  /** The key epoch current after this entry (create: 1; remove and rotate: the previous one + 1). */
  keyEpoch: number;
  /** create, remove and rotate: the public key of the epoch they start; otherwise null. */
  spacePublicKey: string | null;
  /** The author's Ed25519 public key (a manager at the previous position; for create, the creator). */
  signer: string;
  sig: string;
}

export const MEMBERSHIP_GENESIS = '0'.repeat(64);
const CTX_MEMBERSHIP = 'kluis/membership/v1';
const ENTRY_KEYS = 'keyEpoch,kind,op,prev,role,seq,sig,signer,spaceId,spacePublicKey,ts,user,v';
const USER_KEYS = 'email,encPublicKey,identitySig,signPublicKey,userId';
const ROLES: ReadonlySet<string> = new Set(['viewer', 'editor', 'manager']);
const OPS: ReadonlySet<string> = new Set(['create', 'add', 'remove', 'role', 'rotate']);
const HEX64 = /^[0-9a-f]{64}$/;

function bad(seq: number | undefined, why: string): never {
  throw new CryptoError(ErrorCode.BadMembership, `membership log${seq ? ` entry ${seq}` : ''}: ${why}`);
}

/** hex(BLAKE2b-256(UTF8("kluis/membership/v1") || 0x00 || canonical(entry including sig))). */
export function membershipEntryHash(entry: MembershipEntry): string {
  return toHex(blake2b(32, concatBytes(utf8(CTX_MEMBERSHIP), new Uint8Array([0]), canonicalBytes(entry))));
}

/** Signs the fields of an entry as `author` (docs/crypto.md §4.1). */
export function signMembershipEntry(fields: Omit<MembershipEntry, 'v' | 'kind' | 'signer' | 'sig'>, author: AccountKeys): MembershipEntry {
  const unsigned = { v: 1 as const, kind: 'membership' as const, ...fields, signer: toBase64Url(author.signPublicKey) };
  assertShape(unsigned, false);
  const sig = signDetached(CTX_MEMBERSHIP, canonicalBytes(unsigned), author.signSecretKey);
  return { ...unsigned, sig: toBase64Url(sig) };
}

function assertShape(e: unknown, withSig = true): asserts e is MembershipEntry {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) bad(undefined, 'an entry is not an object');
  const o = e as Record<string, unknown>;
  const seq = typeof o.seq === 'number' ? o.seq : undefined;
  const expected = withSig ? ENTRY_KEYS : ENTRY_KEYS.replace('sig,', '');
  if (Object.keys(o).sort().join(',') !== expected) bad(seq, 'unexpected fields');
  if (o.v !== 1) throw new CryptoError(ErrorCode.UnsupportedVersion, `unknown membership entry version ${String(o.v)}`);
  if (o.kind !== 'membership') bad(seq, 'kind');
  if (typeof o.spaceId !== 'string') bad(seq, 'spaceId');
  idBytes(o.spaceId as string, 'spaceId');
  if (!Number.isSafeInteger(o.seq) || (o.seq as number) < 1) bad(seq, 'seq');
  if (typeof o.prev !== 'string' || !HEX64.test(o.prev)) bad(seq, 'prev');
  if (typeof o.op !== 'string' || !OPS.has(o.op)) bad(seq, 'op');
  if (!Number.isSafeInteger(o.ts) || (o.ts as number) < 0) bad(seq, 'ts');
  if (o.role !== null && (typeof o.role !== 'string' || !ROLES.has(o.role))) bad(seq, 'role');
  if (!Number.isSafeInteger(o.keyEpoch) || (o.keyEpoch as number) < 1) bad(seq, 'keyEpoch');
  if (o.spacePublicKey !== null) {
    if (typeof o.spacePublicKey !== 'string') bad(seq, 'spacePublicKey');
    decodeB64(o.spacePublicKey as string, 'spacePublicKey', 32);
  }
  if (typeof o.signer !== 'string') bad(seq, 'signer');
  decodeB64(o.signer as string, 'signer', 32);
  if (withSig && typeof o.sig !== 'string') bad(seq, 'sig');
  if (o.user !== null) {
    const u = o.user as Record<string, unknown>;
    if (typeof u !== 'object' || Array.isArray(u) || Object.keys(u).sort().join(',') !== USER_KEYS) bad(seq, 'user');
    if (typeof u.userId !== 'string' || typeof u.email !== 'string' || typeof u.encPublicKey !== 'string' || typeof u.signPublicKey !== 'string' || typeof u.identitySig !== 'string') bad(seq, 'user');
    idBytes(u.userId as string, 'user.userId');
    decodeB64(u.encPublicKey as string, 'user.encPublicKey', 32);
    decodeB64(u.signPublicKey as string, 'user.signPublicKey', 32);
  }
  // Which fields each operation carries (docs/crypto.md §4.1, table).
  const op = o.op as MembershipOp;
  const wantsUser = op !== 'rotate';
  const wantsRole = op === 'create' || op === 'add' || op === 'role';
  const wantsKey = op === 'create' || op === 'remove' || op === 'rotate';
  if ((o.user !== null) !== wantsUser) bad(seq, `${op} ${wantsUser ? 'names' : 'names no'} member`);
  if ((o.role !== null) !== wantsRole) bad(seq, `${op} ${wantsRole ? 'carries' : 'carries no'} role`);
  if ((o.spacePublicKey !== null) !== wantsKey) bad(seq, `${op} ${wantsKey ? 'starts' : 'starts no'} key epoch`);
}

/** A member as the log stands at some position. */
export interface LogMember {
  identity: MemberIdentity;
  role: MemberRole;
}

/**
 * The verified state of a log: members and epochs at its head, and the role every signing key had at every
 * position (for judging versions by the writers at the position they name).
 */
export class MembershipState {
  readonly members = new Map<string, LogMember>();
  /** keyEpoch -> space public key (base64url) */
  readonly epochs = new Map<number, string>();
  /** keyEpoch -> the seq of the entry that started it */
  private readonly epochStarts = new Map<number, number>();
  /** signPublicKey -> [fromSeq, role or null once removed], oldest first */
  private readonly roleChanges = new Map<string, [number, MemberRole | null][]>();
  seq = 0;
  hash = MEMBERSHIP_GENESIS;
  keyEpoch = 0;

  constructor(readonly spaceId: string) {}

  /** The role of the holder of `signPublicKey` after entry `seq` (null: not a member then). */
  roleAt(signPublicKey: string, seq: number): MemberRole | null {
    const changes = this.roleChanges.get(signPublicKey);
    let role: MemberRole | null = null;
    for (const [from, r] of changes ?? []) {
      if (from > seq) break;
      role = r;
    }
    return role;
  }

  /** Whether `signPublicKey` could write (editor or manager) after entry `seq`, a position this state has verified. */
  writerAt(signPublicKey: string, seq: number): boolean {
    if (!Number.isSafeInteger(seq) || seq < 1 || seq > this.seq) return false;
    const role = this.roleAt(signPublicKey, seq);
    return role === 'editor' || role === 'manager';
  }

  /**
   * Whether `signPublicKey` held one of `roles` at some position while `keyEpoch` was current: who may grant that
   * epoch's key (managers) or wrap a file key to it (writers), judged at the time, so a later demotion or departure
   * does not void what they did before.
   */
  heldRoleDuringEpoch(signPublicKey: string, keyEpoch: number, roles: readonly MemberRole[]): boolean {
    const from = this.epochStarts.get(keyEpoch);
    if (from === undefined) return false;
    const to = (this.epochStarts.get(keyEpoch + 1) ?? this.seq + 1) - 1;
    const ok = (r: MemberRole | null) => r !== null && roles.includes(r);
    if (ok(this.roleAt(signPublicKey, from))) return true;
    return (this.roleChanges.get(signPublicKey) ?? []).some(([at, r]) => at > from && at <= to && ok(r));
  }

  /** Every key that was ever a member, with its e-mail (for naming authors of old versions). */
  everMembers(): Map<string, string> {
    const out = new Map<string, string>();
    for (const m of this.members.values()) out.set(m.identity.signPublicKey, m.identity.email);
    for (const [key, email] of this.departed) if (!out.has(key)) out.set(key, email);
    return out;
  }

  /** Whether `signPublicKey` was a writer at any position up to the head (versions that name no position). */
  everWriter(signPublicKey: string): boolean {
    return (this.roleChanges.get(signPublicKey) ?? []).some(([, r]) => r === 'editor' || r === 'manager');
  }

  /** The member holding `signPublicKey` at the head, if any. */
  memberBySignKey(signPublicKey: string): LogMember | undefined {
    for (const m of this.members.values()) if (m.identity.signPublicKey === signPublicKey) return m;
    return undefined;
  }

  private managers(): number {
    let n = 0;
    for (const m of this.members.values()) if (m.role === 'manager') n++;
    return n;
  }

  /** signPublicKey -> e-mail of members who left */
  private readonly departed = new Map<string, string>();

  private setRole(identity: MemberIdentity, role: MemberRole | null, seq: number): void {
    if (role) this.members.set(identity.userId, { identity, role });
    else {
      this.members.delete(identity.userId);
      this.departed.set(identity.signPublicKey, identity.email);
    }
    const list = this.roleChanges.get(identity.signPublicKey) ?? [];
    list.push([seq, role]);
    this.roleChanges.set(identity.signPublicKey, list);
  }

  /** Applies one entry after checking every rule of docs/crypto.md §4.1; throws CryptoError and changes nothing otherwise. */
  apply(e: unknown): void {
    assertShape(e);
    const seq = e.seq;
    if (e.spaceId !== this.spaceId) bad(seq, 'belongs to another space');
    if (seq !== this.seq + 1) bad(seq, `out of order (expected entry ${this.seq + 1})`);
    if (e.prev !== this.hash) bad(seq, 'does not extend the chain (prev differs)');
    const { sig, ...fields } = e;
    try {
      verifyDetached(CTX_MEMBERSHIP, canonicalBytes(fields), decodeB64(sig, 'sig', 64), decodeB64(e.signer, 'signer', 32));
    } catch {
      throw new CryptoError(ErrorCode.BadSignature, `membership log entry ${seq}: the signature does not verify`);
    }
    if (e.spacePublicKey && [...this.epochs.values()].includes(e.spacePublicKey)) bad(seq, 'a key epoch reuses an earlier public key');
    const user = e.user;
    const checkIdentity = (u: MemberIdentity) => {
      try {
        verifyIdentity(u, u.email, u.identitySig);
      } catch {
        bad(seq, `the identity of ${u.email} does not verify`);
      }
    };
    const sameMember = (u: MemberIdentity): LogMember => {
      const m = this.members.get(u.userId);
      if (!m) bad(seq, `${u.email} is not a member`);
      if (m.identity.signPublicKey !== u.signPublicKey || m.identity.encPublicKey !== u.encPublicKey || m.identity.email !== u.email) bad(seq, `${u.email} is named with other keys than when added`);
      return m;
    };
    if (seq === 1) {
      if (e.op !== 'create') bad(seq, 'the first entry must create the space');
      checkIdentity(user!);
      if (e.signer !== user!.signPublicKey) bad(seq, 'the space is created by its first member');
      if (e.keyEpoch !== 1 || e.role !== 'manager') bad(seq, 'the creator is a manager of key epoch 1');
      this.setRole(user!, 'manager', seq);
    } else {
      if (e.op === 'create') bad(seq, 'only the first entry creates the space');
      const author = this.memberBySignKey(e.signer);
      if (!author || author.role !== 'manager') throw new CryptoError(ErrorCode.UntrustedSigner, `membership log entry ${seq}: signed by someone who was not a manager`);
      const rotates = e.op === 'remove' || e.op === 'rotate';
      if (e.keyEpoch !== this.keyEpoch + (rotates ? 1 : 0)) bad(seq, `key epoch must be ${this.keyEpoch + (rotates ? 1 : 0)}`);
      if (e.op === 'add') {
        if (this.members.has(user!.userId)) bad(seq, `${user!.email} is already a member`);
        if (this.memberBySignKey(user!.signPublicKey)) bad(seq, 'another member has the same key');
        checkIdentity(user!);
        this.setRole(user!, e.role, seq);
      } else if (e.op === 'role') {
        const m = sameMember(user!);
        if (m.role === e.role) bad(seq, 'the role does not change');
        if (m.role === 'manager' && this.managers() <= 1) bad(seq, 'a space keeps at least one manager');
        this.setRole(m.identity, e.role, seq);
      } else if (e.op === 'remove') {
        const m = sameMember(user!);
        if (m.role === 'manager' && this.managers() <= 1) bad(seq, 'a space keeps at least one manager');
        this.setRole(m.identity, null, seq);
      }
    }
    if (e.spacePublicKey) {
      this.epochs.set(e.keyEpoch, e.spacePublicKey);
      this.epochStarts.set(e.keyEpoch, seq);
    }
    this.keyEpoch = e.keyEpoch;
    this.seq = seq;
    this.hash = membershipEntryHash(e);
  }
}

/** The newest position a client has verified: a later log must still contain it, unchanged. */
export interface MembershipAnchor {
  seq: number;
  hash: string;
}

/**
 * Verifies a whole log from its first entry. With `anchor` (the newest position this client verified before), a
 * log that is shorter or differs at that position is refused as rolled back or rewritten.
 */
export function verifyMembershipLog(entries: readonly unknown[], spaceId: string, anchor?: MembershipAnchor | null): MembershipState {
  const state = new MembershipState(spaceId);
  if (entries.length === 0) bad(undefined, 'empty');
  let anchorHash: string | null = null;
  for (const e of entries) {
    state.apply(e);
    if (anchor && state.seq === anchor.seq) anchorHash = state.hash;
  }
  if (anchor && anchor.seq > 0 && anchorHash !== anchor.hash) {
    throw new CryptoError(ErrorCode.MembershipRollback, anchorHash === null
      ? `membership log: the server answered ${state.seq} entries, but entry ${anchor.seq} was seen before (rolled back)`
      : `membership log: entry ${anchor.seq} differs from the one seen before (rewritten)`);
  }
  return state;
}

/** Fields of the next entry after `state`, ready for signMembershipEntry. */
export function nextMembershipFields(state: MembershipState, op: Exclude<MembershipOp, 'create'>, fields: { user?: MemberIdentity; role?: MemberRole; spacePublicKey?: string }, ts = Date.now()): Omit<MembershipEntry, 'v' | 'kind' | 'signer' | 'sig'> {
  const rotates = op === 'remove' || op === 'rotate';
  return {
    spaceId: state.spaceId, seq: state.seq + 1, prev: state.hash, op, ts,
    user: fields.user ?? null, role: fields.role ?? null,
    keyEpoch: state.keyEpoch + (rotates ? 1 : 0), spacePublicKey: fields.spacePublicKey ?? null,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Epoch chain: each new epoch's key pair also seals the previous epoch's secret key, so a member who holds the
// newest epoch can open every earlier one (a member added after rotations still reads older files).

/** Seal(previous.secretKey, next.publicKey), base64url: stored beside epoch `next`. */
export function sealPreviousEpoch(previous: SpaceKeyPair, next: SpaceKeyPair): string {
  return toBase64Url(sealBox(previous.secretKey, next.publicKey));
}

/** Opens the previous epoch's key pair and checks it against that epoch's public key from the verified log. */
export function openPreviousEpoch(sealed: string, next: SpaceKeyPair, expectedPublicKey: string): SpaceKeyPair {
  let secretKey: Uint8Array;
  try {
    secretKey = openSealedBox(decodeB64(sealed, 'prevSealed'), next.publicKey, next.secretKey);
    if (secretKey.length !== 32) throw new Error('length');
  } catch {
    throw new CryptoError(ErrorCode.DecryptFailed, 'the previous epoch key does not open');
  }
  const publicKey = x25519Base(secretKey);
  if (!constantTimeEqual(publicKey, decodeB64(expectedPublicKey, 'spacePublicKey', 32))) throw new CryptoError(ErrorCode.BadKey, 'the previous epoch key does not match the membership log');
  return { publicKey, secretKey };
}
