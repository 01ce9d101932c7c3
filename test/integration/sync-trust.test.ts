// The sync client trusts the server to store, not to be honest (docs/architecture.md §2, docs/crypto.md §8): a version whose
// manifest is signed by someone who may not write in the space, or whose stored bytes were altered, is refused and
// reported by `kluis sync`, and nothing of it reaches the folder. Legitimate versions beside them still sync.
import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sqlite3 from 'sqlite3';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { cliHome, kluis } from '../helpers/cli.js';
import { call, newColleague, newOrg, newSpace, type User } from '../helpers/api.js';
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

test('versions signed by a non-writer or altered on the server are refused and reported; the rest syncs', async (t) => {
  const { admin: owner } = await newOrg(server.url, server.dataDir);
  const viewer = await newColleague(server.url, owner);
  const { spaceId, pair } = await newSpace(server.url, owner, 'Vertrouwen');
  const addViewer = await call(server.url, 'POST', `/api/v1/spaces/${spaceId}/members`, {
    token: owner.token,
    json: { userId: viewer.userId, role: 'editor', wrap: k.wrapSpaceKey(pair, { spaceId, keyEpoch: 1, recipient: viewer.identity.encPublicKey }, owner.keys) },
  });
  t.is(addViewer.status, 201, JSON.stringify(addViewer.body));

  // 1. a legitimate file by the manager
  const good = version(owner, spaceId, pair, 1, newFile(), { parent: null, path: 'goed.txt' });
  // 2. a file committed while the colleague could write, who is a viewer now: not a writer any more
  const byViewer = version(viewer, spaceId, pair, 1, newFile(), { parent: null, path: 'van-lezer.txt' });
  // 3. a legitimate file whose stored manifest an attacker with the server's disk then alters
  const altered = version(owner, spaceId, pair, 1, newFile(), { parent: null, path: 'gewijzigd.txt' });
  await commit(owner, spaceId, [good.entry, altered.entry]);
  await commit(viewer, spaceId, [byViewer.entry]);
  const demote = await call(server.url, 'PATCH', `/api/v1/spaces/${spaceId}/members/${viewer.userId}`, { token: owner.token, json: { role: 'viewer' } });
  t.is(demote.status, 200, JSON.stringify(demote.body));
  const sealed = k.fromBase64Url(altered.entry.manifest);
  sealed[sealed.length - 20] = sealed[sealed.length - 20]! ^ 0x01;
  await sql(server.dataDir, 'UPDATE versions SET manifest = ? WHERE id = ?', [Buffer.from(sealed), altered.versionId]);

  const home = await cliHome(server.url, owner, 'kluis-trust-home-');
  temps.push(home);
  const dir = tmp('kluis-trust-dir-');
  const r = await kluis(home, ['sync', dir, '--space', spaceId, '--once', '--json']);
  t.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  t.deepEqual(readdirSync(dir).sort(), ['goed.txt']);
  t.false(existsSync(path.join(dir, 'van-lezer.txt')));
  t.false(existsSync(path.join(dir, 'gewijzigd.txt')));
  t.is(report.downloaded, 1);
  t.is(report.refused.length, 2, JSON.stringify(report.refused));
  const reasons = report.refused.map((x: { path: string; reason: string }) => `${x.path} ${x.reason}`).join('\n');
  t.regex(reasons, new RegExp(`${byViewer.versionId}.*not a writer`));
  t.regex(reasons, new RegExp(`${altered.versionId}.*(does not open|refused)`));
  // a later run (which does not read those versions again) still leaves them out
  const again = await kluis(home, ['sync', dir, '--space', spaceId, '--once', '--json']);
  t.is(again.code, 0, again.stderr);
  t.deepEqual(readdirSync(dir).sort(), ['goed.txt']);
});
