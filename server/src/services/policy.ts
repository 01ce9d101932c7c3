// The sharing policy in effect for an organisation: its own rows over the documented defaults. Services of links and
// memberships ask here; nothing of HTTP.
import { ClassPolicy, CLASS_ORDER, DEFAULT_CLASS_POLICY, type ClassName } from '@kluis/shared';
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
