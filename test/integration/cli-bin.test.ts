// The npm bin `kluis` (desktop/bin/kluis.js, what `npx kluis` runs) offers every command the program has: it once
// registered the sync commands only, so `npx kluis share link` was unknown while the tests (which run the program
// directly) passed. The bin and the tests run the CLI bundle (desktop/dist/cli/kluis.mjs, scripts/build-cli.mjs): it
// must be the whole program, import nothing but Node's modules and the packages left out of it, and find the worker
// threads, which stay separate files.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { repoRoot } from '../helpers/server.js';

const run = promisify(execFile);
const BUNDLE = path.join(repoRoot, 'desktop/dist/cli/kluis.mjs');
const commandsOf = (help: string) => [...help.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]).sort();

test('npx kluis lists the same commands as the program itself, share, policy and sync among them', async (t) => {
  const env = { PATH: process.env.PATH ?? '', KLUIS_HOME: path.join(repoRoot, 'no-such-home') };
  const bin = (await run(process.execPath, [path.join(repoRoot, 'desktop/bin/kluis.js'), '--help'], { env })).stdout;
  const direct = (await run(process.execPath, [path.join(repoRoot, 'desktop/dist/cli/main.js'), '--help'], { env })).stdout;
  const bundled = (await run(process.execPath, [BUNDLE, '--help'], { env })).stdout;
  t.deepEqual(commandsOf(bin), commandsOf(direct));
  t.deepEqual(commandsOf(bundled), commandsOf(direct));
  for (const c of ['sync', 'status', 'versions', 'restore', 'share', 'policy', 'space', 'fingerprint']) t.true(commandsOf(bin).includes(c), c);
  const share = (await run(process.execPath, [path.join(repoRoot, 'desktop/bin/kluis.js'), 'share', '--help'], { env })).stdout;
  t.true(commandsOf(share).includes('link'));
});

test('the CLI bundle imports only Node modules and the packages left out of it, and finds the worker threads', async (t) => {
  const text = readFileSync(BUNDLE, 'utf8');
  const imported = new Set([...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]/gm), ...text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm), ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!));
  const outside = [...imported].filter((s) => !s.startsWith('node:') && !['sqlite3', 'sodium-native', 'libsodium-wrappers-sumo', 'knex', 'chokidar', 'electron'].includes(s));
  t.deepEqual(outside, [], 'no module file of the program outside the bundle');
  t.true(imported.has('node:module'), 'the import scan sees the bundle\'s own imports');
  const mod = (await import(pathToFileURL(BUNDLE).href)) as { HASH_WORKER_URL: URL; CHUNK_ID_WORKER_URL: URL };
  for (const [url, file] of [[mod.HASH_WORKER_URL, 'hash-worker.js'], [mod.CHUNK_ID_WORKER_URL, 'chunk-id-worker.js']] as const) {
    t.is(fileURLToPath(url), path.join(repoRoot, 'desktop/dist/sync', file));
    t.true(existsSync(url), `${file} is where the bundle looks for it`);
  }
});

test('the CLI bundle is ASCII only, so V8 keeps its source in one byte a character, and means what it meant', (t) => {
  const bytes = readFileSync(BUNDLE);
  t.is(bytes.findIndex((b) => b > 0x7f), -1);
  // Reserved Windows names with superscript digits (sync/local-paths.ts): escaped inside a regular expression.
  const line = /^var WINDOWS_RESERVED = .*$/m.exec(bytes.toString('latin1'))?.[0];
  t.truthy(line);
  const reserved = new Function(`${line}; return WINDOWS_RESERVED;`)() as RegExp;
  t.true(reserved.test('com\u00b9'));
  t.true(reserved.test('LPT\u00b3'));
  t.false(reserved.test('com\u00b4'));
});

// zod's messages in English (its default) stay; its other locales (Dutch here, some 60 in all) are a third of a bundle
// that imports zod's namespace as the one value `z` (eslint.config.js now refuses that form).
test('the CLI bundle and the web pages keep zod\'s English messages and none of its other locales', (t) => {
  const bundles = ['desktop/dist/cli/kluis.mjs', 'server/dist/web/link/assets/main.js', 'server/dist/web/link/assets/decrypt.js', 'server/dist/web/admin/assets/main.js', 'server/dist/web/request/assets/main.js'];
  for (const file of bundles) {
    const text = readFileSync(path.join(repoRoot, file), 'latin1');
    t.true(text.includes('Invalid input'), `${file}: zod's English messages`);
    t.false(text.includes('Ongeldige invoer'), `${file}: no zod locale`);
  }
});
