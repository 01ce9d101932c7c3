// The checks and rows of a commit, without the database: shared by commitBatch (services/commit-batch.ts), which reads what
// they need for one batch, and the commit combiner (services/commit-combiner.ts), which reads it for many batches at
// once and keeps overlays so that a later batch sees the writes of an earlier one in the same group.
import { ErrorCode, fromBase64Url, type CommitVersion, type FileKeyWrap } from '@kluis/shared';
import { DomainError } from '../domain-error.js';

/** Who a batch is recorded under: the caller, or for a file request its creator and the request's id (services/requests.ts). */
export interface CommitAuthor {
  orgId: string;
  userId: string;
  deviceId: string;
}

export interface Conflict {
  fileId: string;
  versionId: string;
  reason: 'parent_not_head' | 'already_committed' | 'file_in_other_space' | 'version_in_other_space';
  head: string | null;
  seq?: number;
}

/** What a batch's checks need to know of the stored files and versions (as read, or as an overlay on that). */
export interface CommitView {
  file(id: string): { space_id: string; head_version_id: string | null; wrapEpoch: number } | undefined;
  /** The seq of a version with this id in the batch's space, or 'elsewhere' when the id is taken in another space. */
  version(id: string): number | 'elsewhere' | undefined;
}

/** The space facts a batch is checked against. */
export interface CommitSpace {
  spaceId: string;
  keyEpoch: number;
  epochPublicKey: string;
  signer: string;
}

/**
 * Checks a batch's versions against `view` (docs/api.md "Commits"): throws the first refusal (as commitBatch always
 * did: wrong epoch, a wrap refused, or 409 with every conflict); returns the files' new heads and the files that get a
 * key for the current epoch.
 */
export function checkVersions(space: CommitSpace, versions: CommitVersion[], view: CommitView, checked: ReadonlySet<FileKeyWrap>) {
  const { spaceId, keyEpoch } = space;
  const versionIds = versions.map((v) => v.versionId);
  if (new Set(versionIds).size !== versionIds.length) throw new DomainError(ErrorCode.ValidationFailed, 'versions: a versionId appears twice');
  const conflicts: Conflict[] = [];
  const heads = new Map<string, string | null>();
  const wrapEpochs = new Map<string, number>();
  for (const v of versions) {
    if (v.keyEpoch !== keyEpoch) throw new DomainError(ErrorCode.Conflict, `versions: keyEpoch must be the space's current epoch ${keyEpoch}`);
    const known = view.file(v.fileId);
    if (known && known.space_id !== spaceId) {
      conflicts.push({ fileId: v.fileId, versionId: v.versionId, reason: 'file_in_other_space', head: null });
      continue;
    }
    // An id taken in another space, of this organisation or another, gets one answer that says nothing of that
    // space (no seq, no head): ids are global, so the refusal itself cannot be avoided, but it is the same for all.
    const taken = view.version(v.versionId);
    if (taken === 'elsewhere') {
      conflicts.push({ fileId: v.fileId, versionId: v.versionId, reason: 'version_in_other_space', head: null });
      continue;
    }
    if (taken !== undefined) {
      conflicts.push({ fileId: v.fileId, versionId: v.versionId, reason: 'already_committed', head: known?.head_version_id ?? null, seq: taken });
      continue;
    }
    const head = heads.has(v.fileId) ? heads.get(v.fileId)! : (known?.head_version_id ?? null);
    if (v.parent !== head) {
      conflicts.push({ fileId: v.fileId, versionId: v.versionId, reason: 'parent_not_head', head });
      continue;
    }
    const wrapEpoch = wrapEpochs.get(v.fileId) ?? known?.wrapEpoch ?? 0;
    if (wrapEpoch < keyEpoch) {
      if (!v.fileKeyWrap) throw new DomainError(ErrorCode.ValidationFailed, `versions: fileKeyWrap is required for file ${v.fileId} (new file or new key epoch)`);
      checkFileWrap(v.fileKeyWrap, { spaceId, keyEpoch, fileId: v.fileId, recipient: space.epochPublicKey, signer: space.signer }, checked.has(v.fileKeyWrap));
      wrapEpochs.set(v.fileId, keyEpoch);
    } else if (v.fileKeyWrap) {
      throw new DomainError(ErrorCode.ValidationFailed, `versions: file ${v.fileId} already has a key for epoch ${keyEpoch}`);
    }
    heads.set(v.fileId, v.versionId);
  }
  if (conflicts.length) {
    throw new DomainError(ErrorCode.Conflict, `${conflicts.length} version(s) conflict with the server's history`, { extra: { conflicts } });
  }
  return { heads };
}

function checkFileWrap(wrap: FileKeyWrap, expect: { spaceId: string; keyEpoch: number; fileId: string; recipient: string; signer: string }, verified: boolean): void {
  if (wrap.spaceId !== expect.spaceId || wrap.keyEpoch !== expect.keyEpoch || wrap.fileId !== expect.fileId || wrap.recipient !== expect.recipient) {
    throw new DomainError(ErrorCode.ValidationFailed, `fileKeyWrap for ${expect.fileId}: must be sealed to the space key of epoch ${expect.keyEpoch} for this file`);
  }
  if (wrap.signer !== expect.signer) throw new DomainError(ErrorCode.ValidationFailed, `fileKeyWrap for ${expect.fileId}: must be signed by you`);
  if (!verified) throw new DomainError(ErrorCode.BadSignature, `fileKeyWrap for ${expect.fileId}: the signature does not verify`);
}

/** The distinct chunks a batch names; throws missing_chunks when one is not stored in the space (`lengths`). */
export function checkChunks(versions: CommitVersion[], lengths: ReadonlyMap<string, number>): string[] {
  const wanted = [...new Set(versions.flatMap((v) => v.chunks))];
  const missing = wanted.filter((id) => !lengths.has(id));
  if (missing.length) {
    throw new DomainError(ErrorCode.MissingChunks, `${missing.length} chunk(s) are not uploaded`, { extra: { missing: missing.slice(0, 10_000) } });
  }
  return wanted;
}

export interface VersionRow {
  id: string; file_id: string; space_id: string; seq: number; parent_id: string | null; key_epoch: number; manifest: Buffer; deleted: boolean;
  stored_bytes: number; author_user_id: string; author_device_id: string; created_at: number; expired_at: null;
}

/** The rows of an accepted batch, its versions numbered from `seq` + 1. */
export function commitRows(space: CommitSpace, author: CommitAuthor, versions: CommitVersion[], seq: number, lengths: ReadonlyMap<string, number>, now: number) {
  const versionRows: VersionRow[] = [];
  const chunkRows: { version_id: string; ord: number; chunk_id: string }[] = [];
  const assigned: { fileId: string; versionId: string; seq: number }[] = [];
  for (const v of versions) {
    seq++;
    versionRows.push({
      id: v.versionId, file_id: v.fileId, space_id: space.spaceId, seq, parent_id: v.parent, key_epoch: v.keyEpoch, manifest: Buffer.from(fromBase64Url(v.manifest)),
      deleted: v.deleted, stored_bytes: v.chunks.reduce((n, id) => n + lengths.get(id)!, 0), author_user_id: author.userId, author_device_id: author.deviceId, created_at: now, expired_at: null,
    });
    v.chunks.forEach((chunkId, ord) => chunkRows.push({ version_id: v.versionId, ord, chunk_id: chunkId }));
    assigned.push({ fileId: v.fileId, versionId: v.versionId, seq });
  }
  const wrapRows = versions.filter((v) => v.fileKeyWrap).map((v) => ({ file_id: v.fileId, key_epoch: space.keyEpoch, recipient: space.epochPublicKey, wrap: JSON.stringify(v.fileKeyWrap), created_at: now }));
  return { versionRows, chunkRows, wrapRows, assigned, lastSeq: seq };
}
