// The public-key directory (docs/api.md "Organisations and the directory", "External people"). A caller finds the
// colleagues of their own organisation by e-mail address or id. People of other organisations are never listed or
// browsed: a writer of a space whose class allows external people finds one by the exact address (`space` names the
// space, so the look-up is asked and audited in its context), and anyone finds by id or address a person they already
// share a space or a file with (their client checks those keys when it rotates a space key, verifies a share, or
// shows a fingerprint).
import { ErrorCode, type ClassName, type DirectoryEntry } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Caller } from '../context.js';
import type { Db } from '../db/db.js';
import { spaceAccess } from './access.js';
import { classPolicy, policyRefusal } from './policy.js';

export interface DirectoryLookup {
  email: string | null;
  userId: string | null;
  /** The space an external person is looked up for (by e-mail only). */
  spaceId: string | null;
}

export type DirectoryAnswer = DirectoryEntry & { org?: { orgId: string; name: string } };

interface UserRow {
  id: string;
  email: string;
  org_id: string;
  enc_public_key: string;
  sign_public_key: string;
  identity_sig: string;
}

const notFound = () => new DomainError(ErrorCode.NotFound, 'no such colleague in your organisation');

/** Whether `a` and `b` share a space, or a file share names them both (either way round). */
async function related(db: Db, a: string, b: string): Promise<boolean> {
  const shared = await db('space_members as x').join('space_members as y', 'y.space_id', 'x.space_id').where({ 'x.user_id': a, 'y.user_id': b }).first('x.space_id');
  if (shared) return true;
  const share = await db('file_shares as s').join('space_members as m', 'm.space_id', 's.space_id')
    .where((w) => w.where({ 's.recipient_user_id': a, 'm.user_id': b }).orWhere({ 's.recipient_user_id': b, 'm.user_id': a })).first('s.id');
  return Boolean(share);
}

/** One directory entry, or 404 / 403 `policy_refused` as the rules of the header say. */
export async function lookupPerson(db: Db, caller: Caller, q: DirectoryLookup): Promise<DirectoryAnswer> {
  // A blocked person stays listed (a manager's key rotation must reach them too); an offboarded one does not.
  const base = db('users').whereNull('offboarded_at');
  const row = (await (q.email ? base.where({ email: q.email }) : base.where({ id: q.userId })).first('id', 'email', 'org_id', 'enc_public_key', 'sign_public_key', 'identity_sig')) as UserRow | undefined;
  if (row?.org_id !== caller.orgId) {
    if (q.email && q.spaceId) {
      // The policy is asked before the address: a refused look-up says nothing of whether the address has an account.
      const { space } = await spaceAccess(db, caller, q.spaceId, 'editor');
      const className = space.classification as ClassName;
      if (!(await classPolicy(db, space.org_id, className)).externalMembers) {
        throw policyRefusal(`no colleague of your organisation has this address, and ${className} spaces do not allow people of other organisations`, className, 'external-member');
      }
      if (!row) throw notFound();
    } else if (!(row && (await related(db, caller.userId, row.id)))) {
      throw notFound();
    }
  }
  const entry: DirectoryAnswer = { userId: row.id, email: row.email, encPublicKey: row.enc_public_key, signPublicKey: row.sign_public_key, identitySig: row.identity_sig };
  if (row.org_id !== caller.orgId) {
    const org = await db('orgs').where({ id: row.org_id }).first('id', 'name');
    entry.org = { orgId: org.id, name: org.name };
  }
  return entry;
}
