// Child processes for scripts/bench/sync.ts: wall time and peak RSS (VmHWM from /proc/PID/status, polled every
// 50 ms: the high-water mark only grows, so the last reading misses at most the final 50 ms of the process), and
// CPU seconds (utime + stime of /proc/PID/stat, all threads, polled alike: the last 50 ms of CPU can be missed;
// for long-lived processes such as the server and the S3 daemons, read before and after a step: exact).
// Every process started here is SIGKILLed if the bench exits early (Ctrl-C, a thrown error).
import { execFile, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

const live = new Set<ChildProcess>();
process.on('exit', () => live.forEach((p) => p.kill('SIGKILL')));

/** VmHWM of a live process in bytes, or 0 when it cannot be read (gone, zombie). */
export function vmHwm(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** User + system CPU seconds of a live process, or null when they cannot be read (gone, zombie, not Linux). */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // after "pid (comm) " the fields start at proc(5)'s field 3 (state): utime is field 14, stime field 15
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/** Summed CPU seconds of live processes (a process that cannot be read counts 0): take deltas around a step. */
export function cpuSecondsOf(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0);
}

/** Starts polling the CPU seconds of `proc`; the returned function gives the last value read (0 if none). */
export function trackCpu(proc: ChildProcess): () => number {
  let last = 0;
  const poll = () => {
    const s = proc.pid === undefined ? null : cpuSeconds(proc.pid);
    if (s !== null) last = s;
  };
  poll();
  const timer = setInterval(poll, 50);
  proc.once('exit', () => clearInterval(timer));
  return () => last;
}

/** Starts polling the peak RSS of `proc`; the returned function gives the highest value seen (and keeps working after exit). */
export function trackPeakRss(proc: ChildProcess): () => number {
  let peak = 0;
  const poll = () => {
    if (proc.pid !== undefined) peak = Math.max(peak, vmHwm(proc.pid));
  };
  poll();
  const timer = setInterval(poll, 50);
  proc.once('exit', () => clearInterval(timer));
  return () => peak;
}

export interface Measured {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
  peakRss: number;
  /** user + system CPU seconds of the process (polled like the peak RSS; its children not included) */
  cpuSeconds: number;
  timedOut: boolean;
}

/** Runs `cmd args` to completion (stdin closed), timing it and tracking its peak RSS. */
export function runMeasured(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Measured> {
  const t0 = performance.now();
  const timeout = options.timeoutMs ?? 30 * 60_000;
  return new Promise((resolve) => {
    const proc = execFile(cmd, args, { env: options.env ?? process.env, cwd: options.cwd, timeout, killSignal: 'SIGKILL', maxBuffer: 512 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      live.delete(proc);
      const seconds = (performance.now() - t0) / 1000;
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, signal: (err?.signal as NodeJS.Signals | undefined) ?? null, stdout, stderr: stderr || (err && code === null ? err.message : ''), seconds, peakRss: peak(), cpuSeconds: cpu(), timedOut: Boolean(err?.killed) && seconds * 1000 >= timeout });
    });
    live.add(proc);
    proc.stdin?.end();
    const peak = trackPeakRss(proc);
    const cpu = trackCpu(proc);
  });
}

/** Throws with the tail of the output unless the run exited 0. */
export function ensureOk(r: Measured, what: string): Measured {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}${r.signal ? ` (${r.signal})` : ''}${r.timedOut ? ' (timed out)' : ''}: ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join(' | ')}`);
  return r;
}

/** Makes sure a Debian-packaged command is installed, installing it with apt-get when missing (said on stdout). */
export function ensureDebianTool(command: string, pkg = command): void {
  if (spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0) return;
  console.log(`${command} not found: installing the Debian package '${pkg}' with apt-get`);
  const install = () => spawnSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
  if (!install()) {
    spawnSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (!install()) throw new Error(`apt-get install ${pkg} failed`);
  }
}

/** First line of `cmd version` (for the JSON). */
export function versionOf(cmd: string, args = ['version']): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return (r.stdout || r.stderr || '').split('\n')[0]!.trim();
}
