// The handlers of share:link|colleague|file (docs/desktop.md "IPC"), over the sharing code of the CLI
// (account/share-file.ts, account/spaces.ts fingerprintOf): the same links, the same sealed keys, and the same
// refusals, since the server applies the organisation's policy and the client checks colleagues' keys against the
// pinned ones (a changed key is refused with `key_changed` until the user compares and accepts it).
import { addMember, fingerprintOf } from '../../account/spaces.js';
import { withFileOf, type SyncedFile } from '../../account/synced-file.js';
import { linkToSyncedFile, shareSyncedFileWith } from '../../account/share-file.js';
import type { AppCore } from './core.js';
import type { Handlers } from './ipc.js';

const DAY = 24 * 60 * 60 * 1000;

export function shareHandlers(core: AppCore): Pick<Handlers, 'share:link' | 'share:colleague' | 'share:file' | 'share:member'> {
  /** The file at `rel` of a folder the app syncs, with its space's keys; a viewer is refused with `forbidden`. */
  const onFile = <T>(folderId: string, rel: string, forbidden: string, fn: (f: SyncedFile) => Promise<T>): Promise<T> => {
    const folder = core.requireHost().folder(folderId).folder;
    return withFileOf(core.requireAccount(), core.o.home, async () => ({ folder, rel }), forbidden, fn);
  };
  return {
    'share:link': async ({ folderId, path, expiresDays, maxDownloads, password, purpose }) => {
      const r = await onFile(folderId, path, 'links are made by editors and managers of the space; you may only read it',
        (f) => linkToSyncedFile(f, { expiresInMs: expiresDays * DAY, maxDownloads, password, purpose }));
      return { link: r.link, linkId: r.linkId, expiresAt: r.expiresAt, maxDownloads: r.maxDownloads };
    },
    'share:colleague': async ({ email }) => {
      const r = await fingerprintOf(core.requireAccount(), email);
      return { email: r.email, fingerprint: r.fingerprint, pinned: r.pinned === null ? 'new' as const : r.pinned === r.fingerprint ? 'same' as const : 'changed' as const };
    },
    'share:file': async ({ folderId, path, email }) => {
      const account = core.requireAccount();
      const r = await onFile(folderId, path, 'files are shared by editors and managers of the space; you may only read it', (f) => shareSyncedFileWith(f, email));
      return { shareId: r.shareId, fingerprint: (await fingerprintOf(account, r.fingerprintEmail)).fingerprint };
    },
    // The CLI's add-member: a manager only (`forbidden` otherwise), the colleague's key verified against the pin, the
    // space's key sealed to it and a signed entry in the membership log.
    'share:member': async ({ folderId, email, role }) => {
      const account = core.requireAccount();
      const r = await addMember(account, core.requireHost().folder(folderId).folder.spaceId, email, role);
      return { spaceName: r.name, role: r.role, fingerprint: (await fingerprintOf(account, r.email)).fingerprint };
    },
  };
}
