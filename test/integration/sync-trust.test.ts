// The sync client trusts the server to store, not to be honest (docs/architecture.md §2, docs/crypto.md §4.1, §8): a
// version whose manifest is signed by someone who could not write at the membership-log position it names, or whose
// stored bytes were altered, is refused and reported by `kluis sync`, and nothing of it reaches the folder. Versions
// by colleagues who have since been demoted or have left stay valid, and members added after key rotations read
// files last written before them (the epoch chain).
import test from 'ava';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sqlite3 from 'sqlite3';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { cliHome, kluis } from '../helpers/cli.js';
import { addMemberBody, call, newColleague, newOrg, newSpace, removeBody, roleBody, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';

let server: RunningServer;
const temps: string[] = [];

function tmp(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  temps.push(d);
  return d;
}

/** Runs one SQL statement on the server's metadata database (as an attacker with the server's disk would). */
function sql(dataDir: string, statement: string, params: unknown[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(path.join(dataDir, 'kluis.sqlite3'), (err) => {
      if (err) return reject(err);
      db.run('PRAGMA busy_timeout = 5000', () => db.run(statement, params, (e) => db.close(() => (e ? reject(e) : resolve()))));
    });
  });
}

test.before(async () => {
  await k.initCrypto();
  server = await startServer();
});

test.after.always(async () => {
  await server?.stop();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

async function commit(user: User, spaceId: string, entries: unknown[]): Promise<void> {
  const r = await call(server.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: user.token, json: { versions: entries } });
  if (r.status !== 201) throw new Error(`commit failed: ${JSON.stringify(r.body)}`);
}

async function member(manager: User, spaceId: string, pair: k.SpaceKeyPair, who: User, role: string): Promise<void> {
  const r = await call(server.url, 'POST', `/api/v1/spaces/${spaceId}/members`, { token: manager.token, json: await addMemberBody(server.url, manager, spaceId, pair, who, role) });
  if (r.status !== 201) throw new Error(`add member failed: ${JSON.stringify(r.body)}`);
}

async function remove(manager: User, spaceId: string, current: k.SpaceKeyPair, leaving: User, remaining: User[]): Promise<k.SpaceKeyPair> {
  const { next, body } = await removeBody(server.url, manager, spaceId, current, leaving, remaining);
  const r = await call(server.url, 'DELETE', `/api/v1/spaces/${spaceId}/members/${leaving.userId}`, { token: manager.token, json: body });
  if (r.status !== 204) throw new Error(`remove member failed: ${JSON.stringify(r.body)}`);
  return next;
}

test('a departed colleague\'s versions stay valid; a version naming a position where its author could not write, or altered on the server, is refused', async (t) => {
  const { admin: owner } = await newOrg(server.url, server.dataDir);
  const colleague = await newColleague(server.url, owner);
  const { spaceId, pair } = await newSpace(server.url, owner, 'Vertrouwen'); // log entry 1
  await member(owner, spaceId, pair, colleague, 'editor'); // entry 2

  // 1. a legitimate file by the manager
  const good = version(owner, spaceId, pair, 1, newFile(), { parent: null, path: 'goed.txt', memberSeq: 2 });
  // 2. a file by the colleague while an editor (they are later demoted, then leave): stays valid
  const byColleague = version(colleague, spaceId, pair, 1, newFile(), { parent: null, path: 'van-collega.txt', memberSeq: 2 });
  // 3. the same colleague naming position 1, when they were not a member: refused
  const forged = version(colleague, spaceId, pair, 1, newFile(), { parent: null, path: 'vervalst.txt', memberSeq: 1 });
  // 4. a legitimate file whose stored manifest an attacker with the server's disk then alters
  const altered = version(owner, spaceId, pair, 1, newFile(), { parent: null, path: 'gewijzigd.txt', memberSeq: 2 });
  await commit(owner, spaceId, [good.entry, altered.entry]);
  await commit(colleague, spaceId, [byColleague.entry, forged.entry]);
  const demote = await call(server.url, 'PATCH', `/api/v1/spaces/${spaceId}/members/${colleague.userId}`, { token: owner.token, json: await roleBody(server.url, owner, spaceId, colleague, 'viewer') });
  t.is(demote.status, 200, JSON.stringify(demote.body)); // entry 3
  await remove(owner, spaceId, pair, colleague, [owner]); // entry 4, key epoch 2
  const sealed = k.fromBase64Url(altered.entry.manifest);
  sealed[sealed.length - 20] = sealed[sealed.length - 20]! ^ 0x01;
  await sql(server.dataDir, 'UPDATE versions SET manifest = ? WHERE id = ?', [Buffer.from(sealed), altered.versionId]);

  // A device set up after the colleague left.
  const home = await cliHome(server.url, owner, 'kluis-trust-home-');
  temps.push(home);
  const dir = tmp('kluis-trust-dir-');
  const r = await kluis(home, ['sync', dir, '--space', spaceId, '--once', '--json']);
  t.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  t.deepEqual(readdirSync(dir).sort(), ['goed.txt', 'van-collega.txt']);
  t.is(report.downloaded, 2);
  t.is(report.refused.length, 2, JSON.stringify(report.refused));
  const reasons = report.refused.map((x: { path: string; reason: string }) => `${x.path} ${x.reason}`).join('\n');
  t.regex(reasons, new RegExp(`${forged.versionId}.*not a writer`));
  t.regex(reasons, new RegExp(`${altered.versionId}.*(does not open|refused)`));
  // The history names the departed author.
  const history = await kluis(home, ['versions', path.join(dir, 'van-collega.txt'), '--json']);
  t.is(history.code, 0, history.stderr);
  t.is(JSON.parse(history.stdout).versions[0].author, colleague.email);
  // a later run (which does not read those versions again) still leaves them out
  const again = await kluis(home, ['sync', dir, '--space', spaceId, '--once', '--json']);
  t.is(again.code, 0, again.stderr);
  t.deepEqual(readdirSync(dir).sort(), ['goed.txt', 'van-collega.txt']);
});

test('a member added after two key rotations reads files last written before them; a removed member\'s client is refused', async (t) => {
  const { admin: owner } = await newOrg(server.url, server.dataDir);
  const [x, y, late] = [await newColleague(server.url, owner), await newColleague(server.url, owner), await newColleague(server.url, owner)];
  const { spaceId, pair } = await newSpace(server.url, owner, 'Archief');
  await member(owner, spaceId, pair, x, 'editor');
  const old = version(x, spaceId, pair, 1, newFile(), { parent: null, path: 'oud.txt', memberSeq: 2 });
  await commit(x, spaceId, [old.entry]);
  const xHome = await cliHome(server.url, x, 'kluis-trust-x-');
  temps.push(xHome);
  const epoch2 = await remove(owner, spaceId, pair, x, [owner]);
  await member(owner, spaceId, epoch2, y, 'viewer');
  await remove(owner, spaceId, epoch2, y, [owner]); // key epoch 3
  t.is((await call(server.url, 'GET', `/api/v1/spaces/${spaceId}`, { token: owner.token })).body.keyEpoch, 3);

  // The late member's client, through the kluis CLI: added by the owner's client, then syncing.
  const ownerHome = await cliHome(server.url, owner, 'kluis-trust-owner-');
  temps.push(ownerHome);
  const added = await kluis(ownerHome, ['space', 'add-member', spaceId, late.email, '--role', 'viewer']);
  t.is(added.code, 0, added.stderr);
  const lateHome = await cliHome(server.url, late, 'kluis-trust-late-');
  temps.push(lateHome);
  const dir = tmp('kluis-trust-late-dir-');
  const r = await kluis(lateHome, ['sync', dir, '--space', spaceId, '--once', '--json']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(readdirSync(dir), ['oud.txt'], JSON.stringify(JSON.parse(r.stdout).refused));

  // The removed member's client gets nothing more.
  const xDir = tmp('kluis-trust-x-dir-');
  const refused = await kluis(xHome, ['sync', xDir, '--space', spaceId, '--once']);
  t.not(refused.code, 0);
  t.deepEqual(readdirSync(xDir), []);
});
