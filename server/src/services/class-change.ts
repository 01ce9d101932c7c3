// Raising a space's class (docs/api.md "Policy", "Raising a class"). A manager raises it, never lowers it. What the
// space already shares must fit the new class: a raise is refused, naming everything that does not fit, rather than
// revoking on the manager's behalf. Removing a member rotates the space key, which only a client can do; and a
// security officer wants each of these people and links looked at and ended by someone who answers for it, not
// dropped as a side effect (which could also cut off a colleague mid-work without a word). So the refusal lists each
// blocker with the command that ends it, the manager ends them, and raises again.
import { ErrorCode, classAtLeast, linkPolicyProblem, type ClassName, type ClassPolicy, type RaiseBlocker } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Db, Tx } from '../db/db.js';
import type { SpaceRow } from './access.js';
import { goneReason, type LinkRow } from './links.js';
import { classPolicy, policyRefusal } from './policy.js';

/** What the space shares that `policy` (of class `to`) would refuse today. */
export async function raiseBlockers(db: Db | Tx, space: SpaceRow, to: ClassName, policy: ClassPolicy, now = Date.now()): Promise<RaiseBlocker[]> {
  const out: RaiseBlocker[] = [];
  if (!policy.externalMembers) {
    const members = await db('space_members as m').join('users as u', 'u.id', 'm.user_id').where('m.space_id', space.id).whereNot('u.org_id', space.org_id)
      .orderBy('u.email').select('u.id', 'u.email');
    for (const m of members) out.push({ kind: 'member', id: m.id, email: m.email, problem: `people of other organisations may not be members of ${to} spaces` });
    const shares = await db('file_shares as s').join('users as u', 'u.id', 's.recipient_user_id').where('s.space_id', space.id).whereNull('s.revoked_at')
      .whereNot('u.org_id', space.org_id).orderBy('s.created_at').select('s.id', 'u.email');
    for (const s of shares) out.push({ kind: 'share', id: s.id, email: s.email, problem: `files of ${to} spaces may not be shared with people of other organisations` });
  }
  const links = await db('links as l').leftJoin('versions as v', 'v.id', 'l.version_id').where('l.space_id', space.id).whereNull('l.revoked_at')
    .orderBy('l.created_at').select('l.*', 'v.expired_at as version_expired_at');
  for (const r of links) {
    const link = { ...r, expires_at: Number(r.expires_at), max_downloads: r.max_downloads === null ? null : Number(r.max_downloads), downloads: Number(r.downloads), revoked_at: null, version_expired_at: r.version_expired_at === null ? null : Number(r.version_expired_at) } as LinkRow;
    if (goneReason(link, now) !== null) continue;
    // What the link can still give: its remaining life and downloads, judged as a new link would be.
    const left = link.max_downloads === null ? null : link.max_downloads - link.downloads;
    const problem = linkPolicyProblem(to, policy, { expiresAt: link.expires_at, password: link.kdf !== null, maxDownloads: left }, now);
    if (problem) out.push({ kind: 'link', id: link.id, email: null, problem });
  }
  return out;
}

/** Raises `space` to `to` (the caller is its manager), or refuses: 409 `conflict` to lower, 409 `policy_refused` with the blockers. */
export async function raiseClass(trx: Tx, space: SpaceRow, to: ClassName, now = Date.now()): Promise<{ from: ClassName }> {
  const from = space.classification as ClassName;
  if (!classAtLeast(to, from)) {
    const err = new DomainError(ErrorCode.Conflict, `a space's class is raised, never lowered (it is ${from}): copy what may be less protected to a space of that class`);
    err.auditOutcome = 'denied';
    err.auditDetails = { from, to, rule: 'lower' };
    throw err;
  }
  const blocking = await raiseBlockers(trx, space, to, await classPolicy(trx, space.org_id, to), now);
  if (blocking.length) {
    const err = policyRefusal(`${blocking.length} thing${blocking.length === 1 ? '' : 's'} this space shares ${blocking.length === 1 ? 'is' : 'are'} not allowed in ${to} spaces: end ${blocking.length === 1 ? 'it' : 'them'} first (see blocking)`, to, 'raise', true);
    err.auditDetails = { ...err.auditDetails, from, blocking: blocking.length };
    err.extra = { blocking };
    throw err;
  }
  await trx('spaces').where({ id: space.id }).update({ classification: to });
  return { from };
}
