// Headless Chromium (Debian's /usr/bin/chromium) through playwright-core, for the link page tests. Each launch has
// a fresh profile (playwright makes a temporary user-data-dir and deletes it on close); each test closes exactly
// the browser it launched.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { repoRoot } from './server.js';

export const CHROMIUM = process.env.KLUIS_CHROMIUM ?? '/usr/bin/chromium';

/** Flags that keep Chromium quiet: no GPU, no QUIC, no background traffic to Google (updates, sync, field trials). */
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 60_000 });
}

export interface PageOptions {
  locale?: string;
  viewport?: { width: number; height: number };
  /** How the page may save: 'picker' stubs showSaveFilePicker with a file in the origin-private file system
   *  (real FileSystemWritableFileStream semantics, abort included); 'worker' hides the picker so the service-worker
   *  stream is used; 'blob' hides both. */
  save?: 'picker' | 'worker' | 'blob';
}

export interface TrackedPage {
  context: BrowserContext;
  page: Page;
  /** Every URL the page and its workers requested. */
  requests: string[];
}

export async function openPage(browser: Browser, options: PageOptions = {}): Promise<TrackedPage> {
  const context = await browser.newContext({
    locale: options.locale ?? 'en-GB',
    viewport: options.viewport ?? { width: 900, height: 720 },
    acceptDownloads: true,
    ...(options.viewport && options.viewport.width < 500 ? { deviceScaleFactor: 2, isMobile: true, hasTouch: true } : {}),
  });
  const requests: string[] = [];
  context.on('request', (r) => requests.push(r.url()));
  const save = options.save ?? 'picker';
  await context.addInitScript((mode: string) => {
    // Runs in the page; tests compile without the DOM library, so its globals are reached untyped.
    const w = globalThis as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    const navigator = w.navigator;
    if (mode === 'picker') {
      const saved: { name: string; file: string }[] = [];
      w.__kluisSaved = saved;
      w.showSaveFilePicker = async ({ suggestedName }: { suggestedName: string }) => {
        const root = await navigator.storage.getDirectory();
        const file = `save-${saved.length}`;
        saved.push({ name: suggestedName, file });
        return root.getFileHandle(file, { create: true });
      };
    } else {
      delete w.showSaveFilePicker;
      // As in a browser without service workers (a private window of Firefox): the page must fall back to a Blob.
      if (mode === 'blob') Object.defineProperty(navigator, 'serviceWorker', { value: undefined, configurable: true });
    }
  }, save);
  const page = await context.newPage();
  return { context, page, requests };
}

/** What the stubbed picker saved: the suggested name and whether the file still exists in OPFS. */
export async function savedFiles(page: Page): Promise<{ name: string; file: string; exists: boolean; size: number }[]> {
  return page.evaluate(async () => {
    const w = globalThis as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    const saved: { name: string; file: string }[] = w.__kluisSaved;
    const root = await w.navigator.storage.getDirectory();
    const out = [];
    for (const s of saved) {
      try {
        const f = await (await root.getFileHandle(s.file)).getFile();
        out.push({ ...s, exists: true, size: f.size });
      } catch {
        out.push({ ...s, exists: false, size: 0 });
      }
    }
    return out;
  });
}

/** Reads a saved OPFS file back into Node, 8 MiB at a time (page.evaluate passes strings, so base64). */
export async function readSaved(page: Page, file: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let start = 0; ; start += 8 << 20) {
    const b64 = await page.evaluate(async ({ file, start }) => {
      const w = globalThis as any; // eslint-disable-line @typescript-eslint/no-explicit-any
      const root = await w.navigator.storage.getDirectory();
      const blob = (await (await root.getFileHandle(file)).getFile()).slice(start, start + (8 << 20));
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let bin = '';
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return w.btoa(bin) as string;
    }, { file, start });
    if (!b64) break;
    parts.push(Buffer.from(b64, 'base64'));
  }
  return Buffer.concat(parts);
}

/** How the page saved the file: 'fs-access', 'service-worker' or 'blob' (main.ts sets it on the body). */
export async function sinkKind(page: Page): Promise<string | undefined> {
  return page.evaluate(() => (globalThis as any).document.body.dataset.sink as string | undefined); // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** The text of the card's heading, once the page settled on `state` (the card's data-state). */
export async function waitForState(page: Page, state: string, timeout = 60_000): Promise<string> {
  await page.locator(`#card[data-state="${state}"]`).waitFor({ timeout });
  return (await page.locator('#title').textContent()) ?? '';
}

/** Where pages' screenshots go (docs/screenshots/). */
export const SCREENSHOTS = path.join(repoRoot, 'docs/screenshots');

/**
 * Renders a screenshot, and writes it to docs/screenshots/ only on request (KLUIS_SCREENSHOTS=1): they show dates,
 * so writing them on every run would leave the work tree changed after each `npm test`.
 */
export async function screenshot(page: Page, name: string, fullPage = true): Promise<void> {
  const image = await page.screenshot({ fullPage });
  if (image.length === 0) throw new Error(`empty screenshot ${name}`);
  if (process.env.KLUIS_SCREENSHOTS === '1') {
    mkdirSync(SCREENSHOTS, { recursive: true });
    writeFileSync(path.join(SCREENSHOTS, name), image);
  }
}

/** The requests that left the server's origin (data: and blob: URLs never hit the network). */
export function foreignRequests(serverUrl: string, requests: string[]): string[] {
  const origin = new URL(serverUrl).origin;
  return requests.filter((u) => !u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin);
}

/**
 * The RSS (VmRSS, bytes) of the largest Chromium renderer process descended from this process (Linux /proc): the
 * page's renderer, where its JS heap, WASM memory and ArrayBuffers live. 0 when none is found.
 */
export function rendererRss(): number {
  const parent = new Map<number, number>();
  const renderers: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      parent.set(Number(d), Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${d}/status`, 'utf8'))?.[1] ?? 0));
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('--type=renderer')) renderers.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  const mine = (pid: number): boolean => {
    for (let p = pid, i = 0; p > 1 && i < 50; p = parent.get(p) ?? 0, i++) if (p === process.pid) return true;
    return false;
  };
  let most = 0;
  for (const pid of renderers.filter(mine)) {
    try {
      most = Math.max(most, Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024);
    } catch {
      // gone meanwhile
    }
  }
  return most;
}
