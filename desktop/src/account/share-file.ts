// Sharing a file of a synced folder, as both shells do it (the CLI's `share link` and `share file`, the desktop app's
// share:link and share:file): a link to the current version on the server (a folder link for a folder, see
// ./folder-link.ts), or the file's keys sealed to a colleague. The server applies the organisation's policy (link
// life, password, downloads, external people by class) and refuses with `policy_refused`; so do these functions,
// for the same request, in both shells.
import { ErrorCode, KluisError, type LinkInfo } from '@kluis/shared';
import { createLink } from './links.js';
import { shareFileWith } from './file-shares.js';
import { shareFolder, type Limits } from './folder-link.js';
import { UsageError } from './auth.js';
import { fileHistory } from '../sync/remote.js';
import type { SyncedFile } from './synced-file.js';

export type LinkResult = LinkInfo & { link: string; kind: 'file' | 'folder'; files?: number };

/** A link to the file (or folder) as it is on the server now; `notes`: what the user should know about it. */
export async function linkToSyncedFile(f: SyncedFile, limits: Limits, notes: string[] = []): Promise<LinkResult> {
  const { client, db, folder, rel, fileId, sc } = f;
  sc.open(fileId, (await db.wraps(folder.id, [fileId])).get(fileId) ?? []);
  const head = (await fileHistory(client, sc, fileId))[0];
  if (!head || head.version.deleted) throw new UsageError(`${rel} is deleted on the server: nothing to link`, ErrorCode.NotFound);
  if (!head.manifest) throw new KluisError(ErrorCode.BadSignature, `the current version of ${rel} was refused: ${head.refused ?? 'it does not open'}`);
  if (head.manifest.kind === 'dir') {
    const r = await shareFolder(f, { versionId: head.version.versionId, keyEpoch: head.version.keyEpoch, manifest: head.manifest }, limits, notes);
    return { ...r, kind: 'folder' };
  }
  const keys = sc.keyFor(fileId, head.version.keyEpoch);
  if (!keys) throw new KluisError(ErrorCode.BadKey, `no key of epoch ${head.version.keyEpoch} of ${rel} opens for you`);
  const base = (await db.baseAll(folder.id)).get(rel);
  if (base && base.versionId !== head.version.versionId) notes.push(`the link shows the version on the server (${head.version.versionId}), not your unsynced local copy`);
  const r = await createLink(client, { spaceId: folder.spaceId, fileId, versionId: head.version.versionId, fileKey: keys.fileKey, ...limits });
  return { ...r, kind: 'file' };
}

/** Shares the file with a colleague: every key epoch of it this account holds, sealed to their verified key. */
export async function shareSyncedFileWith(f: SyncedFile, email: string): Promise<Awaited<ReturnType<typeof shareFileWith>>> {
  const { account, client, folder, rel, fileId, sc } = f;
  const history = await fileHistory(client, sc, fileId);
  const head = history[0];
  if (!head || head.version.deleted) throw new UsageError(`${rel} is deleted on the server: nothing to share`, ErrorCode.NotFound);
  if (head.manifest && head.manifest.kind !== 'file') throw new UsageError(`${rel} is a folder: only files can be shared with a colleague`);
  // Every key epoch of the file this account holds, so the colleague reads each version we can read.
  const keys = new Map<number, Uint8Array>();
  for (const { version } of history) {
    const k = sc.keyFor(fileId, version.keyEpoch);
    if (k) keys.set(version.keyEpoch, k.fileKey);
  }
  if (!keys.has(head.version.keyEpoch)) throw new KluisError(ErrorCode.BadKey, `no key of epoch ${head.version.keyEpoch} of ${rel} opens for you`);
  return shareFileWith(client, account, { spaceId: folder.spaceId, fileId }, email, keys);
}
