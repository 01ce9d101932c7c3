// Cross-organisation acts are audited on both sides (docs/api.md "Policy", "External people"). A space belongs to one
// organisation, but since a manager may add a person of another organisation (where the space's class allows it),
// acts on the space's data can be made by someone whose entries carry their own organisation. Each organisation's
// auditors read only rows of their own org_id (routes/audit.ts), so an entry about a space of another organisation
// than the entry's own is written twice: as given (the actor's side) and as a copy for the space's organisation, with
// `actorOrgId` and `mirrorOf` (the seq of the original) added to its details. Both rows are ordinary links of the chain.
//
// "About a space" means: the target is a space, or the details name a `spaceId` (links, shares, shared chunks). A
// refusal is copied only when the actor takes part in the space (see involved()).
// Entries that already carry `mirrorOf` are copies and are never copied again (the explicit copies for a recipient's
// or new member's organisation, see mirrorEntry, use it too).
import type { CanonicalValue } from '@kluis/shared';
import type { Tx } from '../db/db.js';
import { SqlAuditLog } from './log.js';
import type { AuditEntryInput } from './types.js';

/** The copy of `entry` (appended as `seq`) for `orgId`'s auditors; `side` says what that organisation is to the act. */
export function mirrorEntry(entry: AuditEntryInput, seq: number, orgId: string, side: 'space' | 'member' | 'recipient'): AuditEntryInput {
  return { ...entry, orgId, details: { ...(entry.details ?? {}), actorOrgId: entry.orgId, mirrorOf: seq, side } };
}

function spaceOf(entry: AuditEntryInput): string | null {
  if (entry.details && 'mirrorOf' in entry.details) return null;
  if (entry.targetType === 'space' && typeof entry.targetId === 'string') return entry.targetId;
  const named: CanonicalValue | undefined = entry.details?.spaceId;
  return typeof named === 'string' ? named : null;
}

export class OrgSidedAuditLog extends SqlAuditLog {
  /** Organisations of spaces as read inside a transaction (noteSpaceOrg), forgotten with the transaction object. */
  private readonly known = new WeakMap<Tx, Map<string, string>>();

  noteSpaceOrg(trx: Tx, spaceId: string, orgId: string): void {
    let spaces = this.known.get(trx);
    if (!spaces) this.known.set(trx, (spaces = new Map()));
    spaces.set(spaceId, orgId);
  }

  override async append(trx: Tx, entry: AuditEntryInput): Promise<number> {
    const seq = await super.append(trx, entry);
    const spaceId = spaceOf(entry);
    if (spaceId === null || entry.orgId === null) return seq;
    const spaceOrg = await this.spaceOrg(trx, spaceId);
    if (spaceOrg === null || spaceOrg === entry.orgId) return seq;
    if (entry.outcome !== 'success' && !(await this.involved(trx, spaceId, entry.actorUserId ?? null))) return seq;
    await super.append(trx, mirrorEntry(entry, seq, spaceOrg, 'space'));
    return seq;
  }

  /**
   * Appends entries in order, as append() does one by one but with one INSERT for them all and one for their copies
   * (audit/batch.ts): the copies for the spaces' organisations follow the originals in the chain.
   */
  async appendBatch(trx: Tx, entries: readonly AuditEntryInput[]): Promise<number[]> {
    const seqs = await super.appendMany(trx, entries);
    const spaceIds = [...new Set(entries.map(spaceOf).filter((id): id is string => id !== null))];
    if (spaceIds.length === 0) return seqs;
    const orgs = new Map<string, string>();
    // Read in the appending transaction, as spaceOrg().
    for (let i = 0; i < spaceIds.length; i += 500) {
      for (const r of await trx('spaces').whereIn('id', spaceIds.slice(i, i + 500)).select('id', 'org_id')) orgs.set(r.id as string, r.org_id as string);
    }
    const copies: AuditEntryInput[] = [];
    for (const [i, entry] of entries.entries()) {
      const spaceId = spaceOf(entry);
      const spaceOrg = spaceId === null ? undefined : orgs.get(spaceId);
      if (spaceOrg === undefined || entry.orgId === null || spaceOrg === entry.orgId) continue;
      if (entry.outcome !== 'success' && !(await this.involved(trx, spaceId!, entry.actorUserId ?? null))) continue;
      copies.push(mirrorEntry(entry, seqs[i]!, spaceOrg, 'space'));
    }
    if (copies.length) await super.appendMany(trx, copies);
    return seqs;
  }

  /**
   * Whether the actor takes part in the space: a member, or the recipient of one of its shares (active or revoked).
   * A stranger's refused probe of a space id stays in the stranger's own organisation's trail: another organisation
   * learns nothing of its people unless they work together.
   */
  private async involved(trx: Tx, spaceId: string, userId: string | null): Promise<boolean> {
    if (userId === null) return false;
    if (await trx('space_members').where({ space_id: spaceId, user_id: userId }).first('user_id')) return true;
    return Boolean(await trx('file_shares').where({ space_id: spaceId, recipient_user_id: userId }).first('id'));
  }

  /**
   * Read in the appending transaction, never cached across transactions: a space made in a transaction that later rolls
   * back must not leave its organisation behind for another organisation's space of the same id (ids are the
   * clients'). What noteSpaceOrg was told in this very transaction (savepoint) is that read.
   */
  private async spaceOrg(trx: Tx, spaceId: string): Promise<string | null> {
    const known = this.known.get(trx)?.get(spaceId);
    if (known !== undefined) return known;
    const row = await trx('spaces').where({ id: spaceId }).first('org_id');
    return row ? (row.org_id as string) : null;
  }
}
