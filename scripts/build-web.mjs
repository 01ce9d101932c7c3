// Builds the link page (web/link/) into server/dist/web/link/, which server/src/routes/web.ts serves at /s/:linkId
// and /s/assets/<name>, and the admin console (web/admin/) into server/dist/web/admin/, served at /admin/ and
// /admin/assets/<name>, and the file request page (web/request/) into server/dist/web/request/, served at /r/. They import web/common/ (languages, DOM helpers, base.css), bundled into each.
// Runs after tsc in `npm run build` (the pages import @kluis/shared from shared/dist).
// esbuild: bundles TypeScript, zod and libsodium (its WASM is embedded in the JS as bytes) with no configuration.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();

const common = {
  bundle: true,
  minify: process.env.KLUIS_WEB_NOMINIFY ? false : true,
  sourcemap: false,
  target: ['es2022', 'chrome109', 'firefox115', 'safari16'],
  platform: 'browser',
  legalComments: 'none',
  logLevel: 'warning',
  // libsodium's Emscripten glue mentions require('crypto') for Node; the browser path uses crypto.getRandomValues.
  external: ['crypto'],
};
// Each page: main.ts, style.css and index.html into server/dist/web/<page>/. The link page also has its download
// service worker and the decryption worker (decrypt-pool.ts starts it: libsodium again, in its own bundle); the file
// request page (web/request/) is served at /r/:requestId and /r/assets/<name>, with its encryption worker
// (encrypt-pool.ts starts it).
const extra = {
  link: [['sw.ts', 'sw.js'], ['decrypt-worker.ts', 'decrypt.js']],
  request: [['encrypt-worker.ts', 'encrypt.js']],
  admin: [],
};
const report = [];
for (const page of Object.keys(extra)) {
  const src = path.join(root, 'web', page);
  const out = path.join(root, 'server/dist/web', page);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(path.join(out, 'assets'), { recursive: true });
  await build({ ...common, entryPoints: [path.join(src, 'main.ts')], format: 'esm', outfile: path.join(out, 'assets/main.js') });
  for (const [entry, name] of extra[page]) {
    await build({ ...common, entryPoints: [path.join(src, entry)], format: 'iife', outfile: path.join(out, 'assets', name) });
  }
  await build({ ...common, entryPoints: [path.join(src, 'style.css')], outfile: path.join(out, 'assets/style.css') });
  copyFileSync(path.join(src, 'index.html'), path.join(out, 'index.html'));
  const sizes = readdirSync(path.join(out, 'assets')).map((f) => `${f} ${Math.round(statSync(path.join(out, 'assets', f)).size / 1024)} KiB`);
  report.push(`server/dist/web/${page} (${sizes.join(', ')})`);
}
console.log(`build-web: ${report.join('; ')} in ${Date.now() - started} ms`);
