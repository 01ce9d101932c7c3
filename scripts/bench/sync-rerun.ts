// The unchanged re-run (issue 22: "W2 unchanged re-run < 0.8 s"), alone and cheap enough to run while changing the
// code: one server (embedded fs store: a no-op run reads no chunk), one account, W2's folder (10,000 files of 4 KiB
// in 100 folders, scripts/bench/lib/sync-workloads.ts), synced once; then `kluis --json sync DIR --space S --once` on
// the unchanged folder again and again, wall time of the client process (start to exit).
// With --before PATH (an earlier CLI: a copy of an earlier bundle kept beside desktop/dist/cli/kluis.mjs, so that it
// finds the worker threads and packages as the bundle does, or the unbundled desktop/dist/cli/main.js) the earlier CLI
// and this one take turns on the same folder, so both are measured under the same load; bare
// `node -e 0` takes its turn too (the floor no CLI can beat). Wall and CPU time (GNU time); load average printed before
// and after.
// --cpu-prof DIR: one more run of this CLI under `node --cpu-prof` (open the .cpuprofile in Chrome DevTools).
//   npm run build && npx tsx scripts/bench/sync-rerun.ts [--files 10000] [--runs 9] [--before PATH] [--cpu-prof DIR]
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CLI, okJson, onceArgs, startSyncEnv, syncOnce, type SyncClient } from '../../test/helpers/sync-env.js';
import { KiB, generate, manyFiles } from './lib/sync-workloads.js';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '9' },
    before: { type: 'string' },
    'cpu-prof': { type: 'string' },
  },
});
const FILES = Number(values.files);
const RUNS = Math.max(1, Number(values.runs));
const CPU_MARK = 'kluis-bench-cpu ';
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

/**
 * Runs node with `args` for account c (the harness's environment) under GNU time; resolves with the wall time and the
 * CPU time (user + system) in seconds. On a loaded machine the CPU time is the steadier figure.
 */
function timed(c: SyncClient, args: string[]): Promise<{ seconds: number; cpu: number; stdout: string; stderr: string; code: number | null }> {
  const t0 = performance.now();
  const proc = spawn('/usr/bin/time', ['-f', `${CPU_MARK}%U %S`, process.execPath, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: c.home, KLUIS_HOME: c.home, KLUIS_KDF: 'min', KLUIS_SYNC_GIVE_UP_MS: '60000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => proc.on('close', (code) => {
    const seconds = (performance.now() - t0) / 1000;
    const at = stderr.lastIndexOf(CPU_MARK);
    const [user, system] = stderr.slice(at + CPU_MARK.length).trim().split(' ').map(Number);
    resolve({ seconds, cpu: user! + system!, stdout, stderr: stderr.slice(0, at), code });
  }));
}

async function noOp(c: SyncClient, cli: string, nodeArgs: string[] = []): Promise<{ seconds: number; cpu: number }> {
  const r = await timed(c, [...nodeArgs, cli, ...onceArgs(c)]);
  const report = okJson({ ...r, signal: null, ms: r.seconds * 1000, timedOut: false }, `${cli} sync --once`);
  const work = report.uploaded + report.downloaded + report.deletedLocal + report.deletedRemote + report.moved;
  if (work !== 0) throw new Error(`${cli}: the re-run was not a no-op: ${JSON.stringify(report)}`);
  return { seconds: r.seconds, cpu: r.cpu };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]) => `median ${median(xs).toFixed(3)} s, min ${Math.min(...xs).toFixed(3)} s (${xs.map((x) => x.toFixed(2)).join(' ')})`;

const env = await startSyncEnv({ accounts: ['A'], storage: 'fs' });
try {
  const [a] = (await env.newSpace()).clients as [SyncClient];
  generate('w2', a.dir, manyFiles(FILES, 4 * KiB, 100), `${FILES} files of 4 KiB in 100 folders`);
  const first = await syncOnce(a, { timeoutMs: 30 * 60_000 });
  console.log(`first sync: ${first.uploaded} uploaded; load average ${load()}`);
  await noOp(a, CLI); // warm the page cache and the index once, for every contender alike

  const names = ['node -e 0', ...(values.before ? ['before'] : []), 'this build'];
  const wall = new Map(names.map((n) => [n, [] as number[]]));
  const cpu = new Map(names.map((n) => [n, [] as number[]]));
  const note = (n: string, r: { seconds: number; cpu: number }) => {
    wall.get(n)!.push(r.seconds);
    cpu.get(n)!.push(r.cpu);
  };
  console.log(`load average before the runs: ${load()}`);
  for (let i = 0; i < RUNS; i++) {
    note('node -e 0', await timed(a, ['-e', '0']));
    if (values.before) note('before', await noOp(a, path.resolve(values.before)));
    note('this build', await noOp(a, CLI));
  }
  console.log(`load average after the runs: ${load()}`);
  console.log(`unchanged re-run of ${FILES} files, ${RUNS} runs each, taking turns (wall time; CPU time user + system):`);
  for (const n of names) console.log(`  ${n.padEnd(12)} wall ${fmt(wall.get(n)!)}\n  ${''.padEnd(12)} cpu  ${fmt(cpu.get(n)!)}`);

  if (values['cpu-prof']) {
    const dir = path.resolve(values['cpu-prof']);
    mkdirSync(dir, { recursive: true });
    const r = await noOp(a, CLI, ['--cpu-prof', '--cpu-prof-dir', dir]);
    console.log(`profile of one run (${r.seconds.toFixed(3)} s under the profiler) in ${dir}`);
  }
} finally {
  await env.close();
}
