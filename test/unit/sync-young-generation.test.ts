// The CLI holds V8's young generation at its first size (desktop/src/sync/heap-growth.ts): from its first module on,
// across the start of its worker threads (V8 puts the growth factor back when it sets up a worker's heap), until a pass
// acts on more than YOUNG_HOLD_MAX_FILES files, and then only to semi-spaces of YOUNG_SEMI_SPACE_MAX_MB. Each case runs
// in its own process (V8's flags are the process's) and reports the size of the main thread's new space after making
// young garbage of which much survives a while.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../helpers/server.js';

const dist = (p: string): string => pathToFileURL(path.join(repoRoot, 'desktop/dist', p)).href;
const MB = 1e6;
/** The new space V8 starts with (two semi-spaces of 1 MB), and what it grows to by default in these cases (33.6 MB). */
const HELD_MAX = 2.2 * MB;
const GROWN_MIN = 16 * MB;
/** Two semi-spaces of YOUNG_SEMI_SPACE_MAX_MB (8 MiB), V8's maximum being twice that. */
const CAPPED_MAX = 2 * 8 * 1024 * 1024;

const dir = mkdtempSync(path.join(os.tmpdir(), 'kluis-young-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
const file = path.join(dir, 'data.bin');
writeFileSync(file, Buffer.alloc(256 * 1024, 7));

const newSpace = `
import v8 from 'node:v8';
export function churn() {
  const keep = [];
  for (let i = 0; i < 400000; i++) {
    keep.push({ a: i, b: 'x' + i, c: [i, i + 1] });
    if (keep.length > 50000) keep.splice(0, 10000);
  }
  return keep.length;
}
/** The same garbage made by a program that yields to the event loop now and then, as a sync pass does. */
export async function churnYielding() {
  const keep = [];
  for (let i = 0; i < 800000; i++) {
    keep.push({ a: i, b: 'x' + i, c: [i, i + 1] });
    if (keep.length > 50000) keep.splice(0, 10000);
    if (i % 5000 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return keep.length;
}
export function report() {
  process.stdout.write(String(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size));
}
`;
writeFileSync(path.join(dir, 'new-space.mjs'), newSpace);

/** Runs `body` (an ES module's statements) in a fresh node process; answers its main thread's new space, bytes. */
function newSpaceAfter(body: string, args: string[] = [], churn = 'churn()'): number {
  const script = path.join(dir, `case-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(script, `import { churn, churnYielding, report } from './new-space.mjs';\n${body}\nawait ${churn};\nreport();\n`);
  const r = spawnSync(process.execPath, [...args, script], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`case failed: ${r.stderr}`);
  return Number(r.stdout);
}

const held = `import { holdYoungGeneration, youngGenerationFor, YOUNG_HOLD_MAX_FILES } from '${dist('sync/heap-growth.js')}';\nholdYoungGeneration();`;

test('without the hold, the same garbage grows the young generation (the measure can tell)', (t) => {
  t.true(newSpaceAfter('') >= GROWN_MIN);
});

test('held, it stays at its first size', (t) => {
  t.true(newSpaceAfter(held) <= HELD_MAX);
});

test('a worker thread started without telling the hold undoes it (V8 resets the growth factor)', (t) => {
  const body = `${held}
import { Worker } from 'node:worker_threads';
const w = new Worker('setTimeout(() => {}, 50)', { eval: true });
await new Promise((resolve) => w.on('online', resolve));`;
  t.true(newSpaceAfter(body) >= GROWN_MIN);
});

test('the hash pool\'s worker keeps the hold', (t) => {
  const body = `${held}
import { HashPool } from '${dist('sync/hash-pool.js')}';
import { hashFile } from '${dist('sync/file-hash.js')}';
import { statSync } from 'node:fs';
const st = statSync(${JSON.stringify(file)});
const pool = new HashPool(0, hashFile);
const h = await pool.hashAside(${JSON.stringify(file)}, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino });
if (!h) throw new Error('not hashed');
await pool.close();`;
  t.true(newSpaceAfter(body) <= HELD_MAX);
});

test('the chunk-id worker (confirm ahead) keeps the hold', (t) => {
  const body = `${held}
import { ConfirmAhead } from '${dist('sync/confirm-ahead.js')}';
const ahead = new ConfirmAhead(${JSON.stringify(file)}, { chunkKey: new Uint8Array(32), chunkIdKey: new Uint8Array(32), manifestKey: new Uint8Array(32) }, [['a', 128 * 1024], ['b', 128 * 1024]]);
if (!(await ahead.started)) throw new Error('the worker sent no ids');
await ahead.close();`;
  t.true(newSpaceAfter(body) <= HELD_MAX);
});

test('a pass over many files lets it grow; a pass over up to YOUNG_HOLD_MAX_FILES does not', (t) => {
  t.true(newSpaceAfter(`${held}\nyoungGenerationFor(YOUNG_HOLD_MAX_FILES + 1);`) >= GROWN_MIN);
  t.true(newSpaceAfter(`${held}\nyoungGenerationFor(YOUNG_HOLD_MAX_FILES);`) <= HELD_MAX);
});

test('released by a busy pass, it grows to YOUNG_SEMI_SPACE_MAX_MB semi-spaces and no further', (t) => {
  const size = newSpaceAfter(`${held}\nyoungGenerationFor(YOUNG_HOLD_MAX_FILES + 1);`, [], 'churnYielding()');
  t.true(size >= CAPPED_MAX && size <= CAPPED_MAX + 0.1 * MB, `new space ${size}`);
  // the same without the hold, as the desktop app runs: V8's own maximum, twice that
  t.true(newSpaceAfter('', [], 'churnYielding()') >= 2 * CAPPED_MAX);
});

test('a worker thread started after the cap keeps it', (t) => {
  const body = `${held}
import { startWorker } from '${dist('sync/heap-growth.js')}';
youngGenerationFor(YOUNG_HOLD_MAX_FILES + 1);
await churnYielding();
const w = startWorker(new URL('data:text/javascript,setTimeout(() => {}, 50)'), null);
await new Promise((resolve) => w.on('online', resolve));`;
  const size = newSpaceAfter(body, [], 'churnYielding()');
  t.true(size <= CAPPED_MAX + 0.1 * MB, `new space ${size}`);
});

test('the CLI holds it from its first module on', (t) => {
  // The process's own start-up (the bundle's modules, zod's schemas) is the garbage here: by default it grows the new
  // space to 8 MB or more before the command runs.
  const script = path.join(dir, 'at-exit.mjs');
  writeFileSync(script, `import { report } from './new-space.mjs';\nprocess.on('exit', report);\n`);
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(script).href, path.join(repoRoot, 'desktop/dist/cli/kluis.mjs'), '--version'], { encoding: 'utf8', timeout: 60_000 });
  t.is(r.status, 0, r.stderr);
  const size = Number(/(\d+)$/.exec(r.stdout)?.[1]);
  t.true(size <= HELD_MAX, `new space ${size}`);
});
