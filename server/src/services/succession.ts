// Replacing the main access admin (docs/admin.md "Replacing the main access admin"): a recorded two-step act. A backup
// admin proposes a successor (an active person of the organisation); a second admin (the main admin or another backup
// admin, never the proposer) confirms within SUCCESSION_TTL_MS; on confirmation the roles swap in one transaction:
// the successor becomes main admin and the former main admin a backup admin. The database's partial unique index
// (migration 010) keeps it to one main admin whatever happens. The operator's emergency replacement (kluis-admin)
// is one audited step, for an organisation left without two admins.
import { ErrorCode, SUCCESSION_TTL_MS, newId, type SuccessionView } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Db, Tx } from '../db/db.js';
import type { AuditLog } from '../audit/types.js';
import { statusOf, type Who } from './domains.js';

interface SuccessionRow {
  id: string;
  successor_user_id: string;
  proposed_by: string;
  proposed_at: number;
  expires_at: number;
  confirmed_by: string | null;
  confirmed_at: number | null;
  cancelled_at: number | null;
}

function view(r: SuccessionRow, now: number): SuccessionView {
  const state = r.confirmed_at !== null ? 'confirmed' : r.cancelled_at !== null ? 'cancelled' : Number(r.expires_at) <= now ? 'expired' : 'open';
  return { proposalId: r.id, successorUserId: r.successor_user_id, proposedBy: r.proposed_by, proposedAt: Number(r.proposed_at), expiresAt: Number(r.expires_at), state, confirmedBy: r.confirmed_by };
}

async function openProposal(db: Db | Tx, orgId: string, now: number): Promise<SuccessionRow | undefined> {
  return db('admin_successions').where({ org_id: orgId }).whereNull('confirmed_at').whereNull('cancelled_at').where('expires_at', '>', now).orderBy('proposed_at', 'desc').first();
}

/** The open proposal of the organisation, if any. */
export async function currentSuccession(db: Db, orgId: string): Promise<SuccessionView | null> {
  const now = Date.now();
  const row = await openProposal(db, orgId, now);
  return row ? view(row, now) : null;
}

async function activeSuccessor(trx: Tx, orgId: string, userId: string): Promise<{ id: string; role: string }> {
  const user = await trx('users').where({ id: userId, org_id: orgId }).first('id', 'role', 'disabled_at', 'offboarded_at');
  if (!user) throw new DomainError(ErrorCode.NotFound, 'no such person');
  if (statusOf(user) !== 'active') throw new DomainError(ErrorCode.Conflict, 'the successor is blocked or offboarded');
  if (user.role === 'main_admin') throw new DomainError(ErrorCode.Conflict, 'this person is the main access admin already');
  return user;
}

/** Step one, by a backup admin (the route checks the role). */
export async function proposeSuccession(db: Db, audit: AuditLog, who: Who & { actorUserId: string }, successorUserId: string): Promise<SuccessionView> {
  return db.transaction(async (trx) => {
    const now = Date.now();
    await activeSuccessor(trx, who.orgId, successorUserId);
    if (await openProposal(trx, who.orgId, now)) throw new DomainError(ErrorCode.Conflict, 'a proposal to replace the main access admin is open: confirm or cancel it first');
    const row: SuccessionRow = { id: newId(), successor_user_id: successorUserId, proposed_by: who.actorUserId, proposed_at: now, expires_at: now + SUCCESSION_TTL_MS, confirmed_by: null, confirmed_at: null, cancelled_at: null };
    await trx('admin_successions').insert({ ...row, org_id: who.orgId });
    await audit.append(trx, { ...who, action: 'admin.succession.propose', targetType: 'succession', targetId: row.id, outcome: 'success', details: { successorUserId, expiresAt: row.expires_at } });
    return view(row, now);
  });
}

async function loadOpen(trx: Tx, orgId: string, proposalId: string, now: number): Promise<SuccessionRow> {
  const row = await trx('admin_successions').where({ id: proposalId, org_id: orgId }).first();
  if (!row) throw new DomainError(ErrorCode.NotFound, 'no such proposal');
  const state = view(row, now).state;
  if (state !== 'open') throw new DomainError(ErrorCode.Conflict, `this proposal is ${state}`);
  return row;
}

/** Swaps the roles: the successor becomes main admin, the former main admin (if any) a backup admin. */
async function swap(trx: Tx, orgId: string, successorUserId: string): Promise<string | null> {
  const former = await trx('users').where({ org_id: orgId, role: 'main_admin' }).first('id');
  // Demote first: the partial unique index allows one main admin at every moment, also inside the transaction.
  if (former) await trx('users').where({ id: former.id }).update({ role: 'backup_admin' });
  await trx('domain_admins').where({ user_id: successorUserId }).delete();
  await trx('users').where({ id: successorUserId }).update({ role: 'main_admin' });
  return former?.id ?? null;
}

/** Step two, by the main admin or another backup admin than the proposer (the route checks the role). */
export async function confirmSuccession(db: Db, audit: AuditLog, who: Who & { actorUserId: string }, proposalId: string): Promise<{ mainAdmin: string; formerMainAdmin: string | null }> {
  return db.transaction(async (trx) => {
    const now = Date.now();
    const row = await loadOpen(trx, who.orgId, proposalId, now);
    if (row.proposed_by === who.actorUserId) throw new DomainError(ErrorCode.Forbidden, 'a second admin, not the proposer, confirms');
    await activeSuccessor(trx, who.orgId, row.successor_user_id);
    const former = await swap(trx, who.orgId, row.successor_user_id);
    await trx('admin_successions').where({ id: proposalId }).update({ confirmed_by: who.actorUserId, confirmed_at: now });
    await audit.append(trx, { ...who, action: 'admin.succession.confirm', targetType: 'succession', targetId: proposalId, outcome: 'success', details: { successorUserId: row.successor_user_id, formerMainAdmin: former, proposedBy: row.proposed_by } });
    return { mainAdmin: row.successor_user_id, formerMainAdmin: former };
  });
}

export async function cancelSuccession(db: Db, audit: AuditLog, who: Who, proposalId: string): Promise<void> {
  await db.transaction(async (trx) => {
    const now = Date.now();
    await loadOpen(trx, who.orgId, proposalId, now);
    await trx('admin_successions').where({ id: proposalId }).update({ cancelled_at: now });
    await audit.append(trx, { ...who, action: 'admin.succession.cancel', targetType: 'succession', targetId: proposalId, outcome: 'success' });
  });
}

/** kluis-admin's emergency replacement: one step, audited as the operator's act; open proposals are cancelled. */
export async function replaceMainAdmin(db: Db, audit: AuditLog, who: Who, successorUserId: string): Promise<{ mainAdmin: string; formerMainAdmin: string | null }> {
  return db.transaction(async (trx) => {
    const now = Date.now();
    await activeSuccessor(trx, who.orgId, successorUserId);
    await trx('admin_successions').where({ org_id: who.orgId }).whereNull('confirmed_at').whereNull('cancelled_at').update({ cancelled_at: now });
    const former = await swap(trx, who.orgId, successorUserId);
    await audit.append(trx, { ...who, action: 'admin.main.replace', targetType: 'user', targetId: successorUserId, outcome: 'success', details: { formerMainAdmin: former, by: 'operator' } });
    return { mainAdmin: successorUserId, formerMainAdmin: former };
  });
}

/** The organisation's admins and auditors. */
export async function listAdmins(db: Db, orgId: string): Promise<{ userId: string; email: string; role: string; status: string }[]> {
  const rows = await db('users').where({ org_id: orgId }).whereIn('role', ['main_admin', 'backup_admin', 'domain_admin', 'auditor']).orderBy(['role', 'email']).select('id', 'email', 'role', 'disabled_at', 'offboarded_at');
  return rows.map((r) => ({ userId: r.id, email: r.email, role: r.role, status: statusOf(r) }));
}
