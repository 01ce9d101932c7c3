// Bundles the desktop app's preload (desktop/src/electron/preload.ts) into desktop/dist/electron/preload.cjs. A sandboxed
// preload cannot load ES modules or files of its own: it must be one CommonJS script whose only require is
// `electron` (Electron provides a restricted require to sandboxed preloads). Also bundles the renderer (web/desktop/:
// index.html, assets/main.js, assets/style.css) into desktop/dist/electron/renderer/, the folder main serves on
// app://kluis/ (desktop/src/electron/main/window.ts). Runs after tsc in `npm run build`.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();
await build({
  entryPoints: [path.join(root, 'desktop/src/electron/preload.ts')],
  outfile: path.join(root, 'desktop/dist/electron/preload.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: ['chrome130'],
  external: ['electron'],
  minify: false,
  legalComments: 'none',
  logLevel: 'warning',
});

// The renderer: Electron 41's Chromium only, so no older browser targets; zod and the contract's schemas are bundled.
const src = path.join(root, 'web/desktop');
const out = path.join(root, 'desktop/dist/electron/renderer');
rmSync(out, { recursive: true, force: true });
mkdirSync(path.join(out, 'assets'), { recursive: true });
const page = { bundle: true, minify: true, sourcemap: false, target: ['chrome130'], platform: 'browser', legalComments: 'none', logLevel: 'warning' };
await build({ ...page, entryPoints: [path.join(src, 'main.ts')], format: 'esm', outfile: path.join(out, 'assets/main.js') });
await build({ ...page, entryPoints: [path.join(src, 'style.css')], outfile: path.join(out, 'assets/style.css') });
copyFileSync(path.join(src, 'index.html'), path.join(out, 'index.html'));
const sizes = readdirSync(path.join(out, 'assets')).map((f) => `${f} ${Math.round(statSync(path.join(out, 'assets', f)).size / 1024)} KiB`);
console.log(`build-desktop-app: desktop/dist/electron/preload.cjs, desktop/dist/electron/renderer (${sizes.join(', ')}) in ${Date.now() - started} ms`);
