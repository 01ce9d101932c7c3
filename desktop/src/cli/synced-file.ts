// What the share commands have in common: the open account, and a file of a synced folder with its space's keys,
// checked to be writable by this account (only editors and managers share).
import { ErrorCode, KluisError, initCrypto } from '@kluis/shared';
import type { ApiClient } from '../api/client.js';
import { kluisHome, loadAccount, type Account } from '../account/state.js';
import { accountClient } from '../account/spaces.js';
import { IndexDb, type FolderRecord } from '../sync/index-db.js';
import { SpaceCrypto } from '../sync/remote.js';
import { fileIdOf, locateFile as locate } from '../sync/door.js';

export async function openAccount(): Promise<Account> {
  await initCrypto();
  return loadAccount(kluisHome());
}

/** A time for a table cell: ISO 8601 to the second, or '-'. */
export const when = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'));

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
 * Runs `fn` on the synced file at `file` with its space's keys loaded; refuses with `forbidden` (the reason a viewer
 * may not do this) unless the account may write in the space. The index is closed afterwards.
 */
export async function withSyncedFile<T>(file: string, forbidden: string, fn: (f: SyncedFile) => Promise<T>): Promise<T> {
  const account = await openAccount();
  const client = accountClient(account);
  const db = await IndexDb.open(kluisHome());
  try {
    const { folder, rel } = await locate(db, file);
    const fileId = await fileIdOf(db, folder, rel);
    const sc = await SpaceCrypto.load(client, account, folder.spaceId);
    if (!sc.canWrite) throw new KluisError(ErrorCode.Forbidden, forbidden);
    return await fn({ account, client, db, folder, rel, fileId, sc });
  } finally {
    await db.close();
  }
}
