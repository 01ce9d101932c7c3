// Spaces, members and colleagues' keys, client side (docs/crypto.md §3–§4). Every public key we seal to comes from
// the directory and is accepted only with a valid identity signature for the expected e-mail address; every space
// key we open must be wrapped to us by a manager of the space (or its creator).
import {
  CryptoError, ErrorCode, KluisError, fingerprint, generateSpaceKeyPair, nameProblem, newId, openSpaceKeyWrap, publicIdentity, toBase64Url, verifyIdentity, wipeBytes, wrapSpaceKey,
  type Classification, type DirectoryEntry, type SpaceKeyPair, type SpaceRole,
} from '@kluis/shared';
import type { ApiClient } from '../api/client.js';
import { api, type SpaceDetails, type SpaceSummary } from '../api/endpoints.js';
import { clientFor, normaliseEmail, UsageError } from './auth.js';
import type { Account } from './state.js';

/** An authenticated client for the saved session. */
export function accountClient(account: Account): ApiClient {
  return clientFor(account.session.server, account.session.token);
}

/** A directory entry whose identity signature verifies for the e-mail address it claims (and the one we asked for). */
export async function verifiedColleague(c: ApiClient, lookup: { email: string } | { userId: string; email?: string }): Promise<DirectoryEntry> {
  const entry = 'userId' in lookup ? await api.directoryById(c, lookup.userId) : await api.directoryByEmail(c, normaliseEmail(lookup.email));
  const expected = 'userId' in lookup ? (lookup.email ?? entry.email) : normaliseEmail(lookup.email);
  if ('userId' in lookup && entry.userId !== lookup.userId) throw new CryptoError(ErrorCode.BadKey, `the directory answered for another user than ${lookup.userId}`);
  if (entry.email !== expected) throw new CryptoError(ErrorCode.BadKey, `the directory answered for ${entry.email} instead of ${expected}`);
  try {
    verifyIdentity(entry, expected, entry.identitySig);
  } catch {
    throw new CryptoError(ErrorCode.BadSignature, `the keys the server lists for ${expected} are not signed by that account: refusing to use them (report this to your security officer)`);
  }
  return entry;
}

/** Own or a colleague's fingerprint; a colleague's keys only with a verified identity signature. */
export async function fingerprintOf(account: Account, email?: string): Promise<{ email: string; fingerprint: string; userId: string }> {
  if (email === undefined || normaliseEmail(email) === account.session.email) {
    return { email: account.session.email, userId: account.session.userId, fingerprint: fingerprint(publicIdentity(account.keys)) };
  }
  const entry = await verifiedColleague(accountClient(account), { email });
  return { email: entry.email, userId: entry.userId, fingerprint: fingerprint(entry) };
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
    const wrap = wrapSpaceKey(pair, { spaceId, keyEpoch: 1, recipient: toBase64Url(account.keys.encPublicKey) }, account.keys);
    return await api.createSpace(c, { id: spaceId, name, classification, publicKey: toBase64Url(pair.publicKey), wrap });
  } finally {
    wipeBytes(pair.secretKey);
  }
}

/**
 * Signers whose space-key wraps we accept (docs/crypto.md §4): current managers of the space and the creator of the
 * epoch, each taken from the membership view only when their identity signature verifies.
 */
function trustedSigners(details: SpaceDetails, keyEpoch: number): Set<string> {
  const trusted = new Set<string>();
  const creator = details.epochs.find((e) => e.keyEpoch === keyEpoch)?.createdBy;
  for (const m of details.members) {
    if (m.role !== 'manager' && m.userId !== creator) continue;
    try {
      verifyIdentity(m, m.email, m.identitySig);
      trusted.add(m.signPublicKey);
    } catch {
      // an unverifiable member grants nothing
    }
  }
  return trusted;
}

/** Opens every key epoch of the space wrapped to us (older epochs open files written before a rotation). */
export function openSpaceKeys(account: Account, details: SpaceDetails): Map<number, SpaceKeyPair> {
  const out = new Map<number, SpaceKeyPair>();
  for (const wrap of details.myWraps) {
    const trusted = trustedSigners(details, wrap.keyEpoch);
    out.set(wrap.keyEpoch, openSpaceKeyWrap(wrap, { spaceId: details.spaceId, keyEpoch: wrap.keyEpoch }, account.keys, (signer) => trusted.has(signer)));
  }
  if (!out.has(details.keyEpoch)) throw new CryptoError(ErrorCode.BadKey, `the server holds no key of epoch ${details.keyEpoch} of "${details.name}" for you`);
  return out;
}

/**
 * Who may write in the space (docs/crypto.md §4, §8): the signing keys of its members with the editor or manager
 * role, each only when their identity signature verifies. Manifests and file-key wraps by anyone else are refused.
 */
export function writerSigners(details: SpaceDetails): Map<string, string> {
  const out = new Map<string, string>(); // signPublicKey -> e-mail
  for (const m of details.members) {
    if (m.role !== 'manager' && m.role !== 'editor') continue;
    try {
      verifyIdentity(m, m.email, m.identitySig);
      out.set(m.signPublicKey, m.email);
    } catch {
      // an unverifiable member writes nothing we accept
    }
  }
  return out;
}

/** Opens our wrap of the space's current key epoch. */
export function openCurrentSpaceKey(account: Account, details: SpaceDetails): SpaceKeyPair {
  const wrap = details.myWraps.find((w) => w.keyEpoch === details.keyEpoch);
  if (!wrap) throw new CryptoError(ErrorCode.BadKey, `the server holds no key of epoch ${details.keyEpoch} of "${details.name}" for you`);
  const trusted = trustedSigners(details, details.keyEpoch);
  return openSpaceKeyWrap(wrap, { spaceId: details.spaceId, keyEpoch: details.keyEpoch }, account.keys, (signer) => trusted.has(signer));
}

export async function addMember(account: Account, spaceRef: string, email: string, role: SpaceRole): Promise<{ spaceId: string; name: string; userId: string; email: string; role: SpaceRole; keyEpoch: number }> {
  const c = accountClient(account);
  const space = await resolveSpace(c, spaceRef);
  if (space.role !== 'manager') throw new KluisError(ErrorCode.Forbidden, `only a manager of "${space.name}" adds members (you are ${space.role})`);
  const details = await api.space(c, space.spaceId);
  const colleague = await verifiedColleague(c, { email });
  if (details.members.some((m) => m.userId === colleague.userId)) throw new KluisError(ErrorCode.Conflict, `${colleague.email} is already a member of "${space.name}"`);
  const pair = openCurrentSpaceKey(account, details);
  try {
    const wrap = wrapSpaceKey(pair, { spaceId: space.spaceId, keyEpoch: details.keyEpoch, recipient: colleague.encPublicKey }, account.keys);
    await api.addMember(c, space.spaceId, { userId: colleague.userId, role, wrap });
  } finally {
    wipeBytes(pair.secretKey);
  }
  return { spaceId: space.spaceId, name: space.name, userId: colleague.userId, email: colleague.email, role, keyEpoch: details.keyEpoch };
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
  const space = await resolveSpace(c, spaceRef);
  if (space.role !== 'manager') throw new KluisError(ErrorCode.Forbidden, `only a manager of "${space.name}" removes members (you are ${space.role})`);
  const details = await api.space(c, space.spaceId);
  const target = normaliseEmail(email);
  const leaving = details.members.find((m) => m.email === target);
  if (!leaving) throw new KluisError(ErrorCode.NotFound, `${target} is not a member of "${space.name}"`);
  const remaining = details.members.filter((m) => m.userId !== leaving.userId);
  const verified = await mapLimit(remaining, 8, async (m) => {
    try {
      const entry = await verifiedColleague(c, { userId: m.userId, email: m.email });
      if (entry.encPublicKey !== m.encPublicKey || entry.signPublicKey !== m.signPublicKey) throw new CryptoError(ErrorCode.BadKey, 'keys differ between the space and the directory');
      return entry;
    } catch (err) {
      const why = err instanceof KluisError ? err.message : String(err);
      throw new CryptoError(ErrorCode.BadKey, `cannot verify the keys of remaining member ${m.email} (${why}): the space key was not rotated and ${target} was not removed`);
    }
  });
  const keyEpoch = details.keyEpoch + 1;
  const pair = generateSpaceKeyPair();
  try {
    const wraps = verified.map((entry) => ({ userId: entry.userId, wrap: wrapSpaceKey(pair, { spaceId: space.spaceId, keyEpoch, recipient: entry.encPublicKey }, account.keys) }));
    await api.removeMember(c, space.spaceId, leaving.userId, { keyEpoch, publicKey: toBase64Url(pair.publicKey), wraps });
  } finally {
    wipeBytes(pair.secretKey);
  }
  return { spaceId: space.spaceId, name: space.name, userId: leaving.userId, email: leaving.email, keyEpoch, remaining: remaining.length };
}
