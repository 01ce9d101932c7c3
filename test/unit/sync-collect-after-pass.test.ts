// Between two passes of `kluis sync --once`, a pass that acted on more than COLLECT_AFTER_FILES files is followed by
// one full collection (desktop/src/sync/heap-growth.ts collectAfterBusyPass). Each case runs in its own process (V8's
// flags are the process's): it leaves garbage that survived into the old generation, then reports the heap used and
// the full (mark-compact) collections seen around the call.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../helpers/server.js';

const heapGrowth = pathToFileURL(path.join(repoRoot, 'desktop/dist/sync/heap-growth.js')).href;
const dir = mkdtempSync(path.join(os.tmpdir(), 'kluis-collect-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

interface Report {
  before: number;
  after: number;
  full: number;
  again: number;
  globalGc: string;
}

function run(files: number): Report {
  const script = path.join(dir, `case-${files}.mjs`);
  writeFileSync(script, `
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { COLLECT_AFTER_FILES, collectAfterBusyPass, youngGenerationFor } from ${JSON.stringify(heapGrowth)};
let full = 0;
new PerformanceObserver((list) => { for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) full++; }).observe({ entryTypes: ['gc'] });
let keep = [];
for (let i = 0; i < 300000; i++) keep.push({ i, s: 'row ' + i, list: [i, i + 1, i + 2] });
await new Promise((resolve) => setTimeout(resolve, 50));
keep = null; // garbage now, most of it in the old generation
const flush = () => new Promise((resolve) => setTimeout(resolve, 50));
await flush();
const before = process.memoryUsage().heapUsed;
full = 0;
youngGenerationFor(${files});
collectAfterBusyPass();
const after = process.memoryUsage().heapUsed;
await flush();
const seen = full;
full = 0;
collectAfterBusyPass(); // once per busy pass
await flush();
process.stdout.write(JSON.stringify({ before, after, full: seen, again: full, globalGc: typeof globalThis.gc, min: COLLECT_AFTER_FILES }));
`);
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`case failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Report;
}

test('a pass that acted on more than COLLECT_AFTER_FILES files is followed by one full collection, which frees its old garbage', (t) => {
  const r = run(5000);
  t.true(r.full >= 1, `full collections: ${r.full}`);
  t.true(r.before - r.after > 20e6, `heap used ${(r.before / 1e6).toFixed(1)} -> ${(r.after / 1e6).toFixed(1)} MB`);
  t.is(r.again, 0, 'a second call without another busy pass collects nothing');
  t.is(r.globalGc, 'undefined', 'the main context gets no global gc');
});

test('a pass that acted on fewer files collects nothing', (t) => {
  const r = run(200);
  t.is(r.full, 0);
  t.true(r.before - r.after < 5e6);
});
