// CPU time per thread of given processes, from /proc/PID/task/TID/stat (utime + stime, in clock ticks of 10 ms on
// Linux): taken before and after a measurement, the difference says which thread spent what. The browser benchmarks
// use it to split a Chromium renderer's CPU into its main thread and its dedicated workers (threads named
// "DedicatedWorker thread"), beside the network process and the server, on a machine whose cores are shared.
import { readdirSync, readFileSync } from 'node:fs';

const TICK_SECONDS = 0.01;

/** CPU seconds so far of each live thread of `pid`, keyed by "pid/tid", with the thread's name (comm). */
export function threadCpu(pid: number): Map<string, { name: string; seconds: number; system: number }> {
  const out = new Map<string, { name: string; seconds: number; system: number }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // "tid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
      const close = stat.lastIndexOf(')');
      const name = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      // fields[0] is state (field 3); utime and stime are fields 14 and 15.
      out.set(`${pid}/${tid}`, { name, seconds: (Number(fields[11]) + Number(fields[12])) * TICK_SECONDS, system: Number(fields[12]) * TICK_SECONDS });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

export type CpuSnapshot = Map<string, { group: string; seconds: number; system: number }>;

/** One snapshot of processes, each thread put in a group by `group(label, threadName, isMainThread)`. */
export function cpuSnapshot(processes: { pid: number; label: string }[], group: (label: string, thread: string, main: boolean) => string): CpuSnapshot {
  const snap: CpuSnapshot = new Map();
  for (const { pid, label } of processes) {
    for (const [key, t] of threadCpu(pid)) snap.set(key, { group: group(label, t.name, key === `${pid}/${pid}`), seconds: t.seconds, system: t.system });
  }
  return snap;
}

/**
 * CPU seconds per group between two snapshots (threads that started meanwhile count from zero), and under
 * "<group> (kernel)" the part spent in the kernel (page faults of fresh buffers, I/O, scheduling).
 */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, t] of after) {
    const was = before.get(key);
    out[t.group] = (out[t.group] ?? 0) + Math.max(0, t.seconds - (was?.seconds ?? 0));
    const kernel = `${t.group} (kernel)`;
    out[kernel] = (out[kernel] ?? 0) + Math.max(0, t.system - (was?.system ?? 0));
  }
  return out;
}
