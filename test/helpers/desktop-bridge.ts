// The desktop renderer's test bridge (docs/desktop.md "The renderer"; never shipped in the app). The renderer's
// built files (desktop/dist/electron/renderer/) are served on 127.0.0.1 through window.ts's own serveAppFile, so every
// response carries the app's CSP unchanged. In the page, the REAL preload bundle (desktop/dist/electron/preload.cjs)
// runs with stand-ins for contextBridge and ipcRenderer, so window.kluis is exactly what the app exposes (its channel
// filter, its event forwarding). Its ipcRenderer.invoke goes to the test process over Playwright's DevTools-protocol
// pipe (exposeBinding) and there through registerIpc's listener — sender check, schema check, the handler, errors
// as codes — to the real handlers. The CSP's connect-src 'none' forbids the page any socket of its own (fetch,
// WebSocket), so the transport is the DevTools connection rather than a socket the page opens; loosening the CSP to
// allow one would test a page the app never runs. Every successful answer is checked against the channel's response
// schema, and every event against AppEvent, so the handlers and the contract cannot drift apart unnoticed.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { AppEvent, CHANNELS, type Channel } from '../../desktop/dist/electron/ipc/contract.js';
import type { FolderHost } from '../../desktop/dist/electron/main/folders.js';
import { registerIpc, type Handlers, type InvokeEvent } from '../../desktop/dist/electron/main/ipc.js';
import { APP_ORIGIN, APP_URL, serveAppFile } from '../../desktop/dist/electron/main/window.js';
import { repoRoot } from './server.js';

export const RENDERER_DIR = path.join(repoRoot, 'desktop/dist/electron/renderer');
const PRELOAD = path.join(repoRoot, 'desktop/dist/electron/preload.cjs');

export interface RendererServer {
  url: string;
  close(): Promise<void>;
}

/** Serves app://kluis/<path> as http://127.0.0.1:<port>/<path>, answered by serveAppFile (its CSP and headers). */
export async function serveRenderer(): Promise<RendererServer> {
  const server = http.createServer((req, res) => {
    void serveAppFile(RENDERER_DIR, `${APP_ORIGIN}${req.url ?? '/'}`).then(async (r) => {
      res.writeHead(r.status, Object.fromEntries(r.headers.entries()));
      res.end(Buffer.from(await r.arrayBuffer()));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

export interface BridgeCall {
  channel: string;
  request: unknown;
  answer: unknown;
}

export interface RendererPage {
  context: BrowserContext;
  page: Page;
  /** Every request the page's window.kluis sent to main, with main's answer. */
  calls: BridgeCall[];
  /** Answers that broke their channel's response schema, and internal errors: a test expects none. */
  problems: string[];
  /** Every URL the page requested. */
  requests: string[];
  /** Sends an event to the page as main's webContents.send('event', ...) would (checked with AppEvent). */
  emit(event: AppEvent): Promise<void>;
  /** CSP violations the page reported (securitypolicyviolation events). */
  violations(): Promise<string[]>;
  close(): Promise<void>;
}

export interface RendererOptions {
  locale?: string;
  viewport?: { width: number; height: number };
  deviceScaleFactor?: number;
}

/** A page at the renderer's URL whose window.kluis reaches `handlers` through registerIpc. Call page.goto yourself. */
export async function openRenderer(browser: Browser, handlers: Partial<Handlers>, options: RendererOptions = {}): Promise<RendererPage> {
  const listeners = new Map<string, (event: InvokeEvent, ...args: unknown[]) => Promise<unknown>>();
  const problems: string[] = [];
  registerIpc({ handle: (channel, listener) => void listeners.set(channel, listener), removeHandler: (channel) => void listeners.delete(channel) }, handlers, {
    onInternalError: (channel, err) => problems.push(`internal error on ${channel}: ${String(err)}`),
  });
  const context = await browser.newContext({ locale: options.locale ?? 'en-GB', viewport: options.viewport ?? { width: 1040, height: 720 }, deviceScaleFactor: options.deviceScaleFactor ?? 1 });
  const requests: string[] = [];
  context.on('request', (r) => requests.push(r.url()));
  const calls: BridgeCall[] = [];
  await context.exposeBinding('__kluisIpc', async (_source, channel: string, request: unknown) => {
    const listener = listeners.get(channel);
    if (!listener) throw new Error(`the preload let through ${channel}`);
    // The frame is the app's own page (as Electron reports it for app://kluis/): the sender check passes.
    const answer = (await listener({ senderFrame: { url: APP_URL } }, request)) as { ok: boolean; value?: unknown };
    if (answer.ok) {
      const parsed = CHANNELS[channel as Channel].response.safeParse(answer.value);
      if (!parsed.success) problems.push(`${channel} answered outside its schema: ${parsed.error.message}`);
    }
    calls.push({ channel, request, answer });
    return answer;
  });
  const preload = readFileSync(PRELOAD, 'utf8');
  await context.addInitScript({
    content: `(() => {
      const w = window;
      w.__cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => w.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
      const listeners = new Set();
      const ipcRenderer = {
        invoke: (channel, request) => w.__kluisIpc(channel, request),
        on: (channel, fn) => { if (channel === ${JSON.stringify('event')}) listeners.add(fn); },
        removeListener: (_channel, fn) => { listeners.delete(fn); },
      };
      Object.defineProperty(w, '__kluisEvent', { value: (payload) => { for (const fn of listeners) fn({ sender: 'not for the page' }, payload); } });
      const contextBridge = { exposeInMainWorld: (key, api) => Object.defineProperty(w, key, { value: api, enumerable: true }) };
      const require = (name) => { if (name !== 'electron') throw new Error('preload required ' + name); return { contextBridge, ipcRenderer }; };
      const module = { exports: {} };
      (function (require, module, exports) {\n${preload}\n})(require, module, module.exports);
    })();`,
  });
  const page = await context.newPage();
  return {
    context, page, calls, problems, requests,
    async emit(event) {
      const parsed = AppEvent.parse(event);
      await page.evaluate((payload) => (globalThis as any).__kluisEvent(payload), parsed); // eslint-disable-line @typescript-eslint/no-explicit-any
    },
    violations: () => page.evaluate(() => (globalThis as any).__cspViolations as string[]), // eslint-disable-line @typescript-eslint/no-explicit-any
    close: () => context.close(),
  };
}

/**
 * Forwards a FolderHost's changes to the page as `status` events, at most one per 100 ms (as main's coalescing
 * does; docs/desktop.md "IPC"). Returns the host's onChange callback; `target` is set once the page exists.
 */
export function statusForwarder(host: () => FolderHost | undefined, target: () => RendererPage | undefined): () => void {
  let timer: NodeJS.Timeout | null = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      const h = host();
      const p = target();
      if (h && p) void h.statuses().then((folders) => p.emit({ type: 'status', folders })).catch(() => undefined);
    }, 100);
  };
}

/** What every renderer test ends with: no CSP violation, answers and events inside the contract, nothing off the app. */
export async function assertClean(t: { deepEqual: (a: unknown, b: unknown, m?: string) => void }, r: RendererPage, renderer: RendererServer): Promise<void> {
  t.deepEqual(await r.violations(), [], 'no CSP violation');
  t.deepEqual(r.problems, [], 'every answer and event inside the contract, no internal error');
  t.deepEqual(r.requests.filter((u) => !u.startsWith(renderer.url) && !u.startsWith('data:')), [], 'no request off the app');
}
