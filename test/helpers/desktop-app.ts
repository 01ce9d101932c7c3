// The desktop app's main process for tests (desktop/src/electron/main/): the real AppCore and handlers over a real
// server, with stand-ins only for Electron's own objects (safeStorage, Notification, shell, dialog, app), which
// record what they are asked. Requests go through dispatch, as registerIpc runs them.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { AppCore } from '../../desktop/dist/electron/main/core.js';
import { appHandlers } from '../../desktop/dist/electron/main/handlers.js';
import { dispatch, type Handlers } from '../../desktop/dist/electron/main/ipc.js';
import { keyProtection } from '../../desktop/dist/electron/main/keystore.js';
import { Notifier } from '../../desktop/dist/electron/main/notifications.js';
import type { AppEvent, Channel, Request, Result, Response } from '../../desktop/dist/electron/ipc/contract.js';

/** safeStorage as the OS keychain gives it: AES-GCM under a key the "keychain" (this object) holds. */
export function keychain(available = true, backend = 'gnome_libsecret') {
  const key = randomBytes(32);
  return {
    sealedCalls: 0,
    isEncryptionAvailable: () => available,
    getSelectedStorageBackend: () => backend as 'gnome_libsecret',
    encryptString(plain: string): Buffer {
      this.sealedCalls++;
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
      return Buffer.concat([iv, c.getAuthTag(), body]);
    },
    decryptString(sealed: Buffer): string {
      if (!available) throw new Error('Encryption is not available.');
      const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
      d.setAuthTag(sealed.subarray(12, 28));
      return Buffer.concat([d.update(sealed.subarray(28)), d.final()]).toString('utf8');
    },
  };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `fn` every 100 ms until it answers something truthy (that is returned), or fails after `ms`. */
export async function until<T>(what: string, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await pause(100);
  }
}

export interface TestApp {
  home: string;
  core: AppCore;
  events: AppEvent[];
  shown: { title: string; body: string }[];
  opened: string[];
  loginItems: { openAtLogin?: boolean }[];
  chooser: { answer: { canceled: boolean; filePaths: string[] } };
  /** every channel's handler, as appHandlers built them (for the renderer's test bridge) */
  handlers: Handlers;
  call<C extends Channel>(channel: C, request: Request<C> | Record<string, unknown>): Promise<Result<Response<C>>>;
  /** the value of an ok answer; throws with the error otherwise */
  ok<C extends Channel>(channel: C, request: Request<C> | Record<string, unknown>): Promise<Response<C>>;
  close(): Promise<void>;
}

export async function startTestApp(root: string, name: string, o: { safeStorage?: ReturnType<typeof keychain>; pollMs?: number; sharesPollMs?: number; home?: string; onEvent?: (e: AppEvent) => void } = {}): Promise<TestApp> {
  const home = o.home ?? path.join(root, `app-${name}`);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const events: AppEvent[] = [];
  const shown: { title: string; body: string }[] = [];
  class FakeNotification {
    static isSupported() {
      return true;
    }
    constructor(private readonly n: { title: string; body: string }) {}
    show() {
      shown.push({ title: this.n.title, body: this.n.body });
    }
  }
  const protection = keyProtection(o.safeStorage ?? keychain(), 'linux');
  const notifier: Notifier = new Notifier(FakeNotification, { windowMs: 200, enabled: () => core.store.settings.notifications });
  const core: AppCore = new AppCore({
    home, version: '0.1.0-test', protection, send: (e) => (events.push(e), o.onEvent?.(e)), notifier, env: { ...process.env, KLUIS_KDF: 'min' },
    settleMs: 100, pollMs: o.pollMs ?? 1000, sharesPollMs: o.sharesPollMs ?? 500,
  });
  const opened: string[] = [];
  const loginItems: { openAtLogin?: boolean }[] = [];
  const chooser = { answer: { canceled: true, filePaths: [] as string[] } };
  const handlers = appHandlers(core, {
    shell: { openPath: async (p: string) => (opened.push(p), p.includes('missing') ? 'Failed to open path' : '') },
    dialog: { showOpenDialog: async () => chooser.answer },
    app: { setLoginItemSettings: (s: { openAtLogin?: boolean }) => void loginItems.push(s) },
  });
  await core.start();
  const call = <C extends Channel>(channel: C, request: unknown) => dispatch(channel, request, handlers, { onInternalError: (c, err) => console.error(`internal ${c}:`, err) });
  return {
    home, core, events, shown, opened, loginItems, chooser, handlers, call,
    async ok(channel, request) {
      const r = await call(channel, request);
      if (!r.ok) throw new Error(`${channel}: ${r.error.code}: ${r.error.message}`);
      return r.value;
    },
    close: () => core.close(),
  };
}
