// What a user reads when the sharing policy refuses (docs/cli.md "Policy", docs/api.md "Policy"): one refusal of each
// kind through the real `kluis` CLI on a real server (a person of another organisation as member and as a share's
// recipient, a link the class forbids, lowering a class, raising one while the space shares what the new class
// forbids), each a single line on stderr with a non-zero exit. And the allowed path: a person of another organisation
// added to a public space is named with their organisation, pinned on first use, and syncs the space like a colleague.
import test, { type ExecutionContext } from 'ava';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import * as k from '@kluis/shared';
import { newOrg, type User } from '../helpers/api.js';
import { cliHome } from '../helpers/cli.js';
import { bytes, kluis, okJson, startSyncEnv, syncOnce, write, type Account, type Run, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';

let env: SyncEnv;
let A: Account;
let ext: User;
let extHome: string;

test.before(async () => {
  await k.initCrypto();
  env = await startSyncEnv({ accounts: ['A'], storage: 'fs' });
  A = env.accounts[0]!;
  ext = (await newOrg(env.url, env.dataDir, 'Gemeente Partner')).admin;
  extHome = await cliHome(env.url, ext, 'kluis-ext-');
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-3000)}`);
});
test.after.always(async () => {
  if (extHome) rmSync(extHome, { recursive: true, force: true });
  await env?.close();
});

/** The one line a refused command prints (exit non-zero). */
function refusal(t: ExecutionContext, r: Run, what: string): string {
  t.is(r.code, 2, `${what}: refused (exit 2)`);
  const lines = r.stderr.trim().split('\n');
  t.is(lines.length, 1, `${what}: one line: ${r.stderr}`);
  t.log(`${what}: ${lines[0]}`);
  return lines[0]!;
}

test.serial('each kind of refusal, as the user reads it', async (t) => {
  const space = await env.newSpace([A], 'Dossiers');
  const a = space.clients[0]!;
  write(a.dir, 'nota.txt', bytes(7, 2000));
  await syncOnce(a);
  const file = path.join(a.dir, 'nota.txt');

  // A person of another organisation, in an internal space: the same answer as an address nobody has.
  const outside = /^kluis: no colleague of your organisation has this address, and internal spaces do not allow people of other organisations/;
  t.regex(refusal(t, await kluis(A.home, ['space', 'add-member', 'Dossiers', ext.email, '--role', 'viewer']), 'add an external member'), outside);
  t.regex(refusal(t, await kluis(A.home, ['share', 'file', file, ext.email]), 'share with an external person'), outside);
  t.regex(refusal(t, await kluis(A.home, ['share', 'file', file, 'niemand@example.be']), 'an unknown address'), outside);

  // Raising while a link the new class forbids is active: the link is named with the command that ends it.
  const link = okJson(await kluis(A.home, ['--json', 'share', 'link', file, '--purpose', 'Beleidstest', '--expires', '30d']), 'share link');
  const blocked = refusal(t, await kluis(A.home, ['space', 'set-class', 'Dossiers', 'confidential']), 'raise with a blocking link');
  t.is(blocked, `kluis: "Dossiers" cannot become confidential until these end (kluis space remove-member SPACE EMAIL, kluis share revoke ID): link ${link.linkId}`);
  okJson(await kluis(A.home, ['--json', 'share', 'revoke', link.linkId]), 'revoke');
  okJson(await kluis(A.home, ['--json', 'space', 'set-class', 'Dossiers', 'confidential']), 'raise');

  // A link the class forbids, and lowering the class.
  t.regex(refusal(t, await kluis(A.home, ['share', 'link', file, '--purpose', 'Beleidstest']), 'a link without password'), /links of confidential spaces need a password/);
  t.regex(refusal(t, await kluis(A.home, ['space', 'set-class', 'Dossiers', 'internal']), 'lower the class'), /never lowered/);
});

test.serial('a person of another organisation in a public space: named, pinned, syncs it; raising the class names them', async (t) => {
  okJson(await kluis(A.home, ['--json', 'space', 'create', 'Openbaar', '--class', 'public']), 'space create');
  const added = await kluis(A.home, ['space', 'add-member', 'Openbaar', ext.email, '--role', 'editor']);
  t.is(added.code, 0, added.stderr);
  t.regex(added.stdout, new RegExp(`^Added ${ext.email} of Gemeente Partner \\(another organisation\\) to "Openbaar" as editor\\.`));
  // Their keys were pinned on first use, exactly like a colleague's.
  const fp = okJson(await kluis(A.home, ['--json', 'fingerprint', ext.email]), 'fingerprint');
  t.is(fp.pinned, fp.fingerprint);

  const listed = okJson(await kluis(extHome, ['--json', 'space', 'list']), 'space list');
  const spaceId = (listed.spaces as { spaceId: string; name: string }[]).find((s) => s.name === 'Openbaar')!.spaceId;
  t.truthy(spaceId, 'the external member lists the space');
  const a: SyncClient = { label: 'A', account: A, home: A.home, dir: path.join(env.root, 'openbaar-a'), spaceId, spaceName: 'Openbaar' };
  const x: SyncClient = { label: 'X', account: { label: 'X', email: ext.email, password: ext.password, home: extHome, userId: ext.userId, deviceId: '' }, home: extHome, dir: path.join(env.root, 'openbaar-x'), spaceId, spaceName: 'Openbaar' };
  const content = bytes(9, 300_000);
  write(a.dir, 'agenda.pdf', content);
  await syncOnce(a);
  await syncOnce(x);
  t.deepEqual(readFileSync(path.join(x.dir, 'agenda.pdf')), Buffer.from(content), 'the external member reads it byte for byte');
  write(x.dir, 'antwoord.txt', bytes(10, 5000));
  await syncOnce(x);
  await syncOnce(a);
  t.deepEqual(readFileSync(path.join(a.dir, 'antwoord.txt')), Buffer.from(bytes(10, 5000)), 'and writes back');

  const shared = await kluis(A.home, ['share', 'file', path.join(a.dir, 'agenda.pdf'), ext.email]);
  t.is(shared.code, 0, shared.stderr);
  t.regex(shared.stdout, /^Shared agenda\.pdf with \S+ of Gemeente Partner \(another organisation\)/);

  const blocked = refusal(t, await kluis(A.home, ['space', 'set-class', 'Openbaar', 'internal']), 'raise with an external member');
  const shareId = /\(share (\S+),/.exec(shared.stdout)?.[1];
  t.is(blocked, `kluis: "Openbaar" cannot become internal until these end (kluis space remove-member SPACE EMAIL, kluis share revoke ID): member ${ext.email}; share ${shareId} to ${ext.email}`);
});
