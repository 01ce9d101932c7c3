// Controlling a running `kluis sync`: pause and resume by signal, the bandwidth limit, one engine per folder, one
// space per folder, `kluis status`, a clean stop on SIGTERM, and a viewer whose local changes are not uploaded.
import test from 'ava';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, call, newColleague, newOrg, newSpace, type User } from '../helpers/api.js';
import { CLI, cliHome, kluis, startCli } from '../helpers/cli.js';

let server: RunningServer;
const temps: string[] = [];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function tmp(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  temps.push(d);
  return d;
}

test.before(async () => {
  await k.initCrypto();
  server = await startServer();
});

test.after.always(async () => {
  await server?.stop();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

async function head(user: User, spaceId: string): Promise<number> {
  const r = await call(server.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=0&limit=1`, { token: user.token });
  return r.body.head as number;
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('pause and resume by signal; one engine per folder; one space per folder; status; clean stop', async (t) => {
  const { admin: owner } = await newOrg(server.url, server.dataDir);
  const { spaceId } = await newSpace(server.url, owner, 'Besturing');
  const { spaceId: otherSpace } = await newSpace(server.url, owner, 'Ander');
  const home = await cliHome(server.url, owner);
  temps.push(home);
  const dir = tmp('kluis-ctl-');
  const watcher = startCli(home, ['sync', dir, '--space', spaceId, '--json']);
  const events = () => watcher.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event: string; state?: string });
  await until('the first pass', () => events().some((e) => e.event === 'state' && e.state === 'idle'));

  // a second engine on the same folder, and the folder bound to another space: both refused (exit 2)
  const second = await kluis(home, ['sync', dir, '--space', spaceId, '--once']);
  t.is(second.code, 2);
  t.regex(second.stderr, /already being synced by process \d+/);
  const rebind = await kluis(home, ['sync', dir, '--space', otherSpace, '--once']);
  t.is(rebind.code, 2);
  t.regex(rebind.stderr, /already synced with another space/);

  const status = JSON.parse((await kluis(home, ['status', '--json'])).stdout);
  t.is(status.folders.length, 1);
  t.like(status.folders[0], { spaceId, spaceName: 'Besturing', running: true, pid: watcher.proc.pid });

  // paused: a new file is not uploaded
  const before = await head(owner, spaceId);
  watcher.proc.kill('SIGUSR1');
  await until('paused', () => events().some((e) => e.state === 'paused'));
  writeFileSync(path.join(dir, 'tijdens-pauze.txt'), 'wacht');
  await sleep(2500);
  t.is(await head(owner, spaceId), before, 'nothing committed while paused');
  t.is(JSON.parse((await kluis(home, ['status', '--json'])).stdout).folders[0].state, 'paused');

  // resumed: it goes up
  watcher.proc.kill('SIGUSR2');
  await until('the upload after resume', async () => (await head(owner, spaceId)) > before);

  watcher.proc.kill('SIGTERM');
  const end = await watcher.done;
  t.is(end.code, 0, end.stderr);
  t.true(events().some((e) => e.state === 'stopped'));
  t.false(JSON.parse((await kluis(home, ['status', '--json'])).stdout).folders[0].running);
});

test('--bwlimit caps the transfer rate', async (t) => {
  const { admin: owner } = await newOrg(server.url, server.dataDir);
  const { spaceId } = await newSpace(server.url, owner, 'Traag');
  const home = await cliHome(server.url, owner);
  temps.push(home);
  const dir = tmp('kluis-bw-');
  writeFileSync(path.join(dir, 'drie.bin'), randomBytes(3 * 1024 * 1024));
  await sleep(1100); // let it settle
  const started = Date.now();
  const r = await kluis(home, ['sync', dir, '--space', spaceId, '--once', '--json', '--bwlimit', '1M']);
  const ms = Date.now() - started;
  t.is(r.code, 0, r.stderr);
  t.is(JSON.parse(r.stdout).uploaded, 1);
  // 3 MiB at 1 MiB/s with a one-second bucket: at least about 2 s (no upper bound: the machine may be slow)
  t.true(ms >= 1900, `took only ${ms} ms`);
  const bad = await kluis(home, ['sync', dir, '--space', spaceId, '--once', '--bwlimit', 'fast']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /not a rate/);
});

test('a viewer\'s local changes are refused with a message and never reach the server', async (t) => {
  const { admin: owner } = await newOrg(server.url, server.dataDir);
  const viewer = await newColleague(server.url, owner);
  const { spaceId, pair } = await newSpace(server.url, owner, 'Alleen lezen');
  const add = await call(server.url, 'POST', `/api/v1/spaces/${spaceId}/members`, { token: owner.token, json: await addMemberBody(server.url, owner, spaceId, pair, viewer, 'viewer') });
  t.is(add.status, 201);
  const ownerHome = await cliHome(server.url, owner);
  const viewerHome = await cliHome(server.url, viewer);
  temps.push(ownerHome, viewerHome);
  const ownerDir = tmp('kluis-own-');
  const viewerDir = tmp('kluis-view-');
  writeFileSync(path.join(ownerDir, 'beleid.txt'), 'van de beheerder');
  await sleep(1100);
  t.is((await kluis(ownerHome, ['sync', ownerDir, '--space', spaceId, '--once'])).code, 0);
  const got = await kluis(viewerHome, ['sync', viewerDir, '--space', spaceId, '--once', '--json']);
  t.is(got.code, 0, got.stderr);
  t.is(JSON.parse(got.stdout).downloaded, 1);
  writeFileSync(path.join(viewerDir, 'poging.txt'), 'van de lezer');
  await sleep(1100);
  const headBefore = await head(owner, spaceId);
  const up = await kluis(viewerHome, ['sync', viewerDir, '--space', spaceId, '--once', '--json']);
  t.is(up.code, 0, up.stderr);
  const report = JSON.parse(up.stdout);
  t.is(report.uploaded, 0);
  t.true(report.refused.some((x: { path: string; reason: string }) => x.path === 'poging.txt' && /viewer/.test(x.reason)), JSON.stringify(report.refused));
  t.is(await head(owner, spaceId), headBefore);
  // A file only touched is no change, also when the scan leaves its hash to the upload (KLUIS_SYNC_HASH_LATER_MIN).
  const touched = new Date(Date.now() - 60_000);
  utimesSync(path.join(viewerDir, 'beleid.txt'), touched, touched);
  for (let run = 0; run < 2; run++) {
    const again = await kluis(viewerHome, ['sync', viewerDir, '--space', spaceId, '--once', '--json'], '', { KLUIS_SYNC_HASH_LATER_MIN: '1' });
    t.is(again.code, 0, again.stderr);
    t.deepEqual(JSON.parse(again.stdout).refused.map((x: { path: string }) => x.path), ['poging.txt'], `run ${run}`);
  }
});

test('on a terminal a progress line shows files and bytes done, rate and time left; not with --json', async (t) => {
  const { admin: owner } = await newOrg(server.url, server.dataDir);
  const { spaceId } = await newSpace(server.url, owner, 'Voortgang');
  const home = await cliHome(server.url, owner);
  temps.push(home);
  const dir = tmp('kluis-tty-');
  writeFileSync(path.join(dir, 'groot.bin'), randomBytes(24 * 1024 * 1024));
  await sleep(1100);
  // script(1) (bsdutils, part of every Debian) runs the CLI on a pseudo-terminal
  const quote = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
  const cmd = [process.execPath, CLI, 'sync', dir, '--space', spaceId, '--once', '--bwlimit', '8M'].map(quote).join(' ');
  const run = await promisify(execFile)('script', ['-qec', cmd, '/dev/null'], { env: { PATH: process.env.PATH ?? '', KLUIS_HOME: home, KLUIS_KDF: 'min' }, maxBuffer: 1 << 24 });
  t.regex(run.stdout, /uploading 1\/1 files, [\d.]+ (MiB|KiB|B)\/24\.0 MiB, [\d.]+ (MiB|KiB)\/s, \d+s left/);
  t.regex(run.stdout, /in step at change/);
  const json = await kluis(home, ['sync', dir, '--space', spaceId, '--once', '--json']);
  t.notRegex(json.stdout + json.stderr, /left/);
});
