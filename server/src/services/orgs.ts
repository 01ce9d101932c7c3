// Organisations and invites. An organisation is identified by its Belgian enterprise number (KBO/BCE).
import { ErrorCode, newId, newSecretToken, tokenHash, type OrgRole } from '@kluis/shared';
import { ApiError } from '../errors.js';
import type { Db, Tx } from '../db/db.js';
import type { AuditLog } from '../audit/types.js';

/** Invites are valid for 7 days. */
export const INVITE_TTL_MS = 7 * 24 * 3600 * 1000;

/** Checks a KBO/BCE enterprise number: 10 digits, first 0 or 1, last two = 97 - (first eight mod 97). */
export function validEnterpriseNumber(text: string): boolean {
  const digits = text.replace(/[\s.]/g, '');
  if (!/^[01]\d{9}$/.test(digits)) return false;
  return 97 - (Number(digits.slice(0, 8)) % 97) === Number(digits.slice(8));
}

export function normaliseEnterpriseNumber(text: string): string {
  return text.replace(/[\s.]/g, '');
}

export interface InviteResult {
  inviteId: string;
  token: string;
  email: string;
  role: OrgRole;
  expiresAt: number;
}

interface AuditContext {
  actorUserId?: string | null;
  actorDeviceId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  client?: string | null;
}

/** Creates an organisation and a one-time invite for its main access admin. */
export async function createOrg(db: Db, audit: AuditLog, input: { name: string; enterpriseNumber: string; adminEmail: string }, who: AuditContext): Promise<{ orgId: string; invite: InviteResult }> {
  const name = input.name.trim();
  if (!name || name.length > 200) throw new ApiError(400, ErrorCode.ValidationFailed, 'name: 1 to 200 characters');
  if (!validEnterpriseNumber(input.enterpriseNumber)) {
    throw new ApiError(400, ErrorCode.ValidationFailed, 'enterprise number: 10 digits with a valid mod-97 check (e.g. 0123.456.749)');
  }
  const enterpriseNumber = normaliseEnterpriseNumber(input.enterpriseNumber);
  return db.transaction(async (trx) => {
    if (await trx('orgs').where({ enterprise_number: enterpriseNumber }).first('id')) {
      throw new ApiError(409, ErrorCode.Conflict, `an organisation with enterprise number ${enterpriseNumber} exists`);
    }
    const orgId = newId();
    await trx('orgs').insert({ id: orgId, name, enterprise_number: enterpriseNumber, created_at: Date.now() });
    await audit.append(trx, { orgId, ...who, action: 'org.create', targetType: 'org', targetId: orgId, outcome: 'success', details: { enterpriseNumber } });
    const invite = await insertInvite(trx, audit, { orgId, email: input.adminEmail, role: 'main_admin', createdBy: who.actorUserId ?? null }, who);
    return { orgId, invite };
  });
}

/** Creates a one-time invite (the token is returned once; only its hash is stored). */
export async function insertInvite(trx: Tx, audit: AuditLog, input: { orgId: string; email: string; role: OrgRole; createdBy: string | null }, who: AuditContext): Promise<InviteResult> {
  const email = input.email.trim().toLowerCase();
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email) || email.length > 320) throw new ApiError(400, ErrorCode.ValidationFailed, 'email: not an e-mail address');
  if (await trx('users').where({ email }).first('id')) throw new ApiError(409, ErrorCode.Conflict, 'an account with this e-mail address exists');
  const token = newSecretToken();
  const inviteId = newId();
  const now = Date.now();
  const expiresAt = now + INVITE_TTL_MS;
  await trx('invites').insert({ id: inviteId, org_id: input.orgId, email, role: input.role, token_hash: tokenHash(token), created_by: input.createdBy, created_at: now, expires_at: expiresAt, used_at: null });
  await audit.append(trx, { orgId: input.orgId, ...who, action: 'invite.create', targetType: 'invite', targetId: inviteId, outcome: 'success', details: { role: input.role } });
  return { inviteId, token, email, role: input.role, expiresAt };
}
