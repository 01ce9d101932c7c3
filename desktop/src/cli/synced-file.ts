// What the share commands have in common: the open account, and a file of a synced folder with its space's keys
// (account/synced-file.ts, shared with the desktop app), found by its path on disk.
import { initCrypto } from '@kluis/shared';
import { kluisHome, loadAccount, type Account } from '../account/state.js';
import { withFileOf, type SyncedFile } from '../account/synced-file.js';
import { locateFile as locate } from '../sync/door.js';

export type { SyncedFile };

export async function openAccount(): Promise<Account> {
  await initCrypto({ wasm: 'lazy' });
  return loadAccount(kluisHome());
}

/** A time for a table cell: ISO 8601 to the second, or '-'. */
export const when = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'));

/**
 * Runs `fn` on the synced file at `file` with its space's keys loaded; refuses with `forbidden` (the reason a viewer
 * may not do this) unless the account may write in the space. The index is closed afterwards.
 */
export async function withSyncedFile<T>(file: string, forbidden: string, fn: (f: SyncedFile) => Promise<T>): Promise<T> {
  return withFileOf(await openAccount(), kluisHome(), (db) => locate(db, file), forbidden, fn);
}
