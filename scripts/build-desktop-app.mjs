// Bundles the desktop app's preload (desktop/src/electron/preload.ts) into desktop/dist/electron/preload.cjs. A sandboxed
// preload cannot load ES modules or files of its own: it must be one CommonJS script whose only require is
// `electron` (Electron provides a restricted require to sandboxed preloads). Runs after tsc in `npm run build`.
import { build } from 'esbuild';
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
console.log(`build-desktop-app: desktop/dist/electron/preload.cjs in ${Date.now() - started} ms`);
