// Folder links (docs/api.md "Folder links", docs/crypto.md §9.1): creating one. Everything after creation (info,
// access, chunks, list, revoke) is services/links.ts, which knows a folder link by its kind: the access answers the
// sealed listing besides the folder's own manifest, and the token reads the chunks of the snapshot's versions only.
import { ErrorCode, type CreateFolderLinkRequest, type KdfParams, type LinkInfo } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Caller, Services } from '../context.js';
import { assertHeadVersion, checkNewLink, insertLink, type Who } from './links.js';

/**
 * Creates a folder link (an editor or manager of the space): the folder's entry and every listed file must be at
 * their current, non-deleted version in this space, each file once. The listing is stored as sealed; the server
 * cannot check it against the versions (it cannot open it), the page refuses a listing that does not open.
 */
export async function createFolderLink(services: Services, caller: Caller, who: Who, spaceId: string, req: CreateFolderLinkRequest, floor: KdfParams, now = Date.now()): Promise<LinkInfo> {
  const orgId = await checkNewLink(services, caller, spaceId, req, floor, now);
  const fileIds = new Set(req.files.map((f) => f.fileId));
  if (fileIds.size !== req.files.length) throw new DomainError(ErrorCode.ValidationFailed, 'files: a file is listed twice');
  if (fileIds.has(req.fileId)) throw new DomainError(ErrorCode.ValidationFailed, 'files: the folder itself is not one of its files');
  return services.db.transaction(async (trx) => {
    await assertHeadVersion(trx, spaceId, req.fileId, req.versionId);
    const heads = new Map<string, { head: string | null; deleted: boolean; expired: boolean }>();
    for (let i = 0; i < req.files.length; i += 500) {
      const part = req.files.slice(i, i + 500).map((f) => f.versionId);
      const rows = await trx('versions as v').join('files as f', 'f.id', 'v.file_id').whereIn('v.id', part).andWhere('v.space_id', spaceId)
        .select('v.id', 'v.file_id', 'v.deleted', 'v.expired_at', 'f.head_version_id');
      for (const r of rows) heads.set(`${r.file_id}/${r.id}`, { head: r.head_version_id, deleted: Boolean(r.deleted), expired: r.expired_at !== null });
    }
    req.files.forEach((f, i) => {
      const v = heads.get(`${f.fileId}/${f.versionId}`);
      if (!v) throw new DomainError(ErrorCode.ValidationFailed, `files.${i}: no such version of this file in this space`);
      if (v.head !== f.versionId) throw new DomainError(ErrorCode.ValidationFailed, `files.${i}: not the current version of the file (sync, then make the link again)`);
      if (v.deleted || v.expired) throw new DomainError(ErrorCode.ValidationFailed, `files.${i}: the file is deleted`);
    });
    const info = await insertLink(services, trx, caller, who, {
      id: req.linkId, org_id: orgId, space_id: spaceId, file_id: req.fileId, version_id: req.versionId, kdf: req.kdf ? JSON.stringify(req.kdf) : null,
      auth_hash: req.authHash, wrapped: req.wrapped, expires_at: req.expiresAt, max_downloads: req.maxDownloads, purpose: req.purpose,
      kind: 'folder', listing: req.listing,
    }, { files: req.files.length }, now);
    for (let i = 0; i < req.files.length; i += 200) {
      await trx('link_versions').insert(req.files.slice(i, i + 200).map((f) => ({ link_id: req.linkId, version_id: f.versionId, file_id: f.fileId })));
    }
    return info;
  });
}
