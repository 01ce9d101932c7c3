// The handlers of settings:get|set (docs/desktop.md "Settings"): kept in app.json (./store.ts) and applied at once.
// Start at login goes to the OS through Electron's app.setLoginItemSettings (passed in); the transfer limit to every
// running engine (the engine has one limiter for both directions: the lower of the two limits applies); the language
// to whoever shows texts in main (the tray) through `onLanguage`. Notifications are read by the Notifier at each flush.
import type * as Electron from 'electron';
import type { Settings } from '../ipc/contract.js';
import { bandwidthOf, type AppCore } from './core.js';
import type { Handlers } from './ipc.js';

export type LoginItemsLike = Pick<Electron.App, 'setLoginItemSettings'>;

export function settingsHandlers(core: AppCore, app: LoginItemsLike, onLanguage?: (language: Settings['language']) => void): Pick<Handlers, 'settings:get' | 'settings:set'> {
  return {
    'settings:get': async () => core.store.settings,
    'settings:set': async (change) => {
      const before = core.store.settings;
      const next: Settings = { ...before, ...Object.fromEntries(Object.entries(change).filter(([, v]) => v !== undefined)) };
      if (next.startAtLogin !== before.startAtLogin) app.setLoginItemSettings({ openAtLogin: next.startAtLogin });
      core.store.setSettings(next);
      await core.current.host?.setBandwidth(bandwidthOf(next));
      if (next.language !== before.language) onLanguage?.(next.language);
      return core.store.settings;
    },
  };
}
