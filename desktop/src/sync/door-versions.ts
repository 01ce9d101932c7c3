// Versions behind the front door (./door.ts): a file's history, and a restore that makes the chosen version current
// through the engine's own commit path (journalled, 409 answers handled there). The restore's parent is the version
// this device last saw, so a colleague's commit it has not pulled yet makes the server refuse it (parent_not_head):
// the restore is then not made and the caller is told, instead of silently replacing the colleague's work.
import { ErrorCode, KluisError } from '@kluis/shared';
import type { ApiClient } from '../api/client.js';
import type { Account } from '../account/state.js';
import type { SyncEngine } from './engine.js';
import type { FolderRecord, IndexDb } from './index-db.js';
import { SpaceCrypto, fileHistory } from './remote.js';
import { ChunkUploader, encryptStream, fileContent } from './transfer.js';

export interface VersionInfo {
  versionId: string;
  seq: number;
  createdAt: string;
  size: number;
  deleted: boolean;
  path: string | null;
  author: string | null;
  device: string | null;
  current: boolean;
  expired: boolean;
  refused?: string;
}

export interface FileHistory {
  path: string;
  fileId: string;
  versions: VersionInfo[];
}

export interface Restored {
  path: string;
  /** The new version (the restored content, now current). */
  versionId: string;
  restoredFrom: string;
}

/** The file id at `rel`: the synced one, else the newest the server listed there (a deleted file too). */
export async function fileIdOf(db: IndexDb, folder: FolderRecord, rel: string): Promise<string> {
  const b = (await db.baseAll(folder.id)).get(rel);
  if (b) return b.fileId;
  const candidates = [...(await db.remoteAll(folder.id)).values()].filter((r) => r.path === rel).sort((x, y) => Number(x.deleted) - Number(y.deleted) || y.seq - x.seq);
  if (!candidates.length) throw new KluisError(ErrorCode.NotFound, `${rel} is not known in this space (never synced)`);
  return candidates[0]!.fileId;
}

async function opened(db: IndexDb, folder: FolderRecord, sc: SpaceCrypto, rel: string): Promise<string> {
  const fileId = await fileIdOf(db, folder, rel);
  sc.open(fileId, (await db.wraps(folder.id, [fileId])).get(fileId) ?? []);
  return fileId;
}

/** The versions of the file at `rel`, newest first. */
export async function fileVersions(ctx: { db: IndexDb; folder: FolderRecord; client: ApiClient; account: Account }, rel: string): Promise<FileHistory> {
  const sc = await SpaceCrypto.load(ctx.client, ctx.account, ctx.folder.spaceId);
  const fileId = await opened(ctx.db, ctx.folder, sc, rel);
  const list = await fileHistory(ctx.client, sc, fileId);
  const versions = list.map((h, i) => ({
    versionId: h.version.versionId, seq: h.version.seq, createdAt: new Date(h.version.createdAt).toISOString(), size: h.manifest?.size ?? 0,
    deleted: h.version.deleted, path: h.manifest?.path ?? null, author: h.signer ? (sc.authors.get(h.signer) ?? null) : null, device: h.version.authorDeviceId,
    current: i === 0, expired: h.version.expired, ...(h.refused ? { refused: h.refused } : {}),
  }));
  return { path: rel, fileId, versions };
}

/** Makes the version `want` (an id or a unique prefix of 6+ characters) of `rel` current, as a new version. */
export async function restoreVersion(engine: SyncEngine, rel: string, want: string): Promise<Restored> {
  const { db, folder, client } = engine;
  if (want.length < 6) throw new KluisError(ErrorCode.BadRequest, 'version: give at least 6 characters of the version id');
  const sc = await engine.spaceCrypto();
  if (!sc.canWrite) throw new KluisError(ErrorCode.Forbidden, 'you may only read this space');
  const fileId = await opened(db, folder, sc, rel);
  const list = await fileHistory(client, sc, fileId);
  const matches = list.filter((h) => h.version.versionId.startsWith(want));
  if (matches.length !== 1) throw new KluisError(matches.length ? ErrorCode.BadRequest : ErrorCode.NotFound, matches.length ? `version ${want} matches ${matches.length} versions: give more characters` : `no version ${want} of ${rel} (the versions command lists them)`);
  const chosen = matches[0]!;
  if (!chosen.manifest) throw new KluisError(ErrorCode.BadSignature, `version ${chosen.version.versionId} was refused: ${chosen.refused ?? 'does not open'}`);
  if (chosen.manifest.deleted) throw new KluisError(ErrorCode.BadRequest, `version ${chosen.version.versionId} is a deletion: choose a version with content`);
  if (chosen.version.expired) throw new KluisError(ErrorCode.BadRequest, `version ${chosen.version.versionId} has expired (the space's retention) and cannot be restored`);
  // The parent is the head this device knows; the server refuses it when someone committed since (see the top).
  const parent = (await db.remoteAll(folder.id)).get(fileId)?.versionId ?? list[0]!.version.versionId;
  let content = { chunks: chosen.manifest.chunks, size: chosen.manifest.size, hash: chosen.manifest.hash };
  const { keys, fresh } = sc.writeKeys(fileId);
  if (chosen.version.keyEpoch !== keys.epoch || fresh) {
    // Written under another key (the space key was rotated since): the content goes up again, re-encrypted.
    const readKeys = sc.keyFor(fileId, chosen.version.keyEpoch);
    if (!readKeys) throw new KluisError(ErrorCode.BadKey, `no key of epoch ${chosen.version.keyEpoch} of this file opens for you`);
    const uploader = new ChunkUploader(client, folder.spaceId);
    content = await encryptStream(fileContent(client, folder.spaceId, chosen.manifest.chunks, readKeys.subkeys), keys.subkeys, uploader, !fresh);
    await uploader.flush();
    if (content.hash !== chosen.manifest.hash) throw new KluisError(ErrorCode.BadManifest, 'the old version\'s content does not match its manifest');
  }
  const made = await engine.commitOne(keys, { ...chosen.manifest, ...content, fileId, parent, path: rel, deleted: false });
  if (!made.committed) {
    throw new KluisError(ErrorCode.Conflict, `${rel} was changed by someone else since this device last synced: the restore was not made (their version stays current; sync, look at the versions and restore again)`);
  }
  return { path: rel, versionId: made.versionId, restoredFrom: chosen.version.versionId };
}
