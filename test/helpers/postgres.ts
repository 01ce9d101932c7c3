// A throwaway PostgreSQL for the tests: Debian's `postgresql` package (scripts/ensure-system.sh installs it), a
// cluster made by initdb in a temp dir, the server on a free loopback port with fsync off (nothing here must survive a
// crash of the machine), a database per Kluis server the tests start. stop() ends exactly the postgres process it
// started and removes the dir; a test process that dies kills it on exit.
//
// The Kluis servers connect as `kluis`, an ordinary role that owns its databases (as docs/operations.md sets it up),
// with a password, so that the URL the tests pass holds one and the tests can check that it never reaches a log.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export interface TestPostgres {
  /** The password of the `kluis` role (in every URL this cluster hands out). */
  readonly password: string;
  /** Creates an empty database owned by `kluis`; answers its URL. */
  createDatabase(): Promise<string>;
  /** Ends the postgres process this cluster started, and removes its directory. */
  stop(): Promise<void>;
}

/** /usr/lib/postgresql/<newest>/bin, where Debian puts initdb and postgres (they are not on PATH). */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v) && existsSync(path.join(root, v, 'bin', 'postgres'))) : [];
  if (versions.length === 0) throw new Error('PostgreSQL is not installed: run `bash scripts/ensure-system.sh` (Debian package postgresql)');
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0]!;
  return path.join(root, newest, 'bin');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** PostgreSQL refuses to run as root: then initdb and postgres run as the `postgres` user the package created. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const uid = id('-u');
  const gid = id('-g');
  if (!Number.isInteger(uid) || uid <= 0) throw new Error('running as root, and there is no `postgres` user to run PostgreSQL as');
  return { uid, gid };
}

/** Whether `pid` has ended (a zombie not yet reaped counts as ended: nothing is reaped inside an exit handler). */
function ended(pid: number | undefined): boolean {
  try {
    return pid === undefined || readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') === true;
  } catch {
    return true;
  }
}

const live = new Set<{ proc: ChildProcess; dir: string }>();
process.on('exit', () => {
  for (const c of live) {
    // Immediate shutdown: the process is leaving, so nothing can be awaited; wait (synchronously, up to 5 s) for the
    // postmaster to end before removing its directory, or it would write into it again.
    c.proc.kill('SIGQUIT');
    const until = Date.now() + 5000;
    while (!ended(c.proc.pid) && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    rmSync(c.dir, { recursive: true, force: true });
  }
});

const SUPERUSER = 'kluis_test_admin';

/** initdb + postgres on a free loopback port; resolves once it accepts connections. */
export async function startPostgres(): Promise<TestPostgres> {
  const bin = postgresBinDir();
  const user = runAs();
  const dir = mkdtempSync(path.join(tmpdir(), 'kluis-pg-'));
  const data = path.join(dir, 'data');
  const adminPassword = randomBytes(12).toString('hex');
  // A password with characters a URL must escape, so that the escaping is exercised too.
  const password = `pw/${randomBytes(9).toString('base64url')}@:`;
  writeFileSync(path.join(dir, 'pw'), `${adminPassword}\n`, { mode: 0o600 });
  if (user) {
    chownSync(dir, user.uid, user.gid);
    chownSync(path.join(dir, 'pw'), user.uid, user.gid);
  }
  const asUser = user ? { uid: user.uid, gid: user.gid } : {};
  const init = spawnSync(path.join(bin, 'initdb'), ['-D', data, '-U', SUPERUSER, `--pwfile=${path.join(dir, 'pw')}`, '-A', 'scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync'], { ...asUser, encoding: 'utf8' });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  }
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    // Speed over durability, and enough connections for a few servers at once (each pools up to 15).
    const proc = spawn(path.join(bin, 'postgres'), ['-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', dir,
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300', '-c', 'shared_buffers=32MB'], { ...asUser, stdio: ['ignore', 'ignore', 'pipe'] });
    const entry = { proc, dir };
    live.add(entry);
    let log = '';
    proc.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
    const exited = new Promise<void>((resolve) => proc.once('exit', () => {
      live.delete(entry);
      resolve();
    }));
    const adminUrl = `postgres://${SUPERUSER}:${adminPassword}@127.0.0.1:${port}/postgres`;
    try {
      await waitReady(adminUrl, proc, () => log);
      await query(adminUrl, `CREATE ROLE kluis LOGIN PASSWORD ${pg.escapeLiteral(password)}`);
    } catch (err) {
      lastErr = err;
      proc.kill('SIGQUIT');
      await exited;
      continue; // most likely the port was taken meanwhile
    }
    let n = 0;
    return {
      password,
      async createDatabase() {
        const name = `kluis_${process.pid}_${++n}`;
        await query(adminUrl, `CREATE DATABASE ${name} OWNER kluis`);
        return `postgres://kluis:${encodeURIComponent(password)}@127.0.0.1:${port}/${name}`;
      },
      async stop() {
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill('SIGINT'); // fast shutdown: ends the sessions of servers still connected
          const timer = setTimeout(() => proc.kill('SIGQUIT'), 10_000);
          await exited;
          clearTimeout(timer);
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastErr;
}

async function query(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

async function waitReady(url: string, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`postgres exited: ${log()}`);
    try {
      await query(url, 'SELECT 1');
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`postgres did not start: ${(err as Error).message}\n${log()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

let shared: Promise<TestPostgres> | undefined;

/** The cluster of this test process, started on first use (stop it with stopSharedPostgres, e.g. in test.after.always). */
export function sharedPostgres(): Promise<TestPostgres> {
  shared ??= startPostgres();
  return shared;
}

export async function stopSharedPostgres(): Promise<void> {
  const s = shared;
  shared = undefined;
  if (s) await (await s).stop();
}

