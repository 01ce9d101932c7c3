// What the preload gives the page (docs/desktop.md "IPC"): `window.kluis` with exactly two functions, `invoke` for
// the contract's channels and `onEvent` for main's events. Never ipcRenderer itself, never an IpcRendererEvent
// (it carries `sender`), never a channel outside the contract. Kept apart from ./preload.ts so that tests can run it
// with stand-ins for Electron's contextBridge and ipcRenderer.
import type { ContextBridge, IpcRenderer } from 'electron';
import { CHANNEL_NAMES, EVENT_CHANNEL, IPC_ERRORS } from './ipc/channels.js';

/** The page's view of the bridge (the renderer types it with the contract: web/desktop/bridge.ts). */
export interface KluisBridge {
  invoke(channel: string, request?: unknown): Promise<unknown>;
  /** Calls `listener` with each event's payload; returns a function that stops it. */
  onEvent(listener: (payload: unknown) => void): () => void;
}

export function exposeBridge(contextBridge: Pick<ContextBridge, 'exposeInMainWorld'>, ipcRenderer: Pick<IpcRenderer, 'invoke' | 'on' | 'removeListener'>): void {
  const allowed = new Set<string>(CHANNEL_NAMES);
  const bridge: KluisBridge = {
    invoke(channel, request) {
      if (typeof channel !== 'string' || !allowed.has(channel)) {
        return Promise.resolve({ ok: false, error: { code: IPC_ERRORS.unknownChannel, message: `unknown request ${String(channel)}` } });
      }
      return ipcRenderer.invoke(channel, request ?? {});
    },
    onEvent(listener) {
      const forward = (_event: unknown, payload: unknown) => listener(payload);
      ipcRenderer.on(EVENT_CHANNEL, forward);
      return () => void ipcRenderer.removeListener(EVENT_CHANNEL, forward);
    },
  };
  contextBridge.exposeInMainWorld('kluis', Object.freeze(bridge));
}
