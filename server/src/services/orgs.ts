// Organisations and invites. An organisation is identified by its Belgian enterprise number (KBO/BCE).
import { Email, ErrorCode, nameProblem, newId, newSecretToken, tokenHash, type OrgRole } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
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
  const problem = nameProblem(input.name);
  if (problem) throw new DomainError(ErrorCode.ValidationFailed, `name: ${problem}`);
  const name = input.name.trim();
  if (!validEnterpriseNumber(input.enterpriseNumber)) {
    throw new DomainError(ErrorCode.ValidationFailed, 'enterprise number: 10 digits with a valid mod-97 check (e.g. 0123.456.749)');
  }
  const enterpriseNumber = normaliseEnterpriseNumber(input.enterpriseNumber);
  return db.transaction(async (trx) => {
    if (await trx('orgs').where({ enterprise_number: enterpriseNumber }).first('id')) {
      throw new DomainError(ErrorCode.Conflict, `an organisation with enterprise number ${enterpriseNumber} exists`);
    }
    const orgId = newId();
    await trx('orgs').insert({ id: orgId, name, enterprise_number: enterpriseNumber, created_at: Date.now() });
    await audit.append(trx, { orgId, ...who, action: 'org.create', targetType: 'org', targetId: orgId, outcome: 'success', details: { enterpriseNumber } });
    const invite = await insertInvite(trx, audit, { orgId, email: input.adminEmail, role: 'main_admin', createdBy: who.actorUserId ?? null }, who);
    return { orgId, invite };
  });
}

/**
 * Creates a one-time invite (the token is returned once; only its hash is stored). An address that already has an
 * account is refused with 409 when that account is visible to the inviter: `accountsVisible` 'all' for the operator
 * (kluis-admin), 'org' for an organisation's admin, who must not learn which addresses other organisations have. For
 * them an address with an account elsewhere is invited exactly like an unknown one; its sign-up is refused later,
 * to the address's owner only.
 */
export async function insertInvite(trx: Tx, audit: AuditLog, input: { orgId: string; email: string; role: OrgRole; createdBy: string | null; accountsVisible?: 'org' | 'all' }, who: AuditContext): Promise<InviteResult> {
  // The same rule as sign-up (docs/crypto.md §0): an invite to an address that could never sign up is refused here.
  const parsed = Email.safeParse(input.email);
  if (!parsed.success) throw new DomainError(ErrorCode.ValidationFailed, 'email: not an e-mail address');
  const email = parsed.data;
  const holder = await trx('users').where({ email }).first('org_id');
  if (holder && ((input.accountsVisible ?? 'all') === 'all' || holder.org_id === input.orgId)) throw new DomainError(ErrorCode.Conflict, 'an account with this e-mail address exists');
  const token = newSecretToken();
  const inviteId = newId();
  const now = Date.now();
  const expiresAt = now + INVITE_TTL_MS;
  await trx('invites').insert({ id: inviteId, org_id: input.orgId, email, role: input.role, token_hash: tokenHash(token), created_by: input.createdBy, created_at: now, expires_at: expiresAt, used_at: null });
  await audit.append(trx, { orgId: input.orgId, ...who, action: 'invite.create', targetType: 'invite', targetId: inviteId, outcome: 'success', details: { role: input.role } });
  return { inviteId, token, email, role: input.role, expiresAt };
}
