// The Electron entry point of the desktop app (docs/desktop.md "Running and packaging"): the one module that
// requires `electron` and hands it to startApp (./app.ts) with the real handlers over an AppCore (./core.ts).
// Everything it composes is a plain module tested without Electron; this file is type-checked against Electron's
// own declarations and run only inside Electron. The state lives in <userData>/state (KLUIS_APP_HOME overrides it).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Electron from 'electron';
import { EVENT_CHANNEL, type AppEvent } from '../ipc/contract.js';
import { limitHeapGrowth } from '../../sync/heap-growth.js';
import { startApp, type RunningApp, type TrayTexts } from './app.js';
import { AppCore } from './core.js';
import { appHandlers } from './handlers.js';
import type { Handlers } from './ipc.js';
import { keyProtection } from './keystore.js';
import { Notifier } from './notifications.js';
import { TRAY_TEXTS } from './tray-texts.js';

const VERSION = '0.1.0';
// Before any engine worker starts: V8's flags are the process's, so its engine threads grow their heaps the same way.
limitHeapGrowth();
const require = createRequire(import.meta.url);
const electron = require('electron') as typeof Electron;
const { app } = electron;

// desktop/dist/electron/main/index.js → desktop/dist/electron/{preload.cjs,renderer/}, desktop/assets/
const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(here, '..');
const home = process.env.KLUIS_APP_HOME ?? path.join(app.getPath('userData'), 'state');

// Filled when Electron is ready (safeStorage needs it), before startApp registers the IPC: dispatch reads a
// channel's handler at each request, so the window never sees this object empty.
const handlers: Partial<Handlers> = {};
const texts: TrayTexts = { ...TRAY_TEXTS.nl };
let core: AppCore | null = null;
let running: RunningApp | null = null;

function send(event: AppEvent): void {
  if (event.type === 'status') running?.showStatus(event.folders);
  const contents = running?.window.webContents;
  if (contents && !contents.isDestroyed()) contents.send(EVENT_CHANNEL, event);
}

const ready = app.whenReady().then(() => {
  const protection = keyProtection(electron.safeStorage);
  const notifier = new Notifier(electron.Notification, { enabled: () => core?.store.settings.notifications ?? true });
  core = new AppCore({ home, version: VERSION, protection, send, notifier });
  Object.assign(texts, TRAY_TEXTS[core.store.settings.language]);
  Object.assign(handlers, appHandlers(core, {
    shell: electron.shell, app,
    dialog: { showOpenDialog: (options) => electron.dialog.showOpenDialog(options) },
    onLanguage: (language) => Object.assign(texts, TRAY_TEXTS[language]),
  }));
  return core;
});

running = await startApp(electron, {
  rendererDir: path.join(dist, 'renderer'),
  preloadPath: path.join(dist, 'preload.cjs'),
  trayIconPath: path.resolve(dist, '../../assets/tray.png'),
  handlers,
  texts,
  onPauseAll: (paused) => {
    const host = core?.current.host;
    if (!host) return;
    void host.statuses().then((folders) => {
      for (const f of folders) {
        void (paused ? host.folder(f.folderId).pause() : host.folder(f.folderId).resume()).catch(() => undefined);
      }
    });
  },
});

if (running) {
  const started = await ready;
  await started.start();
  // Quit waits for the engines to stop and unlock their folders (a journal entry left half-way is replayed at the next start anyway).
  let closing = false;
  app.on('will-quit', (event) => {
    if (closing) return;
    closing = true;
    event.preventDefault();
    void started.close().finally(() => app.quit());
  });
}
