// Bundles the `kluis` CLI (desktop/dist/cli/main.js and everything it imports: the engine, @kluis/shared, zod,
// commander) into one ES module, desktop/dist/cli/kluis.mjs, which the npm bin (desktop/bin/kluis.js) runs. A short
// `kluis` process spent about a third of its start-up finding, reading and compiling some 200 module files (a no-op
// `kluis sync --once` of 10,000 files is held to 0.8 s, issue 22); one file does the same work in about half the CPU.
// Not bundled: native addons and what loads files of its own (sqlite3, sodium-native, libsodium-wrappers-sumo, knex,
// chokidar); they resolve from the bundle's folder as from main.js's. The worker threads are not bundled either: the
// engine starts desktop/dist/sync/hash-worker.js and chunk-id-worker.js (desktop/src/sync/worker-urls.ts). Runs
// after tsc in `npm run build`.
// The bundle is written in ASCII only. esbuild escapes what is not ASCII in strings and names, but keeps comments as they
// are, and a few hold a dash or an ellipsis: one character above Latin-1 and V8 keeps the whole 0.7 MB source, which every
// `kluis` process holds for lazy compilation, in two bytes a character (as much again in RSS, per process). Escaped here
// (a \u escape of four hex digits, which means the same inside a string, a name or a regular expression, and is harmless
// in a comment).
import { build } from 'esbuild';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outfile = path.join(root, 'desktop/dist/cli/kluis.mjs');
const started = Date.now();
const result = await build({
  entryPoints: [path.join(root, 'desktop/dist/cli/main.js')],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['sqlite3', 'sodium-native', 'libsodium-wrappers-sumo', 'knex', 'chokidar', 'electron'],
  // The CommonJS packages inside (commander) call require for Node's own modules: an ES module has none of its own.
  banner: { js: "import { createRequire as kluisCreateRequire } from 'node:module';\nconst require = kluisCreateRequire(import.meta.url);" },
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
  write: false,
});
const ascii = result.outputFiles[0].text.replace(/[\u0080-\u{10ffff}]/gu, (c) => {
  const cp = c.codePointAt(0);
  return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, '0')}`;
});
writeFileSync(outfile, ascii);
chmodSync(outfile, 0o755);
const inputs = Object.keys(result.metafile.inputs).length;
const kib = Math.round(Object.values(result.metafile.outputs)[0].bytes / 1024);
console.log(`build-cli: desktop/dist/cli/kluis.mjs (${inputs} modules, ${kib} KiB) in ${Date.now() - started} ms`);
