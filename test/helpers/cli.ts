// Drives the built `kluis` CLI (node desktop/dist/cli/kluis.mjs, the bundle `npm run build` makes with
// scripts/build-cli.mjs) for integration tests that need only a few clients on the fs-store server
// (test/helpers/sync-env.ts is the full multi-client harness on S3).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from './server.js';
import type { User } from './api.js';

export const CLI = path.join(repoRoot, 'desktop/dist/cli/kluis.mjs');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts `kluis ARGS` with its own KLUIS_HOME (KLUIS_KDF=min); returns the process and its completion. */
export function startCli(home: string, args: string[], stdin = '', env: Record<string, string> = {}): { proc: ChildProcess; done: Promise<CliRun>; output: () => string } {
  const proc = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', KLUIS_HOME: home, KLUIS_KDF: 'min', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d) => (stdout += d));
  proc.stderr!.on('data', (d) => (stderr += d));
  proc.stdin!.on('error', () => undefined);
  proc.stdin!.end(stdin);
  const done = new Promise<CliRun>((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { proc, done, output: () => stdout + stderr };
}

export function kluis(home: string, args: string[], stdin = '', env: Record<string, string> = {}): Promise<CliRun> {
  return startCli(home, args, stdin, env).done;
}

/** A fresh KLUIS_HOME logged in as `user` (signed up through test/helpers/api.ts). */
export async function cliHome(serverUrl: string, user: User, prefix = 'kluis-home-'): Promise<string> {
  const home = mkdtempSync(path.join(tmpdir(), prefix));
  const r = await kluis(home, ['login', '--server', serverUrl, '--email', user.email, '--password-stdin'], `${user.password}\n`);
  if (r.code !== 0) throw new Error(`kluis login failed: ${r.stderr}`);
  return home;
}
