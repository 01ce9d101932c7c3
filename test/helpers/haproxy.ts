// Debian's HAProxy in front of API nodes, for the scale-out suites. It runs the configuration printed in
// docs/operations.md ("Several API nodes behind HAProxy"), taken from the document itself, so the documented file is the
// tested one; only its variables differ (listen address, certificate, node addresses). TLS is real: a throw-away
// certificate for 127.0.0.1 made with openssl; clients trust it through NODE_EXTRA_CA_CERTS (`caFile`).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from './server.js';

/** Debian installs it in /usr/sbin, which a non-root PATH may lack. */
const HAPROXY = existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : 'haproxy';

export interface Haproxy {
  /** `https://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** The certificate clients must trust (PEM). */
  caFile: string;
  proc: ChildProcess;
  /** Everything HAProxy printed (its warnings and alerts). */
  output(): string;
  stop(): Promise<void>;
}

/** The configuration block of docs/operations.md (between its haproxy.cfg markers). */
export function documentedConfig(): string {
  const doc = readFileSync(path.join(repoRoot, 'docs/operations.md'), 'utf8');
  const m = /<!-- haproxy\.cfg begin -->\s*```haproxy\n([\s\S]*?)```\s*<!-- haproxy\.cfg end -->/.exec(doc);
  if (!m) throw new Error('docs/operations.md has no haproxy.cfg block');
  return m[1]!;
}

/** A free TCP port on 127.0.0.1 (free when asked; HAProxy binds it a moment later). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Starts HAProxy on `port` (pick it with freePort) in front of `nodes` (`http://127.0.0.1:P` URLs). */
export async function startHaproxy(port: number, nodes: string[]): Promise<Haproxy> {
  if (nodes.length !== 2) throw new Error('the documented configuration has two nodes');
  const dir = mkdtempSync(path.join(tmpdir(), 'kluis-haproxy-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`openssl: ${made.stderr}`);
  const pem = path.join(dir, 'kluis.pem');
  writeFileSync(pem, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'), { mode: 0o600 });
  const cfg = path.join(dir, 'haproxy.cfg');
  writeFileSync(cfg, documentedConfig());
  const env = {
    PATH: process.env.PATH ?? '',
    KLUIS_LISTEN: `127.0.0.1:${port}`,
    KLUIS_TLS_PEM: pem,
    KLUIS_NODE1: new URL(nodes[0]!).host,
    KLUIS_NODE2: new URL(nodes[1]!).host,
  };
  const check = spawnSync(HAPROXY, ['-c', '-f', cfg], { env, encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy -c refused the documented configuration:\n${check.stdout}${check.stderr}`);
  // -db: stay in the foreground (the test stops exactly this process); -W: master-worker, as systemd runs it.
  const proc = spawn(HAPROXY, ['-W', '-db', '-f', cfg], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Ready when it accepts connections.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) {
      await stop();
      throw new Error(`haproxy exited: ${out}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`haproxy did not listen on ${port}: ${out}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { url: `https://127.0.0.1:${port}`, port, caFile: cert, proc, output: () => out, stop };
}
