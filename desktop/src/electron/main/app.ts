// The Electron main process's composition (docs/desktop.md): one instance per user, the hardened window of
// ./window.ts, the IPC of ./ipc.ts, and a tray icon whose menu and tooltip follow the folders' state. Electron is
// passed in (the entry point hands over `require('electron')`; tests a stand-in), and so are the IPC handlers.
import type * as Electron from 'electron';
import type { FolderStatus } from '../ipc/contract.js';
import { registerIpc, type Handlers, type IpcOptions } from './ipc.js';
import { APP_URL, PRIVILEGED_SCHEMES, hardenContents, hardenSession, registerAppProtocol, windowOptions } from './window.js';

export type ElectronModule = Pick<typeof Electron, 'app' | 'BrowserWindow' | 'protocol' | 'session' | 'shell' | 'ipcMain' | 'Tray' | 'Menu' | 'nativeImage'>;

export interface AppOptions {
  rendererDir: string;
  preloadPath: string;
  trayIconPath: string;
  handlers: Partial<Handlers>;
  ipc?: IpcOptions;
  /** Texts of the tray in the user's language. */
  texts: TrayTexts;
  /** Called when the user picks pause/resume all in the tray. */
  onPauseAll?: (paused: boolean) => void;
}

export interface TrayTexts {
  upToDate: string;
  syncing: (files: number) => string;
  paused: string;
  error: string;
  offline: string;
  openFolder: string;
  pause: string;
  resume: string;
  openApp: string;
  quit: string;
}

export interface RunningApp {
  window: Electron.BrowserWindow;
  /** Shows the folders' state in the tray. */
  showStatus(folders: FolderStatus[]): void;
  stop(): void;
}

/** One line for the tray: the most urgent state among the folders. */
export function trayLine(folders: FolderStatus[], texts: TrayTexts): string {
  if (folders.some((f) => f.state === 'error')) return texts.error;
  if (folders.length > 0 && folders.every((f) => f.state === 'offline')) return texts.offline;
  const pending = folders.filter((f) => f.state === 'syncing').reduce((n, f) => n + f.pendingFiles, 0);
  if (folders.some((f) => f.state === 'syncing')) return texts.syncing(pending);
  if (folders.length > 0 && folders.every((f) => f.state === 'paused')) return texts.paused;
  return texts.upToDate;
}

/**
 * Call before Electron's `ready` (at the top of the entry point): privileged schemes must be registered first.
 * Resolves null when another instance runs (it is told to show its window, and this one quits).
 */
export async function startApp(electron: ElectronModule, options: AppOptions): Promise<RunningApp | null> {
  const { app, BrowserWindow, protocol, session, shell, ipcMain, Tray, Menu, nativeImage } = electron;
  protocol.registerSchemesAsPrivileged(PRIVILEGED_SCHEMES);
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return null;
  }
  app.on('web-contents-created', (_event, contents) => hardenContents(contents, shell));
  await app.whenReady();
  hardenSession(session.defaultSession);
  registerAppProtocol(protocol, options.rendererDir);
  const unregister = registerIpc(ipcMain, options.handlers, options.ipc);

  const window = new BrowserWindow(windowOptions(options.preloadPath, { devTools: !app.isPackaged }));
  window.once('ready-to-show', () => window.show());
  const showWindow = () => {
    if (window.isMinimized()) window.restore();
    window.show();
    window.focus();
  };
  app.on('second-instance', showWindow);
  // Closing the window keeps syncing in the tray; Quit in the tray ends the app.
  let quitting = false;
  app.on('before-quit', () => void (quitting = true));
  window.on('close', (event) => {
    if (!quitting) {
      event.preventDefault();
      window.hide();
    }
  });

  const tray = new Tray(nativeImage.createFromPath(options.trayIconPath));
  let paused = false;
  let folders: FolderStatus[] = [];
  const render = () => {
    const line = trayLine(folders, options.texts);
    tray.setToolTip(`Kluis: ${line}`);
    tray.setContextMenu(Menu.buildFromTemplate([
      { label: line, enabled: false },
      { type: 'separator' },
      ...folders.map((f) => ({ label: `${options.texts.openFolder}: ${f.spaceName}`, click: () => void shell.openPath(f.path) })),
      { label: paused ? options.texts.resume : options.texts.pause, click: () => {
        paused = !paused;
        options.onPauseAll?.(paused);
        render();
      } },
      { label: options.texts.openApp, click: showWindow },
      { type: 'separator' },
      { label: options.texts.quit, click: () => app.quit() },
    ]));
  };
  render();
  tray.on('click', showWindow);
  await window.loadURL(APP_URL);
  return {
    window,
    showStatus(next) {
      folders = next;
      render();
    },
    stop() {
      unregister();
      tray.destroy();
    },
  };
}
