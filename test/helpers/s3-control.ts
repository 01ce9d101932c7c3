// Takes the S3 endpoint of a local cluster (./s3.ts) away and brings it back, for outage tests: only the gateway
// (radosgw) is stopped — the monitor and the memstore OSD keep running, so every object survives.
//
// The restarted gateway is started exactly as scripts/s3/start-local-s3.sh starts it (same ceph.conf, so the same
// port), and its PID is appended to DIR/pids: scripts/s3/stop-local-s3.sh (LocalS3.stop, the exit handler and the
// watchdog) then stops it like the original daemons.
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { LocalS3 } from './s3.js';

const current = new Map<string, number>();

/** Running (a zombie, whose parent has not reaped it yet, counts as gone). */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

function gatewayPid(s3: LocalS3): number {
  return current.get(s3.dir) ?? s3.pids[2]!;
}

/** Kills the gateway (SIGKILL by default) and waits until it is gone and the endpoint refuses connections. */
export async function stopGateway(s3: LocalS3, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  const pid = gatewayPid(s3);
  if (alive(pid)) process.kill(pid, signal);
  const deadline = Date.now() + 15_000;
  while (alive(pid) || (await answers(s3.endpoint))) {
    if (Date.now() > deadline) throw new Error(`radosgw ${pid} did not stop`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts the gateway again on the same port and waits until it answers HTTP (up to 60 s). */
export async function startGateway(s3: LocalS3): Promise<void> {
  const log = openSync(path.join(s3.dir, 'log', 'client.rgw.restart.out'), 'a');
  const child = spawn('radosgw', ['-c', path.join(s3.dir, 'ceph.conf'), '-n', 'client.rgw', '-f'], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  const pid = child.pid!;
  current.set(s3.dir, pid);
  appendFileSync(path.join(s3.dir, 'pids'), `${pid}\n`);
  const deadline = Date.now() + 60_000;
  while (!(await answers(s3.endpoint))) {
    if (!alive(pid)) throw new Error(`radosgw exited at restart (see ${s3.dir}/log)`);
    if (Date.now() > deadline) throw new Error('radosgw did not answer within 60 s of its restart');
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function answers(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(endpoint, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}
