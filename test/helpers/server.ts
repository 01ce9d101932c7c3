// Starts the real server (node server/dist/main.js) on a free port with a temp data dir, for integration tests.
//
// Engine: sqlite (the data dir's file) unless KLUIS_TEST_DB=postgres, set in the environment or by usePostgres()
// (helpers/postgres-suite.ts, which the pg-*.test.ts variants call): then every server gets a fresh database
// on this test process's throwaway PostgreSQL cluster (helpers/postgres.ts), remembered by data dir, so that a
// server restarted on the same data dir, kluis-admin (api.ts admin()) and a direct look (openServerDb) find it.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Knex } from 'knex';
import { openDatabase } from '../../server/dist/db/db.js';
import { sharedPostgres } from './postgres.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface RunningServer {
  url: string;
  dataDir: string;
  proc: ChildProcess;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

/** The engine the servers of this test process use. */
export function testEngine(): 'sqlite' | 'postgres' {
  return process.env.KLUIS_TEST_DB === 'postgres' ? 'postgres' : 'sqlite';
}

const databases = new Map<string, string>();

/** KLUIS_DATABASE_URL of the server on `dataDir` (created on first use under postgres); {} under sqlite. */
export async function databaseEnv(dataDir: string): Promise<{ KLUIS_DATABASE_URL?: string }> {
  if (testEngine() !== 'postgres') return {};
  const key = path.resolve(dataDir);
  let url = databases.get(key);
  if (!url) {
    url = await (await sharedPostgres()).createDatabase();
    databases.set(key, url);
  }
  return { KLUIS_DATABASE_URL: url };
}

/**
 * The server's database as the server opens it (bigints as numbers on both engines), not migrated by this call;
 * for tests that read or age rows behind the server's back. Destroy it after use.
 */
export async function openServerDb(dataDir: string): Promise<Knex> {
  const { KLUIS_DATABASE_URL: url } = await databaseEnv(dataDir);
  return openDatabase({ dataDir, migrate: false, ...(url ? { url } : {}) });
}

/** Spawns the server with KLUIS_PORT=0 and waits for its "listening on" line. */
export async function startServer(env: Record<string, string> = {}): Promise<RunningServer> {
  const dataDir = env.KLUIS_DATA_DIR ?? mkdtempSync(path.join(tmpdir(), 'kluis-srv-'));
  const database = env.KLUIS_DATABASE_URL ? {} : await databaseEnv(dataDir);
  const proc = spawn(process.execPath, [path.join(repoRoot, 'server/dist/main.js')], {
    env: { PATH: process.env.PATH ?? '', KLUIS_PORT: '0', KLUIS_ENV: 'test', KLUIS_LOG_LEVEL: 'warn', ...database, ...env, KLUIS_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => {
    running.delete(proc);
    resolve(code);
  }));
  const url = await new Promise<string>((resolve, reject) => {
    // Generous: on a loaded 2-core machine (several suites starting servers at once) a start took over 15 s.
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`server did not start within 60 s:\n${out}`));
    }, 60_000);
    const onData = () => {
      const m = /listening on (https?:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    proc.stdout!.on('data', onData);
    proc.on('exit', () => {
      clearTimeout(timer);
      reject(new Error(`server exited before listening:\n${out}`));
    });
  });
  return {
    url,
    dataDir,
    proc,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null) proc.kill(signal);
      const code = await exited;
      if (!env.KLUIS_DATA_DIR) rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}

/**
 * A second API node beside `first` (PostgreSQL only): a data dir of its own holding the first node's key seed (nodes
 * sign audit checkpoints with one key), the same database. Its stop() removes its data dir.
 */
export async function startSecondNode(first: RunningServer, env: Record<string, string> = {}): Promise<RunningServer> {
  const { KLUIS_DATABASE_URL } = await databaseEnv(first.dataDir);
  if (!KLUIS_DATABASE_URL) throw new Error('a second node needs PostgreSQL (KLUIS_TEST_DB=postgres)');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'kluis-node-'));
  copyFileSync(path.join(first.dataDir, 'audit-signing.key'), path.join(dataDir, 'audit-signing.key'));
  const node = await startServer({ ...env, KLUIS_DATA_DIR: dataDir, KLUIS_DATABASE_URL });
  return {
    ...node,
    async stop(signal) {
      const code = await node.stop(signal);
      rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}

/** Runs the server expecting it to refuse to start; resolves with its exit code and output. */
export async function runServerExpectingExit(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const proc = spawn(process.execPath, [path.join(repoRoot, 'server/dist/main.js')], {
    env: { PATH: process.env.PATH ?? '', KLUIS_PORT: '0', KLUIS_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  // Only a guard against a server that would start instead of stopping: on a loaded machine node alone may take 10 s to load.
  const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
  // 'close', not 'exit': the process may be gone before its last line has been read from the pipe (CI once saw the
  // exit code 2 with an empty output).
  const code = await new Promise<number | null>((resolve) => proc.on('close', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, output };
}
