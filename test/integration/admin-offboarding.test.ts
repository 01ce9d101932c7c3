// Offboarding (docs/admin.md "Offboarding"): the server refuses the person at once and records a pending removal in
// each of their spaces; the managers' `kluis` clients sign the removals and rotate the keys by themselves at their
// next contact (a running `kluis sync` on the server's hint, another at its next start). After that, new versions
// are written under a key the offboarded person's devices never get, and colleagues read them as before.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { openServerDb, startServer, type RunningServer } from '../helpers/server.js';
import { call, login, newColleague, newOrg, type User } from '../helpers/api.js';
import { cliHome, kluis, startCli } from '../helpers/cli.js';

let server: RunningServer;
const temps: string[] = [];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test.before(async () => {
  await k.initCrypto();
  server = await startServer();
});
test.after.always(async () => {
  await server?.stop();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

function tmp(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  temps.push(d);
  return d;
}

async function ok(home: string, args: string[]): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await kluis(home, ['--json', ...args]);
  if (r.code !== 0) throw new Error(`kluis ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** The admin view of the organisation's spaces (key epoch and pending removals). */
async function adminSpaces(admin: User): Promise<Map<string, { keyEpoch: number; pendingRemovals: string[] }>> {
  const r = await call(server.url, 'GET', `/api/v1/orgs/${admin.orgId}/spaces`, { token: admin.token });
  if (r.status !== 200) throw new Error(JSON.stringify(r.body));
  return new Map(r.body.spaces.map((s: { spaceId: string; keyEpoch: number; pendingRemovals: string[] }) => [s.spaceId, s]));
}

/** The key pairs `user` holds for a space now (their wraps, opened as the client does). */
async function heldKeys(user: User, spaceId: string): Promise<k.SpaceKeyPair[]> {
  const r = await call(server.url, 'GET', `/api/v1/spaces/${spaceId}`, { token: user.token });
  return r.body.myWraps.map((w: k.SpaceKeyWrap) => k.openSpaceKeyWrap(w, { spaceId, keyEpoch: w.keyEpoch }, user.keys, () => true));
}

test('offboarding a member rotates the keys of each of their spaces, and their devices can no longer read new versions', async (t) => {
  const { admin } = await newOrg(server.url, server.dataDir);
  const manager = await newColleague(server.url, admin);
  const leaver = await newColleague(server.url, admin);
  const stayer = await newColleague(server.url, admin);
  const leaver2 = await newColleague(server.url, admin); // also leaves Finance: neither gets the other's next key
  const [mHome, lHome, sHome] = await Promise.all([cliHome(server.url, manager), cliHome(server.url, leaver), cliHome(server.url, stayer)]);
  temps.push(mHome, lHome, sHome);
  const finance = (await ok(mHome, ['space', 'create', 'Financien'])).spaceId as string;
  const health = (await ok(mHome, ['space', 'create', 'Zorg'])).spaceId as string;
  for (const space of [finance, health]) {
    await ok(mHome, ['space', 'add-member', space, leaver.email, '--role', 'editor']);
    await ok(mHome, ['space', 'add-member', space, stayer.email, '--role', 'viewer']);
  }
  await ok(mHome, ['space', 'add-member', finance, leaver2.email, '--role', 'viewer']);
  // The leaver's device syncs both spaces and holds their epoch-1 keys.
  const lDir = tmp('kluis-leaver-');
  const mFinance = tmp('kluis-mfin-');
  const mHealth = tmp('kluis-mzorg-');
  writeFileSync(path.join(mFinance, 'begroting.txt'), 'begroting 2027, versie 1');
  writeFileSync(path.join(mHealth, 'dossier.txt'), 'dossier, versie 1');
  await sleep(1100);
  await ok(mHome, ['sync', mFinance, '--space', finance, '--once']);
  await ok(mHome, ['sync', mHealth, '--space', health, '--once']);
  t.is((await ok(lHome, ['sync', lDir, '--space', finance, '--once'])).downloaded, 1);
  const leaverSession = await login(server.url, leaver.email, leaver.password, 'kept keys');
  const keptKeys = { ...leaver, token: leaverSession.body.token };
  const oldKeys = new Map([[finance, await heldKeys(keptKeys, finance)], [health, await heldKeys(keptKeys, health)]]);
  t.is(oldKeys.get(finance)!.length, 1);

  // The manager's client watches the health space: the server's hint makes it rotate without anyone asking.
  const watcher = startCli(mHome, ['sync', mHealth, '--space', health, '--json']);
  const lines = () => watcher.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event: string; state?: string; removedMembers?: unknown[] });
  await until('the watcher is idle', () => lines().some((e) => e.event === 'state' && e.state === 'idle'));

  const offboardedAt = Date.now();
  const off = await call(server.url, 'POST', `/api/v1/orgs/${admin.orgId}/people/${leaver.userId}/offboard`, { token: admin.token });
  t.is(off.status, 200, JSON.stringify(off.body));
  t.is(off.body.sessionsEnded, 3, 'the CLI session, the test signup session and the kept-keys session');
  t.deepEqual(off.body.spaces.map((s: { spaceId: string }) => s.spaceId).sort(), [finance, health].sort());
  t.true(off.body.spaces.every((s: { managers: number }) => s.managers === 1));
  t.is((await call(server.url, 'POST', `/api/v1/orgs/${admin.orgId}/people/${leaver2.userId}/offboard`, { token: admin.token })).status, 200);

  // Refused at once: the saved session, a new login, and their kept token.
  const refused = await kluis(lHome, ['sync', lDir, '--space', finance, '--once']);
  t.not(refused.code, 0);
  t.is((await login(server.url, leaver.email, leaver.password)).status, 401);
  t.is((await call(server.url, 'GET', `/api/v1/spaces/${finance}`, { token: keptKeys.token })).status, 401);

  // Health: the watching client completes the removal on the server's hint.
  await until('the health space rotated', async () => (await adminSpaces(admin)).get(health)!.keyEpoch === 2);
  t.log(`the watching manager's client rotated the health space ${Date.now() - offboardedAt} ms after the offboarding was sent`);
  t.deepEqual((await adminSpaces(admin)).get(health)!.pendingRemovals, []);
  // Finance: pending until the manager's client next contacts the server for that space.
  const bothLeavers = [leaver.userId, leaver2.userId].sort();
  t.like((await adminSpaces(admin)).get(finance), { keyEpoch: 1, pendingRemovals: bothLeavers });
  const spaceList = (await call(server.url, 'GET', '/api/v1/spaces', { token: manager.token })).body.spaces;
  t.deepEqual(spaceList.find((s: { spaceId: string }) => s.spaceId === finance).pendingRemovals, bothLeavers, 'managers see the pending removals');
  const report = await ok(mHome, ['sync', mFinance, '--space', finance, '--once']);
  t.deepEqual(report.removedMembers.map((r: { email: string }) => r.email).sort(), [leaver.email, leaver2.email].sort());
  t.deepEqual(report.removedMembers.map((r: { keyEpoch: number }) => r.keyEpoch), [2, 3], 'one rotation per removal');
  t.like((await adminSpaces(admin)).get(finance), { keyEpoch: 3, pendingRemovals: [] });
  const epochs = new Map([[finance, 3], [health, 2]]);
  watcher.proc.kill('SIGINT');
  await watcher.done;

  // New versions in both spaces; the colleague who stays reads them.
  writeFileSync(path.join(mFinance, 'begroting.txt'), 'begroting 2027, versie 2 (na vertrek)');
  writeFileSync(path.join(mHealth, 'dossier.txt'), 'dossier, versie 2 (na vertrek)');
  await sleep(1100);
  await ok(mHome, ['sync', mFinance, '--space', finance, '--once']);
  await ok(mHome, ['sync', mHealth, '--space', health, '--once']);
  const sDir = tmp('kluis-stayer-');
  await ok(sHome, ['sync', sDir, '--space', finance, '--once']);
  t.is(readFileSync(path.join(sDir, 'begroting.txt'), 'utf8'), 'begroting 2027, versie 2 (na vertrek)');

  const db = await openServerDb(server.dataDir);
  try {
    for (const spaceId of [finance, health]) {
      // The log records the removal, signed by the manager; the leaver has no wrap of the new epoch.
      const log = k.verifyMembershipLog((await call(server.url, 'GET', `/api/v1/spaces/${spaceId}`, { token: manager.token })).body.log, spaceId);
      const epoch = epochs.get(spaceId)!;
      t.false(log.members.has(leaver.userId));
      t.false(log.members.has(leaver2.userId));
      t.is(log.keyEpoch, epoch);
      t.deepEqual(await db('space_key_wraps').where({ space_id: spaceId, user_id: leaver.userId }).pluck('key_epoch'), [1]);
      t.deepEqual(await db('space_key_wraps').where({ space_id: spaceId, user_id: leaver2.userId }).pluck('key_epoch'), spaceId === finance ? [1] : []);
      // What the leaver kept opens no file key of a version written after the rotation.
      const changes = (await call(server.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=0`, { token: stayer.token })).body;
      const latest = changes.changes[changes.changes.length - 1];
      t.is(latest.keyEpoch, epoch);
      const wraps = (changes.fileKeyWraps[latest.fileId] as k.FileKeyWrap[]).filter((w) => w.keyEpoch === epoch);
      t.true(wraps.length > 0);
      for (const wrap of wraps) {
        for (const pair of oldKeys.get(spaceId)!) {
          t.throws(() => k.openFileKeyWrap(wrap, { spaceId, keyEpoch: epoch, fileId: latest.fileId }, pair, () => true), undefined, 'a key they kept opens no file key of the new epoch');
        }
        t.throws(() => k.openFileKeyWrap(wrap, { spaceId, keyEpoch: epoch, fileId: latest.fileId }, leaver.keys, () => true), undefined, 'nor does their account key');
      }
    }
    // Every step is in the audit trail.
    const actions = await db('audit_log').where({ org_id: admin.orgId }).whereIn('action', ['person.offboard', 'space.member.remove']).select('action', 'actor_user_id', 'target_id', 'outcome');
    t.truthy(actions.find((a) => a.action === 'person.offboard' && a.actor_user_id === admin.userId && a.target_id === leaver.userId && a.outcome === 'success'));
    t.is(actions.filter((a) => a.action === 'space.member.remove' && a.actor_user_id === manager.userId && a.outcome === 'success').length, 3);
  } finally {
    await db.destroy();
  }
});
