// Colleagues' keys pinned on first use (docs/crypto.md §3, docs/cli.md): a server that swaps a colleague's keys for
// others (validly self-signed for the same address) is refused by every client that used that colleague before,
// with both fingerprints, until the user accepts the new keys after comparing them out of band.
import test from 'ava';
import { rmSync } from 'node:fs';
import path from 'node:path';
import knexFactory from 'knex';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { cliHome, kluis } from '../helpers/cli.js';
import { newColleague, newOrg, type User } from '../helpers/api.js';

let server: RunningServer;
const temps: string[] = [];

test.before(async () => {
  await k.initCrypto();
  server = await startServer();
});
test.after.always(async () => {
  await server?.stop();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

/** What an attacker with the server's database does: lists other keys, validly self-signed, for `user`'s address. */
async function swapKeys(user: User): Promise<k.AccountKeys> {
  const keys = k.generateAccountKeys();
  const id = k.publicIdentity(keys);
  const db = knexFactory({ client: 'sqlite3', connection: { filename: path.join(server.dataDir, 'kluis.sqlite3') }, useNullAsDefault: true });
  try {
    await db('users').where({ id: user.userId }).update({ enc_public_key: id.encPublicKey, sign_public_key: id.signPublicKey, identity_sig: k.signIdentity(keys, user.email) });
  } finally {
    await db.destroy();
  }
  return keys;
}

const lastLine = (s: string) => s.trim().split('\n').pop() ?? '';

test('a colleague\'s swapped keys are refused with both fingerprints until accepted; accepted keys work', async (t) => {
  const { admin: owner } = await newOrg(server.url, server.dataDir);
  const colleague = await newColleague(server.url, owner);
  const home = await cliHome(server.url, owner, 'kluis-pins-');
  temps.push(home);
  t.is((await kluis(home, ['space', 'create', 'Eerste'])).code, 0);
  t.is((await kluis(home, ['space', 'create', 'Tweede'])).code, 0);
  const before = JSON.parse((await kluis(home, ['fingerprint', colleague.email, '--json'])).stdout);
  t.is(before.pinned, null, 'looking at a fingerprint pins nothing');
  const added = await kluis(home, ['space', 'add-member', 'Eerste', colleague.email, '--role', 'editor']);
  t.is(added.code, 0, added.stderr);
  const pinned = JSON.parse((await kluis(home, ['fingerprint', colleague.email, '--json'])).stdout);
  t.is(pinned.pinned, before.fingerprint, 'first use pinned the keys');

  const swapped = await swapKeys(colleague);
  const newFp = k.fingerprint(k.publicIdentity(swapped));
  const refused = await kluis(home, ['space', 'add-member', 'Tweede', colleague.email, '--role', 'viewer']);
  t.not(refused.code, 0);
  const why = lastLine(refused.stderr);
  t.true(why.includes(`keys of ${colleague.email} changed`), why);
  t.true(why.includes(before.fingerprint) && why.includes(newFp), why);
  t.true(why.includes(`kluis fingerprint --accept ${colleague.email}`), why);
  const shown = await kluis(home, ['fingerprint', colleague.email]);
  t.regex(shown.stdout, /CHANGED: this device pinned/);
  // The space the colleague was added to with the old keys still opens: its log names the keys pinned then.
  t.is((await kluis(home, ['space', 'set-role', 'Eerste', colleague.email, 'viewer'])).code, 0);

  const accepted = await kluis(home, ['fingerprint', '--accept', colleague.email, '--json']);
  t.is(accepted.code, 0, accepted.stderr);
  t.like(JSON.parse(accepted.stdout), { fingerprint: newFp, pinned: newFp, accepted: { previous: before.fingerprint } });
  const now = await kluis(home, ['space', 'add-member', 'Tweede', colleague.email, '--role', 'viewer']);
  t.is(now.code, 0, now.stderr);
  // History signed with the keys accepted before stays valid after the acceptance.
  t.is((await kluis(home, ['space', 'set-role', 'Eerste', colleague.email, 'editor'])).code, 0);
  t.regex(lastLine((await kluis(home, ['fingerprint', '--accept'])).stderr), /--accept is for a colleague/);
});

test('a second member of a space refuses the space when the server swaps a pinned member\'s keys in a new log entry', async (t) => {
  const { admin: owner } = await newOrg(server.url, server.dataDir);
  const [b, c] = [await newColleague(server.url, owner), await newColleague(server.url, owner)];
  const ownerHome = await cliHome(server.url, owner, 'kluis-pins-owner-');
  const bHome = await cliHome(server.url, b, 'kluis-pins-b-');
  temps.push(ownerHome, bHome);
  const space = JSON.parse((await kluis(ownerHome, ['space', 'create', 'Gedeeld', '--json'])).stdout);
  t.is((await kluis(ownerHome, ['space', 'add-member', space.spaceId, b.email, '--role', 'manager'])).code, 0);
  t.is((await kluis(ownerHome, ['space', 'add-member', space.spaceId, c.email, '--role', 'viewer'])).code, 0);
  // b pins the members on first use of the space.
  t.is((await kluis(bHome, ['space', 'set-role', space.spaceId, c.email, 'editor'])).code, 0);
  // c's keys are swapped; the owner (who has not used c since... but did: it pinned c when adding) is refused too.
  await swapKeys(c);
  const r = await kluis(ownerHome, ['space', 'remove-member', space.spaceId, b.email]);
  t.not(r.code, 0, 'rotating the key to a swapped member is refused');
  t.regex(lastLine(r.stderr), new RegExp(`keys of ${c.email.replace(/[.+]/g, '\\$&')} changed`));
});
