// Direct shares (docs/api.md "Direct shares", docs/crypto.md §5 "Direct shares"): a writer of a space seals one file's
// key to a colleague (of the space's organisation, or of another where the space's class allows external people); the colleague lists what was shared with them and reads the chunks
// of that file's versions they hold a key for, nothing else of the space. No Koa here: routes/file-shares.ts parses
// and calls. Every change writes its audit entry in the same transaction; refusals are audited by the error
// middleware under the route's action with the share (or file) as target.
import {
  ErrorCode, newId,
  type CreateFileShareRequest, type CreateFileShareResponse, type DirectoryEntry, type FileKeyWrap, type FileShareInfo, type SharedItem,
} from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Caller, Services } from '../context.js';
import type { Db, Tx } from '../db/db.js';
import { refuseIfFrozen, spaceAccess } from './access.js';
import { checkWrapAuthor } from './wraps.js';
import { checkExternalPerson } from './policy.js';
import { mirrorEntry } from '../audit/org-sides.js';
import type { Who } from './links.js';

const IN_BATCH = 500;

export interface ShareRow {
  id: string;
  org_id: string;
  space_id: string;
  file_id: string;
  recipient_user_id: string;
  role: 'viewer';
  created_by: string;
  created_at: number;
  revoked_at: number | null;
}

function normalise(r: Record<string, unknown>): ShareRow {
  return { ...(r as unknown as ShareRow), created_at: Number(r.created_at), revoked_at: r.revoked_at === null || r.revoked_at === undefined ? null : Number(r.revoked_at) };
}

const notFound = () => new DomainError(ErrorCode.NotFound, 'no such share');

async function epochsOf(db: Db | Tx, shareIds: string[]): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (let i = 0; i < shareIds.length; i += IN_BATCH) {
    const rows = await db('file_share_wraps').whereIn('share_id', shareIds.slice(i, i + IN_BATCH)).orderBy('key_epoch').select('share_id', 'key_epoch');
    for (const r of rows) (out.get(r.share_id) ?? out.set(r.share_id, []).get(r.share_id)!).push(Number(r.key_epoch));
  }
  return out;
}

function info(s: ShareRow, recipientEmail: string, keyEpochs: number[]): FileShareInfo {
  return {
    shareId: s.id, spaceId: s.space_id, fileId: s.file_id, recipientUserId: s.recipient_user_id, recipientEmail, role: s.role,
    createdBy: s.created_by, createdAt: s.created_at, revokedAt: s.revoked_at, keyEpochs,
  };
}

function checkWrap(wrap: FileKeyWrap, i: number, expect: { spaceId: string; fileId: string; recipient: string; signer: string; epochs: Set<number> }): void {
  const where = `wraps.${i}`;
  if (wrap.spaceId !== expect.spaceId || wrap.fileId !== expect.fileId) throw new DomainError(ErrorCode.ValidationFailed, `${where}: the wrap is for another space or file`);
  if (!expect.epochs.has(wrap.keyEpoch)) throw new DomainError(ErrorCode.ValidationFailed, `${where}: the file has no key of epoch ${wrap.keyEpoch}`);
  checkWrapAuthor(wrap, { recipient: expect.recipient, signer: expect.signer, recipientIs: 'colleague' }, where);
}

/**
 * Shares a file with a colleague, or adds the key epochs an active share lacks (idempotent per file and recipient).
 * The caller must be an editor or manager of the space; the recipient an active user of the space's organisation, or
 * of another where the space's class allows external people (403 `policy_refused` otherwise). After the request the share must hold the key of the file's newest
 * version, so a share never starts out unreadable.
 */
export async function shareFile(services: Services, caller: Caller, who: Who, spaceId: string, fileId: string, req: CreateFileShareRequest, now = Date.now()): Promise<CreateFileShareResponse> {
  const { space } = await spaceAccess(services.db, caller, spaceId, 'editor');
  await refuseIfFrozen(services.db, spaceId);
  if (req.recipientUserId === caller.userId) throw new DomainError(ErrorCode.ValidationFailed, 'recipientUserId: you cannot share a file with yourself');
  return services.db.transaction(async (trx) => {
    const file = await trx('files as f').leftJoin('versions as v', 'v.id', 'f.head_version_id').where({ 'f.id': fileId, 'f.space_id': spaceId })
      .first('f.id', 'v.key_epoch', 'v.deleted');
    if (!file) throw new DomainError(ErrorCode.NotFound, 'no such file in this space');
    if (file.deleted) throw new DomainError(ErrorCode.ValidationFailed, 'the file is deleted: nothing to share');
    const recipient = await trx('users').where({ id: req.recipientUserId }).whereNull('disabled_at').first('id', 'email', 'enc_public_key', 'org_id');
    if (!recipient) throw new DomainError(ErrorCode.NotFound, 'no such colleague in your organisation');
    // A person of another organisation only where the space's class allows external people (services/policy.ts).
    await checkExternalPerson(trx, space, recipient.org_id, 'external-share');
    const signer = (await trx('users').where({ id: caller.userId }).first('sign_public_key')).sign_public_key as string;
    const epochs = new Set((await trx('file_key_wraps').where({ file_id: fileId }).distinct('key_epoch')).map((r: { key_epoch: number | string }) => Number(r.key_epoch)));
    const seen = new Set<number>();
    req.wraps.forEach((w, i) => {
      if (seen.has(w.keyEpoch)) throw new DomainError(ErrorCode.ValidationFailed, `wraps.${i}: epoch ${w.keyEpoch} appears twice`);
      seen.add(w.keyEpoch);
      checkWrap(w as FileKeyWrap, i, { spaceId, fileId, recipient: recipient.enc_public_key, signer, epochs });
    });
    const existing = await trx('file_shares').where({ file_id: fileId, recipient_user_id: recipient.id }).whereNull('revoked_at').first();
    const share: ShareRow = existing
      ? normalise(existing)
      : { id: newId(), org_id: space.org_id, space_id: spaceId, file_id: fileId, recipient_user_id: recipient.id, role: 'viewer', created_by: caller.userId, created_at: now, revoked_at: null };
    if (!existing) await trx('file_shares').insert(share);
    const held = new Set((await epochsOf(trx, [share.id])).get(share.id) ?? []);
    const added = req.wraps.filter((w) => !held.has(w.keyEpoch));
    if (added.length) await trx('file_share_wraps').insert(added.map((w) => ({ share_id: share.id, key_epoch: w.keyEpoch, wrap: JSON.stringify(w), created_by: caller.userId, created_at: now })));
    for (const w of added) held.add(w.keyEpoch);
    const headEpoch = Number(file.key_epoch);
    if (!held.has(headEpoch)) throw new DomainError(ErrorCode.ValidationFailed, `wraps: must include epoch ${headEpoch}, the key of the file's newest version`);
    const keyEpochs = [...held].sort((a, b) => a - b);
    const external = recipient.org_id !== space.org_id;
    const entry = {
      ...who, orgId: caller.orgId, action: 'share.create', targetType: 'share', targetId: share.id, outcome: 'success' as const,
      details: { spaceId, fileId, recipientUserId: recipient.id, created: !existing, added: added.map((w) => w.keyEpoch), keyEpochs, ...(external ? { recipientOrgId: recipient.org_id, classification: space.classification } : {}) },
    };
    const seq = await services.audit.append(trx, entry);
    // The recipient's organisation sees what its person received from another organisation (audit/org-sides.ts).
    if (external && recipient.org_id !== caller.orgId) await services.audit.append(trx, mirrorEntry(entry, seq, recipient.org_id, 'recipient'));
    return { ...info(share, recipient.email, keyEpochs), created: !existing, added: added.map((w) => w.keyEpoch) };
  });
}

/** The active shares of a space (optionally of one file), for its writers: the sync engine adds wraps of new epochs. */
export async function spaceShares(services: Services, caller: Caller, spaceId: string, fileId?: string): Promise<(FileShareInfo & { recipient: DirectoryEntry })[]> {
  await spaceAccess(services.hot, caller, spaceId, 'editor');
  const q = services.read('file_shares as s').join('users as u', 'u.id', 's.recipient_user_id').where({ 's.space_id': spaceId }).whereNull('s.revoked_at');
  if (fileId !== undefined) q.andWhere('s.file_id', fileId);
  const rows = await q.orderBy('s.created_at').select('s.*', 'u.email', 'u.enc_public_key', 'u.sign_public_key', 'u.identity_sig');
  const epochs = await epochsOf(services.read, rows.map((r) => r.id as string));
  return rows.map((r) => ({
    ...info(normalise(r), r.email, epochs.get(r.id) ?? []),
    recipient: { userId: r.recipient_user_id, email: r.email, encPublicKey: r.enc_public_key, signPublicKey: r.sign_public_key, identitySig: r.identity_sig },
  }));
}

/** The caller's active share `shareId` (as its recipient); 404 otherwise, whatever the reason (revoked, not theirs). */
export async function receivedShare(db: Db | Tx, caller: Caller, shareId: string): Promise<ShareRow> {
  const row = await db('file_shares').where({ id: shareId, recipient_user_id: caller.userId }).whereNull('revoked_at').first();
  if (!row) throw notFound();
  return normalise(row);
}

/**
 * What was shared with the caller: each active share with its wraps and the newest retained version whose key epoch
 * it covers, and the directory entries of everyone named (the recipient verifies their identities and pins them).
 */
export async function sharedWithMe(services: Services, caller: Caller): Promise<{ shares: SharedItem[]; people: DirectoryEntry[] }> {
  const { read } = services;
  const rows = (await read('file_shares').where({ recipient_user_id: caller.userId }).whereNull('revoked_at').orderBy('created_at').select('*')).map(normalise);
  const people = new Set<string>();
  const shares: SharedItem[] = [];
  for (const s of rows) {
    const wraps = await read('file_share_wraps').where({ share_id: s.id }).orderBy('key_epoch').select('key_epoch', 'wrap', 'created_by');
    const covered = wraps.map((w) => Number(w.key_epoch));
    const newest = await read('versions').where({ file_id: s.file_id, space_id: s.space_id }).whereNull('expired_at').orderBy('seq', 'desc').first('seq');
    const v = covered.length ? await read('versions').where({ file_id: s.file_id, space_id: s.space_id }).whereIn('key_epoch', covered).whereNull('expired_at').orderBy('seq', 'desc').first('*') : undefined;
    people.add(s.created_by);
    for (const w of wraps) people.add(w.created_by);
    if (v) people.add(v.author_user_id);
    shares.push({
      shareId: s.id, spaceId: s.space_id, fileId: s.file_id, role: s.role, sharedBy: s.created_by, createdAt: s.created_at,
      wraps: wraps.map((w) => ({ signerUserId: w.created_by, wrap: JSON.parse(w.wrap) })),
      version: v ? { versionId: v.id, keyEpoch: Number(v.key_epoch), deleted: Boolean(v.deleted), manifest: Buffer.from(v.manifest as Uint8Array).toString('base64url'), authorUserId: v.author_user_id, createdAt: Number(v.created_at) } : null,
      newerNotShared: newest !== undefined && (!v || Number(newest.seq) > Number(v.seq)),
    });
  }
  const entries = people.size ? await read('users').whereIn('id', [...people]).select('id', 'email', 'enc_public_key', 'sign_public_key', 'identity_sig') : [];
  return {
    shares,
    people: entries.map((u) => ({ userId: u.id, email: u.email, encPublicKey: u.enc_public_key, signPublicKey: u.sign_public_key, identitySig: u.identity_sig })),
  };
}

/**
 * The chunks a recipient may read through a share: every id must belong to a retained version of the shared file
 * whose key epoch the share covers (chunk ids are keyed per file, so no other file's chunk can match; the check
 * still refuses them here rather than trusting that).
 */
export async function authoriseSharedChunks(services: Services, share: ShareRow, ids: string[]): Promise<void> {
  const epochs = (await services.read('file_share_wraps').where({ share_id: share.id }).select('key_epoch')).map((r) => Number(r.key_epoch));
  const wanted = [...new Set(ids)];
  const found = new Set<string>();
  for (let i = 0; i < wanted.length; i += IN_BATCH) {
    const part = wanted.slice(i, i + IN_BATCH);
    const rows = await services.read('version_chunks as vc').join('versions as v', 'v.id', 'vc.version_id')
      .where({ 'v.file_id': share.file_id, 'v.space_id': share.space_id }).whereNull('v.expired_at').whereIn('v.key_epoch', epochs)
      .whereIn('vc.chunk_id', part).distinct('vc.chunk_id');
    for (const r of rows) found.add(r.chunk_id);
  }
  if (found.size !== wanted.length) throw new DomainError(ErrorCode.Forbidden, 'a share reads only the chunks of the shared file\'s versions');
}

/** Revokes a share (its creator or a manager of its space); anyone else, the recipient included, gets 404. */
export async function revokeShare(services: Services, caller: Caller, who: Who, shareId: string, now = Date.now()): Promise<ShareRow> {
  return services.db.transaction(async (trx) => {
    const row = await trx('file_shares').where({ id: shareId }).first();
    const share = row ? normalise(row) : null;
    let allowed = share !== null && share.created_by === caller.userId;
    if (share && !allowed) allowed = Boolean(await trx('space_members').where({ space_id: share.space_id, user_id: caller.userId, role: 'manager' }).first('role'));
    if (!share || !allowed) throw notFound();
    // Revoking twice keeps the first time: the trail says when the share stopped.
    if (share.revoked_at === null) await trx('file_shares').where({ id: shareId }).whereNull('revoked_at').update({ revoked_at: now });
    const entry = {
      ...who, orgId: caller.orgId, action: 'share.revoke', targetType: 'share', targetId: shareId, outcome: 'success' as const,
      details: { spaceId: share.space_id, fileId: share.file_id, recipientUserId: share.recipient_user_id, already: share.revoked_at !== null },
    };
    const seq = await services.audit.append(trx, entry);
    const recipientOrg = (await trx('users').where({ id: share.recipient_user_id }).first('org_id'))?.org_id as string | undefined;
    if (recipientOrg !== undefined && recipientOrg !== share.org_id && recipientOrg !== caller.orgId) await services.audit.append(trx, mirrorEntry(entry, seq, recipientOrg, 'recipient'));
    return { ...share, revoked_at: share.revoked_at ?? now };
  });
}
