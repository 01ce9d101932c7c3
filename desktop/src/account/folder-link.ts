// A folder link (`kluis share link FOLDER`, the desktop app's share:link on a folder; docs/cli.md "Share links",
// docs/crypto.md §9.1): a snapshot of every file
// under the folder at its current version as this device last saw the server (the index's remote table). The server
// refuses the link if a file changed since: sync, then make it again.
import { ErrorCode, KluisError, toBase64Url, type FolderListingFile, type LinkInfo, type Manifest } from '@kluis/shared';
import { createFolderLink, type NewLink } from './links.js';
import type { RemoteEntry } from '../sync/types.js';
import { UsageError } from './auth.js';
import type { SyncedFile } from './synced-file.js';

export type Limits = Pick<NewLink, 'expiresInMs' | 'maxDownloads' | 'password' | 'purpose'>;

/** The files under `rel` (any depth), current and not deleted, with their keys: the listing of the link. */
async function snapshot({ db, folder, rel, sc }: SyncedFile): Promise<FolderListingFile[]> {
  const prefix = `${rel}/`;
  const newest = new Map<string, RemoteEntry>();
  for (const r of (await db.remoteAll(folder.id)).values()) {
    if (r.kind !== 'file' || r.deleted || !r.path.startsWith(prefix)) continue;
    const seen = newest.get(r.path);
    if (!seen || seen.seq < r.seq) newest.set(r.path, r);
  }
  const entries = [...newest.values()];
  const wraps = await db.wraps(folder.id, entries.map((r) => r.fileId));
  return entries.map((r) => {
    sc.open(r.fileId, wraps.get(r.fileId) ?? []);
    const keys = sc.keyFor(r.fileId, r.keyEpoch);
    if (!keys) throw new KluisError(ErrorCode.BadKey, `no key of epoch ${r.keyEpoch} of ${r.path} opens for you`);
    return { path: r.path.slice(prefix.length), size: r.size, hash: r.hash, fileId: r.fileId, versionId: r.versionId, fileKey: toBase64Url(keys.fileKey), chunks: r.chunks };
  });
}

/** Makes the folder link; `head` is the folder entry's current version (kind "dir"). `notes`: told what the user should know. */
export async function shareFolder(f: SyncedFile, head: { versionId: string; keyEpoch: number; manifest: Manifest }, limits: Limits, notes: string[] = []): Promise<LinkInfo & { link: string; files: number }> {
  const keys = f.sc.keyFor(f.fileId, head.keyEpoch);
  if (!keys) throw new KluisError(ErrorCode.BadKey, `no key of epoch ${head.keyEpoch} of ${f.rel} opens for you`);
  const files = await snapshot(f);
  if (files.length === 0) throw new UsageError(`${f.rel} holds no synced file: nothing to link`, ErrorCode.NotFound);
  const base = await f.db.baseAll(f.folder.id);
  const stale = files.filter((x) => base.get(`${f.rel}/${x.path}`)?.versionId !== x.versionId).length;
  if (stale) notes.push(`${stale} file(s) differ from your local copy; the link shows the versions on the server`);
  const name = f.rel.split('/').pop()!;
  const r = await createFolderLink(f.client, { spaceId: f.folder.spaceId, fileId: f.fileId, versionId: head.versionId, fileKey: keys.fileKey, name, files, ...limits });
  return { ...r, files: files.length };
}
