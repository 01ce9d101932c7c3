// Every IPC handler of the desktop app (docs/desktop.md "IPC"), composed over one AppCore. Two things hold for all
// of them: a request that finds the session ended by the server (401) first lets the core carry out a wipe order
// (./core.ts) and is then answered `unauthenticated`; a local-state problem (StateError: a damaged or exposed file)
// is answered with its sentence, not as an internal error.
import { ErrorCode, KluisError } from '@kluis/shared';
import { StateError } from '../../account/state.js';
import type { Channel } from '../ipc/contract.js';
import { accountHandlers } from './account-handlers.js';
import { conflictHandlers } from './conflicts.js';
import type { AppCore } from './core.js';
import { folderChannelHandlers, type DialogLike, type ShellLike } from './folder-channels.js';
import { folderHandlers } from './folders.js';
import type { Handler, Handlers } from './ipc.js';
import { settingsHandlers, type LoginItemsLike } from './settings.js';
import { shareHandlers } from './share-handlers.js';
import type { Settings } from '../ipc/contract.js';

export interface HandlerDeps {
  shell: ShellLike;
  dialog: DialogLike;
  app: LoginItemsLike;
  onLanguage?: (language: Settings['language']) => void;
}

type DoorChannel = 'folders:pause' | 'folders:resume' | 'versions:list' | 'versions:restore';

/** The handlers the FolderHost of the moment serves (none while logged out). */
function doorHandlers(core: AppCore): Pick<Handlers, DoorChannel | 'app:status'> {
  const door = <C extends DoorChannel>(channel: C): Handler<C> => async (request) => folderHandlers(core.requireHost())[channel](request as never) as ReturnType<Handler<C>>;
  return {
    'app:status': async (request) => {
      const { host } = core.current;
      if (host) return folderHandlers(host)['app:status'](request);
      return { version: core.o.version, account: null, folders: [], keysProtected: core.o.protection.mode };
    },
    'folders:pause': door('folders:pause'),
    'folders:resume': door('folders:resume'),
    'versions:list': door('versions:list'),
    'versions:restore': door('versions:restore'),
  };
}

function guarded<C extends Channel>(core: AppCore, handler: Handler<C>): Handler<C> {
  return async (request) => {
    try {
      return await handler(request);
    } catch (err) {
      if (await core.sessionEnded(err)) throw new KluisError(ErrorCode.Unauthenticated, 'your session ended: log in again');
      if (err instanceof StateError) throw new KluisError(err.kind === 'not_logged_in' ? ErrorCode.Unauthenticated : ErrorCode.Conflict, err.message);
      throw err;
    }
  };
}

/** Every channel of the contract, served. */
export function appHandlers(core: AppCore, deps: HandlerDeps): Handlers {
  const all: Handlers = {
    ...doorHandlers(core),
    ...accountHandlers(core),
    ...folderChannelHandlers(core, deps),
    ...conflictHandlers(core),
    ...shareHandlers(core),
    ...settingsHandlers(core, deps.app, deps.onLanguage),
  };
  return Object.fromEntries(Object.entries(all).map(([c, h]) => [c, guarded(core, h as Handler<Channel>)])) as Handlers;
}
