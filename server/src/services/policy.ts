// The sharing policy in effect for an organisation: its own rows over the documented defaults, and the refusals it
// makes. Services of links, shares and memberships ask here; the errors are domain errors the middleware answers.
import { ClassPolicy, CLASS_ORDER, DEFAULT_CLASS_POLICY, ErrorCode, type ClassName } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Db, Tx } from '../db/db.js';

export interface PolicyInEffect extends ClassPolicy {
  isDefault: boolean;
}

/** Every class's policy for `orgId`. A stored row that no longer parses falls back to the default (and says so). */
export async function orgPolicies(db: Db | Tx, orgId: string): Promise<Record<ClassName, PolicyInEffect>> {
  const rows = await db('org_class_policy').where({ org_id: orgId }).select('classification', 'policy');
  const stored = new Map(rows.map((r: { classification: string; policy: string }) => [r.classification, r.policy]));
  const out = {} as Record<ClassName, PolicyInEffect>;
  for (const c of CLASS_ORDER) {
    const text = stored.get(c);
    const parsed = text === undefined ? null : ClassPolicy.safeParse(JSON.parse(text));
    out[c] = parsed?.success ? { ...parsed.data, isDefault: false } : { ...DEFAULT_CLASS_POLICY[c], isDefault: true };
  }
  return out;
}

/** The policy of one class for `orgId`. */
export async function classPolicy(db: Db | Tx, orgId: string, classification: ClassName): Promise<ClassPolicy> {
  const { isDefault: _ignored, ...policy } = (await orgPolicies(db, orgId))[classification];
  return policy;
}

/** Stores an organisation's policy for a class (replacing its earlier one); `null` goes back to the default. */
export async function setClassPolicy(trx: Tx, orgId: string, classification: ClassName, policy: ClassPolicy | null, userId: string | null, now = Date.now()): Promise<void> {
  await trx('org_class_policy').where({ org_id: orgId, classification }).delete();
  if (policy) await trx('org_class_policy').insert({ org_id: orgId, classification, policy: JSON.stringify(policy), updated_by: userId, updated_at: now });
}

/** The sharing act a refusal concerns, as its audit entry names it (`rule`). */
export type PolicyRule = 'link' | 'request' | 'external-member' | 'external-share' | 'raise';

/** A policy refusal: `policy_refused` (403; 409 `byState` when the space's state blocks it), audited as denied naming the class. */
export function policyRefusal(message: string, classification: ClassName, rule: PolicyRule, byState = false): DomainError {
  return new DomainError(ErrorCode.PolicyRefused, message, { auditOutcome: 'denied', auditDetails: { classification, rule }, byState });
}

const EXTERNAL_MESSAGE: Record<'external-member' | 'external-share', (c: ClassName) => string> = {
  'external-member': (c) => `people of other organisations may not be members of ${c} spaces`,
  'external-share': (c) => `files of ${c} spaces may not be shared with people of other organisations`,
};

/**
 * Refuses a person of another organisation than the space's (a new member, a share's recipient) unless the space's
 * class allows external members in the space's organisation. People of the space's own organisation always pass.
 */
export async function checkExternalPerson(db: Db | Tx, space: { org_id: string; classification: string }, personOrgId: string, rule: 'external-member' | 'external-share'): Promise<void> {
  if (personOrgId === space.org_id) return;
  const className = space.classification as ClassName;
  if (!(await classPolicy(db, space.org_id, className)).externalMembers) throw policyRefusal(EXTERNAL_MESSAGE[rule](className), className, rule);
}
