// The front door (./door.ts) for a shell that has not opened the folder (the CLI's `versions` and `restore`): find
// the synced folder holding a path, list its versions, restore one. A restore takes the folder's lock and brings the
// version down itself; when another process syncs the folder, it only commits and that process writes it.
import { realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { ErrorCode, KluisError } from '@kluis/shared';
import { api } from '../api/endpoints.js';
import type { Account } from '../account/state.js';
import { accountClient } from '../account/spaces.js';
import { SyncEngine, folderLockHolder, lockFolder } from './engine.js';
import { IndexDb, type FolderRecord } from './index-db.js';
import { fileVersions, restoreVersion, type FileHistory, type Restored } from './door-versions.js';

/** This device's name as the server knows it (for conflict copies); the host name if the server is away. */
export async function deviceName(account: Account): Promise<string> {
  try {
    return (await api.devices(accountClient(account))).find((d) => d.current)?.name ?? hostname();
  } catch {
    return hostname();
  }
}

/** The synced folder holding `file`, and the file's path inside it (NFC, POSIX). */
export async function locateFile(db: IndexDb, file: string): Promise<{ folder: FolderRecord; rel: string }> {
  const abs = path.resolve(file);
  let real = abs;
  try {
    real = path.join(realpathSync(path.dirname(abs)), path.basename(abs));
  } catch {
    // a deleted file's folder may be gone too: use the path as given
  }
  for (const folder of await db.folders()) {
    for (const candidate of [real, abs]) {
      if (candidate.startsWith(folder.root + path.sep)) {
        return { folder, rel: candidate.slice(folder.root.length + 1).split(path.sep).join('/').normalize('NFC') };
      }
    }
  }
  throw new KluisError(ErrorCode.NotFound, `${file} is not inside a synced folder (kluis status lists them)`);
}

/** The versions of `file` (a path on disk, also of a deleted file), newest first. */
export async function fileHistoryAt(account: Account, home: string, file: string): Promise<FileHistory> {
  const db = await IndexDb.open(home);
  try {
    const { folder, rel } = await locateFile(db, file);
    return await fileVersions({ db, folder, client: accountClient(account), account }, rel);
  } finally {
    await db.close();
  }
}

/** Restores version `version` of `file`; `written`: it is on disk now (else the process syncing the folder writes it). */
export async function restoreAt(account: Account, home: string, file: string, version: string): Promise<Restored & { written: boolean }> {
  const db = await IndexDb.open(home);
  try {
    const { folder, rel } = await locateFile(db, file);
    const unlock = (await folderLockHolder(home, folder.id)) === null ? await lockFolder(home, folder.id) : null;
    try {
      const engine = new SyncEngine({ db, folder, client: accountClient(account), account, device: await deviceName(account), giveUpMs: 60_000 });
      const r = await restoreVersion(engine, rel, version);
      if (unlock) await engine.runOnce();
      return { ...r, written: unlock !== null };
    } finally {
      await unlock?.();
    }
  } finally {
    await db.close();
  }
}
