// The desktop app's boundaries (desktop/src/electron, docs/desktop.md "Security"), with Electron injected as stand-ins
// that record what the code asks of it: the window's security options, the CSP on every app:// response and the
// files it will not serve, navigation and new windows blocked, permissions and network requests refused, IPC that
// validates every request and answers only the app's own page, and a preload that exposes two functions.
import { EventEmitter } from 'node:events';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { ErrorCode, KluisError } from '@kluis/shared';
import { APP_URL, CSP, allowedNavigation, hardenContents, hardenSession, serveAppFile, windowOptions } from '../../desktop/dist/electron/main/window.js';
import { dispatch, registerIpc, type InvokeEvent } from '../../desktop/dist/electron/main/ipc.js';
import { exposeBridge, type KluisBridge } from '../../desktop/dist/electron/preload-api.js';
import { CHANNEL_NAMES } from '../../desktop/dist/electron/ipc/contract.js';

test('the window runs its page isolated, sandboxed, without Node, webviews or insecure content', (t) => {
  const o = windowOptions('/app/preload.cjs', { devTools: false });
  t.like(o.webPreferences, {
    preload: '/app/preload.cjs', contextIsolation: true, sandbox: true, nodeIntegration: false, nodeIntegrationInWorker: false,
    nodeIntegrationInSubFrames: false, webviewTag: false, webSecurity: true, allowRunningInsecureContent: false, experimentalFeatures: false,
    navigateOnDragDrop: false, devTools: false,
  });
  t.is(o.show, false, 'shown when ready, not blank first');
});

test('the CSP allows nothing from outside the app: no network, no inline script, no eval, no framing', (t) => {
  const d = Object.fromEntries(CSP.split('; ').map((p) => [p.split(' ')[0], p.split(' ').slice(1).join(' ')]));
  t.is(d['default-src'], "'none'");
  t.is(d['script-src'], "'self'");
  t.is(d['connect-src'], "'none'");
  t.is(d['frame-ancestors'], "'none'");
  t.is(d['object-src'], "'none'");
  t.false(CSP.includes('unsafe-inline') || CSP.includes('unsafe-eval') || CSP.includes('http'), CSP);
});

test('app://kluis/ serves the renderer\'s files with the CSP, and nothing outside its folder or host', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'kluis-renderer-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(path.join(root, 'assets'));
  writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>Kluis</title>');
  writeFileSync(path.join(root, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(path.join(path.dirname(root), `secret-${path.basename(root)}.txt`), 'not for the page');
  t.teardown(() => rmSync(path.join(path.dirname(root), `secret-${path.basename(root)}.txt`), { force: true }));

  const page = await serveAppFile(root, APP_URL);
  t.is(page.status, 200);
  t.is(page.headers.get('content-security-policy'), CSP);
  t.is(page.headers.get('content-type'), 'text/html; charset=utf-8');
  t.is(await page.text(), '<!doctype html><title>Kluis</title>');
  const js = await serveAppFile(root, 'app://kluis/assets/app.js');
  t.is(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
  t.is(js.headers.get('content-security-policy'), CSP);
  for (const url of [
    `app://kluis/%2e%2e/secret-${path.basename(root)}.txt`,
    `app://kluis/..%2fsecret-${path.basename(root)}.txt`,
    'app://kluis/assets/../../etc/passwd',
    'app://elsewhere/index.html',
    'app://kluis/missing.html',
    'not a url',
  ]) {
    const r = await serveAppFile(root, url);
    t.true(r.status === 404 || r.status === 400, `${url}: ${r.status}`);
    t.is(r.headers.get('content-security-policy'), CSP, `${url}: CSP on errors too`);
    t.false((await r.text()).includes('not for the page'));
  }
});

/** A stand-in webContents: an event emitter with setWindowOpenHandler. */
function fakeContents() {
  const ee = new EventEmitter();
  let openHandler: ((d: { url: string }) => { action: string }) | null = null;
  const opened: string[] = [];
  const contents = Object.assign(ee, { setWindowOpenHandler: (h: typeof openHandler) => void (openHandler = h) });
  const fire = (name: string, url?: string) => {
    let prevented = false;
    ee.emit(name, { preventDefault: () => void (prevented = true) }, url);
    return prevented;
  };
  return { contents, fire, open: (url: string) => openHandler!({ url }), opened, shell: { openExternal: async (u: string) => void opened.push(u) } };
}

test('the page cannot navigate off the app, open windows or attach webviews; an https link opens in the browser', (t) => {
  const f = fakeContents();
  hardenContents(f.contents as never, f.shell as never);
  t.false(f.fire('will-navigate', 'app://kluis/index.html#folders'));
  for (const url of ['https://evil.example/', 'file:///etc/passwd', 'http://127.0.0.1:8080/', 'app://other/index.html', 'javascript:alert(1)']) {
    t.true(f.fire('will-navigate', url), `navigation to ${url} is stopped`);
    t.true(f.fire('will-redirect', url), `redirect to ${url} is stopped`);
  }
  t.true(f.fire('will-attach-webview'));
  t.deepEqual(f.open('https://kluis.gent.example.be/help'), { action: 'deny' });
  t.deepEqual(f.open('file:///etc/passwd'), { action: 'deny' });
  t.deepEqual(f.open('javascript:alert(1)'), { action: 'deny' });
  t.deepEqual(f.opened, ['https://kluis.gent.example.be/help'], 'only https goes to the system browser');
  t.false(allowedNavigation('app://kluis.evil/'));
});

test('every permission is refused and every request that is not app:// is cancelled', (t) => {
  let request: ((c: unknown, p: string, cb: (ok: boolean) => void) => void) | undefined;
  let check: (() => boolean) | undefined;
  let before: ((d: { url: string }, cb: (r: { cancel: boolean }) => void) => void) | undefined;
  hardenSession({
    setPermissionRequestHandler: (h: typeof request) => void (request = h),
    setPermissionCheckHandler: (h: typeof check) => void (check = h),
    webRequest: { onBeforeRequest: (h: typeof before) => void (before = h) },
  } as never);
  for (const p of ['media', 'notifications', 'geolocation', 'clipboard-read', 'openExternal']) {
    let answer: boolean | undefined;
    request!(null, p, (ok) => void (answer = ok));
    t.false(answer, p);
  }
  t.false(check!());
  const cancelled = (url: string) => {
    let r: { cancel: boolean } | undefined;
    before!({ url }, (x) => void (r = x));
    return r!.cancel;
  };
  t.false(cancelled('app://kluis/assets/app.js'));
  t.true(cancelled('https://cdn.example/lib.js'));
  t.true(cancelled('http://127.0.0.1:8080/api/v1/spaces'));
  t.true(cancelled('file:///home/user/.kluis/keys.json'));
});

test('IPC: a request is parsed with its channel\'s schema before the handler runs; errors come back as codes', async (t) => {
  let calls = 0;
  const handlers = {
    'devices:revoke': async () => {
      calls++;
      return { ok: true as const };
    },
    'versions:restore': async () => {
      throw new KluisError(ErrorCode.NotFound, 'That version is no longer kept.');
    },
    'settings:get': async () => {
      throw new Error('ENOENT: /home/user/.kluis/settings.json');
    },
  };
  const bad = await dispatch('devices:revoke', { deviceId: '../../etc' }, handlers);
  t.like(bad, { ok: false, error: { code: 'bad_request' } });
  t.regex((bad as { error: { message: string } }).error.message, /^deviceId: /);
  t.like(await dispatch('devices:revoke', { deviceId: 'AAAAAAAAAAAAAAAAAAAAAA', extra: 1 }, handlers), { ok: false, error: { code: 'bad_request' } });
  t.is(calls, 0, 'no handler ran for a bad request');
  t.deepEqual(await dispatch('devices:revoke', { deviceId: 'AAAAAAAAAAAAAAAAAAAAAA' }, handlers), { ok: true, value: { ok: true } });
  t.is(calls, 1);
  t.deepEqual(await dispatch('versions:restore', { folderId: 'f1', path: 'a.txt', versionId: 'AAAAAAAAAAAAAAAAAAAAAA' }, handlers), { ok: false, error: { code: ErrorCode.NotFound, message: 'That version is no longer kept.' } });
  const logged: unknown[] = [];
  const internal = await dispatch('settings:get', {}, handlers, { onInternalError: (_c, e) => logged.push(e) });
  t.like(internal, { ok: false, error: { code: 'internal' } });
  t.false(JSON.stringify(internal).includes('/home/user'), 'an unexpected error\'s details stay in main');
  t.is(logged.length, 1);
  t.like(await dispatch('account:logout', {}, handlers), { ok: false, error: { code: 'unknown_channel' } }, 'a channel without a handler');
});

test('IPC: every contract channel is registered, and only the app\'s own page is answered', async (t) => {
  const registered = new Map<string, (e: InvokeEvent, raw: unknown) => Promise<unknown>>();
  const unregister = registerIpc({ handle: (c, l) => void registered.set(c, l), removeHandler: (c) => void registered.delete(c) }, { 'settings:get': async () => ({ language: 'nl' as const, startAtLogin: false, uploadLimit: null, downloadLimit: null, notifications: true }) });
  t.deepEqual([...registered.keys()].sort(), [...CHANNEL_NAMES].sort());
  const get = registered.get('settings:get')!;
  t.like(await get({ senderFrame: { url: 'app://kluis/index.html' } }, {}), { ok: true, value: { language: 'nl' } });
  for (const url of ['https://evil.example/', 'file:///tmp/x.html', 'app://kluis.evil/index.html', 'devtools://devtools/bundled/x.html']) {
    t.like(await get({ senderFrame: { url } }, {}), { ok: false, error: { code: 'forbidden_sender' } }, url);
  }
  t.like(await get({ senderFrame: null }, {}), { ok: false, error: { code: 'forbidden_sender' } });
  unregister();
  t.is(registered.size, 0);
});

test('the preload exposes window.kluis with invoke and onEvent only, forwards only contract channels, and hides the IPC event', async (t) => {
  const exposed = new Map<string, unknown>();
  const invoked: [string, unknown][] = [];
  const ee = new EventEmitter();
  exposeBridge({ exposeInMainWorld: (k: string, v: unknown) => void exposed.set(k, v) } as never, {
    invoke: async (c: string, r: unknown) => {
      invoked.push([c, r]);
      return { ok: true, value: null };
    },
    on: (c: string, l: (...a: unknown[]) => void) => ee.on(c, l),
    removeListener: (c: string, l: (...a: unknown[]) => void) => ee.removeListener(c, l),
  } as never);
  t.deepEqual([...exposed.keys()], ['kluis']);
  const bridge = exposed.get('kluis') as KluisBridge;
  t.deepEqual(Object.keys(bridge).sort(), ['invoke', 'onEvent']);
  t.true(Object.isFrozen(bridge));
  t.like(await bridge.invoke('shell:openExternal', { url: 'file:///etc/passwd' }), { ok: false, error: { code: 'unknown_channel' } });
  t.like(await bridge.invoke('__proto__'), { ok: false });
  t.deepEqual(invoked, [], 'nothing outside the contract reaches main');
  await bridge.invoke('app:status');
  t.deepEqual(invoked, [['app:status', {}]]);
  const got: unknown[][] = [];
  const stop = bridge.onEvent((...args) => got.push(args));
  ee.emit('event', { sender: 'the IpcRendererEvent' }, { type: 'status', folders: [] });
  t.deepEqual(got, [[{ type: 'status', folders: [] }]], 'the listener gets the payload alone');
  stop();
  ee.emit('event', {}, { type: 'status', folders: [] });
  t.is(got.length, 1);
});

/** A stand-in for the parts of Electron startApp uses, recording the order of what it is asked. */
function fakeElectron(opts: { secondInstance?: boolean } = {}) {
  const log: string[] = [];
  const app = Object.assign(new EventEmitter(), {
    isPackaged: true,
    requestSingleInstanceLock: () => !opts.secondInstance,
    quit: () => void log.push('app.quit'),
    whenReady: async () => void log.push('ready'),
  });
  const windows: { options: unknown; url?: string; win: EventEmitter }[] = [];
  class BrowserWindow extends EventEmitter {
    constructor(options: unknown) {
      super();
      windows.push({ options, win: this });
      log.push('window');
    }
    async loadURL(url: string) {
      windows[0]!.url = url;
    }
    isMinimized() {
      return false;
    }
    show() {
      log.push('show');
    }
    hide() {
      log.push('hide');
    }
    focus() {}
    restore() {}
  }
  const trays: { tooltip: string; menu: { label?: string; click?: () => void }[] }[] = [];
  class Tray extends EventEmitter {
    state = { tooltip: '', menu: [] as { label?: string; click?: () => void }[] };
    constructor() {
      super();
      trays.push(this.state);
    }
    setToolTip(t: string) {
      this.state.tooltip = t;
    }
    setContextMenu(m: { items: { label?: string; click?: () => void }[] }) {
      this.state.menu = m.items;
    }
    destroy() {}
  }
  const noop = () => {};
  const electron = {
    app,
    BrowserWindow,
    Tray,
    Menu: { buildFromTemplate: (items: unknown[]) => ({ items }) },
    nativeImage: { createFromPath: () => ({}) },
    protocol: { registerSchemesAsPrivileged: () => void log.push('schemes'), handle: () => void log.push('protocol') },
    session: { defaultSession: { setPermissionRequestHandler: noop, setPermissionCheckHandler: noop, webRequest: { onBeforeRequest: () => void log.push('session') } } },
    shell: { openExternal: async () => {}, openPath: async () => '' },
    ipcMain: { handle: noop, removeHandler: noop },
  };
  return { electron, log, windows, trays };
}

const TEXTS = {
  upToDate: 'Bijgewerkt', syncing: (n: number) => `${n} bestanden synchroniseren`, paused: 'Gepauzeerd', error: 'Fout', offline: 'Offline',
  openFolder: 'Map openen', pause: 'Pauzeren', resume: 'Hervatten', openApp: 'Kluis openen', quit: 'Afsluiten',
};

test('startApp: schemes before ready, the hardened window on app://kluis/, a tray that follows the folders; a second instance quits', async (t) => {
  const { startApp } = await import('../../desktop/dist/electron/main/app.js');
  const f = fakeElectron();
  const running = await startApp(f.electron as never, { rendererDir: '/r', preloadPath: '/p/preload.cjs', trayIconPath: '/i.png', handlers: {}, texts: TEXTS });
  t.truthy(running);
  t.deepEqual(f.log.slice(0, 5), ['schemes', 'ready', 'session', 'protocol', 'window'], 'privileged schemes first, the session hardened before the window exists');
  t.like(f.windows[0]!.options, { webPreferences: { sandbox: true, contextIsolation: true, nodeIntegration: false, devTools: false } });
  t.is(f.windows[0]!.url, APP_URL);
  t.is(f.trays[0]!.tooltip, 'Kluis: Bijgewerkt');
  const folder = { folderId: 'f', path: '/home/an/Kluis', spaceId: 'AAAAAAAAAAAAAAAAAAAAAA', spaceName: 'Dossiers', pendingFiles: 3, pendingBytes: 10, rate: null, etaSeconds: null, conflicts: 0, lastSyncedAt: null, error: null };
  running!.showStatus([{ ...folder, state: 'syncing' }]);
  t.is(f.trays[0]!.tooltip, 'Kluis: 3 bestanden synchroniseren');
  t.deepEqual(f.trays[0]!.menu.map((m) => m.label).filter(Boolean), ['3 bestanden synchroniseren', 'Map openen: Dossiers', 'Pauzeren', 'Kluis openen', 'Afsluiten']);
  running!.showStatus([{ ...folder, state: 'error', error: { code: 'x', message: 'y' } }, { ...folder, state: 'syncing' }]);
  t.is(f.trays[0]!.tooltip, 'Kluis: Fout', 'an error wins over syncing');
  // Closing the window hides it (sync goes on in the tray); quitting from the tray really quits.
  let prevented = false;
  f.windows[0]!.win.emit('close', { preventDefault: () => void (prevented = true) });
  t.true(prevented);
  f.electron.app.emit('before-quit');
  prevented = false;
  f.windows[0]!.win.emit('close', { preventDefault: () => void (prevented = true) });
  t.false(prevented);

  const second = fakeElectron({ secondInstance: true });
  t.is(await startApp(second.electron as never, { rendererDir: '/r', preloadPath: '/p', trayIconPath: '/i', handlers: {}, texts: TEXTS }), null);
  t.deepEqual(second.log, ['schemes', 'app.quit'], 'a second instance neither waits for ready nor opens a window');
});

test('the bundled preload is one CommonJS script that requires electron alone and exposes the bridge', async (t) => {
  const { readFileSync } = await import('node:fs');
  const vm = await import('node:vm');
  const code = readFileSync(path.join(import.meta.dirname, '../../desktop/dist/electron/preload.cjs'), 'utf8');
  t.true(code.length < 8192, `${code.length} bytes: no schema library in the preload`);
  const required: string[] = [];
  const exposed: string[] = [];
  const module = { exports: {} };
  vm.runInNewContext(code, {
    module, exports: module.exports,
    require: (id: string) => {
      required.push(id);
      if (id !== 'electron') throw new Error(`a sandboxed preload cannot require ${id}`);
      return { contextBridge: { exposeInMainWorld: (k: string) => void exposed.push(k) }, ipcRenderer: { invoke: async () => null, on() {}, removeListener() {} } };
    },
  });
  t.deepEqual(required, ['electron']);
  t.deepEqual(exposed, ['kluis']);
});
