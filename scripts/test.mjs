#!/usr/bin/env node
// Runs every ava suite and ends with one line `N passed, N failed` (ava's own summary lines differ).
// Before that it makes sure the system packages the suites need are present (installing only what is
// missing, and saying so), so `npm test` works on a fresh machine.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ensure = path.join(root, 'scripts', 'ensure-system.sh');
if (existsSync(ensure)) {
  const r = spawnSync('bash', [ensure], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) {
    console.error('system set-up for the tests failed (see above)');
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}

const args = ['--tap', ...process.argv.slice(2)];
const ava = spawn(process.execPath, [path.join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs'), ...args], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, FORCE_COLOR: '0' },
});

let passed = 0;
let failed = 0;
let summaryPass = null;
let summaryFail = null;
let buffer = '';
ava.stdout.setEncoding('utf8');
ava.stdout.on('data', (text) => {
  process.stdout.write(text);
  buffer += text;
  let nl;
  while ((nl = buffer.indexOf('\n')) >= 0) {
    const line = buffer.slice(0, nl);
    buffer = buffer.slice(nl + 1);
    if (/^ok \d+/.test(line)) passed++;
    else if (/^not ok \d+/.test(line)) failed++;
    const p = /^# pass (\d+)/.exec(line);
    if (p) summaryPass = Number(p[1]);
    const f = /^# fail (\d+)/.exec(line);
    if (f) summaryFail = Number(f[1]);
  }
});

ava.on('close', (code) => {
  const p = summaryPass ?? passed;
  let f = summaryFail ?? failed;
  // A crash (uncaught exception, timeout, no tests) must not read as green.
  if (code !== 0 && f === 0) f = 1;
  if (p + f === 0) f = 1;
  console.log(`${p} passed, ${f} failed`);
  process.exit(code === 0 && f === 0 ? 0 : 1);
});
