// `kluis share link | list | revoke` (docs/cli.md "Share links") on a real server: a link made for a synced file
// opens that file byte for byte when its fragment is used the way the page uses it (with and without a password),
// `share list` shows it, `share revoke` makes it answer 410; every failure exits non-zero with one line.
import test from 'ava';
import path from 'node:path';
import * as k from '@kluis/shared';
import { call } from '../helpers/api.js';
import { bytes, kluis, okJson, startSyncEnv, syncOnce, write, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';

let env: SyncEnv;
let a: SyncClient;
let viewerHome: string;
const content = bytes(41, 900_000);
const PURPOSE = 'Dossier 2024/117: advies aan de rechtbank';

test.before(async () => {
  env = await startSyncEnv({ accounts: ['A', 'B'], storage: 'fs' });
  const space = await env.newSpace([env.accounts[0]!]);
  a = space.clients[0]!;
  write(a.dir, 'Rapport/advies.pdf', content);
  await syncOnce(a);
  // B is a viewer of the space, with a synced folder of their own.
  okJson(await kluis(a.home, ['--json', 'space', 'add-member', space.name, env.accounts[1]!.email, '--role', 'viewer']), 'add-member');
  viewerHome = env.accounts[1]!.home;
  await syncOnce({ ...a, label: 'B', account: env.accounts[1]!, home: viewerHome, dir: path.join(env.root, 'viewer-folder') });
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await env?.close();
});

/** linkId and secret of a printed link (the server's KLUIS_PUBLIC_URL is not this test's port: the API is used directly). */
function parseLink(link: string): { linkId: string; secret: string } {
  const m = /\/s\/([A-Za-z0-9_-]{22})#([A-Za-z0-9_-]{43})$/.exec(link.trim());
  if (!m) throw new Error(`not a link: ${link}`);
  return { linkId: m[1]!, secret: m[2]! };
}

/** What the page does with the fragment: info, access with linkAuth, chunks with the token, decrypt. */
async function open(link: string, password?: string): Promise<{ status: number; bytes?: Uint8Array; reason?: string }> {
  const { linkId, secret } = parseLink(link);
  const info = await call(env.url, 'GET', `/api/v1/public/links/${linkId}`);
  if (info.status !== 200) return { status: info.status, reason: info.body.reason };
  const kdf = info.body.kdf as k.LinkKdf | null;
  const keys = k.deriveLinkKeys(secret, kdf && password !== undefined ? k.hashLinkPassword(password, kdf.salt, kdf) : null);
  const acc = await call(env.url, 'POST', `/api/v1/public/links/${linkId}/access`, { json: { auth: k.toBase64Url(keys.linkAuth) } });
  if (acc.status !== 200) return { status: acc.status, reason: acc.body.reason };
  const granted = k.LinkAccess.parse(acc.body);
  const sub = k.deriveFileSubkeys(k.openLinkFileKey(k.fromBase64Url(granted.wrapped), linkId, keys));
  const { manifest } = k.openManifest(k.fromBase64Url(granted.manifest), sub, { fileId: granted.fileId, versionId: granted.versionId }, () => true);
  const res = await fetch(`${env.url}/api/v1/public/links/${linkId}/chunks`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${granted.token}` }, body: JSON.stringify({ ids: manifest.chunks.map(([id]) => id) }) });
  const frames = new Map(k.decodeFrames(new Uint8Array(await res.arrayBuffer())).map((f) => [f.id, f.ciphertext]));
  return { status: 200, bytes: k.concatBytes(...manifest.chunks.map(([id]) => k.decryptChunk(sub, id, frames.get(id)!))) };
}

const file = () => path.join(a.dir, 'Rapport', 'advies.pdf');

test.serial('share link prints a URL whose fragment opens the file; list shows it; revoke makes it 410', async (t) => {
  const r = await kluis(a.home, ['share', 'link', file(), '--purpose', PURPOSE, '--expires', '2d', '--max-downloads', '5']);
  t.is(r.code, 0, r.stderr);
  const link = r.stdout.trim();
  t.is(link.split('\n').length, 1, 'stdout is the link alone');
  const { linkId, secret } = parseLink(link);
  t.true(link.startsWith('http'));
  const opened = await open(link);
  t.is(opened.status, 200);
  t.true(k.bytesEqual(opened.bytes!, content), 'byte for byte');

  const list = okJson(await kluis(a.home, ['--json', 'share', 'list']), 'share list');
  const item = list.links.find((l: { linkId: string }) => l.linkId === linkId);
  t.like(item, { state: 'active', downloads: 1, maxDownloads: 5, purpose: PURPOSE, path: 'Rapport/advies.pdf', password: false });
  t.true(Math.abs(item.expiresAt - (Date.now() + 2 * 86_400_000)) < 120_000);
  const human = await kluis(a.home, ['share', 'list']);
  t.regex(human.stdout, new RegExp(linkId));
  t.false(human.stdout.includes(secret) || JSON.stringify(list).includes(secret), 'the secret is shown once, at creation');

  t.is((await kluis(a.home, ['share', 'revoke', linkId])).code, 0);
  t.deepEqual(await open(link), { status: 410, reason: 'revoked' });
  const after = okJson(await kluis(a.home, ['--json', 'share', 'list']), 'share list');
  t.is(after.links.find((l: { linkId: string }) => l.linkId === linkId).state, 'revoked');
});

test.serial('share link --password-stdin: the right password opens, a wrong one does not; --json gives LinkInfo and the link', async (t) => {
  const r = okJson(await kluis(a.home, ['--json', 'share', 'link', file(), '--purpose', PURPOSE, '--password-stdin'], { stdin: 'Zomer in Gent 2024\n' }), 'share link');
  t.true(k.LinkInfo.safeParse(r).success);
  t.true(r.password);
  t.is(r.link.split('#')[0], r.url);
  t.true(r.expiresAt - Date.now() > 6.9 * 86_400_000 && r.expiresAt - Date.now() <= 7 * 86_400_000, 'default 7d');
  const info = await call(env.url, 'GET', `/api/v1/public/links/${r.linkId}`);
  t.true(info.body.kdf.opsLimit >= k.KDF_INTERACTIVE.opsLimit && info.body.kdf.memLimit >= k.KDF_INTERACTIVE.memLimit, 'at least INTERACTIVE');
  t.is((await open(r.link, 'zomer in gent 2024')).status, 401);
  const ok = await open(r.link, 'Zomer in Gent 2024');
  t.is(ok.status, 200);
  t.true(k.bytesEqual(ok.bytes!, content));
});

test.serial('failures exit non-zero with one line', async (t) => {
  const cases: [string, string[], string?][] = [
    ['no purpose', ['share', 'link', file()]],
    ['expiry too long', ['share', 'link', file(), '--purpose', PURPOSE, '--expires', '91d']],
    ['expiry malformed', ['share', 'link', file(), '--purpose', PURPOSE, '--expires', 'soon']],
    ['max-downloads 0', ['share', 'link', file(), '--purpose', PURPOSE, '--max-downloads', '0']],
    ['password on argv', ['share', 'link', file(), '--purpose', PURPOSE, '--password', 'geheim']],
    ['empty password on stdin', ['share', 'link', file(), '--purpose', PURPOSE, '--password-stdin'], ''],
    ['not in a synced folder', ['share', 'link', path.join(env.root, 'elsewhere.txt'), '--purpose', PURPOSE]],
    ['unknown file', ['share', 'link', path.join(a.dir, 'nope.txt'), '--purpose', PURPOSE]],
    ['unknown link', ['share', 'revoke', k.newId()]],
    ['malformed link id', ['share', 'revoke', 'abc']],
  ];
  for (const [what, args, stdin] of cases) {
    const r = await kluis(a.home, args, { stdin: stdin ?? '' });
    t.not(r.code, 0, what);
    t.is(r.stderr.trim().split('\n').length, 1, `${what}: ${r.stderr}`);
    t.regex(r.stderr, /^kluis: /, what);
    t.is(r.stdout, '', what);
  }
  // An id that begins with '-' (ids made before they never did) is taken for an option; the message says to put it
  // after '--', and that form reaches the server (an unknown link there).
  const dashId = `-${k.newId().slice(1)}`;
  const dash = await kluis(a.home, ['share', 'revoke', dashId]);
  t.is(dash.code, 2);
  t.true(dash.stderr.includes(`kluis share revoke -- ${dashId}`), dash.stderr);
  const after = await kluis(a.home, ['share', 'revoke', '--', dashId]);
  t.not(after.code, 0);
  t.notRegex(after.stderr, /unknown option/);
  t.regex(after.stderr, /no such link/);
  // A viewer of the space cannot make a link to its files.
  const viewerFile = path.join(env.root, 'viewer-folder', 'Rapport', 'advies.pdf');
  const v = await kluis(viewerHome, ['share', 'link', viewerFile, '--purpose', PURPOSE]);
  t.not(v.code, 0);
  t.regex(v.stderr, /editors and managers/);
});
