// Scan + index benchmark (docs/architecture.md §4, §9): what a restart over a large, unchanged folder costs, and how fast fresh
// small files are hashed.
//   (a) N small files (default 100,000) in a temp folder, created once: first scan (everything hashed), index
//       written, then a "restart": open the index, load base + remote, full scan against the base (nothing may be
//       re-hashed), reconcile (all 'none'). Baseline: a plain walk (opendir + lstat, no index, no hashing).
//       Targets: scan < 5 s, whole restart < 10 s.
//   (b) W2-like: 10,000 files of 4 KiB, hashed fresh (empty base). Baseline: reading the same files without hashing.
//       Target < 2 s.
// Prints one table and writes bench-results/scan.json. Not a test.
//   node --import=tsx scripts/bench/scan.ts [--files 100000] [--small 10000] [--reps 3] [--keep]
import { lstatSync, mkdirSync, writeFileSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, opendir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { reconcile } from '../../desktop/dist/sync/reconcile.js';
import { IndexDb } from '../../desktop/dist/sync/index-db.js';
import { scanFolder } from '../../desktop/dist/sync/scan.js';
import type { BaseEntry, LocalEntry, RemoteEntry } from '../../desktop/dist/sync/types.js';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '100000' },
    small: { type: 'string', default: '10000' },
    reps: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
  },
});
const FILES = Number(values.files);
const SMALL = Number(values.small);
const REPS = Math.max(1, Number(values.reps));
const OLD = new Date('2026-01-01T00:00:00Z');

interface Row {
  part: string;
  name: string;
  count: number;
  /** median of the runs */
  seconds: number;
  runs: number[];
  perSecond: number;
  target?: number;
  note?: string;
}
const rows: Row[] = [];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function record(part: string, name: string, count: number, runs: number[], extra: { target?: number; note?: string } = {}): Row {
  const seconds = median(runs);
  const row: Row = { part, name, count, seconds, runs, perSecond: count / seconds, ...extra };
  rows.push(row);
  const verdict = extra.target === undefined ? '' : seconds < extra.target ? `  < ${extra.target} s ok` : `  > ${extra.target} s TOO SLOW`;
  console.error(`  ${part} ${name.padEnd(46)} ${seconds.toFixed(3).padStart(8)} s ${row.perSecond.toFixed(0).padStart(9)} /s${verdict}${extra.note ? `  (${extra.note})` : ''}`);
  return row;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await fn();
  return [value, (performance.now() - t0) / 1000];
}

/** Files spread like an office share: 100 folders x 10 subfolders x 100 files (for 100,000). */
async function makeTree(root: string, count: number, content: (i: number) => string | Uint8Array): Promise<void> {
  const perDir = 100;
  const dirs = Math.ceil(count / perDir);
  let i = 0;
  for (let d = 0; d < dirs; d++) {
    const dir = path.join(root, `afdeling ${Math.floor(d / 10)}`, `dossier ${d % 10}`);
    await mkdir(dir, { recursive: true });
    const batch: Promise<void>[] = [];
    for (let f = 0; f < perDir && i < count; f++, i++) {
      const file = path.join(dir, `document-${i}.txt`);
      batch.push(writeFile(file, content(i)).then(() => utimes(file, OLD, OLD)));
    }
    await Promise.all(batch);
  }
}

/** The plain baseline: opendir + lstat of everything, nothing else (async: 64 in flight; sync: lstatSync). */
async function plainWalk(root: string, mode: 'async' | 'sync'): Promise<number> {
  let n = 0;
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const names: string[] = [];
    for await (const d of await opendir(dir, { bufferSize: 256 })) names.push(d.name);
    for (let i = 0; i < names.length; i += 64) {
      const slice = names.slice(i, i + 64);
      const sts = mode === 'async' ? await Promise.all(slice.map((name) => lstat(path.join(dir, name)))) : slice.map((name) => lstatSync(path.join(dir, name)));
      sts.forEach((st, j) => {
        n++;
        if (st.isDirectory()) stack.push(path.join(dir, names[i + j]!));
      });
    }
  }
  return n;
}

async function plainRead(root: string): Promise<number> {
  let bytes = 0;
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const files: string[] = [];
    for await (const d of await opendir(dir)) {
      if (d.isDirectory()) stack.push(path.join(dir, d.name));
      else files.push(path.join(dir, d.name));
    }
    for (let i = 0; i < files.length; i += 4) {
      const bufs = await Promise.all(files.slice(i, i + 4).map((f) => readFile(f)));
      for (const b of bufs) bytes += b.length;
    }
  }
  return bytes;
}

function asBase(entries: Map<string, LocalEntry>): BaseEntry[] {
  let i = 0;
  return [...entries.values()].map((e) => ({
    path: e.path, kind: e.kind, fileId: `f${(i++).toString(36).padStart(10, '0')}`, versionId: `v${i.toString(36).padStart(10, '0')}`,
    hash: e.hash, size: e.size, mtimeMs: Math.round(e.mtimeMs), localSize: e.size, localMtimeMs: e.mtimeMs, localIno: e.ino,
  }));
}

function asRemote(base: BaseEntry[]): RemoteEntry[] {
  return base.map((b, i) => ({
    fileId: b.fileId, versionId: b.versionId, seq: i + 1, path: b.path, kind: b.kind, size: b.size, mtimeMs: b.mtimeMs, hash: b.hash,
    deleted: false, chunks: b.size > 0 ? [[b.hash, b.size]] : [], keyEpoch: 1,
  }));
}

const work = await mkdtemp(path.join(os.tmpdir(), 'kluis-bench-scan-'));
const bigRoot = path.join(work, 'big');
const smallRoot = path.join(work, 'small');
const home = path.join(work, 'home');
console.error(`scan bench in ${work}: ${FILES} files (a), ${SMALL} x 4 KiB (b), ${REPS} reps, ${os.cpus().length} cores, node ${process.version}`);

try {
  // (a) ------------------------------------------------------------------------------------------------------------
  const [, createS] = await timed(() => makeTree(bigRoot, FILES, (i) => `Kluis bench document ${i}\n`));
  console.error(`  created ${FILES} files in ${createS.toFixed(1)} s`);

  const [first, firstS] = await timed(() => scanFolder(bigRoot, new Map(), { settleMs: 0 }));
  if (first.hashed !== FILES) throw new Error(`first scan hashed ${first.hashed}, expected ${FILES}`);
  record('a', 'first scan (all hashed, empty index)', first.entries.size, [firstS]);

  const base = asBase(first.entries);
  const remote = asRemote(base);
  let db = await IndexDb.open(home);
  const folder = await db.folder('bench-space', bigRoot);
  const [, putS] = await timed(() => db.apply(folder.id, { putBase: base, putRemote: remote, lastSeq: remote.length }));
  record('a', 'index write: base + remote rows, one transaction', base.length * 2, [putS]);
  await db.close();

  for (const mode of ['async', 'sync'] as const) {
    const walkRuns: number[] = [];
    for (let r = 0; r < REPS; r++) walkRuns.push((await timed(() => plainWalk(bigRoot, mode)))[1]);
    record('a', `baseline: plain walk (opendir + ${mode === 'async' ? 'lstat' : 'lstatSync'})`, first.entries.size, walkRuns);
  }

  const openRuns: number[] = [];
  const baseRuns: number[] = [];
  const remoteRuns: number[] = [];
  const scanRuns: number[] = [];
  const reconcileRuns: number[] = [];
  const totalRuns: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const t0 = performance.now();
    const [opened, openS] = await timed(() => IndexDb.open(home));
    db = opened;
    const f = await db.folder('bench-space', bigRoot);
    const [baseMap, baseS] = await timed(() => db.baseAll(f.id));
    const [remoteMap, remoteS] = await timed(() => db.remoteAll(f.id));
    const [scan, scanS] = await timed(() => scanFolder(bigRoot, baseMap, { settleMs: 0 }));
    if (scan.hashed !== 0) throw new Error(`restart scan re-hashed ${scan.hashed} files`);
    const [actions, recS] = await timed(async () => reconcile(baseMap, scan.entries, remoteMap, { device: 'bench', now: new Date(), platform: 'linux' }));
    if (actions.some((a) => a.type !== 'none')) throw new Error('an unchanged folder produced work');
    totalRuns.push((performance.now() - t0) / 1000);
    await db.close();
    openRuns.push(openS);
    baseRuns.push(baseS);
    remoteRuns.push(remoteS);
    scanRuns.push(scanS);
    reconcileRuns.push(recS);
  }
  record('a', 'restart: open index (migrations checked)', 1, openRuns);
  record('a', 'restart: baseAll', base.length, baseRuns);
  record('a', 'restart: remoteAll', remote.length, remoteRuns);
  record('a', 'restart: scan against the index (0 hashed)', FILES, scanRuns, { target: 5 });
  record('a', 'restart: reconcile (all none)', base.length, reconcileRuns);
  record('a', 'restart total: open+load+scan+reconcile', FILES, totalRuns, { target: 10 });

  // (b) ------------------------------------------------------------------------------------------------------------
  const block = new Uint8Array(4096);
  await makeTree(smallRoot, SMALL, (i) => {
    const b = block.slice();
    new DataView(b.buffer).setUint32(0, i);
    b.fill(i & 0xff, 4);
    return b;
  });
  const readRuns: number[] = [];
  const freshRuns: number[] = [];
  for (let r = 0; r < REPS; r++) {
    readRuns.push((await timed(() => plainRead(smallRoot)))[1]);
    const [scan, s] = await timed(() => scanFolder(smallRoot, new Map(), { settleMs: 0 }));
    if (scan.hashed !== SMALL) throw new Error(`fresh scan hashed ${scan.hashed}, expected ${SMALL}`);
    freshRuns.push(s);
  }
  record('b', 'baseline: read every file (4 in flight)', SMALL, readRuns, { note: `${((SMALL * 4096) / 1e6).toFixed(0)} MB` });
  record('b', 'fresh scan: 4 KiB files hashed (empty index)', SMALL, freshRuns, { target: 2 });
} finally {
  if (values.keep) console.error(`kept ${work}`);
  else await rm(work, { recursive: true, force: true });
}

console.log('\n| part | step | items | seconds (median) | items/s | target |');
console.log('|---|---|---:|---:|---:|---|');
for (const r of rows) console.log(`| ${r.part} | ${r.name} | ${r.count} | ${r.seconds.toFixed(3)} | ${r.perSecond.toFixed(0)} | ${r.target === undefined ? '' : `< ${r.target} s`} |`);

const outDir = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../bench-results');
mkdirSync(outDir, { recursive: true });
writeFileSync(path.join(outDir, 'scan.json'), `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, files: FILES, small: SMALL, reps: REPS, rows }, null, 2)}\n`);
console.error(`wrote ${path.join(outDir, 'scan.json')}`);
