// The people of an organisation (docs/admin.md "People"): list, block, unblock, offboard. Blocking sets
// users.disabled_at, which every login, session check and recovery already refuses; it also revokes every session,
// and the route ends the person's event streams after the commit. Offboarding blocks for good and records a pending
// removal in each of the person's spaces: only a manager who is a member can sign the removal and make the next key
// (docs/crypto.md §4.1), so the server refuses the person at once and the managers' clients finish the job.
import { ErrorCode, type OffboardAnswer, type PersonView } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Db, Tx } from '../db/db.js';
import type { AuditLog } from '../audit/types.js';
import { recordRemoval, statusOf, type Who } from './domains.js';

export interface PersonRow {
  id: string;
  role: PersonView['role'];
  disabled_at: number | null;
  offboarded_at: number | null;
}

/** A person of `orgId`, or 404 (people of other organisations are not found). */
export async function findPerson(db: Db | Tx, orgId: string, userId: string): Promise<PersonRow> {
  const row = await db('users').where({ id: userId, org_id: orgId }).first('id', 'role', 'disabled_at', 'offboarded_at');
  if (!row) throw new DomainError(ErrorCode.NotFound, 'no such person');
  return row;
}

/** People with role, status, administered domains, live devices and last use; `only` limits to those user ids. */
export async function listPeople(db: Db, orgId: string, only?: readonly string[]): Promise<PersonView[]> {
  const q = db('users').where({ org_id: orgId }).orderBy('email').select('id', 'email', 'role', 'created_at', 'disabled_at', 'offboarded_at');
  if (only) q.whereIn('id', only);
  const users = await q;
  const now = Date.now();
  const [sessions, domains] = await Promise.all([
    db('sessions as s').join('users as u', 'u.id', 's.user_id').where('u.org_id', orgId).groupBy('s.user_id')
      .select('s.user_id').max({ last: 's.last_seen_at' })
      .sum({ live: db.raw('CASE WHEN s.revoked_at IS NULL AND s.expires_at > ? THEN 1 ELSE 0 END', [now]) }),
    db('domain_admins as a').join('domains as d', 'd.id', 'a.domain_id').where('d.org_id', orgId).orderBy('d.name').select('a.user_id', 'd.id', 'd.name'),
  ]);
  const byUser = new Map((sessions as { user_id: string; last: unknown; live: unknown }[]).map((s) => [s.user_id, s]));
  return users.map((u) => {
    const s = byUser.get(u.id);
    return {
      userId: u.id, email: u.email, role: u.role, status: statusOf(u), createdAt: Number(u.created_at),
      domains: domains.filter((d) => d.user_id === u.id).map((d) => ({ domainId: d.id, name: d.name })),
      devices: Number(s?.live ?? 0), lastSeenAt: s?.last === null || s?.last === undefined ? null : Number(s.last),
    };
  });
}

/** The people a domain admin reaches: members of the spaces of its domains. */
export async function peopleOfDomains(db: Db, domains: readonly string[]): Promise<string[]> {
  const rows = await db('space_members as m').join('spaces as s', 's.id', 'm.space_id').whereIn('s.domain_id', domains).distinct('m.user_id');
  return rows.map((r) => r.user_id as string);
}

async function endSessions(trx: Tx, userId: string, now: number): Promise<number> {
  return trx('sessions').where({ user_id: userId }).whereNull('revoked_at').update({ revoked_at: now });
}

/** Blocks a person: login refused, every session revoked. Returns the sessions ended. */
export async function blockPerson(db: Db, audit: AuditLog, who: Who, userId: string): Promise<number> {
  return db.transaction(async (trx) => {
    const person = await findPerson(trx, who.orgId, userId);
    if (statusOf(person) !== 'active') throw new DomainError(ErrorCode.Conflict, `this person is already ${statusOf(person)}`);
    const now = Date.now();
    await trx('users').where({ id: userId }).update({ disabled_at: now });
    const ended = await endSessions(trx, userId, now);
    await audit.append(trx, { ...who, action: 'person.block', targetType: 'user', targetId: userId, outcome: 'success', details: { sessionsEnded: ended } });
    return ended;
  });
}

/** Unblocks a blocked (not offboarded) person: they may log in again (their old sessions stay ended). */
export async function unblockPerson(db: Db, audit: AuditLog, who: Who, userId: string): Promise<void> {
  await db.transaction(async (trx) => {
    const person = await findPerson(trx, who.orgId, userId);
    const status = statusOf(person);
    if (status !== 'blocked') throw new DomainError(ErrorCode.Conflict, status === 'offboarded' ? 'an offboarded person is not unblocked: invite them again' : 'this person is not blocked');
    await trx('users').where({ id: userId }).update({ disabled_at: null });
    await audit.append(trx, { ...who, action: 'person.unblock', targetType: 'user', targetId: userId, outcome: 'success' });
  });
}

/** Offboards a person: blocked for good, sessions ended, a pending removal in every space they are a member of. */
export async function offboardPerson(db: Db, audit: AuditLog, who: Who, userId: string): Promise<OffboardAnswer> {
  return db.transaction(async (trx) => {
    const person = await findPerson(trx, who.orgId, userId);
    if (person.offboarded_at !== null) throw new DomainError(ErrorCode.Conflict, 'this person is already offboarded');
    const now = Date.now();
    await trx('users').where({ id: userId }).update({ disabled_at: person.disabled_at ?? now, offboarded_at: now });
    const sessionsEnded = await endSessions(trx, userId, now);
    // Their domains go with them: an offboarded person administers nothing.
    await trx('domain_admins').where({ user_id: userId }).delete();
    const memberships = (await trx('space_members').where({ user_id: userId }).orderBy('space_id').select('space_id')).map((r) => r.space_id as string);
    const spaces: OffboardAnswer['spaces'] = [];
    for (const spaceId of memberships) spaces.push({ spaceId, managers: await recordRemoval(trx, spaceId, userId, 'offboard', who.actorUserId ?? null, now) });
    await audit.append(trx, { ...who, action: 'person.offboard', targetType: 'user', targetId: userId, outcome: 'success', details: { sessionsEnded, spaces: spaces.length, withoutManager: spaces.filter((s) => s.managers === 0).length } });
    return { userId, sessionsEnded, spaces };
  });
}
