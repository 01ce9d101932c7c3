// Sync benchmark (sync issue): Kluis against the usual tools on the same generated workloads and ONE local S3 (Ceph
// RGW, memstore, beast tcp_nodelay=1: test/helpers/s3.ts), in one run.
//   raw     the `minio` JS client putting every file as one object, 16 in flight (scripts/bench/lib/raw-put.mjs,
//           its own process) — the floor: no encryption, no index, no change detection
//   rclone  `rclone sync DIR crypt:SLOT`: a crypt remote over an S3 remote on the same RGW, --transfers 16
//           --checkers 16 (the raw client's concurrency); config file in a temp dir
//   restic  `restic backup --json DIR` into an S3 repository on the same RGW (repo format v2, compression auto)
//   kluis   the real server (KLUIS_STORAGE=minio on the same RGW) and `kluis --json sync DIR --space S --once`
//           (test/helpers/sync-env.ts: kluis-admin org, CLI sign-ups with KLUIS_KDF=min), one space per workload
// Workloads (scripts/bench/lib/sync-workloads.ts; deterministic, generated once, streamed to disk):
//   W1 one 1 GiB file; W2 10,000 files of 4 KiB in 100 folders (then the same command again, nothing changed);
//   W3 = W1 with 1 MiB overwritten in the middle, uploaded after W1 is in (bytes sent); W4 2,000 files of an office
//   mix totalling 1 GiB. Each tool works on its own copy of W1 (W3 edits it in place). Kluis only: a second member's
//   client syncs the W1 space after W1 and after W3 (untimed); its bytes downloaded after W3 are a figure (delta
//   download: it should fetch little more than the edited MiB).
// Kluis only: "edit on A visible on B" with two watching clients (two members, one space; a small file edited on
// A, B's copy polled every 5 ms until the content matches; --samples, p50/p95), the restart time of `--once` on an
// already-synced folder of 100,000 tiny files (--100k, on by default, not with --quick), and the peak RSS of
// syncing one 4 GiB file (--big, on by default, not with --quick; generated only then).
// CPU: per step, the client's CPU seconds (every tool), the Kluis server's, and the S3's (radosgw + ceph-osd), the
// last two as deltas of /proc/PID/stat taken just before and after the timed client run (the S3 daemons idle at a
// few tenths of a second per minute, counted in). Rows "<W> CPU s: client / server / S3 / total" show the split.
// Inside the server: its CPU profile (scripts/bench/lib/cpu-profile.mjs, KLUIS_SYNC_SERVER_NODE_OPTIONS); inside
// every kluis process: the same with KLUIS_SYNC_CLIENT_NODE_OPTIONS (one profile per process, in KLUIS_CPU_PROFILE_DIR).
// KLUIS_SYNC_CLI runs another build of the CLI bundle (test/helpers/sync-env.ts): two builds in turn, for an A/B.
// Timings are wall times of the client process (start to exit: start-up, key loading, listing included); peak RSS
// is its VmHWM (scripts/bench/lib/proc.ts), reported per workload (W1, W2, W3, W4 rows, goals W1 < 130 MB, W2 < 100 MB)
// besides the maximum over W1-W4. With --runs N every W-figure is the median of N runs, each into fresh
// buckets / repositories / spaces; the Kluis extras are measured once (the 100k restart N times).
// Prints one table (figure x tool, with the goals) and writes bench-results/sync.json. Not a test.
//   npm run build && npx tsx scripts/bench/sync.ts [--runs N] [--quick] [--only raw,rclone,restic,kluis]
//       [--no-big] [--no-100k] [--samples 20] [--workloads w1,w2,w4]  (W3 comes with W1, W2's re-run with W2)
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from 'minio';
import { startLocalS3, type LocalS3 } from '../../test/helpers/s3.js';
import { repoRoot } from '../../test/helpers/server.js';
import {
  CLI, changed, okJson, onceArgs, sleep, spawnKluis, startSyncEnv, syncOnce, watch, write,
  type SyncClient, type SyncEnv, type SyncReport,
} from '../../test/helpers/sync-env.js';
import { cpuSecondsOf, ensureDebianTool, ensureOk, runMeasured, trackCpu, trackPeakRss, versionOf, type Measured } from './lib/proc.js';
import { GiB, KiB, MiB, generate, manyFiles, mixSummary, officeMix, overwriteMiddle, singleFile, type FileSpec, type Workload } from './lib/sync-workloads.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1' },
    quick: { type: 'boolean', default: false },
    only: { type: 'string', default: 'raw,rclone,restic,kluis' },
    big: { type: 'boolean' },
    'no-big': { type: 'boolean' },
    '100k': { type: 'boolean' },
    'no-100k': { type: 'boolean' },
    samples: { type: 'string', default: '20' },
    workloads: { type: 'string', default: 'w1,w2,w4' },
  },
});
const TOOL_NAMES = ['raw', 'rclone', 'restic', 'kluis'] as const;
type ToolName = (typeof TOOL_NAMES)[number];
const ONLY = new Set(values.only.split(',').map((s) => s.trim()).filter(Boolean));
for (const t of ONLY) if (!(TOOL_NAMES as readonly string[]).includes(t)) throw new Error(`--only: unknown tool ${t} (${TOOL_NAMES.join(', ')})`);
const TOOLS = TOOL_NAMES.filter((t) => ONLY.has(t));
const RUNS = Math.max(1, Number(values.runs));
// W3 edits W1's copy, so it runs with W1; W2's unchanged re-run runs with W2.
const WORKLOADS = new Set(values.workloads.split(',').map((s) => s.trim()).filter(Boolean));
for (const w of WORKLOADS) if (!['w1', 'w2', 'w4'].includes(w)) throw new Error(`--workloads: unknown workload ${w} (w1 (with w3), w2, w4)`);
const QUICK = values.quick;
const SIZES = QUICK
  ? { w1: 64 * MiB, w2: 1000, w4Files: 200, w4Bytes: 64 * MiB }
  : { w1: 1 * GiB, w2: 10_000, w4Files: 2000, w4Bytes: 1 * GiB };
const BIG = TOOLS.includes('kluis') && !values['no-big'] && (values.big === true || !QUICK);
const HUNDRED_K = TOOLS.includes('kluis') && !values['no-100k'] && (values['100k'] === true || !QUICK);
const SAMPLES = Math.max(1, Number(values.samples));
const BIG_BYTES = 4 * GiB;
const TINY_COUNT = 100_000;

const LABEL: Record<ToolName, string> = { raw: 'raw minio', rclone: 'rclone crypt', restic: 'restic', kluis: 'kluis' };
const mib = (b: number) => b / MiB;
const MB = 1e6;
const uptime = () => spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();
const log = (s: string) => console.error(s);

// ------------------------------------------------------------------------------------------------ results

type Step = 'w1' | 'w3' | 'w2' | 'w2again' | 'w4';
interface StepResult {
  seconds: number;
  peakRss: number;
  /** the client's CPU seconds (user + system, scripts/bench/lib/proc.ts) */
  cpuSeconds?: number;
  /** Kluis: the server's CPU seconds during the timed client run */
  serverCpuSeconds?: number;
  /** the S3's (radosgw + ceph-osd) CPU seconds during the timed client run */
  s3CpuSeconds?: number;
  /** bytes sent for this step (W3 figure), when the tool tells or the bucket shows it */
  bytesUploaded: number | null;
  /** Kluis, W1 space: bytes the other member's client downloaded after this step (W3: the delta download) */
  otherDownloaded?: number;
  detail?: unknown;
}
const results: Record<string, Partial<Record<Step, StepResult[]>>> = {};
const failures: { tool: string; step: string; run?: number; error: string }[] = [];
const problems: string[] = [];
const extras: Record<string, unknown> = {};

function fail(tool: string, step: string, err: unknown, run?: number): void {
  const error = (err as Error)?.message ?? String(err);
  failures.push({ tool, step, ...(run !== undefined ? { run } : {}), error });
  log(`  FAILED ${tool} ${step}${run !== undefined ? ` (run ${run})` : ''}: ${error.split('\n').slice(0, 6).join('\n    ')}`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]! : NaN;
};

// ------------------------------------------------------------------------------------------------ set-up and clean-up

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kluis-bench-sync-'));
const genDir = path.join(tmp, 'gen');
const workDir = path.join(tmp, 'work');
mkdirSync(workDir, { recursive: true });
let kluisEnv: SyncEnv | null = null;
let s3: LocalS3 | null = null;
process.on('exit', () => {
  rmSync(tmp, { recursive: true, force: true });
  if (kluisEnv) rmSync(kluisEnv.root, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    log(`\n${sig}: stopping every process started here and removing the temp dirs`);
    process.exit(130); // the 'exit' handlers (here, lib/proc.ts, test/helpers) kill children, stop the S3, remove dirs
  });
}

const copyTree = (src: string, dst: string) => {
  rmSync(dst, { recursive: true, force: true });
  mkdirSync(path.dirname(dst), { recursive: true });
  const r = spawnSync('cp', ['-a', src, dst], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cp -a ${src} ${dst}: ${r.stderr}`);
};

const started = { date: new Date().toISOString(), uptime: uptime() };
log(`sync bench: tools ${TOOLS.join(', ')}; ${QUICK ? 'QUICK sizes; ' : ''}${RUNS} run(s); big ${BIG ? 'on' : 'off'}, 100k ${HUNDRED_K ? 'on' : 'off'}`);
log(`  ${started.uptime}`);

const versions: Record<string, string> = { node: process.version };
if (TOOLS.includes('rclone')) {
  ensureDebianTool('rclone');
  versions.rclone = versionOf('rclone');
}
if (TOOLS.includes('restic')) {
  ensureDebianTool('restic');
  versions.restic = versionOf('restic');
}
if (TOOLS.includes('kluis')) {
  const help = spawnSync(process.execPath, [CLI, 'sync', '--help'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', KLUIS_HOME: tmp } });
  if (help.status !== 0 || !/--once/.test(help.stdout)) throw new Error(`the built CLI has no 'kluis sync' (npm run build first): ${help.stderr || help.stdout}`);
}

// The S3's memory: each tool's buckets are removed (and RGW's garbage collected) when it is done; Kluis keeps its
// spaces (one org bucket) until the end, plus the 4 GiB file.
process.env.LOCAL_S3_MEMSTORE_BYTES ??= String(QUICK ? 3 * GiB : (BIG ? BIG_BYTES : 0) + RUNS * (SIZES.w1 + SIZES.w4Bytes + 256 * MiB) + 3 * GiB);

log('generating workloads...');
let t0 = performance.now();
// A workload left out with --workloads is not generated (an empty stand-in) and its rows are left out of the table.
const workload = (name: 'w1' | 'w2' | 'w4', files: () => FileSpec[], what: string): Workload => (WORKLOADS.has(name)
  ? generate(name, path.join(genDir, name), files(), what)
  : { name, dir: '', files: [], bytes: 0, what: 'not run' });
const W1 = workload('w1', () => singleFile('big.bin', SIZES.w1), `one file of ${mib(SIZES.w1)} MiB`);
const W2 = workload('w2', () => manyFiles(SIZES.w2, 4 * KiB, 100), `${SIZES.w2} files of 4 KiB in 100 folders`);
const W4 = workload('w4', () => officeMix(SIZES.w4Files, SIZES.w4Bytes), `${SIZES.w4Files} files, office mix, ${mib(SIZES.w4Bytes)} MiB`);
log(`  done in ${((performance.now() - t0) / 1000).toFixed(1)} s under ${genDir}`);

log('starting local S3 (Ceph RGW, memstore)...');
s3 = await startLocalS3();
log(`  up in ${(s3.startMs / 1000).toFixed(1)} s + warm-up ${(s3.warmupMs / 1000).toFixed(1)} s at ${s3.endpoint}`);
const s3url = new URL(s3.endpoint);
const minio = new Client({ endPoint: s3url.hostname, port: Number(s3url.port), useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: 'us-east-1', pathStyle: true });
const cephConf = path.join(s3.dir, 'ceph.conf');

async function bucketBytes(bucket: string): Promise<number> {
  let n = 0;
  for await (const o of minio.listObjectsV2(bucket, '', true) as AsyncIterable<{ size?: number }>) n += o.size ?? 0;
  return n;
}

/** Removes a bucket with everything in it, then lets RGW collect the garbage now (it waits 2 h otherwise): memstore memory. */
function dropBucket(bucket: string): void {
  spawnSync('radosgw-admin', ['-c', cephConf, 'bucket', 'rm', `--bucket=${bucket}`, '--purge-objects'], { stdio: 'ignore', timeout: 300_000 });
  spawnSync('radosgw-admin', ['-c', cephConf, 'gc', 'process', '--include-all'], { stdio: 'ignore', timeout: 300_000 });
}

/** CPU seconds so far of the Kluis server and of the S3 daemons that serve requests (radosgw, ceph-osd; not ceph-mon). */
function cpuMark(): { server: number; s3: number } {
  const serverPid = kluisEnv?.srv.proc.pid;
  return { server: serverPid ? cpuSecondsOf([serverPid]) : 0, s3: cpuSecondsOf(s3!.pids.slice(1)) };
}
/** The CPU the server and the S3 spent since `mark` (StepResult fields; the server's only with Kluis). */
function cpuSince(mark: { server: number; s3: number }, withServer = false): Pick<StepResult, 'serverCpuSeconds' | 's3CpuSeconds'> {
  const now = cpuMark();
  return { s3CpuSeconds: now.s3 - mark.s3, ...(withServer ? { serverCpuSeconds: now.server - mark.server } : {}) };
}

const s3env = { ...process.env, S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey };

// ------------------------------------------------------------------------------------------------ the tools

interface ToolRun {
  /** Uploads `dir` to the slot (w1/w2/w4) of this run's target; called again for W3 and the unchanged re-run. */
  upload(dir: string, slot: 'w1' | 'w2' | 'w4'): Promise<StepResult>;
  /** false: the tool has no notion of "unchanged" (raw puts everything again) */
  rerun: boolean;
  /** Whether the tool may read the generated W2/W4 folders in place (Kluis binds its folders, so it gets copies). */
  readsInPlace: boolean;
  cleanup(): Promise<void>;
}

const rawTool = async (run: number): Promise<ToolRun> => {
  const bucket = `raw-r${run}-${randomBytes(3).toString('hex')}`;
  await minio.makeBucket(bucket, 'us-east-1');
  return {
    rerun: false,
    readsInPlace: true,
    async upload(dir, slot) {
      const mark = cpuMark();
      const r = ensureOk(await runMeasured(process.execPath, [path.join(repoRoot, 'scripts/bench/lib/raw-put.mjs'), dir, bucket, slot], { env: s3env }), 'raw put');
      const cpu = cpuSince(mark);
      const out = JSON.parse(r.stdout) as { files: number; bytes: number };
      return { seconds: r.seconds, peakRss: r.peakRss, cpuSeconds: r.cpuSeconds, ...cpu, bytesUploaded: out.bytes, detail: out };
    },
    async cleanup() {
      dropBucket(bucket);
    },
  };
};

/** rclone's own count of bytes sent: the final stats (JSON log) or its "Transferred:" line. */
function rcloneBytes(r: Measured): number | null {
  let bytes: number | null = null;
  for (const line of r.stderr.split('\n')) {
    if (line.startsWith('{')) {
      try {
        const j = JSON.parse(line) as { stats?: { bytes?: number } };
        if (typeof j.stats?.bytes === 'number') bytes = j.stats.bytes;
      } catch {
        // not JSON
      }
    }
  }
  if (bytes !== null) return bytes;
  const units: Record<string, number> = { B: 1, Byte: 1, Bytes: 1, KiB: KiB, MiB: MiB, GiB: GiB, TiB: 1024 * GiB, k: KiB, M: MiB, G: GiB };
  const m = [...r.stderr.matchAll(/Transferred:\s+([\d.]+)\s*(\w+)\s*\//g)].pop();
  return m ? Math.round(Number(m[1]) * (units[m[2]!] ?? NaN)) : null;
}

const rcloneTool = async (run: number): Promise<ToolRun> => {
  const bucket = `rclone-r${run}-${randomBytes(3).toString('hex')}`;
  await minio.makeBucket(bucket, 'us-east-1');
  const dir = path.join(tmp, `rclone-r${run}`);
  mkdirSync(dir, { recursive: true });
  const conf = path.join(dir, 'rclone.conf');
  const obscured = spawnSync('rclone', ['obscure', 'kluis bench crypt password'], { encoding: 'utf8' }).stdout.trim();
  const salt = spawnSync('rclone', ['obscure', 'kluis bench crypt salt'], { encoding: 'utf8' }).stdout.trim();
  writeFileSync(conf, [
    '[s3]', 'type = s3', 'provider = Ceph', `endpoint = ${s3!.endpoint}`, `access_key_id = ${s3!.accessKey}`, `secret_access_key = ${s3!.secretKey}`,
    'region = us-east-1', 'force_path_style = true', '',
    '[crypt]', 'type = crypt', `remote = s3:${bucket}`, `password = ${obscured}`, `password2 = ${salt}`, '',
  ].join('\n'), { mode: 0o600 });
  const env = { PATH: process.env.PATH ?? '', HOME: dir, RCLONE_CONFIG: conf };
  return {
    rerun: true,
    readsInPlace: true,
    async upload(src, slot) {
      const mark = cpuMark();
      const r = ensureOk(await runMeasured('rclone', ['sync', src, `crypt:${slot}`, '--transfers', '16', '--checkers', '16', '--stats-log-level', 'NOTICE', '--use-json-log'], { env }), 'rclone sync');
      return { seconds: r.seconds, peakRss: r.peakRss, cpuSeconds: r.cpuSeconds, ...cpuSince(mark), bytesUploaded: rcloneBytes(r) };
    },
    async cleanup() {
      dropBucket(bucket);
      rmSync(dir, { recursive: true, force: true });
    },
  };
};

const resticTool = async (run: number): Promise<ToolRun> => {
  const bucket = `restic-r${run}-${randomBytes(3).toString('hex')}`;
  const dir = path.join(tmp, `restic-r${run}`);
  mkdirSync(dir, { recursive: true });
  const env = {
    PATH: process.env.PATH ?? '', HOME: dir, RESTIC_REPOSITORY: `s3:${s3!.endpoint}/${bucket}`, RESTIC_PASSWORD: 'kluis bench restic password',
    RESTIC_CACHE_DIR: path.join(dir, 'cache'), AWS_ACCESS_KEY_ID: s3!.accessKey, AWS_SECRET_ACCESS_KEY: s3!.secretKey, AWS_DEFAULT_REGION: 'us-east-1',
  };
  ensureOk(await runMeasured('restic', ['init'], { env }), 'restic init');
  return {
    rerun: true,
    readsInPlace: true,
    async upload(src) {
      const before = await bucketBytes(bucket);
      const mark = cpuMark();
      const r = ensureOk(await runMeasured('restic', ['backup', '--json', '--host', 'bench', src], { env }), 'restic backup');
      const cpu = cpuSince(mark);
      const summary = r.stdout.split('\n').filter((l) => l.includes('"summary"')).map((l) => JSON.parse(l) as Record<string, unknown>).pop();
      return { seconds: r.seconds, peakRss: r.peakRss, cpuSeconds: r.cpuSeconds, ...cpu, bytesUploaded: (await bucketBytes(bucket)) - before, detail: summary };
    },
    async cleanup() {
      dropBucket(bucket);
      rmSync(dir, { recursive: true, force: true });
    },
  };
};

const GIVE_UP = { KLUIS_SYNC_GIVE_UP_MS: '120000' };

/** `kluis --json sync DIR --space S --once`, timed, with its peak RSS; throws on a failed run. */
async function kluisOnce(c: SyncClient, timeoutMs = 60 * 60_000): Promise<{ report: SyncReport & { errors?: { path: string; reason: string }[] }; seconds: number; peakRss: number; cpuSeconds: number }> {
  const { proc, done } = spawnKluis(c.home, onceArgs(c), { timeoutMs, env: GIVE_UP });
  const peak = trackPeakRss(proc);
  const cpu = trackCpu(proc);
  const r = await done;
  const report = okJson<SyncReport & { errors?: { path: string; reason: string }[] }>(r, `kluis sync --once ${c.dir}`);
  for (const list of ['errors', 'refused', 'skipped'] as const) {
    const items = (report as unknown as Record<string, { path: string; reason: string }[] | undefined>)[list] ?? [];
    if (items.length) problems.push(`kluis sync ${c.dir}: ${items.length} ${list}, e.g. ${JSON.stringify(items[0])}`);
  }
  return { report, seconds: r.ms / 1000, peakRss: peak(), cpuSeconds: cpu() };
}

async function kluisSpace(env: SyncEnv, name: string, dir: string, members = [env.accounts[0]!]): Promise<SyncClient> {
  const space = await env.newSpace(members, name);
  return { ...space.clients[0]!, dir };
}

const kluisTool = async (run: number): Promise<ToolRun> => {
  const env = kluisEnv!;
  const clients = new Map<string, SyncClient>();
  /** the second member's client of the W1 space */
  let other: SyncClient | null = null;
  return {
    rerun: true,
    readsInPlace: false,
    async upload(dir, slot) {
      let c = clients.get(slot);
      if (!c) {
        const name = `bench ${slot} r${run} ${randomBytes(2).toString('hex')}`;
        if (slot === 'w1') {
          const space = await env.newSpace(env.accounts.slice(0, 2), name);
          c = { ...space.clients[0]!, dir };
          other = space.clients[1]!;
        } else c = await kluisSpace(env, name, dir);
        clients.set(slot, c);
      }
      const mark = cpuMark();
      const { report, seconds, peakRss, cpuSeconds } = await kluisOnce(c);
      const cpu = cpuSince(mark, true);
      // Untimed: the other client follows (W1: the whole file; W3: only what it lacks).
      const otherDownloaded = slot === 'w1' && other ? (await kluisOnce(other)).report.bytesDownloaded : undefined;
      return {
        seconds, peakRss, cpuSeconds, ...cpu, bytesUploaded: report.bytesUploaded, ...(otherDownloaded !== undefined ? { otherDownloaded } : {}),
        detail: { uploaded: report.uploaded, downloaded: report.downloaded, seq: report.seq, bytesUploaded: report.bytesUploaded, otherDownloaded },
      };
    },
    async cleanup() {
      // the spaces stay on the server (no space deletion here); only the local copies go
      if (other) rmSync(other.dir, { recursive: true, force: true });
    },
  };
};

const FACTORY: Record<ToolName, (run: number) => Promise<ToolRun>> = { raw: rawTool, rclone: rcloneTool, restic: resticTool, kluis: kluisTool };

// ------------------------------------------------------------------------------------------------ the W runs

if (TOOLS.includes('kluis')) {
  log('starting the Kluis server (KLUIS_STORAGE=minio on the same RGW), org and CLI accounts A, B...');
  kluisEnv = await startSyncEnv({ accounts: ['A', 'B'], storage: 'minio' });
  log(`  ${kluisEnv.url}`);
}

async function step(tool: ToolName, name: Step, run: number, fn: () => Promise<StepResult>): Promise<StepResult | null> {
  try {
    const r = await fn();
    ((results[tool] ??= {})[name] ??= []).push(r);
    log(`  ${tool.padEnd(6)} ${name.padEnd(8)} ${r.seconds.toFixed(2).padStart(8)} s  rss ${(r.peakRss / MB).toFixed(0).padStart(5)} MB${r.cpuSeconds !== undefined ? `  cpu ${r.cpuSeconds.toFixed(2)} s` : ''}${r.serverCpuSeconds !== undefined ? ` server ${r.serverCpuSeconds.toFixed(2)} s` : ''}${r.s3CpuSeconds !== undefined ? ` S3 ${r.s3CpuSeconds.toFixed(2)} s` : ''}${r.bytesUploaded !== null ? `  sent ${mib(r.bytesUploaded).toFixed(2)} MiB` : ''}${r.otherDownloaded !== undefined ? `  other client downloaded ${mib(r.otherDownloaded).toFixed(2)} MiB` : ''}`);
    return r;
  } catch (err) {
    fail(tool, name, err, run);
    return null;
  }
}

try {
  for (let run = 1; run <= RUNS; run++) {
    for (const tool of TOOLS) {
      log(`run ${run}: ${LABEL[tool]}   (${uptime()})`);
      let t: ToolRun;
      try {
        t = await FACTORY[tool](run);
      } catch (err) {
        fail(tool, 'setup', err, run);
        continue;
      }
      const base = path.join(workDir, `${tool}-r${run}`);
      try {
        if (WORKLOADS.has('w1')) {
          const w1 = path.join(base, 'w1');
          copyTree(W1.dir, w1);
          if (await step(tool, 'w1', run, () => t.upload(w1, 'w1'))) {
            overwriteMiddle(path.join(w1, 'big.bin'), SIZES.w1);
            await step(tool, 'w3', run, () => t.upload(w1, 'w1'));
          }
          rmSync(w1, { recursive: true, force: true });
        }
        if (WORKLOADS.has('w2')) {
          const w2 = t.readsInPlace ? W2.dir : path.join(base, 'w2');
          if (!t.readsInPlace) copyTree(W2.dir, w2);
          if ((await step(tool, 'w2', run, () => t.upload(w2, 'w2'))) && t.rerun) await step(tool, 'w2again', run, () => t.upload(w2, 'w2'));
        }
        if (WORKLOADS.has('w4')) {
          const w4 = t.readsInPlace ? W4.dir : path.join(base, 'w4');
          if (!t.readsInPlace) copyTree(W4.dir, w4);
          await step(tool, 'w4', run, () => t.upload(w4, 'w4'));
        }
      } finally {
        await t.cleanup().catch((err) => fail(tool, 'cleanup', err, run));
        rmSync(base, { recursive: true, force: true });
      }
    }
  }

  // ---------------------------------------------------------------------------------------------- Kluis extras
  if (kluisEnv) {
    const env = kluisEnv;
    log(`kluis: edit on A visible on B, two watching clients, ${SAMPLES} samples   (${uptime()})`);
    try {
      const space = await env.newSpace(env.accounts, `bench latency ${randomBytes(2).toString('hex')}`);
      const [a, b] = space.clients as [SyncClient, SyncClient];
      const files = Array.from({ length: SAMPLES }, (_, i) => `notities/nota-${String(i).padStart(2, '0')}.txt`);
      for (const f of files) write(a.dir, f, `begin ${f}\n`);
      await syncOnce(a);
      await syncOnce(b);
      const wa = watch(a, [], { timeoutMs: 30 * 60_000 });
      const wb = watch(b, [], { timeoutMs: 30 * 60_000 });
      const latencies: number[] = [];
      const missed: string[] = [];
      try {
        const idle = (e: { event?: string; state?: string }) => e.event === 'state' && e.state === 'idle';
        await wa.waitFor(idle, { timeoutMs: 60_000, what: 'A idle' });
        await wb.waitFor(idle, { timeoutMs: 60_000, what: 'B idle' });
        await sleep(1000);
        for (const [i, f] of files.entries()) {
          const content = `edit ${i} ${randomBytes(6).toString('hex')}\n`;
          const target = path.join(b.dir, ...f.split('/'));
          writeFileSync(path.join(a.dir, ...f.split('/')), content);
          const s = performance.now();
          for (;;) {
            let now = '';
            try {
              now = readFileSync(target, 'utf8');
            } catch {
              // being replaced
            }
            if (now === content) {
              latencies.push((performance.now() - s) / 1000);
              break;
            }
            if (performance.now() - s > 30_000) {
              missed.push(f);
              break;
            }
            await sleep(5);
          }
          log(`  sample ${i + 1}: ${latencies.length && !missed.includes(f) ? `${latencies[latencies.length - 1]!.toFixed(3)} s` : 'not visible after 30 s'}`);
          await sleep(700);
        }
      } finally {
        const [ra, rb] = await Promise.all([wa.stop(), wb.stop()]);
        for (const [who, r] of [['A', ra], ['B', rb]] as const) if (r.code !== 0) problems.push(`watching kluis sync on ${who} exited ${r.code} after SIGTERM: ${r.stderr.slice(-500)}`);
        const errs = [...wa.events, ...wb.events].filter((e) => e.event === 'failure' || (e.event === 'state' && e.state === 'error'));
        if (errs.length) problems.push(`watchers reported ${errs.length} error events, e.g. ${JSON.stringify(errs[0])}`);
      }
      if (missed.length) problems.push(`edit latency: ${missed.length} edits not visible on B within 30 s (${missed.slice(0, 3).join(', ')})`);
      extras.latency = { samples: latencies, missed, p50: quantile(latencies, 0.5), p95: quantile(latencies, 0.95) };
    } catch (err) {
      fail('kluis', 'latency', err);
    }

    if (HUNDRED_K) {
      log(`kluis: ${TINY_COUNT} tiny files, first sync then unchanged restarts   (${uptime()})`);
      try {
        t0 = performance.now();
        const tiny = generate('k100', path.join(genDir, 'k100'), manyFiles(TINY_COUNT, 100, 1000, 'txt'), `${TINY_COUNT} files of 100 bytes in 1,000 folders`);
        log(`  generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        const c = await kluisSpace(env, `bench 100k ${randomBytes(2).toString('hex')}`, tiny.dir);
        const first = await kluisOnce(c);
        log(`  first sync ${first.seconds.toFixed(1)} s (${(TINY_COUNT / first.seconds).toFixed(0)} files/s), rss ${(first.peakRss / MB).toFixed(0)} MB, uploaded ${first.report.uploaded}`);
        // `uploaded` counts the 1,000 folders too
        if (first.report.uploaded < TINY_COUNT) problems.push(`100k first sync uploaded ${first.report.uploaded} entries, fewer than the ${TINY_COUNT} files`);
        const restarts: { seconds: number; peakRss: number; changed: number }[] = [];
        for (let i = 0; i < RUNS; i++) {
          const again = await kluisOnce(c);
          restarts.push({ seconds: again.seconds, peakRss: again.peakRss, changed: changed(again.report) });
          log(`  unchanged restart ${again.seconds.toFixed(2)} s, rss ${(again.peakRss / MB).toFixed(0)} MB, changed ${changed(again.report)}`);
          if (changed(again.report) !== 0) problems.push(`100k unchanged restart changed ${changed(again.report)} things: ${JSON.stringify({ ...again.report, conflicts: again.report.conflicts.slice(0, 3) })}`);
        }
        extras.hundredK = { files: TINY_COUNT, first: { seconds: first.seconds, peakRss: first.peakRss, filesPerSecond: TINY_COUNT / first.seconds }, restarts, restartSeconds: median(restarts.map((r) => r.seconds)) };
      } catch (err) {
        fail('kluis', '100k', err);
      }
      rmSync(path.join(genDir, 'k100'), { recursive: true, force: true });
    }

    if (BIG) {
      log(`kluis: one 4 GiB file, peak RSS   (${uptime()})`);
      try {
        t0 = performance.now();
        const big = generate('big4', path.join(genDir, 'big4'), singleFile('groot.bin', BIG_BYTES), 'one 4 GiB file');
        log(`  generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        const c = await kluisSpace(env, `bench 4 GiB ${randomBytes(2).toString('hex')}`, big.dir);
        const r = await kluisOnce(c);
        log(`  ${r.seconds.toFixed(1)} s (${(mib(BIG_BYTES) / r.seconds).toFixed(1)} MiB/s), peak RSS ${(r.peakRss / MB).toFixed(0)} MB`);
        extras.big = { bytes: BIG_BYTES, seconds: r.seconds, mibPerSecond: mib(BIG_BYTES) / r.seconds, peakRss: r.peakRss, bytesUploaded: r.report.bytesUploaded };
      } catch (err) {
        fail('kluis', '4 GiB', err);
      }
      rmSync(path.join(genDir, 'big4'), { recursive: true, force: true });
    }
  }
} finally {
  if (kluisEnv) {
    await kluisEnv.srv.stop().catch(() => undefined);
    rmSync(kluisEnv.root, { recursive: true, force: true });
  }
  await s3.stop();
}

// ------------------------------------------------------------------------------------------------ the table

const finished = { date: new Date().toISOString(), uptime: uptime() };
const med = (tool: ToolName, s: Step, f: (r: StepResult) => number | null): number => {
  const xs = (results[tool]?.[s] ?? []).map(f).filter((x): x is number => x !== null && Number.isFinite(x));
  return median(xs);
};
const fig = {
  w1MiBs: (t: ToolName) => mib(SIZES.w1) / med(t, 'w1', (r) => r.seconds),
  w2FilesPerSecond: (t: ToolName) => SIZES.w2 / med(t, 'w2', (r) => r.seconds),
  w2Again: (t: ToolName) => med(t, 'w2again', (r) => r.seconds),
  w3Sent: (t: ToolName) => med(t, 'w3', (r) => r.bytesUploaded),
  w3Seconds: (t: ToolName) => med(t, 'w3', (r) => r.seconds),
  w3OtherDownloaded: (t: ToolName) => med(t, 'w3', (r) => r.otherDownloaded ?? null),
  w4MiBs: (t: ToolName) => mib(W4.bytes) / med(t, 'w4', (r) => r.seconds),
  rss: (t: ToolName) => Math.max(...(['w1', 'w3', 'w2', 'w2again', 'w4'] as Step[]).map((s) => med(t, s, (r) => r.peakRss)).filter(Number.isFinite)),
};
/** The memory goals of the sync issue, per workload (W3 and W4 have none of their own). */
const RSS_ROWS: { step: Step; workload: 'w1' | 'w2' | 'w4'; label: string; goalMB?: number }[] = [
  { step: 'w1', workload: 'w1', label: 'W1', goalMB: 130 },
  { step: 'w2', workload: 'w2', label: 'W2', goalMB: 100 },
  { step: 'w3', workload: 'w1', label: 'W3' },
  { step: 'w4', workload: 'w4', label: 'W4' },
];
const has = (t: ToolName) => TOOLS.includes(t);
const v = (t: ToolName, f: (t: ToolName) => number) => (has(t) ? f(t) : NaN);
const raw1 = v('raw', fig.w1MiBs);
const latency = extras.latency as { p50: number; p95: number } | undefined;
const hundredK = extras.hundredK as { restartSeconds: number; first: { peakRss: number; filesPerSecond: number }; restarts: { peakRss: number }[] } | undefined;
const big = extras.big as { peakRss: number } | undefined;

interface Figure { figure: string; values: Partial<Record<ToolName, number>>; digits: number; goal: string; met?: boolean }
const k = (f: (t: ToolName) => number) => v('kluis', f);
const figures: Figure[] = [
  ...(WORKLOADS.has('w1') ? [
    { figure: `W1 ${mib(SIZES.w1)} MiB file: MiB/s`, values: Object.fromEntries(TOOLS.map((t) => [t, fig.w1MiBs(t)])), digits: 1, goal: '>= 0.95x raw, > rclone crypt', met: k(fig.w1MiBs) >= 0.95 * raw1 && !(k(fig.w1MiBs) <= v('rclone', fig.w1MiBs)) },
    { figure: 'W1 ratio to raw', values: Object.fromEntries(TOOLS.map((t) => [t, fig.w1MiBs(t) / raw1])), digits: 2, goal: '>= 0.95' },
  ] : []),
  ...(WORKLOADS.has('w2') ? [
    { figure: `W2 ${SIZES.w2} x 4 KiB: files/s`, values: Object.fromEntries(TOOLS.map((t) => [t, fig.w2FilesPerSecond(t)])), digits: 0, goal: '>= 4,500, > restic', met: k(fig.w2FilesPerSecond) >= 4500 && !(k(fig.w2FilesPerSecond) <= v('restic', fig.w2FilesPerSecond)) },
    { figure: 'W2 unchanged re-run: s', values: Object.fromEntries(TOOLS.filter((t) => t !== 'raw').map((t) => [t, fig.w2Again(t)])), digits: 2, goal: '< 0.8 s', met: k(fig.w2Again) < 0.8 },
  ] : []),
  ...(WORKLOADS.has('w1') ? [
    { figure: 'W3 1 MiB edited in W1: MiB sent', values: Object.fromEntries(TOOLS.map((t) => [t, mib(fig.w3Sent(t))])), digits: 2, goal: '<= 2.5 MiB', met: mib(k(fig.w3Sent)) <= 2.5 },
    { figure: 'W3 wall time: s', values: Object.fromEntries(TOOLS.map((t) => [t, fig.w3Seconds(t)])), digits: 2, goal: '< 3 s', met: k(fig.w3Seconds) < 3 },
    { figure: 'W3 wall time ratio to raw', values: Object.fromEntries(TOOLS.map((t) => [t, fig.w3Seconds(t) / v('raw', fig.w3Seconds)])), digits: 2, goal: '' },
    ...(has('kluis') ? [{ figure: 'the other client after W3: MiB downloaded', values: { kluis: mib(fig.w3OtherDownloaded('kluis')) }, digits: 2, goal: '<= 2.5 MiB', met: mib(fig.w3OtherDownloaded('kluis')) <= 2.5 }] : []),
  ] : []),
  ...(WORKLOADS.has('w4') ? [
    { figure: `W4 ${SIZES.w4Files} office files, ${mib(W4.bytes)} MiB: MiB/s`, values: Object.fromEntries(TOOLS.map((t) => [t, fig.w4MiBs(t)])), digits: 1, goal: '>= 0.95x raw', met: k(fig.w4MiBs) >= 0.95 * v('raw', fig.w4MiBs) },
    { figure: 'W4 ratio to raw', values: Object.fromEntries(TOOLS.map((t) => [t, fig.w4MiBs(t) / v('raw', fig.w4MiBs)])), digits: 2, goal: '>= 0.95' },
  ] : []),
  { figure: 'client peak RSS W1-W4: MB', values: Object.fromEntries(TOOLS.map((t) => [t, fig.rss(t) / MB])), digits: 0, goal: '' },
  // One row per workload (median over runs), so each memory goal has its own row.
  ...RSS_ROWS.filter((r) => WORKLOADS.has(r.workload)).map(({ step: s, label, goalMB }) => {
    const kluisMB = k((t) => med(t, s, (r) => r.peakRss)) / MB;
    return { figure: `client peak RSS ${label}: MB`, values: Object.fromEntries(TOOLS.map((t) => [t, med(t, s, (r) => r.peakRss) / MB])), digits: 0, goal: goalMB ? `< ${goalMB} MB` : '', ...(goalMB ? { met: kluisMB < goalMB } : {}) };
  }),
];
// Kluis client CPU seconds per step (median over runs) and their sum: the figure the crypto backends move.
const cpuSteps = (['w1', 'w3', 'w2', 'w2again', 'w4'] as Step[]).filter((s) => results.kluis?.[s]?.length).map((s) => [s, med('kluis', s, (r) => r.cpuSeconds ?? null)] as const);
if (cpuSteps.length) {
  figures.push({ figure: `client CPU s (${cpuSteps.map(([s, x]) => `${s} ${x.toFixed(2)}`).join(', ')})`, values: { kluis: cpuSteps.reduce((sum, [, x]) => sum + x, 0) }, digits: 2, goal: '' });
}
// Where the CPU of each workload goes (median over runs): the client, the Kluis server, the S3 (radosgw + ceph-osd).
const CPU_ROWS: { step: Step; workload: 'w1' | 'w2' | 'w4'; label: string }[] = [
  { step: 'w1', workload: 'w1', label: 'W1' }, { step: 'w3', workload: 'w1', label: 'W3' }, { step: 'w2', workload: 'w2', label: 'W2' }, { step: 'w4', workload: 'w4', label: 'W4' },
];
for (const { step: s, label } of CPU_ROWS.filter((r) => WORKLOADS.has(r.workload))) {
  const part = (f: (r: StepResult) => number | undefined) => (t: ToolName) => med(t, s, (r) => f(r) ?? null);
  const client = part((r) => r.cpuSeconds);
  const server = part((r) => r.serverCpuSeconds);
  const store = part((r) => r.s3CpuSeconds);
  const row = (name: string, f: (t: ToolName) => number, tools: readonly ToolName[] = TOOLS) => ({ figure: `${label} CPU s: ${name}`, values: Object.fromEntries(tools.map((t) => [t, f(t)])), digits: 2, goal: '' });
  figures.push(
    row('client', client),
    ...(has('kluis') ? [row('server', server, ['kluis'] as const)] : []),
    row('S3 (radosgw + ceph-osd)', store),
    row('total', (t) => client(t) + store(t) + (t === 'kluis' ? server(t) : 0)),
  );
}
if (big) figures.push({ figure: 'peak RSS syncing one 4 GiB file: MB', values: { kluis: big.peakRss / MB }, digits: 0, goal: '< 150 MB', met: big.peakRss / MB < 150 });
if (hundredK) {
  figures.push({ figure: '100,000 unchanged files, restart: s', values: { kluis: hundredK.restartSeconds }, digits: 2, goal: '< 10 s', met: hundredK.restartSeconds < 10 });
  figures.push({ figure: '100,000 tiny files, first sync: files/s', values: { kluis: hundredK.first.filesPerSecond }, digits: 0, goal: '' });
  figures.push({ figure: '100,000 tiny files, peak RSS first sync / restart: MB', values: { kluis: hundredK.first.peakRss / MB }, digits: 0, goal: `first sync < 400 MB (restart: ${(median(hundredK.restarts.map((r) => r.peakRss)) / MB).toFixed(0)} MB)`, met: hundredK.first.peakRss / MB < 400 });
}
if (latency) {
  figures.push({ figure: 'edit on A visible on B, p50: s', values: { kluis: latency.p50 }, digits: 3, goal: '< 0.5 s', met: latency.p50 < 0.5 });
  figures.push({ figure: 'edit on A visible on B, p95: s', values: { kluis: latency.p95 }, digits: 3, goal: '< 1 s', met: latency.p95 < 1 });
}

const cell = (x: number | undefined, digits: number) => (x === undefined ? '' : Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'FAIL');
const cols = TOOL_NAMES.filter((t) => has(t));
const lines = [
  `| figure | ${cols.map((t) => LABEL[t]).join(' | ')} | goal (kluis) |`,
  `|---|${cols.map(() => '---:').join('|')}|---|`,
  ...figures.map((f) => {
    const goal = f.goal ? `${f.goal}${has('kluis') && f.met !== undefined ? (f.met ? ' ok' : ' MISSED') : ''}` : '';
    return `| ${f.figure} | ${cols.map((t) => (t === 'raw' && f.figure.startsWith('W2 unchanged') ? 'n/a' : cell(f.values[t], f.digits))).join(' | ')} | ${goal} |`;
  }),
];
console.log(lines.join('\n'));
console.log(`\nload: start ${started.uptime}\n      end   ${finished.uptime}`);
if (failures.length) console.log(`\nfailed:\n${failures.map((f) => `- ${f.tool} ${f.step}${f.run ? ` (run ${f.run})` : ''}: ${f.error.split('\n')[0]}`).join('\n')}`);
if (problems.length) console.log(`\nproblems seen:\n${problems.map((p) => `- ${p.split('\n')[0]}`).join('\n')}`);

mkdirSync(path.join(repoRoot, 'bench-results'), { recursive: true });
writeFileSync(path.join(repoRoot, 'bench-results/sync.json'), JSON.stringify({
  bench: 'sync', started, finished, quick: QUICK, runs: RUNS, tools: TOOLS, versions, cpus: os.cpus().length, cpu: os.cpus()[0]?.model,
  s3: 'Ceph RGW (memstore OSD, beast tcp_nodelay=1) on 127.0.0.1',
  workloads: {
    w1: { what: W1.what, bytes: W1.bytes }, w2: { what: W2.what, bytes: W2.bytes }, w3: { what: '1 MiB overwritten in the middle of W1, after W1 is uploaded' },
    w4: { what: W4.what, bytes: W4.bytes, mix: mixSummary(W4.files) },
  },
  figures: figures.map((f) => ({ ...f, values: Object.fromEntries(Object.entries(f.values).map(([t, x]) => [t, Number.isFinite(x) ? x : null])) })),
  steps: results, extras, failures, problems,
}, null, 2) + '\n');
console.log('wrote bench-results/sync.json');
