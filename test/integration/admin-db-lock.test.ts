// kluis-admin beside a server that holds sqlite's write lock for a while (its incident round or start-up checkpoint
// on a loaded machine): the tool waits for the lock instead of failing, and a database it cannot open makes it exit,
// never hang. Both were seen in CI: a lock held over 5 s made `org create` print an error and then never exit.
import test from 'ava';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { admin, enterpriseNumber } from '../helpers/api.js';

const require = createRequire(import.meta.url);
const sqlite3 = require('sqlite3') as { Database: new (file: string) => { exec(sql: string, cb: (err: Error | null) => void): void; close(cb: () => void): void } };
const cli = path.resolve('server/dist/admin/cli.js');

function runAdmin(dataDir: string, args: string[]): Promise<{ code: number | null; stdout: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, '--json', ...args], { env: { PATH: process.env.PATH ?? '', KLUIS_DATA_DIR: dataDir, KLUIS_ENV: 'test' }, timeout: 60_000 }, (err, stdout) => {
      resolve({ code: err ? (err.killed ? null : Number(err.code)) : 0, stdout, ms: Date.now() - t0 });
    });
  });
}

test('kluis-admin waits for a write lock another process holds for 8 s, then does its work', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kluis-lock-'));
  try {
    await admin(dir, ['org', 'list']); // creates and migrates the database
    const db = new sqlite3.Database(path.join(dir, 'kluis.sqlite3'));
    await new Promise<void>((resolve, reject) => db.exec('BEGIN IMMEDIATE', (err) => (err ? reject(err) : resolve())));
    const release = new Promise<void>((resolve) => setTimeout(() => db.exec('COMMIT', () => db.close(resolve)), 8000));
    const r = await runAdmin(dir, ['org', 'create', '--name', 'OCMW Wacht', '--enterprise-number', enterpriseNumber(), '--admin-email', 'wacht@example.be']);
    await release;
    t.is(r.code, 0, r.stdout);
    t.true(r.ms >= 6000, `answered after ${r.ms} ms, before the lock was released`);
    t.is(JSON.parse(r.stdout).email, 'wacht@example.be');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kluis-admin exits with one error when the database cannot be opened (it does not hang)', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kluis-lock-'));
  try {
    writeFileSync(path.join(dir, 'kluis.sqlite3'), 'this is not a database, but it is long enough to be read as one'.repeat(80), { mode: 0o600 });
    const r = await runAdmin(dir, ['org', 'list']);
    t.not(r.code, null, 'killed after 60 s: it hung');
    t.not(r.code, 0);
    // One JSON line: Knex's own warnings ("Acquire connection error") go to standard error, not into the JSON.
    const lines = r.stdout.trim().split('\n');
    t.is(lines.length, 1, r.stdout);
    t.regex(JSON.parse(lines[0]!).error.message, /cannot open the database/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a start that fails after the database opened (an untrustworthy signing key) closes its pools: the process ends by itself', async (t) => {
  // The first CI hang: the Merkle catch-up failed inside openServices and kluis-admin printed its error, then never
  // exited, its Knex pool's timer keeping it alive. No process.exit here: the script must end on its own.
  const dir = mkdtempSync(path.join(tmpdir(), 'kluis-lock-'));
  try {
    await admin(dir, ['org', 'list']);
    chmodSync(path.join(dir, 'audit-signing.key'), 0o644);
    const script = `import { openServices } from ${JSON.stringify(path.resolve('server/dist/services.js'))};
import { loadConfig } from ${JSON.stringify(path.resolve('server/dist/config.js'))};
import { pino } from 'pino';
await openServices(loadConfig(), pino({ level: 'silent' })).then(() => console.log('opened'), (err) => console.log('failed: ' + err.message));`;
    const r = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: path.resolve('server'), env: { PATH: process.env.PATH ?? '', KLUIS_DATA_DIR: dir, KLUIS_ENV: 'test' }, timeout: 60_000 }, (err, stdout) => {
        resolve({ code: err ? (err.killed ? null : Number(err.code)) : 0, stdout });
      });
    });
    t.not(r.code, null, 'killed after 60 s: something it opened kept it alive');
    t.regex(r.stdout, /^failed: .*audit-signing\.key: readable or writable by group or others/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
