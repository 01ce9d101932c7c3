// The handlers of folders:add|remove|open|choose (docs/desktop.md "IPC"): a folder is bound to an existing space of
// the account or to a new one (account/spaces.ts createSpace, as `kluis space create`), opened through the engine's
// front door by the FolderHost, and remembered in app.json for the next start. Removing stops syncing and keeps the
// files. Opening and choosing go through Electron's shell and dialog, passed in.
import path from 'node:path';
import type * as Electron from 'electron';
import { ErrorCode, KluisError } from '@kluis/shared';
import { api } from '../../api/endpoints.js';
import { accountClient, createSpace } from '../../account/spaces.js';
import type { AppCore } from './core.js';
import type { Handlers } from './ipc.js';

export type ShellLike = Pick<Electron.Shell, 'openPath'>;
export interface DialogLike {
  showOpenDialog(options: Electron.OpenDialogOptions): Promise<Pick<Electron.OpenDialogReturnValue, 'canceled' | 'filePaths'>>;
}

type FolderChannels = 'folders:add' | 'folders:remove' | 'folders:open' | 'folders:choose';

/** `rel` inside `root`, refused when it climbs out of it (`..`, an absolute path). */
export function insideFolder(root: string, rel: string): string {
  const abs = path.resolve(root, ...rel.split('/'));
  if (path.isAbsolute(rel) || (abs !== root && !abs.startsWith(root + path.sep))) throw new KluisError(ErrorCode.BadRequest, 'that path is not inside the synced folder');
  return abs;
}

export function folderChannelHandlers(core: AppCore, electron: { shell: ShellLike; dialog: DialogLike }): Pick<Handlers, FolderChannels> {
  return {
    'folders:add': async ({ path: dir, space }) => {
      const account = core.requireAccount();
      if (!path.isAbsolute(dir)) throw new KluisError(ErrorCode.BadRequest, 'choose a folder by its full path');
      let target: { spaceId: string; name: string };
      if ('spaceId' in space) {
        const found = (await api.spaces(accountClient(account))).find((s) => s.spaceId === space.spaceId);
        if (!found) throw new KluisError(ErrorCode.NotFound, 'you are not a member of that space');
        target = found;
      } else {
        target = await createSpace(account, space.newSpaceName, space.classification);
      }
      return core.openFolder({ root: dir, spaceId: target.spaceId, spaceName: target.name });
    },
    'folders:remove': async ({ folderId }) => {
      const account = core.requireAccount();
      const host = core.requireHost();
      const root = (await host.status(folderId)).path;
      await host.remove(folderId);
      core.store.removeFolder(account.session.userId, root);
      return { ok: true as const };
    },
    'folders:open': async ({ folderId, path: rel }) => {
      const root = (await core.requireHost().status(folderId)).path;
      const target = rel === undefined ? root : insideFolder(root, rel);
      const problem = await electron.shell.openPath(target);
      if (problem) throw new KluisError(ErrorCode.NotFound, `the system could not open it: ${problem}`);
      return { ok: true as const };
    },
    'folders:choose': async () => {
      const r = await electron.dialog.showOpenDialog({ properties: ['openDirectory', 'createDirectory'] });
      return { path: r.canceled ? null : (r.filePaths[0] ?? null) };
    },
  };
}
