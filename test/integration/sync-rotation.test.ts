// Key rotation and sync (docs/crypto.md §4): after a member is removed and the space key rotates, the next version
// of a file is written under a FRESH file key sealed to the new epoch (so everything goes up again, none of it
// readable with the old key), other devices follow, and an old version from before the rotation can still be
// restored (re-encrypted under the new key).
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { newColleague, newOrg } from '../helpers/api.js';
import { cliHome, kluis } from '../helpers/cli.js';

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

async function once(home: string, dir: string, space: string) {
  const r = await kluis(home, ['sync', dir, '--space', space, '--once', '--json']);
  if (r.code !== 0) throw new Error(`sync failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test('after a rotation new versions use a fresh file key, other devices follow, old versions restore', async (t) => {
  const { admin: owner } = await newOrg(server.url, server.dataDir);
  const colleague = await newColleague(server.url, owner);
  const home1 = await cliHome(server.url, owner);
  const home2 = await cliHome(server.url, owner);
  temps.push(home1, home2);
  t.is((await kluis(home1, ['space', 'create', 'Roteren'])).code, 0);
  const dir1 = tmp('kluis-rot1-');
  const dir2 = tmp('kluis-rot2-');
  const original = randomBytes(3 * 1024 * 1024);
  writeFileSync(path.join(dir1, 'dossier.bin'), original);
  writeFileSync(path.join(dir1, 'blijft.txt'), 'unchanged');
  await sleep(1100);
  t.is((await once(home1, dir1, 'Roteren')).uploaded, 2);
  t.is((await once(home2, dir2, 'Roteren')).downloaded, 2);

  // a small edit before the rotation: only the changed chunk goes up (same file key)
  appendFileSync(path.join(dir1, 'dossier.bin'), 'x');
  await sleep(1100);
  const before = await once(home1, dir1, 'Roteren');
  t.true(before.bytesUploaded < 1024 * 1024, `delta before rotation sent ${before.bytesUploaded} bytes`);

  t.is((await kluis(home1, ['space', 'add-member', 'Roteren', colleague.email, '--role', 'editor'])).code, 0);
  const removed = await kluis(home1, ['--json', 'space', 'remove-member', 'Roteren', colleague.email]);
  t.is(removed.code, 0, removed.stderr);
  t.is(JSON.parse(removed.stdout).keyEpoch, 2);

  // the same small edit after the rotation: a fresh key, so every chunk goes up again
  appendFileSync(path.join(dir1, 'dossier.bin'), 'y');
  await sleep(1100);
  const after = await once(home1, dir1, 'Roteren');
  t.is(after.uploaded, 1);
  t.true(after.bytesUploaded > original.length, `after rotation sent only ${after.bytesUploaded} bytes`);
  const got = await once(home2, dir2, 'Roteren');
  t.is(got.downloaded, 1);
  t.deepEqual(readFileSync(path.join(dir2, 'dossier.bin')), readFileSync(path.join(dir1, 'dossier.bin')));

  // restore the very first version (epoch 1) from the second device
  const versions = JSON.parse((await kluis(home2, ['versions', '--json', path.join(dir2, 'dossier.bin')])).stdout).versions;
  t.is(versions.length, 3);
  const restored = await kluis(home2, ['restore', path.join(dir2, 'dossier.bin'), '--version', versions[2].versionId]);
  t.is(restored.code, 0, restored.stderr);
  t.deepEqual(readFileSync(path.join(dir2, 'dossier.bin')), original);
  await once(home1, dir1, 'Roteren');
  t.deepEqual(readFileSync(path.join(dir1, 'dossier.bin')), original);
  t.is(readFileSync(path.join(dir1, 'blijft.txt'), 'utf8'), 'unchanged');
});
