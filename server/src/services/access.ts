// Space access: the caller must be a member with at least the needed role. Non-members get 404, so a space's existence
// is not revealed; members below the role get 403. Membership alone decides: a person of another organisation whom a
// manager added (where the space's class allows external members, docs/api.md "Policy") reaches the space like a
// colleague, and the space's own organisation (`space.org_id`) owns its storage, policy and audit trail.
import { ErrorCode, type SpaceRole } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Caller } from '../context.js';
import type { Db } from '../db/db.js';
import { isHotReads, type HotReads } from '../db/hot-reads.js';
import type { AccessCache } from '../auth/access-cache.js';

const RANK: Record<SpaceRole, number> = { viewer: 1, editor: 2, manager: 3 };

export interface SpaceRow {
  id: string;
  org_id: string;
  name: string;
  classification: string;
  key_epoch: number;
  seq: number;
  retention_days: number;
  created_by: string;
  created_at: number;
}

export interface SpaceAccess {
  space: SpaceRow;
  role: SpaceRole;
}

const ACCESS_SQL = 'SELECT s.*, m.role AS member_role FROM spaces s JOIN space_members m ON m.space_id = s.id AND m.user_id = ? WHERE s.id = ? '
  + 'AND NOT EXISTS (SELECT 1 FROM pending_removals p WHERE p.space_id = s.id AND p.user_id = ?) LIMIT 1';

/** Loads a space for a caller who needs at least `needed`; throws 404/403 otherwise. */
export async function spaceAccess(db: Db | HotReads, caller: Caller, spaceId: string, needed: SpaceRole): Promise<SpaceAccess> {
  const row = isHotReads(db) ? await db.first<Record<string, unknown>>(ACCESS_SQL, [caller.userId, spaceId, caller.userId]) : await db('spaces as s')
    .join('space_members as m', function () {
      this.on('m.space_id', '=', 's.id').andOn('m.user_id', '=', db.raw('?', [caller.userId]));
    })
    .where('s.id', spaceId)
    // A member whose removal an admin asked for is refused at once, before a manager's client signs it (docs/admin.md).
    .whereNotExists(db('pending_removals as p').whereRaw('p.space_id = s.id').andWhere('p.user_id', caller.userId).select(db.raw('1')))
    .first('s.*', 'm.role as member_role');
  if (!row) throw new DomainError(ErrorCode.NotFound, 'no such space');
  const role = row.member_role as SpaceRole;
  if (RANK[role] < RANK[needed]) throw new DomainError(ErrorCode.Forbidden, `this needs the ${needed} role in the space (you are ${role})`);
  const { member_role: _ignored, ...space } = row;
  return { space: { ...space, key_epoch: Number(space.key_epoch), seq: Number(space.seq), retention_days: Number(space.retention_days), created_at: Number(space.created_at) } as SpaceRow, role };
}

const ROLE_SQL = 'SELECT m.role FROM space_members m WHERE m.space_id = ? AND m.user_id = ? '
  + 'AND NOT EXISTS (SELECT 1 FROM pending_removals p WHERE p.space_id = m.space_id AND p.user_id = m.user_id) LIMIT 1';

/**
 * The caller's role in a space where it is at least `needed` (404/403 otherwise, as spaceAccess), without the space's
 * row: for the hot routes, from the access cache under the request's generation (auth/access-cache.ts) when it can.
 */
export async function memberRole(services: { hot: HotReads; access: AccessCache }, caller: Caller, spaceId: string, needed: SpaceRole): Promise<SpaceRole> {
  const { generation } = caller;
  let role = generation === undefined ? undefined : services.access.memberRole(caller.userId, spaceId, generation) as SpaceRole | undefined;
  if (role === undefined) {
    const row = await services.hot.first<{ role: SpaceRole }>(ROLE_SQL, [spaceId, caller.userId]);
    if (!row) throw new DomainError(ErrorCode.NotFound, 'no such space');
    role = row.role;
    if (generation !== undefined) services.access.putMemberRole(caller.userId, spaceId, generation, role);
  }
  if (RANK[role] < RANK[needed]) throw new DomainError(ErrorCode.Forbidden, `this needs the ${needed} role in the space (you are ${role})`);
  return role;
}

export function roleAtLeast(role: SpaceRole, needed: SpaceRole): boolean {
  return RANK[role] >= RANK[needed];
}

/**
 * Whether the space is frozen: a removal is pending in it (docs/admin.md "Offboarding") that no remaining manager can
 * complete, because every manager is pending removal themselves (the offboarded person was its only manager). Its key
 * can then never be rotated, so nothing new may be written under it.
 */
export async function spaceFrozen(db: Db, spaceId: string): Promise<boolean> {
  return (await frozenWitness(db).where('p.space_id', spaceId).first()) !== undefined;
}

/** Rows (one per pending removal) that show a space frozen; callers add the space: `p.space_id`. */
export function frozenWitness(db: Db) {
  return db('pending_removals as p')
    .whereNotExists(db('space_members as m').whereRaw('m.space_id = p.space_id').andWhere('m.role', 'manager')
      .whereNotExists(db('pending_removals as q').whereRaw('q.space_id = m.space_id').andWhereRaw('q.user_id = m.user_id').select(db.raw('1')))
      .select(db.raw('1')))
    .select(db.raw('1'));
}

/**
 * Refuses new content for a frozen space (409 `space_frozen`): commits, chunk uploads, shares, links and file requests.
 * Reading and downloading go on, so that its members can copy what they need into a new space. Audited as denied.
 */
export async function refuseIfFrozen(db: Db, spaceId: string): Promise<void> {
  if (await spaceFrozen(db, spaceId)) throw frozenRefusal();
}

/** The refusal of new content for a frozen space (see refuseIfFrozen). */
export function frozenRefusal(): DomainError {
  const err = new DomainError(ErrorCode.SpaceFrozen, 'this space has no manager left who can renew its key after a removal (its only manager was offboarded): it takes no new versions, shares or links; copy what you need into a new space');
  err.auditOutcome = 'denied';
  err.auditDetails = { reason: 'no_manager' };
  return err;
}
