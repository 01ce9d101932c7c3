// Spaces, members and colleagues' keys, client side (docs/crypto.md §3–§4.1). Every public key we seal to comes
// from the directory and is accepted only with a valid identity signature for the expected e-mail address; every
// membership change is a signed entry of the space's log (account/membership.ts verifies it before any use).
import {
  CryptoError, ErrorCode, KluisError, OrgPolicyAnswer, RaiseBlocker, classAtLeast, fingerprint, generateSpaceKeyPair, nameProblem, newId, nextMembershipFields, publicIdentity, sealPreviousEpoch,
  signIdentity, signMembershipEntry, toBase64Url, verifyIdentity, wipeBytes, wrapSpaceKey,
  type Classification, type DirectoryEntry, type MemberIdentity, type MembershipState, type SpaceRole,
} from '@kluis/shared';
import { ApiRequestError, type ApiClient } from '../api/client.js';
import { api, type SpaceDetails, type SpaceSummary } from '../api/endpoints.js';
import { clientFor, normaliseEmail, UsageError } from './auth.js';
import type { Account } from './state.js';
import { openEpochKeys, verifiedMembership } from './membership.js';
import { acceptPin, checkPins, pinnedFingerprint } from './pins.js';

/** Our own identity as the membership log names members. */
function ownIdentity(account: Account): MemberIdentity {
  const pub = publicIdentity(account.keys);
  return { userId: account.session.userId, email: account.session.email, ...pub, identitySig: signIdentity(account.keys, account.session.email) };
}

const identityOf = (e: DirectoryEntry): MemberIdentity => ({ userId: e.userId, email: e.email, encPublicKey: e.encPublicKey, signPublicKey: e.signPublicKey, identitySig: e.identitySig });

/** The space's details with its verified membership and our key of the current epoch. */
async function managedSpace(account: Account, c: ApiClient, spaceRef: string, verb: string) {
  const space = await resolveSpace(c, spaceRef);
  if (space.role !== 'manager') throw new KluisError(ErrorCode.Forbidden, `only a manager of "${space.name}" ${verb} (you are ${space.role})`);
  const details = await api.space(c, space.spaceId);
  const state = verifiedMembership(account, details);
  return { space, details, state };
}

/** An authenticated client for the saved session. */
export function accountClient(account: Account): ApiClient {
  return clientFor(account.session.server, account.session.token);
}

/**
 * A directory entry whose identity signature verifies for the e-mail address it claims (and the one we asked for),
 * and, given the account, whose keys are the ones pinned on first use (account/pins.ts). `spaceId` asks in the context
 * of a space, where a person of another organisation is found by their exact address if the space's class allows
 * it (docs/api.md "External people"); their keys are pinned exactly like a colleague's.
 */
export async function verifiedColleague(c: ApiClient, lookup: { email: string; spaceId?: string } | { userId: string; email?: string }, account?: Account): Promise<DirectoryEntry> {
  const entry = 'userId' in lookup ? await api.directoryById(c, lookup.userId) : await api.directoryByEmail(c, normaliseEmail(lookup.email), lookup.spaceId);
  const expected = 'userId' in lookup ? (lookup.email ?? entry.email) : normaliseEmail(lookup.email);
  if ('userId' in lookup && entry.userId !== lookup.userId) throw new CryptoError(ErrorCode.BadKey, `the directory answered for another user than ${lookup.userId}`);
  if (entry.email !== expected) throw new CryptoError(ErrorCode.BadKey, `the directory answered for ${entry.email} instead of ${expected}`);
  try {
    verifyIdentity(entry, expected, entry.identitySig);
  } catch {
    throw new CryptoError(ErrorCode.BadSignature, `the keys the server lists for ${expected} are not signed by that account: refusing to use them (report this to your security officer)`);
  }
  if (account) checkPins(account, [entry]);
  return entry;
}

/**
 * Own or a colleague's fingerprint (a colleague's keys only with a verified identity signature), with the one
 * pinned on this device. `accept` replaces the pin with the directory's keys: the user has compared them.
 */
export async function fingerprintOf(account: Account, email?: string, accept = false): Promise<{ email: string; fingerprint: string; userId: string; pinned: string | null; accepted?: { previous: string | null } }> {
  if (email === undefined || normaliseEmail(email) === account.session.email) {
    if (accept) throw new UsageError('--accept is for a colleague\'s keys: your own are checked at every login');
    const own = fingerprint(publicIdentity(account.keys));
    return { email: account.session.email, userId: account.session.userId, fingerprint: own, pinned: own };
  }
  const entry = await verifiedColleague(accountClient(account), { email });
  const current = fingerprint(entry);
  if (accept) {
    const { previous } = acceptPin(account, entry);
    return { email: entry.email, userId: entry.userId, fingerprint: current, pinned: current, accepted: { previous } };
  }
  return { email: entry.email, userId: entry.userId, fingerprint: current, pinned: pinnedFingerprint(account, entry.email) };
}

/** SPACE as a name or an id. Ambiguous names are refused with the candidates' ids. */
export async function resolveSpace(c: ApiClient, ref: string): Promise<SpaceSummary> {
  const spaces = await api.spaces(c);
  const byId = spaces.find((s) => s.spaceId === ref);
  if (byId) return byId;
  const byName = spaces.filter((s) => s.name === ref);
  if (byName.length === 1) return byName[0]!;
  if (byName.length > 1) throw new UsageError(`several spaces are called "${ref}": use an id (${byName.map((s) => s.spaceId).join(', ')})`);
  const folded = spaces.filter((s) => s.name.toLowerCase() === ref.toLowerCase());
  if (folded.length === 1) return folded[0]!;
  throw new KluisError(ErrorCode.NotFound, `no space "${ref}" among yours (kluis space list shows them)`);
}

export async function createSpace(account: Account, name: string, classification: Classification): Promise<Omit<SpaceSummary, 'retentionDays'>> {
  // The server's rule (shared/src/api/names.ts), checked before any key is made.
  const problem = nameProblem(name);
  if (problem) throw new UsageError(`space name: ${problem}`);
  const c = accountClient(account);
  // An id starting with '-' would read as an option on the command line (`kluis space add-member -x…`): draw again.
  let spaceId = newId();
  while (spaceId.startsWith('-')) spaceId = newId();
  const pair = generateSpaceKeyPair();
  try {
    const publicKey = toBase64Url(pair.publicKey);
    const wrap = wrapSpaceKey(pair, { spaceId, keyEpoch: 1, recipient: toBase64Url(account.keys.encPublicKey) }, account.keys);
    const entry = signMembershipEntry({ spaceId, seq: 1, prev: '0'.repeat(64), op: 'create', ts: Date.now(), user: ownIdentity(account), role: 'manager', keyEpoch: 1, spacePublicKey: publicKey }, account.keys);
    return await api.createSpace(c, { id: spaceId, name, classification, publicKey, wrap, entry });
  } finally {
    wipeBytes(pair.secretKey);
  }
}

export async function addMember(account: Account, spaceRef: string, email: string, role: SpaceRole): Promise<{ spaceId: string; name: string; userId: string; email: string; role: SpaceRole; keyEpoch: number; org: { orgId: string; name: string } | null }> {
  const c = accountClient(account);
  const { space, details, state } = await managedSpace(account, c, spaceRef, 'adds members');
  const colleague = await verifiedColleague(c, { email, spaceId: space.spaceId }, account);
  if (state.members.has(colleague.userId)) throw new KluisError(ErrorCode.Conflict, `${colleague.email} is already a member of "${space.name}"`);
  const keys = openEpochKeys(account, details, state);
  try {
    const wrap = wrapSpaceKey(keys.get(state.keyEpoch)!, { spaceId: space.spaceId, keyEpoch: state.keyEpoch, recipient: colleague.encPublicKey }, account.keys);
    const entry = signMembershipEntry(nextMembershipFields(state, 'add', { user: identityOf(colleague), role }), account.keys);
    await api.addMember(c, space.spaceId, { userId: colleague.userId, role, wrap, entry });
  } finally {
    for (const pair of keys.values()) wipeBytes(pair.secretKey);
  }
  return { spaceId: space.spaceId, name: space.name, userId: colleague.userId, email: colleague.email, role, keyEpoch: details.keyEpoch, org: colleague.org ?? null };
}

/** Parallel map with a small bound (directory look-ups for big spaces). */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  }));
  return out;
}

/**
 * Removes a member and rotates the space key (docs/architecture.md §2): a new keypair at keyEpoch + 1, wrapped to every remaining
 * member's encPublicKey as the directory lists it with a verified identity signature. Any member whose keys
 * cannot be verified stops the removal: nothing is sent.
 */
export async function removeMember(account: Account, spaceRef: string, email: string): Promise<{ spaceId: string; name: string; userId: string; email: string; keyEpoch: number; remaining: number }> {
  const c = accountClient(account);
  const { space, details, state } = await managedSpace(account, c, spaceRef, 'removes members');
  const target = normaliseEmail(email);
  const leaving = [...state.members.values()].map((m) => m.identity).find((m) => m.email === target);
  if (!leaving) throw new KluisError(ErrorCode.NotFound, `${target} is not a member of "${space.name}"`);
  const skip = new Set(details.pendingRemovals ?? []);
  return rotateOut(account, c, { spaceId: space.spaceId, name: space.name }, details, state, leaving, skip);
}

/** Signs `leaving`'s removal and the next key epoch, wrapped to every remaining member but those in `skip` (leaving too). */
async function rotateOut(account: Account, c: ApiClient, space: { spaceId: string; name: string }, details: SpaceDetails, state: MembershipState, leaving: MemberIdentity, skip: ReadonlySet<string>) {
  const target = leaving.email;
  const remaining = [...state.members.values()].map((m) => m.identity).filter((m) => m.userId !== leaving.userId);
  const receiving = remaining.filter((m) => !skip.has(m.userId));
  const verified = await mapLimit(receiving, 8, async (m) => {
    try {
      const entry = await verifiedColleague(c, { userId: m.userId, email: m.email }, account);
      if (entry.encPublicKey !== m.encPublicKey || entry.signPublicKey !== m.signPublicKey) throw new CryptoError(ErrorCode.BadKey, 'keys differ between the space and the directory');
      return entry;
    } catch (err) {
      const why = err instanceof KluisError ? err.message : String(err);
      throw new CryptoError(ErrorCode.BadKey, `cannot verify the keys of remaining member ${m.email} (${why}): the space key was not rotated and ${target} was not removed`);
    }
  });
  const keyEpoch = state.keyEpoch + 1;
  const current = openEpochKeys(account, details, state);
  const pair = generateSpaceKeyPair();
  try {
    const publicKey = toBase64Url(pair.publicKey);
    const wraps = verified.map((entry) => ({ userId: entry.userId, wrap: wrapSpaceKey(pair, { spaceId: space.spaceId, keyEpoch, recipient: entry.encPublicKey }, account.keys) }));
    // The new epoch also seals the one before it, so members (present and future) keep reading older versions.
    const prevSealed = sealPreviousEpoch(current.get(state.keyEpoch)!, pair);
    const entry = signMembershipEntry(nextMembershipFields(state, 'remove', { user: leaving, spacePublicKey: publicKey }), account.keys);
    await api.removeMember(c, space.spaceId, leaving.userId, { newEpoch: { keyEpoch, publicKey, prevSealed, wraps }, entry });
  } finally {
    wipeBytes(pair.secretKey);
    for (const p of current.values()) wipeBytes(p.secretKey);
  }
  return { spaceId: space.spaceId, name: space.name, userId: leaving.userId, email: leaving.email, keyEpoch, remaining: remaining.length };
}

/**
 * Completes the removals an admin asked for in a space this account manages (docs/admin.md "Offboarding"): one signed
 * removal and key rotation per pending member, none of them given the new keys. Returns the members removed.
 */
export async function completePendingRemovals(account: Account, spaceId: string): Promise<{ userId: string; email: string; keyEpoch: number }[]> {
  const c = accountClient(account);
  const done: { userId: string; email: string; keyEpoch: number }[] = [];
  for (;;) {
    const details = await api.space(c, spaceId);
    if (details.role !== 'manager') return done;
    const pending = new Set(details.pendingRemovals ?? []);
    if (pending.size === 0) return done; // the usual case: nothing asked, no membership log to verify
    const state = verifiedMembership(account, details);
    const next = [...pending].map((id) => state.members.get(id)?.identity).find((m) => m !== undefined && m.userId !== account.session.userId);
    if (!next) return done;
    const r = await rotateOut(account, c, { spaceId, name: details.name }, details, state, next, pending);
    done.push({ userId: r.userId, email: r.email, keyEpoch: r.keyEpoch });
  }
}

/** Changes a member's role: one signed log entry; no key changes (a demoted writer keeps what they could read). */
export async function setMemberRole(account: Account, spaceRef: string, email: string, role: SpaceRole): Promise<{ spaceId: string; name: string; userId: string; email: string; role: SpaceRole; previous: SpaceRole }> {
  const c = accountClient(account);
  const { space, state } = await managedSpace(account, c, spaceRef, 'changes roles');
  const target = normaliseEmail(email);
  const member = [...state.members.values()].find((m) => m.identity.email === target);
  if (!member) throw new KluisError(ErrorCode.NotFound, `${target} is not a member of "${space.name}"`);
  if (member.role === role) throw new KluisError(ErrorCode.Conflict, `${target} is already ${role} of "${space.name}"`);
  const entry = signMembershipEntry(nextMembershipFields(state, 'role', { user: member.identity, role }), account.keys);
  await api.setRole(c, space.spaceId, member.identity.userId, { role, entry });
  return { spaceId: space.spaceId, name: space.name, userId: member.identity.userId, email: target, role, previous: member.role };
}

/** Raises a space's class (manager only; a class is never lowered: the server refuses it too). */
export async function setSpaceClass(account: Account, spaceRef: string, classification: Classification): Promise<{ spaceId: string; name: string; from: Classification; classification: Classification }> {
  const c = accountClient(account);
  const space = await resolveSpace(c, spaceRef);
  if (space.role !== 'manager') throw new KluisError(ErrorCode.Forbidden, `only a manager of "${space.name}" changes its class (you are ${space.role})`);
  if (space.classification === classification) throw new KluisError(ErrorCode.Conflict, `"${space.name}" is already ${classification}`);
  if (!classAtLeast(classification, space.classification)) throw new KluisError(ErrorCode.Conflict, `a space's class is raised, never lowered ("${space.name}" is ${space.classification})`);
  try {
    await c.json('PATCH', `/api/v1/spaces/${encodeURIComponent(space.spaceId)}`, { classification });
  } catch (err) {
    throw raiseRefusal(err, space.name, classification);
  }
  return { spaceId: space.spaceId, name: space.name, from: space.classification, classification };
}

const RAISE_LINE = 300;

/**
 * A refused raise names what blocks it (docs/api.md "Raising a class"): said in one line, each with the command
 * that ends it, so the manager decides about each person and link.
 */
function raiseRefusal(err: unknown, name: string, classification: Classification): unknown {
  const blocking = err instanceof ApiRequestError && err.code === ErrorCode.PolicyRefused ? RaiseBlocker.array().safeParse(err.body.blocking) : null;
  if (!blocking?.success) return err;
  const what = (b: RaiseBlocker) => (b.kind === 'member' ? `member ${b.email}` : `${b.kind} ${b.id}${b.email ? ` to ${b.email}` : ''}`);
  // One line of at most RAISE_LINE characters (the CLI's limit for a reason): as many as fit, then how many more.
  let line = `"${name}" cannot become ${classification} until these end (kluis space remove-member SPACE EMAIL, kluis share revoke ID): `;
  const items = blocking.data.map(what);
  let shown = 0;
  while (shown < items.length && line.length + items[shown]!.length + 24 <= RAISE_LINE) line += `${shown ? '; ' : ''}${items[shown++]}`;
  if (shown < items.length) line += `${shown ? '; ' : ''}and ${items.length - shown} more`;
  return new KluisError(ErrorCode.PolicyRefused, line);
}

/** The sharing policy of the account's organisation, per class. */
export async function orgPolicy(account: Account): Promise<OrgPolicyAnswer> {
  const c = accountClient(account);
  const answer = OrgPolicyAnswer.safeParse(await c.json('GET', `/api/v1/orgs/${encodeURIComponent(account.session.orgId)}/policy`));
  if (!answer.success) throw new KluisError(ErrorCode.BadRequest, 'unexpected answer from the server (policy)');
  return answer.data;
}
