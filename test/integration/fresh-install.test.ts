// The README's first command on a fresh clone, as a newcomer runs it: an empty HOME (no ~/.npmrc, no npm cache,
// no node-gyp headers) and a clean environment (nothing inherited from `npm test`, whose npm_config_* variables
// could carry a nodedir). This clones the last commit, so it checks what lands, not the working tree.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../helpers/server.js';

function cleanEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  const nodeBin = path.dirname(process.execPath);
  // Only a proxy passes through: a newcomer behind one has it in the environment, not in the repository.
  const proxies = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => /^(https?|no)_proxy$/i.test(k) && v !== undefined)) as Record<string, string>;
  return { PATH: [nodeBin, '/usr/local/bin', '/usr/bin', '/bin'].join(':'), HOME: home, LANG: 'C.UTF-8', ...proxies, ...extra };
}

test('fresh clone, empty HOME, clean environment: `npm install && npm start` builds sqlite3 and serves', async (t) => {
  t.timeout(20 * 60_000);
  const work = mkdtempSync(path.join(tmpdir(), 'kluis-fresh-'));
  const home = path.join(work, 'home');
  const clone = path.join(work, 'kluis');
  try {
    spawnSync('mkdir', ['-p', home]);
    const cloned = spawnSync('git', ['clone', '--quiet', '--no-hardlinks', repoRoot, clone], { encoding: 'utf8' });
    t.is(cloned.status, 0, cloned.stderr);

    const install = await runToEnd('npm', ['install'], clone, cleanEnv(home));
    t.is(install.code, 0, `npm install failed:\n${install.output.slice(-4000)}`);
    t.true(statSync(path.join(clone, 'node_modules/sqlite3/build/Release/node_sqlite3.node')).isFile());

    // `npm start` on a free port; it builds first, then prints the address it listens on.
    const start = spawn('npm', ['start'], { cwd: clone, env: cleanEnv(home, { KLUIS_PORT: '0' }), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    start.stdout.on('data', (d) => (out += d));
    start.stderr.on('data', (d) => (out += d));
    const exited = new Promise<void>((resolve) => start.on('exit', () => resolve()));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`npm start did not listen:\n${out.slice(-4000)}`)), 5 * 60_000);
        start.stdout.on('data', () => {
          const m = /listening on (http:\/\/\S+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        });
        start.on('exit', () => {
          clearTimeout(timer);
          reject(new Error(`npm start exited:\n${out.slice(-4000)}`));
        });
      });
      const res = await fetch(`${url}/healthz`);
      t.is(res.status, 200);
      t.deepEqual(await res.json(), { status: 'ok' });
    } finally {
      // npm start runs npm, sh and node: stop exactly that process group.
      if (start.exitCode === null) process.kill(-start.pid!, 'SIGTERM');
      await exited;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

function runToEnd(cmd: string, args: string[], cwd: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('exit', (code) => resolve({ code, output }));
  });
}
