// Remote wipe end to end (docs/admin.md "Devices"): real `kluis` clients sync a folder; an admin revokes one of the
// devices with a wipe; the client's next contact wipes it — the folder's files, keys, index and session — and the
// report, in its output and on the server, names an unsynced edit made before. A revoke without wipe keeps the files;
// a device that is away when the order is given wipes when it comes back; a watching client stops and wipes at once.
import test from 'ava';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import * as k from '@kluis/shared';
import { call } from '../helpers/api.js';
import {
  kluis, okJson, onceArgs, sessionOf, startSyncEnv, syncOnce, watch, write, type Account, type SyncClient, type SyncEnv,
} from '../helpers/sync-env.js';

// Serial: each test runs its own server and several kluis processes; six at once overload a 2-core machine.
const envs: SyncEnv[] = [];
const proxies: Server[] = [];
test.after.always(async () => {
  for (const p of proxies) p.close();
  for (const e of envs) await e.close();
});

/**
 * A forwarding HTTP proxy in front of the server that answers the first `failReports` wipe reports with 503 (the
 * network failing right after the wipe); everything else goes through unchanged.
 */
async function flakyProxy(target: string, failReports: number): Promise<{ url: string; refused: () => number }> {
  let refused = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/api/v1/device-wipe/report' && refused < failReports) {
        refused++;
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"unavailable","message":"injected"}}');
        return;
      }
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([h]) => !['host', 'connection', 'content-length', 'transfer-encoding'].includes(h))) as Record<string, string>;
      const body = chunks.length ? Buffer.concat(chunks) : undefined;
      fetch(target + req.url, { method: req.method, headers, body })
        .then(async (r) => {
          res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/octet-stream' });
          res.end(Buffer.from(await r.arrayBuffer()));
        })
        .catch(() => res.writeHead(502).end());
    });
  });
  proxies.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, refused: () => refused };
}

async function setup(): Promise<{ env: SyncEnv; a: SyncClient; b: SyncClient; adminToken: string }> {
  const env = await startSyncEnv({ storage: 'fs', accounts: ['A', 'B'] });
  envs.push(env);
  const space = await env.newSpace();
  const b = space.clients[1]!;
  write(b.dir, 'notes.txt', 'synced notes');
  write(b.dir, 'reports/2026/q3.txt', 'quarter three');
  write(b.dir, 'reports/summary.txt', 'summary');
  const first = await syncOnce(b);
  if (first.uploaded !== 5) throw new Error(`expected 3 files and 2 folders uploaded: ${JSON.stringify(first)}`);
  return { env, a: space.clients[0]!, b, adminToken: sessionOf(env.accounts[0]!.home).token };
}

const revoke = (env: SyncEnv, token: string, deviceId: string, wipe: boolean) =>
  call(env.url, 'POST', `/api/v1/orgs/${env.orgId}/devices/${deviceId}/revoke`, { token, json: { wipe } });

const stateFiles = (home: string) => readdirSync(home).filter((f) => !f.startsWith('.'));

/** Logs the owner in on a new device, where `kluis devices wipe-report` opens the sealed unsynced paths. */
async function ownerReadsReport(env: SyncEnv, owner: Account, deviceId: string): Promise<{ record: k.WipeReportRecord; paths: string[]; text: string }> {
  const home = path.join(env.root, `home-${owner.label}-new`);
  const r = await kluis(home, ['--json', 'login', '--server', env.url, '--email', owner.email, '--password-stdin', '--device-name', 'new laptop'], { stdin: `${owner.password}\n` });
  okJson(r, 'login on a new device');
  const out = okJson(await kluis(home, ['--json', 'devices', 'wipe-report', deviceId]), 'devices wipe-report');
  const text = await kluis(home, ['devices', 'wipe-report', deviceId]);
  return { record: k.WipeReportRecord.parse({ report: out.report, signature: out.signature, devicePublicKey: out.devicePublicKey, reportedAt: out.reportedAt }), paths: out.unsyncedPaths ?? [], text: text.stdout };
}

test.serial('an admin\'s revoke with wipe: the next kluis sync deletes the folder\'s files, keys, index and session and names the unsynced edits', async (t) => {
  const { env, a, b, adminToken } = await setup();
  const deviceId = sessionOf(b.home).deviceId;
  t.true(existsSync(path.join(b.home, 'device.json')), 'the sync registered a device key');
  // Unsynced edits: a changed synced file and a new one, never uploaded. And a file beside the folder, not in it.
  write(b.dir, 'notes.txt', 'notes edited offline, not yet synced');
  write(b.dir, 'reports/draft.txt', 'a new draft');
  write(env.root, 'outside-the-folder.txt', 'not kluis\'s business');

  const r = await revoke(env, adminToken, deviceId, true);
  t.is(r.status, 200);
  t.is(r.body.status, 'wipe-ordered');

  const run = await kluis(b.home, ['sync', b.dir, '--space', b.spaceId, '--once'], { env: { KLUIS_SYNC_GIVE_UP_MS: '30000' } });
  t.is(run.code, 3, run.stderr);
  t.regex(run.stderr, /revoked by an administrator and wiped itself/);
  t.regex(run.stdout, /removed 4 file\(s\)/);
  t.true(run.stdout.includes(`unsynced: ${path.join(b.dir, 'notes.txt')}`), run.stdout);
  t.true(run.stdout.includes(`unsynced: ${path.join(b.dir, 'reports', 'draft.txt')}`), run.stdout);
  t.regex(run.stdout, /2 unsynced local edit\(s\) were deleted/);
  t.regex(run.stdout, /signed wipe report was sent/);

  t.false(existsSync(b.dir), 'the synced folder is gone (it held nothing else)');
  t.deepEqual(stateFiles(b.home), [], 'keys, session, index, pins, device key: nothing left in KLUIS_HOME');
  t.is(readFileSync(path.join(env.root, 'outside-the-folder.txt'), 'utf8'), 'not kluis\'s business', 'a file outside the folder is untouched');

  // The server's record: the admin sees the counts; the owner, from a new device, reads the sealed paths.
  const listed = await call(env.url, 'GET', `/api/v1/orgs/${env.orgId}/devices`, { token: adminToken });
  t.like(listed.body.devices.find((d: k.OrgDevice) => d.deviceId === deviceId), { status: 'wiped', wipe: { filesRemoved: 4, unsynced: 2, folders: 1, failed: 0 } });
  const { record, paths, text } = await ownerReadsReport(env, b.account, deviceId);
  t.deepEqual(paths.sort(), [`${b.spaceId}/notes.txt`, `${b.spaceId}/reports/draft.txt`]);
  t.true(text.includes(`unsynced: ${b.spaceId}/reports/draft.txt`), text);
  t.notThrows(() => k.verifyWipeReport(record.report, record.signature, record.devicePublicKey));
  for (const s of ['keys', 'session', 'index', 'device-key'] as const) t.true(record.report.state.includes(s), s);

  // The other member's copy and the server's versions are untouched: A syncs the last synced state.
  await syncOnce(a);
  t.is(readFileSync(path.join(a.dir, 'notes.txt'), 'utf8'), 'synced notes');
});

test.serial('a revoke without wipe signs the device out and keeps its files', async (t) => {
  const { env, b, adminToken } = await setup();
  const deviceId = sessionOf(b.home).deviceId;
  t.is((await revoke(env, adminToken, deviceId, false)).status, 200);
  const run = await kluis(b.home, onceArgs(b), { env: { KLUIS_SYNC_GIVE_UP_MS: '30000' } });
  t.is(run.code, 2, run.stderr);
  t.regex(run.stderr, /session is no longer valid/);
  t.is(readFileSync(path.join(b.dir, 'notes.txt'), 'utf8'), 'synced notes');
  t.true(existsSync(path.join(b.home, 'keys.json')), 'the state stays (kluis logout removes it)');
  // A later logout of a device that was only signed out removes its state but never its files.
  const out = await kluis(b.home, ['logout']);
  t.is(out.code, 0, out.stderr);
  t.true(existsSync(path.join(b.dir, 'reports', 'summary.txt')));
});

test.serial('a device away when the wipe is ordered wipes when it comes back (--json report)', async (t) => {
  const { env, b, adminToken } = await setup();
  const deviceId = sessionOf(b.home).deviceId;
  write(b.dir, 'unsent.txt', 'made while away');
  // A symbolic link inside the folder to a folder outside it: not the engine's, never followed, never deleted.
  const elsewhere = path.join(env.root, 'elsewhere');
  mkdirSync(elsewhere);
  write(elsewhere, 'keep.txt', 'outside the synced folder');
  symlinkSync(elsewhere, path.join(b.dir, 'link-out'));
  t.is((await revoke(env, adminToken, deviceId, true)).status, 200);
  // The server goes down and comes back (the order is in its database), and the first attempt cannot reach it.
  await env.stopServer();
  const away = await kluis(b.home, onceArgs(b), { env: { KLUIS_SYNC_GIVE_UP_MS: '1000' } });
  t.not(away.code, 0);
  t.true(existsSync(path.join(b.dir, 'unsent.txt')), 'nothing is deleted while the server is out of reach');
  await env.startServerAgain();
  const back = await kluis(b.home, onceArgs(b), { env: { KLUIS_SYNC_GIVE_UP_MS: '30000' } });
  t.is(back.code, 3, back.stderr);
  const doc = JSON.parse(back.stdout);
  t.is(doc.error.code, 'device_wiped');
  t.like(doc.wipe, { filesRemoved: 4, reported: true });
  t.deepEqual(doc.wipe.unsynced, [path.join(b.dir, 'unsent.txt')]);
  t.deepEqual(doc.wipe.folders[0].leftInPlace, ['link-out']);
  t.deepEqual(readdirSync(b.dir), ['link-out'], 'only the link stays in the folder');
  t.is(readFileSync(path.join(elsewhere, 'keep.txt'), 'utf8'), 'outside the synced folder', 'what the link points to is untouched');
  const listed = await call(env.url, 'GET', `/api/v1/orgs/${env.orgId}/devices`, { token: adminToken });
  t.is(listed.body.devices.find((d: k.OrgDevice) => d.deviceId === deviceId).status, 'wiped');
});

test.serial('a watching kluis sync stops and wipes itself as soon as it is revoked with a wipe', async (t) => {
  const { env, b, adminToken } = await setup();
  const deviceId = sessionOf(b.home).deviceId;
  const w = watch(b, ['--poll', '1']);
  await w.waitFor((e) => e.event === 'state' && e.state === 'idle', { what: 'idle', timeoutMs: 60_000 });
  t.is((await revoke(env, adminToken, deviceId, true)).status, 200);
  const end = await w.done;
  t.is(end.code, 3, w.stderr());
  const last = w.events.at(-1);
  t.is(last.error.code, 'device_wiped');
  t.is(last.wipe.filesRemoved, 3);
  t.false(existsSync(b.dir));
  t.deepEqual(stateFiles(b.home), []);
  const trail = await call(env.url, 'GET', `/api/v1/orgs/${env.orgId}/devices`, { token: adminToken });
  t.is(trail.body.devices.find((d: k.OrgDevice) => d.deviceId === deviceId).status, 'wiped');
});

test.serial('kluis logout on a device ordered to wipe wipes it first', async (t) => {
  const { env, b, adminToken } = await setup();
  t.is((await revoke(env, adminToken, sessionOf(b.home).deviceId, true)).status, 200);
  const out = await kluis(b.home, ['logout']);
  t.is(out.code, 3, out.stderr);
  t.regex(out.stdout, /has wiped itself/);
  t.false(existsSync(b.dir), 'logging out does not escape the wipe');
  t.deepEqual(stateFiles(b.home), []);
});

test.serial('a report the server did not get is kept and sent at the next run', async (t) => {
  const { env, b, adminToken } = await setup();
  const deviceId = sessionOf(b.home).deviceId;
  // The device talks to the server through a proxy that drops its first wipe report.
  const proxy = await flakyProxy(env.url, 1);
  const sessionFile = path.join(b.home, 'session.json');
  writeFileSync(sessionFile, JSON.stringify({ ...JSON.parse(readFileSync(sessionFile, 'utf8')), server: proxy.url }), { mode: 0o600 });
  t.is((await revoke(env, adminToken, deviceId, true)).status, 200);
  const first = await kluis(b.home, onceArgs(b), { env: { KLUIS_SYNC_GIVE_UP_MS: '30000' } });
  t.is(first.code, 3, first.stderr);
  const doc = JSON.parse(first.stdout);
  t.false(doc.wipe.reported);
  t.is(proxy.refused(), 1);
  t.false(existsSync(b.dir), 'the wipe itself does not wait for the report');
  t.deepEqual(stateFiles(b.home).sort(), ['device.json', 'wipe-report.json'], 'only the signed report and its key wait');
  const listed = async () => (await call(env.url, 'GET', `/api/v1/orgs/${env.orgId}/devices`, { token: adminToken })).body.devices.find((d: k.OrgDevice) => d.deviceId === deviceId);
  t.is((await listed()).status, 'wipe-ordered');
  // The next run (not logged in any more) sends it first.
  const next = await kluis(b.home, onceArgs(b));
  t.is(next.code, 2);
  t.is(JSON.parse(next.stdout).error.code, 'not_logged_in');
  t.deepEqual(stateFiles(b.home), []);
  t.like(await listed(), { status: 'wiped', wipe: { filesRemoved: 3 } });
});
