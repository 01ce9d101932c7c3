// The link page (docs/api.md "Link page", docs/architecture.md §5) and the admin console (docs/admin.md "The admin
// console"): static files built by scripts/build-web.mjs into dist/web/link/ and dist/web/admin/. GET /s/:linkId and
// GET /admin/ answer their index.html; GET /s/assets/:name and /admin/assets/:name answer one of the files the build
// produced, looked up by exact name in a table read once at start (no path is ever joined from the request, so no
// traversal). The link secret is in the URL fragment, which browsers never send: these routes never see it.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Router from '@koa/router';
import type { Services } from '../context.js';

/**
 * The pages' policy: their own scripts, styles and API only. 'wasm-unsafe-eval' lets libsodium instantiate its
 * WebAssembly from the bytes embedded in main.js (no 'unsafe-eval': the bundle contains no eval or new Function).
 * Workers (the download service worker) fall back to script-src 'self'.
 */
export const LINK_PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
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

const BUILT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../web');

export function webRoutes(router: Router, services: Services, dir = path.join(BUILT, 'link'), adminDir = path.join(BUILT, 'admin')): void {
  const page = loadPage(dir);
  if (!page.index) services.log.warn({ dir }, 'link page not built (npm run build runs scripts/build-web.mjs): /s/ answers 404');
  const adminPage = loadPage(adminDir);
  if (!adminPage.index) services.log.warn({ dir: adminDir }, 'admin console not built (npm run build runs scripts/build-web.mjs): /admin/ answers 404');

  const pageHeaders = (ctx: { set(field: string, value: string): void }) => {
    ctx.set('Content-Security-Policy', LINK_PAGE_CSP);
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
    ctx.set('Permissions-Policy', 'camera=(), microphone=(), geolocation=(), interest-cohort=()');
  };

  for (const [prefix, built] of [['/s', page], ['/admin', adminPage]] as const) {
    router.get(`${prefix}/assets/:name`, (ctx) => {
      const asset = built.assets.get(ctx.params.name ?? '');
      if (!asset) return; // 404 from Koa
      pageHeaders(ctx);
      // Not content-hashed names: let the browser revalidate instead of keeping an old bundle.
      ctx.set('Cache-Control', 'no-cache');
      ctx.type = asset.type;
      ctx.body = asset.body;
    });
  }

  // The router is not strict about a trailing slash: this one route answers both, /admin by a redirect to /admin/.
  router.get('/admin', (ctx) => {
    if (!adminPage.index) return;
    if (ctx.path === '/admin') return ctx.redirect('/admin/');
    pageHeaders(ctx);
    ctx.type = TYPES['.html']!;
    ctx.body = adminPage.index;
  });

  router.get('/s/:linkId', (ctx) => {
    if (!page.index || !LINK_ID.test(ctx.params.linkId ?? '')) return;
    pageHeaders(ctx);
    ctx.type = TYPES['.html']!;
    ctx.body = page.index;
  });
}
