// Who may administer what in an organisation (docs/admin.md "Roles"). One place for the rule, used by the domain,
// people and succession routes, and meant for every other admin act (device revocation, the admin console):
//   main_admin    everything in the organisation (delegating never takes any of it away);
//   backup_admin  the same, except appointing or removing backup admins and acting on the main admin or on another
//                 backup admin's account (the main admin is replaced only by the two-step succession);
//   domain_admin  the spaces of the domains it administers, and their members (people who are plain members);
//   auditor       nothing here: the audit trail only (routes/audit.ts);
//   member        nothing.
// Nobody administers another organisation: such targets are not found (404) before these rules are asked.
import { ErrorCode, type OrgRole } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Caller } from '../context.js';
import type { Db, Tx } from '../db/db.js';

export interface AdminScope {
  userId: string;
  orgId: string;
  role: OrgRole;
  /** the domains the caller administers (domain admins only; empty for the others) */
  domains: ReadonlySet<string>;
}

/** What an admin act is about. */
export type AdminTarget =
  /** the organisation as a whole: domains, appointments, people's accounts */
  | { kind: 'org' }
  /** one domain (its spaces, its admins) */
  | { kind: 'domain'; domainId: string }
  /** one space; `domainId` null when it is in no domain */
  | { kind: 'space'; domainId: string | null }
  /**
   * one person's account (block, offboard, their devices). `domainIds`: the domains of the spaces they are a
   * member of, for a domain admin's reach (absent: not looked up, so a domain admin is refused).
   */
  | { kind: 'person'; userId: string; role: OrgRole; domainIds?: readonly string[] };

/** The caller's administrative reach (one query for domain admins). */
export async function adminScope(db: Db | Tx, caller: Pick<Caller, 'userId' | 'orgId' | 'role'>): Promise<AdminScope> {
  const domains = caller.role === 'domain_admin'
    ? new Set((await db('domain_admins as a').join('domains as d', 'd.id', 'a.domain_id').where({ 'a.user_id': caller.userId, 'd.org_id': caller.orgId }).select('a.domain_id')).map((r) => r.domain_id as string))
    : new Set<string>();
  return { userId: caller.userId, orgId: caller.orgId, role: caller.role, domains };
}

const isOrgAdmin = (role: OrgRole) => role === 'main_admin' || role === 'backup_admin';

/** Whether `scope` may administer `target` (see the table at the top). */
export function canAdminister(scope: AdminScope, target: AdminTarget): boolean {
  switch (target.kind) {
    case 'org':
      return isOrgAdmin(scope.role);
    case 'domain':
      return isOrgAdmin(scope.role) || scope.domains.has(target.domainId);
    case 'space':
      return isOrgAdmin(scope.role) || (target.domainId !== null && scope.domains.has(target.domainId));
    case 'person':
      if (scope.role === 'main_admin') return true;
      if (scope.role === 'backup_admin') return target.userId === scope.userId || (target.role !== 'main_admin' && target.role !== 'backup_admin');
      if (scope.role === 'domain_admin') return target.role === 'member' && (target.domainIds ?? []).some((d) => scope.domains.has(d));
      return false;
  }
}

/** canAdminister or a 403 that says why. */
export function requireAdminister(scope: AdminScope, target: AdminTarget): void {
  if (canAdminister(scope, target)) return;
  const what = target.kind === 'org' ? 'this needs the main or a backup access admin'
    : target.kind === 'person' ? 'you do not administer this person'
      : target.kind === 'domain' ? 'you do not administer this domain' : 'this space is outside the domains you administer';
  throw new DomainError(ErrorCode.Forbidden, what);
}

/** The domains of the spaces a person is a member of (for a domain admin's reach over them). */
export async function personDomains(db: Db | Tx, userId: string): Promise<string[]> {
  const rows = await db('space_members as m').join('spaces as s', 's.id', 'm.space_id').where('m.user_id', userId).whereNotNull('s.domain_id').distinct('s.domain_id');
  return rows.map((r) => r.domain_id as string);
}

/** Who reads the organisation's audit trail (and its incident list): main and backup admins, auditors (routes/audit.ts). */
export function canReadAudit(scope: Pick<AdminScope, 'role'>): boolean {
  return scope.role === 'main_admin' || scope.role === 'backup_admin' || scope.role === 'auditor';
}
