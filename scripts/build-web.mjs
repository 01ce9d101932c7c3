// Builds the link page (web/link/) into server/dist/web/link/, which server/src/routes/web.ts serves at /s/:linkId
// and /s/assets/<name>. Runs after tsc in `npm run build` (the page imports @kluis/shared from shared/dist).
// esbuild: bundles TypeScript, zod and libsodium (its WASM is embedded in the JS as bytes) with no configuration.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'web/link');
const out = path.join(root, 'server/dist/web/link');
const started = Date.now();

rmSync(out, { recursive: true, force: true });
mkdirSync(path.join(out, 'assets'), { recursive: true });

const common = {
  bundle: true,
  minify: true,
  sourcemap: false,
  target: ['es2022', 'chrome109', 'firefox115', 'safari16'],
  platform: 'browser',
  legalComments: 'none',
  logLevel: 'warning',
  // libsodium's Emscripten glue mentions require('crypto') for Node; the browser path uses crypto.getRandomValues.
  external: ['crypto'],
};
await build({ ...common, entryPoints: [path.join(src, 'main.ts')], format: 'esm', outfile: path.join(out, 'assets/main.js') });
await build({ ...common, entryPoints: [path.join(src, 'sw.ts')], format: 'iife', outfile: path.join(out, 'assets/sw.js') });
// The decryption worker (decrypt-pool.ts starts it): libsodium again, in its own bundle.
await build({ ...common, entryPoints: [path.join(src, 'decrypt-worker.ts')], format: 'iife', outfile: path.join(out, 'assets/decrypt.js') });
await build({ ...common, entryPoints: [path.join(src, 'style.css')], outfile: path.join(out, 'assets/style.css') });
copyFileSync(path.join(src, 'index.html'), path.join(out, 'index.html'));


// The file request page (web/request/) into server/dist/web/request/, served at /r/:requestId and /r/assets/<name>.
const reqSrc = path.join(root, 'web/request');
const reqOut = path.join(root, 'server/dist/web/request');
rmSync(reqOut, { recursive: true, force: true });
mkdirSync(path.join(reqOut, 'assets'), { recursive: true });
await build({ ...common, entryPoints: [path.join(reqSrc, 'main.ts')], format: 'esm', outfile: path.join(reqOut, 'assets/main.js') });
await build({ ...common, entryPoints: [path.join(reqSrc, 'style.css')], outfile: path.join(reqOut, 'assets/style.css') });
copyFileSync(path.join(reqSrc, 'index.html'), path.join(reqOut, 'index.html'));

const sizes = (dir) => readdirSync(path.join(dir, 'assets')).map((f) => `${f} ${Math.round(statSync(path.join(dir, 'assets', f)).size / 1024)} KiB`).join(', ');
console.log(`build-web: server/dist/web/link (${sizes(out)}), server/dist/web/request (${sizes(reqOut)}) in ${Date.now() - started} ms`);
