// Space access: the caller must be a member with at least the needed role. Non-members get 404, so a space's existence
// is not revealed; members below the role get 403. Membership alone decides: a person of another organisation whom a
// manager added (where the space's class allows external members, docs/api.md "Policy") reaches the space like a
// colleague, and the space's own organisation (`space.org_id`) owns its storage, policy and audit trail.
import { ErrorCode, type SpaceRole } from '@kluis/shared';
import { ApiError } from '../errors.js';
import type { Caller } from '../context.js';
import type { Db } from '../db/db.js';

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

/** Loads a space for a caller who needs at least `needed`; throws 404/403 otherwise. */
export async function spaceAccess(db: Db, caller: Caller, spaceId: string, needed: SpaceRole): Promise<SpaceAccess> {
  const row = await db('spaces as s')
    .join('space_members as m', function () {
      this.on('m.space_id', '=', 's.id').andOn('m.user_id', '=', db.raw('?', [caller.userId]));
    })
    .where('s.id', spaceId)
    // A member whose removal an admin asked for is refused at once, before a manager's client signs it (docs/admin.md).
    .whereNotExists(db('pending_removals as p').whereRaw('p.space_id = s.id').andWhere('p.user_id', caller.userId).select(db.raw('1')))
    .first('s.*', 'm.role as member_role');
  if (!row) throw new ApiError(404, ErrorCode.NotFound, 'no such space');
  const role = row.member_role as SpaceRole;
  if (RANK[role] < RANK[needed]) throw new ApiError(403, ErrorCode.Forbidden, `this needs the ${needed} role in the space (you are ${role})`);
  const { member_role: _ignored, ...space } = row;
  return { space: { ...space, key_epoch: Number(space.key_epoch), seq: Number(space.seq), retention_days: Number(space.retention_days), created_at: Number(space.created_at) } as SpaceRow, role };
}

export function roleAtLeast(role: SpaceRole, needed: SpaceRole): boolean {
  return RANK[role] >= RANK[needed];
}
