// A real S3 endpoint on 127.0.0.1 for ava suites: Ceph radosgw started by scripts/s3/start-local-s3.sh
// (see that script and /work/shared/notes/local-s3.md). Starting one takes ~12 s and ~1.5 GB of memory, so:
//
//   - one cluster per test FILE: `startLocalS3()` is memoised per process (ava runs each file in its own
//     process), so every suite in a file that calls it shares one cluster; call it from `test.before`.
//   - `stop()` (from `test.after.always`) kills exactly the recorded processes and removes the temp dir.
//     If the test process exits without it, an 'exit' handler does the same; if the process is killed outright
//     (SIGKILL, ava timeout), the watchdog started with the cluster notices within a second and stops it.
//   - before resolving, one warm-up: a bucket, a small put and a multipart put (and their removal), because the
//     first bucket / object / multipart upload on a fresh cluster creates pools and takes 2–4 s each.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Client } from 'minio';

export interface LocalS3 {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  /** Temp dir holding the whole cluster (removed by stop). */
  dir: string;
  /** PIDs of ceph-mon, ceph-osd, radosgw. */
  pids: number[];
  /** Milliseconds the start script took, and the warm-up after it. */
  startMs: number;
  warmupMs: number;
  /** Stops the cluster and removes its dir; idempotent. */
  stop(): Promise<void>;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const startScript = path.join(root, 'scripts', 's3', 'start-local-s3.sh');
const stopScript = path.join(root, 'scripts', 's3', 'stop-local-s3.sh');

let current: Promise<LocalS3> | undefined;

/** The local S3 of this test process, started on first call (see the header). */
export function startLocalS3(): Promise<LocalS3> {
  if (!current) {
    current = boot();
    current.catch(() => {
      current = undefined;
    });
  }
  return current;
}

interface ScriptResult {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  pids: number[];
  dir: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function stopSync(dir: string): void {
  spawnSync('bash', [stopScript, dir], { stdio: 'ignore' });
}

async function startCluster(): Promise<{ info: ScriptResult; ms: number; onExit: () => void }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kluis-s3-'));
  const accessKey = `kluis${randomBytes(6).toString('hex')}`;
  const secretKey = randomBytes(20).toString('hex');
  const t0 = performance.now();
  // Registered before the start, so a test process that dies meanwhile still cleans up what was started.
  const onExit = () => stopSync(dir);
  process.once('exit', onExit);
  const r = await run('bash', [startScript, dir, accessKey, secretKey], { ...process.env, LOCAL_S3_OWNER_PID: String(process.pid) });
  const ms = performance.now() - t0;
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !line.startsWith('{')) {
    process.removeListener('exit', onExit);
    stopSync(dir);
    throw new Error(`start-local-s3.sh failed (exit ${r.code}):\n${r.stderr}`);
  }
  return { info: JSON.parse(line) as ScriptResult, ms, onExit };
}

async function warmUp(info: ScriptResult): Promise<void> {
  const url = new URL(info.endpoint);
  const client = new Client({
    endPoint: url.hostname,
    port: Number(url.port),
    useSSL: false,
    accessKey: info.accessKey,
    secretKey: info.secretKey,
    region: 'us-east-1',
    pathStyle: true,
    partSize: 5 * 1024 * 1024,
  });
  const bucket = `warmup-${randomBytes(4).toString('hex')}`;
  await client.makeBucket(bucket, 'us-east-1');
  await client.putObject(bucket, 'small', Buffer.from('warm-up'));
  // Above the client's part size, from a stream with its size: a multipart upload (creates the non-EC pool).
  const big = Buffer.alloc(6 * 1024 * 1024, 1);
  await client.putObject(bucket, 'multipart', Readable.from([big.subarray(0, 3 << 20), big.subarray(3 << 20)]), big.length);
  await client.removeObject(bucket, 'small');
  await client.removeObject(bucket, 'multipart');
  await client.removeBucket(bucket);
}

async function boot(): Promise<LocalS3> {
  let started;
  try {
    started = await startCluster();
  } catch (err) {
    // A fresh Ceph cluster very rarely fails to come up; one more try costs ~12 s and saves a red run.
    console.warn(`local S3: first start failed, retrying once: ${(err as Error).message}`);
    started = await startCluster();
  }
  const { info, ms, onExit } = started;
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      process.removeListener('exit', onExit);
      current = undefined;
      const r = await run('bash', [stopScript, info.dir], process.env);
      if (r.code !== 0) throw new Error(`stop-local-s3.sh failed (exit ${r.code}):\n${r.stderr}`);
    })();
    return stopped;
  };
  const t1 = performance.now();
  try {
    await warmUp(info);
  } catch (err) {
    await stop();
    throw err;
  }
  return { ...info, startMs: ms, warmupMs: performance.now() - t1, stop };
}
