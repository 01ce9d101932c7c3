// A file of a synced folder with its space's keys loaded, checked to be writable by this account (only editors and
// managers share): what the sharing code of both shells (the CLI's share commands, the desktop app's share handlers)
// works on. The index is opened for the call and closed after it.
import { ErrorCode, KluisError } from '@kluis/shared';
import type { ApiClient } from '../api/client.js';
import type { Account } from './state.js';
import { accountClient } from './spaces.js';
import { IndexDb, type FolderRecord } from '../sync/index-db.js';
import { SpaceCrypto } from '../sync/remote.js';
import { fileIdOf } from '../sync/door.js';

export interface SyncedFile {
  account: Account;
  client: ApiClient;
  db: IndexDb;
  folder: FolderRecord;
  rel: string;
  fileId: string;
  sc: SpaceCrypto;
}

/**
 * Runs `fn` on the synced file that `locate` finds in the index of `home`, with its space's keys loaded; refuses
 * with `forbidden` (the reason a viewer may not do this) unless the account may write in the space.
 */
export async function withFileOf<T>(account: Account, home: string, locate: (db: IndexDb) => Promise<{ folder: FolderRecord; rel: string }>, forbidden: string, fn: (f: SyncedFile) => Promise<T>): Promise<T> {
  const client = accountClient(account);
  const db = await IndexDb.open(home);
  try {
    const { folder, rel } = await locate(db);
    const fileId = await fileIdOf(db, folder, rel);
    const sc = await SpaceCrypto.load(client, account, folder.spaceId);
    if (!sc.canWrite) throw new KluisError(ErrorCode.Forbidden, forbidden);
    return await fn({ account, client, db, folder, rel, fileId, sc });
  } finally {
    await db.close();
  }
}
