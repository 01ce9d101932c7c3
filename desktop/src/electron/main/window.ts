// The app window and everything that keeps its page a page (docs/desktop.md "Security"): the renderer runs with
// context isolation, the sandbox and no Node; it is served from the app's own scheme (app://kluis/) with a strict
// Content-Security-Policy on every response; it cannot navigate away, open windows, attach webviews, ask for
// permissions or load anything from the network (it talks to Kluis only through the preload's IPC). Electron is
// passed in (types from the `electron` package, the module itself injected), so tests run this code in plain Node.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { BrowserWindowConstructorOptions, Protocol, Session, Shell, WebContents } from 'electron';

export const APP_SCHEME = 'app';
export const APP_HOST = 'kluis';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
export const APP_URL = `${APP_ORIGIN}/index.html`;

/**
 * Every response of app://kluis/ carries it. No network at all (connect-src 'none': the renderer's only way out is
 * IPC), scripts and styles from the app's own files, no inline script, no eval, no framing, no plugins.
 */
export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'none'",
  "media-src 'none'",
  "object-src 'none'",
  "worker-src 'none'",
  "frame-src 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
};

/** The window's options: the security settings are fixed here, not left to Electron's defaults. */
export function windowOptions(preload: string, options: { devTools: boolean }): BrowserWindowConstructorOptions {
  return {
    width: 1040,
    height: 720,
    minWidth: 420,
    minHeight: 480,
    show: false,
    title: 'Kluis',
    backgroundColor: '#f7f7f5',
    webPreferences: {
      preload,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webviewTag: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      navigateOnDragDrop: false,
      safeDialogs: true,
      spellcheck: false,
      devTools: options.devTools,
    },
  };
}

/** The schemes Electron must know before `ready` (protocol.registerSchemesAsPrivileged). */
export const PRIVILEGED_SCHEMES = [{ scheme: APP_SCHEME, privileges: { standard: true, secure: true } }];

/** Answers one app:// request from `rendererDir`, never outside it, always with the CSP. */
export async function serveAppFile(rendererDir: string, url: string): Promise<Response> {
  const headers = { 'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'cross-origin-opener-policy': 'same-origin', 'referrer-policy': 'no-referrer' };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return new Response('bad request', { status: 400, headers });
  }
  if (u.protocol !== `${APP_SCHEME}:` || u.host !== APP_HOST) return new Response('not found', { status: 404, headers });
  const rel = decodeURIComponent(u.pathname).replace(/^\/+/, '') || 'index.html';
  const root = path.resolve(rendererDir);
  const file = path.resolve(root, rel);
  if (file !== root && !file.startsWith(root + path.sep)) return new Response('not found', { status: 404, headers });
  try {
    const body = await readFile(file);
    return new Response(body, { status: 200, headers: { ...headers, 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' } });
  } catch {
    return new Response('not found', { status: 404, headers });
  }
}

/** Serves the renderer's files on app://kluis/ (call after `ready`). */
export function registerAppProtocol(protocol: Pick<Protocol, 'handle'>, rendererDir: string): void {
  protocol.handle(APP_SCHEME, (request) => serveAppFile(rendererDir, request.url));
}

/**
 * Whether `url` is the app's own (app://kluis/...). Not by URL.origin: for a scheme the URL standard does not know,
 * the origin is the opaque "null", whatever the host.
 */
export function isAppUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === `${APP_SCHEME}:` && u.host === APP_HOST;
  } catch {
    return false;
  }
}

/** Whether the page may go to `url`: only within app://kluis/. */
export const allowedNavigation = isAppUrl;

/**
 * Locks a webContents down: no navigation off the app, no new windows (an https link the user clicks opens in
 * their browser instead), no webviews.
 */
export function hardenContents(contents: Pick<WebContents, 'on' | 'setWindowOpenHandler'>, shell: Pick<Shell, 'openExternal'>): void {
  contents.on('will-navigate', (event, url) => {
    if (!allowedNavigation(url)) event.preventDefault();
  });
  contents.on('will-redirect', (event, url) => {
    if (!allowedNavigation(url)) event.preventDefault();
  });
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    if (/^https:\/\//.test(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
}

/** Denies every permission (camera, notifications from the page, ...) and every request that is not app://. */
export function hardenSession(session: Pick<Session, 'setPermissionRequestHandler' | 'setPermissionCheckHandler'> & { webRequest: Pick<Session['webRequest'], 'onBeforeRequest'> }): void {
  session.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  session.setPermissionCheckHandler(() => false);
  session.webRequest.onBeforeRequest((details, callback) => {
    const ok = details.url.startsWith(`${APP_ORIGIN}/`) || details.url.startsWith('devtools://');
    callback({ cancel: !ok });
  });
}
