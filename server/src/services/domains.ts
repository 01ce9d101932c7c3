// Domains group an organisation's spaces (Finance, Health, ...) so that a domain admin can look after them
// (docs/admin.md "Domains"). Every change appends its audit entry in the same transaction; the caller's reach is
// checked by the route (services/admin-scope.ts) before these run.
import { ErrorCode, newId, type AdminMemberView, type AdminSpaceView, type DomainView, type PersonStatus } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Db, Tx } from '../db/db.js';
import type { AuditEntryInput, AuditLog } from '../audit/types.js';

/** The actor and request facts of an audit entry (http.ts actor(), or kluis-admin's operator). */
export type Who = Omit<AuditEntryInput, 'action' | 'outcome' | 'targetType' | 'targetId' | 'details'> & { orgId: string };

/** A user's status from their row. */
export function statusOf(row: { disabled_at: unknown; offboarded_at: unknown }): PersonStatus {
  return row.offboarded_at !== null && row.offboarded_at !== undefined ? 'offboarded' : row.disabled_at !== null && row.disabled_at !== undefined ? 'blocked' : 'active';
}

/** A domain of `orgId`, or 404. */
export async function findDomain(db: Db | Tx, orgId: string, domainId: string): Promise<{ id: string; name: string }> {
  const row = await db('domains').where({ id: domainId, org_id: orgId }).first('id', 'name');
  if (!row) throw new DomainError(ErrorCode.NotFound, 'no such domain');
  return row;
}

/** A space of `orgId` with its domain, or 404. */
export async function findSpace(db: Db | Tx, orgId: string, spaceId: string): Promise<{ id: string; domainId: string | null }> {
  const row = await db('spaces').where({ id: spaceId, org_id: orgId }).first('id', 'domain_id');
  if (!row) throw new DomainError(ErrorCode.NotFound, 'no such space');
  return { id: row.id, domainId: row.domain_id ?? null };
}

async function nameFree(trx: Tx, orgId: string, name: string, except?: string): Promise<void> {
  const q = trx('domains').where({ org_id: orgId, name });
  if (except) q.whereNot({ id: except });
  if (await q.first('id')) throw new DomainError(ErrorCode.Conflict, 'a domain with this name exists');
}

export async function listDomains(db: Db, orgId: string, only?: ReadonlySet<string>): Promise<DomainView[]> {
  const q = db('domains').where({ org_id: orgId }).orderBy('name').select('id', 'name');
  if (only) q.whereIn('id', [...only]);
  const domains = await q;
  const ids = domains.map((d) => d.id as string);
  const [counts, admins] = await Promise.all([
    db('spaces').whereIn('domain_id', ids).groupBy('domain_id').select('domain_id').count({ n: '*' }),
    db('domain_admins as a').join('users as u', 'u.id', 'a.user_id').whereIn('a.domain_id', ids).orderBy('u.email').select('a.domain_id', 'u.id', 'u.email'),
  ]);
  const n = new Map((counts as { domain_id: string; n: unknown }[]).map((c) => [c.domain_id, Number(c.n)]));
  return domains.map((d) => ({ domainId: d.id, name: d.name, spaces: n.get(d.id) ?? 0, admins: admins.filter((a) => a.domain_id === d.id).map((a) => ({ userId: a.id, email: a.email })) }));
}

export async function createDomain(db: Db, audit: AuditLog, who: Who, name: string): Promise<DomainView> {
  const domainId = newId();
  const clean = name.trim();
  await db.transaction(async (trx) => {
    await nameFree(trx, who.orgId, clean);
    await trx('domains').insert({ id: domainId, org_id: who.orgId, name: clean });
    await audit.append(trx, { ...who, action: 'domain.create', targetType: 'domain', targetId: domainId, outcome: 'success' });
  });
  return { domainId, name: clean, spaces: 0, admins: [] };
}

export async function renameDomain(db: Db, audit: AuditLog, who: Who, domainId: string, name: string): Promise<void> {
  const clean = name.trim();
  await db.transaction(async (trx) => {
    await findDomain(trx, who.orgId, domainId);
    await nameFree(trx, who.orgId, clean, domainId);
    await trx('domains').where({ id: domainId }).update({ name: clean });
    await audit.append(trx, { ...who, action: 'domain.rename', targetType: 'domain', targetId: domainId, outcome: 'success' });
  });
}

/** Deletes a domain: its spaces stay (in no domain), its admins lose it (and the role when it was their last). */
export async function deleteDomain(db: Db, audit: AuditLog, who: Who, domainId: string): Promise<void> {
  await db.transaction(async (trx) => {
    await findDomain(trx, who.orgId, domainId);
    const admins = (await trx('domain_admins').where({ domain_id: domainId }).select('user_id')).map((r) => r.user_id as string);
    const spaces = await trx('spaces').where({ domain_id: domainId }).update({ domain_id: null });
    await trx('domain_admins').where({ domain_id: domainId }).delete();
    for (const userId of admins) await demoteIfNoDomain(trx, audit, who, userId);
    await trx('domains').where({ id: domainId }).delete();
    await audit.append(trx, { ...who, action: 'domain.delete', targetType: 'domain', targetId: domainId, outcome: 'success', details: { spaces, admins: admins.length } });
  });
}

/** A domain admin without any domain left is a member again. */
async function demoteIfNoDomain(trx: Tx, audit: AuditLog, who: Who, userId: string): Promise<void> {
  if (await trx('domain_admins').where({ user_id: userId }).first('domain_id')) return;
  const n = await trx('users').where({ id: userId, role: 'domain_admin' }).update({ role: 'member' });
  if (n) await audit.append(trx, { ...who, action: 'org.role.change', targetType: 'user', targetId: userId, outcome: 'success', details: { from: 'domain_admin', to: 'member' } });
}

/** Appoints a person (a member or a domain admin of other domains) as an admin of a domain. */
export async function appointDomainAdmin(db: Db, audit: AuditLog, who: Who, domainId: string, userId: string): Promise<void> {
  await db.transaction(async (trx) => {
    await findDomain(trx, who.orgId, domainId);
    const user = await trx('users').where({ id: userId, org_id: who.orgId }).first('id', 'role', 'disabled_at', 'offboarded_at');
    if (!user) throw new DomainError(ErrorCode.NotFound, 'no such person');
    if (statusOf(user) !== 'active') throw new DomainError(ErrorCode.Conflict, 'this person is blocked or offboarded');
    if (user.role !== 'member' && user.role !== 'domain_admin') throw new DomainError(ErrorCode.Conflict, `this person is ${user.role}: only members become domain admins`);
    if (await trx('domain_admins').where({ domain_id: domainId, user_id: userId }).first('user_id')) throw new DomainError(ErrorCode.Conflict, 'already an admin of this domain');
    await trx('domain_admins').insert({ domain_id: domainId, user_id: userId });
    if (user.role === 'member') await trx('users').where({ id: userId }).update({ role: 'domain_admin' });
    await audit.append(trx, { ...who, action: 'domain.admin.appoint', targetType: 'domain', targetId: domainId, outcome: 'success', details: { userId, from: user.role } });
  });
}

export async function removeDomainAdmin(db: Db, audit: AuditLog, who: Who, domainId: string, userId: string): Promise<void> {
  await db.transaction(async (trx) => {
    await findDomain(trx, who.orgId, domainId);
    const n = await trx('domain_admins').where({ domain_id: domainId, user_id: userId }).delete();
    if (!n) throw new DomainError(ErrorCode.NotFound, 'not an admin of this domain');
    await audit.append(trx, { ...who, action: 'domain.admin.remove', targetType: 'domain', targetId: domainId, outcome: 'success', details: { userId } });
    await demoteIfNoDomain(trx, audit, who, userId);
  });
}

export async function assignSpace(db: Db, audit: AuditLog, who: Who, spaceId: string, domainId: string | null): Promise<void> {
  await db.transaction(async (trx) => {
    const space = await findSpace(trx, who.orgId, spaceId);
    if (domainId !== null) await findDomain(trx, who.orgId, domainId);
    await trx('spaces').where({ id: spaceId }).update({ domain_id: domainId });
    await audit.append(trx, { ...who, action: 'space.domain.set', targetType: 'space', targetId: spaceId, outcome: 'success', details: { from: space.domainId, to: domainId } });
  });
}

/** Spaces of the organisation (or of the given domains) with member counts and pending removals; no file names. */
export async function adminSpaces(db: Db, orgId: string, domains?: readonly string[]): Promise<AdminSpaceView[]> {
  const q = db('spaces').where({ org_id: orgId }).orderBy('name').select('id', 'name', 'classification', 'domain_id', 'key_epoch');
  if (domains) q.whereIn('domain_id', domains);
  const spaces = await q;
  const ids = spaces.map((s) => s.id as string);
  const [counts, pending] = await Promise.all([
    db('space_members').whereIn('space_id', ids).groupBy('space_id').select('space_id').count({ n: '*' }),
    db('pending_removals').whereIn('space_id', ids).orderBy('user_id').select('space_id', 'user_id'),
  ]);
  const n = new Map((counts as { space_id: string; n: unknown }[]).map((c) => [c.space_id, Number(c.n)]));
  return spaces.map((s) => ({
    spaceId: s.id, name: s.name, classification: s.classification, domainId: s.domain_id ?? null, members: n.get(s.id) ?? 0, keyEpoch: Number(s.key_epoch),
    pendingRemovals: pending.filter((p) => p.space_id === s.id).map((p) => p.user_id as string),
  }));
}

export async function adminMembers(db: Db, spaceId: string): Promise<AdminMemberView[]> {
  const rows = await db('space_members as m').join('users as u', 'u.id', 'm.user_id')
    .leftJoin('pending_removals as p', function () {
      this.on('p.space_id', '=', 'm.space_id').andOn('p.user_id', '=', 'm.user_id');
    })
    .where('m.space_id', spaceId).orderBy('u.email')
    .select('u.id', 'u.email', 'm.role', 'm.added_at', 'u.disabled_at', 'u.offboarded_at', 'p.reason');
  return rows.map((r) => ({ userId: r.id, email: r.email, role: r.role, status: statusOf(r), addedAt: Number(r.added_at), removalPending: r.reason !== null && r.reason !== undefined }));
}

/**
 * Records that a member must leave a space (docs/admin.md "Offboarding"): the server cannot sign the removal or
 * make the next key, so a manager's client does it at its next contact. Returns how many managers the space has
 * besides the leaving person (0: nobody can complete it yet).
 */
export async function recordRemoval(trx: Tx, spaceId: string, userId: string, reason: 'offboard' | 'admin', requestedBy: string | null, now: number): Promise<number> {
  const exists = await trx('pending_removals').where({ space_id: spaceId, user_id: userId }).first('user_id');
  if (!exists) await trx('pending_removals').insert({ space_id: spaceId, user_id: userId, reason, requested_by: requestedBy, requested_at: now });
  const row = await trx('space_members').where({ space_id: spaceId, role: 'manager' }).whereNot({ user_id: userId }).count({ n: '*' }).first();
  return Number(row?.n ?? 0);
}

export async function requestRemoval(db: Db, audit: AuditLog, who: Who, spaceId: string, userId: string): Promise<{ managers: number }> {
  return db.transaction(async (trx) => {
    if (!(await trx('space_members').where({ space_id: spaceId, user_id: userId }).first('user_id'))) throw new DomainError(ErrorCode.NotFound, 'not a member of this space');
    const managers = await recordRemoval(trx, spaceId, userId, 'admin', who.actorUserId ?? null, Date.now());
    await audit.append(trx, { ...who, action: 'space.removal.request', targetType: 'space', targetId: spaceId, outcome: 'success', details: { userId, managers } });
    return { managers };
  });
}
