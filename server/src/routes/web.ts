// The link page (docs/api.md "Link page", docs/architecture.md §5), the file request page (docs/api.md "Request page")
// and the admin console (docs/admin.md "The admin console"): static files built by scripts/build-web.mjs into
// dist/web/link/, request/ and admin/. GET /s/:linkId, /r/:requestId and /admin/ answer their index.html;
// GET /s/assets/:name, /r/assets/:name and /admin/assets/:name answer one of the files the build
// produced, looked up by exact name in a table read once at start (no path is ever joined from the request, so no
// traversal). The link secret is in the URL fragment, which browsers never send: these routes never see it.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Router from '@koa/router';
import type { Services } from '../context.js';

/**
 * The pages' policy: their own scripts, styles and API only. 'wasm-unsafe-eval' lets libsodium instantiate its
 * WebAssembly from the bytes embedded in main.js and decrypt.js (no 'unsafe-eval': the bundles contain no eval or
 * new Function). worker-src 'self': the decryption worker and the download service worker, from this origin only.
 */
export const LINK_PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
};

const LINK_ID = /^[A-Za-z0-9_-]{22}$/;

interface Asset {
  body: Buffer;
  type: string;
}

/** Reads the built page; a server built without it (tsc only) answers 404 and says so once. */
function loadPage(dir: string): { index: Buffer | null; assets: Map<string, Asset> } {
  const assets = new Map<string, Asset>();
  let index: Buffer | null = null;
  try {
    index = readFileSync(path.join(dir, 'index.html'));
    for (const name of readdirSync(path.join(dir, 'assets'))) {
      const type = TYPES[path.extname(name)];
      if (type) assets.set(name, { body: readFileSync(path.join(dir, 'assets', name)), type });
    }
  } catch {
    index = null;
  }
  return { index, assets };
}

/**
 * The page with the server's environment on its root element (`<html data-kluis-env="acceptance">`) outside
 * production, where web/common/env-banner.ts shows a banner naming it: in the page itself, so no extra request. Every
 * page the server serves passes through here.
 */
export function markEnvironment(html: Buffer, env: Services['config']['env']): Buffer {
  if (env === 'production') return html;
  const text = html.toString('utf8');
  const marked = text.replace(/<html(\s|>)/i, `<html data-kluis-env="${env}"$1`);
  if (marked === text) throw new Error('page without an <html> element: cannot mark its environment');
  return Buffer.from(marked, 'utf8');
}

const BUILT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../web');

type Ctx = { set(field: string, value: string): void };

function pageHeaders(ctx: Ctx): void {
  ctx.set('Content-Security-Policy', LINK_PAGE_CSP);
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
  ctx.set('Permissions-Policy', 'camera=(), microphone=(), geolocation=(), interest-cohort=()');
}

export function webRoutes(router: Router, services: Services, dir = path.join(BUILT, 'link'), adminDir = path.join(BUILT, 'admin')): void {
  pageRoutes(router, services, dir, 's');
  // The file request page: the same headers, at /r/:requestId and /r/assets/:name.
  pageRoutes(router, services, path.join(dir, '../request'), 'r');
  const adminPage = assetRoutes(router, services, adminDir, 'admin');
  // The router is not strict about a trailing slash: this one route answers both, /admin by a redirect to /admin/.
  router.get('/admin', (ctx) => {
    if (!adminPage.index) return;
    if (ctx.path === '/admin') return ctx.redirect('/admin/');
    pageHeaders(ctx);
    ctx.type = TYPES['.html']!;
    ctx.body = adminPage.index;
  });
}

/** A page built into `dir`: its assets at /<prefix>/assets/:name; answers the loaded page. */
function assetRoutes(router: Router, services: Services, dir: string, prefix: string): ReturnType<typeof loadPage> {
  const page = loadPage(dir);
  if (page.index) page.index = markEnvironment(page.index, services.config.env);
  if (!page.index) services.log.warn({ dir }, `page not built (npm run build runs scripts/build-web.mjs): /${prefix}/ answers 404`);
  router.get(`/${prefix}/assets/:name`, (ctx) => {
    const asset = page.assets.get(ctx.params.name ?? '');
    if (!asset) return; // 404 from Koa
    pageHeaders(ctx);
    // Not content-hashed names: let the browser revalidate instead of keeping an old bundle.
    ctx.set('Cache-Control', 'no-cache');
    ctx.type = asset.type;
    ctx.body = asset.body;
  });
  return page;
}

/** One page at /<prefix>/:id (a link or request id) and its assets. */
function pageRoutes(router: Router, services: Services, dir: string, prefix: string): void {
  const page = assetRoutes(router, services, dir, prefix);
  router.get(`/${prefix}/:id`, (ctx) => {
    if (!page.index || !LINK_ID.test(ctx.params.id ?? '')) return;
    pageHeaders(ctx);
    ctx.type = TYPES['.html']!;
    ctx.body = page.index;
  });
}
