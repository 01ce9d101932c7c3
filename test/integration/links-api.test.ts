// Share links over HTTP (docs/api.md "Share links"): a link made the way the CLI makes it is opened the way the page
// opens it (info, access with linkAuth, chunks with the token, decrypted here byte for byte), with and without a
// password; expiry, revocation, download limits under parallel accesses, password throttling, who may create, list
// and revoke, bad input, the audit entry of every access, and that no secret reaches the server's log or database.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import * as k from '@kluis/shared';
import { openServerDb, startServer, testEngine, type RunningServer } from '../helpers/server.js';
import { addMemberBody, call, newColleague, newOrg, newSpace, type User } from '../helpers/api.js';
import { newFile, version, type FileHandle } from '../helpers/files.js';
import { encryptAll, pseudoRandom } from '../helpers/chunks.js';

let srv: RunningServer;
/** Every secret, linkAuth and token the tests handled: none may appear in the server's output or data dir. */
const secrets: string[] = [];
const UA = 'Mozilla/5.0 (kluis link test)';
const PUBLIC_URL = 'https://kluis.gent.example.be';

test.before(async () => {
  await k.initCrypto();
  srv = await startServer({ KLUIS_PUBLIC_URL: PUBLIC_URL });
});
test.afterEach.always((t) => {
  if (!t.passed) t.log(`server log:\n${srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await srv?.stop();
});

interface Fixture {
  owner: User;
  spaceId: string;
  pair: k.SpaceKeyPair;
  file: FileHandle;
  versionId: string;
  content: Uint8Array;
  chunkIds: string[];
}

async function upload(u: User, spaceId: string, chunks: { id: string; ciphertext: Uint8Array }[]): Promise<void> {
  const res = await fetch(`${srv.url}/api/v1/spaces/${spaceId}/chunks/upload`, { method: 'POST', headers: { authorization: `Bearer ${u.token}`, 'content-type': 'application/octet-stream' }, body: k.encodeFrames(chunks) });
  if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`);
}

/** A space with one committed file of several chunks (`owner` may be given to reuse an organisation). */
async function fixture(owner?: User): Promise<Fixture> {
  const o = owner ?? (await newOrg(srv.url, srv.dataDir)).admin;
  const { spaceId, pair } = await newSpace(srv.url, o);
  const file = newFile();
  const pieces = [pseudoRandom(7, 200_000), pseudoRandom(8, 150_000), pseudoRandom(9, 1234)];
  const chunks = encryptAll(file.sub, pieces);
  await upload(o, spaceId, chunks);
  const content = k.concatBytes(...pieces);
  const v = version(o, spaceId, pair, 1, file, { parent: null, chunks: chunks.map((c) => [c.id, c.plaintext.length]), hash: k.contentHash(content), path: 'Dossiers/verslag.pdf' });
  const res = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: o.token, json: { versions: [v.entry] } });
  if (res.status !== 201) throw new Error(`commit: ${JSON.stringify(res.body)}`);
  return { owner: o, spaceId, pair, file, versionId: v.versionId, content, chunkIds: chunks.map((c) => c.id) };
}

interface Made {
  linkId: string;
  secret: string;
  keys: k.LinkKeys;
  body: Record<string, unknown>;
}

/** A link body as the CLI makes it (optionally with a password). */
function makeLink(f: Fixture, opts: { password?: string; maxDownloads?: number | null; expiresAt?: number; purpose?: string } = {}): Made {
  const linkId = k.newId();
  const secret = k.newLinkSecret();
  const salt = k.newSalt();
  const pwHash = opts.password ? k.hashLinkPassword(opts.password, salt, k.KDF_MIN) : null;
  const keys = k.deriveLinkKeys(secret, pwHash);
  secrets.push(secret, k.toBase64Url(keys.linkAuth), k.toBase64Url(keys.linkKey));
  const body = {
    linkId, fileId: f.file.fileId, versionId: f.versionId, kdf: opts.password ? { salt, ...k.KDF_MIN } : null, authHash: k.linkAuthHash(keys.linkAuth),
    wrapped: k.toBase64Url(k.wrapFileKeyForLink(f.file.fileKey, linkId, keys)), expiresAt: opts.expiresAt ?? Date.now() + 7 * 86_400_000,
    maxDownloads: opts.maxDownloads ?? null, purpose: opts.purpose ?? 'Dossier 2024/117: advies aan de rechtbank',
  };
  return { linkId, secret, keys, body };
}

async function create(f: Fixture, made: Made, as = f.owner) {
  return call(srv.url, 'POST', `/api/v1/spaces/${f.spaceId}/links`, { token: as.token, json: made.body });
}

async function post(url: string, json: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(srv.url + url, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': UA, ...headers }, body: JSON.stringify(json) });
  const text = await res.text();
  let body: any = text; // eslint-disable-line @typescript-eslint/no-explicit-any
  try {
    body = JSON.parse(text);
  } catch {
    // frames
  }
  return { status: res.status, body, headers: res.headers };
}

const access = (linkId: string, keys: k.LinkKeys | Uint8Array) => post(`/api/v1/public/links/${linkId}/access`, { auth: k.toBase64Url(keys instanceof Uint8Array ? keys : keys.linkAuth) });

async function chunks(linkId: string, token: string, ids: string[]) {
  const res = await fetch(`${srv.url}/api/v1/public/links/${linkId}/chunks`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ ids }) });
  return { status: res.status, bytes: new Uint8Array(await res.arrayBuffer()) };
}

/** Opens the file the way the page does: wrapped → fileKey, manifest, chunks; returns its bytes. */
async function openAsPage(linkId: string, keys: k.LinkKeys, granted: k.LinkAccess): Promise<{ name: string; bytes: Uint8Array }> {
  const fileKey = k.openLinkFileKey(k.fromBase64Url(granted.wrapped), linkId, keys);
  const sub = k.deriveFileSubkeys(fileKey);
  const { manifest } = k.openManifest(k.fromBase64Url(granted.manifest), sub, { fileId: granted.fileId, versionId: granted.versionId }, () => true);
  const got = await chunks(linkId, granted.token, manifest.chunks.map(([id]) => id));
  if (got.status !== 200) throw new Error(`chunks: ${got.status}`);
  const byId = new Map(k.decodeFrames(got.bytes).map((fr) => [fr.id, fr.ciphertext]));
  const bytes = k.concatBytes(...manifest.chunks.map(([id]) => k.decryptChunk(sub, id, byId.get(id)!)));
  if (k.contentHash(bytes) !== manifest.hash) throw new Error('hash mismatch');
  return { name: manifest.path, bytes };
}

async function auditOf(admin: User, linkId: string) {
  const res = await call(srv.url, 'GET', `/api/v1/orgs/${admin.orgId}/audit?target=${linkId}&limit=1000`, { token: admin.token });
  if (res.status !== 200) throw new Error(`audit: ${JSON.stringify(res.body)}`);
  return res.body.entries as k.CanonicalValue[] as unknown as { action: string; outcome: string; ip: string | null; userAgent: string | null; details: Record<string, unknown> }[];
}

test.serial('a link opens its file byte for byte, as the page opens it, and every access is audited with ip, user agent and purpose', async (t) => {
  const f = await fixture();
  const made = makeLink(f, { maxDownloads: 5 });
  const res = await create(f, made);
  t.is(res.status, 201, JSON.stringify(res.body));
  const info = k.LinkInfo.parse(res.body);
  t.is(info.url, `${PUBLIC_URL}/s/${made.linkId}`);
  t.false(info.url.includes('#'));
  t.is(info.state, 'active');
  t.is(info.downloads, 0);
  t.false(info.password);

  const pub = await fetch(`${srv.url}/api/v1/public/links/${made.linkId}`);
  t.is(pub.status, 200);
  t.deepEqual(k.PublicLinkInfo.parse(await pub.json()), { linkId: made.linkId, kdf: null, expiresAt: info.expiresAt, downloadsLeft: 5 });

  for (let i = 1; i <= 2; i++) {
    const a = await access(made.linkId, made.keys);
    t.is(a.status, 200, JSON.stringify(a.body));
    const granted = k.LinkAccess.parse(a.body);
    secrets.push(granted.token);
    t.is(granted.downloadsLeft, 5 - i);
    const opened = await openAsPage(made.linkId, made.keys, granted);
    t.is(opened.name, 'Dossiers/verslag.pdf');
    t.true(k.bytesEqual(opened.bytes, f.content), 'the file decrypts byte for byte');
  }
  const wrong = await access(made.linkId, new Uint8Array(randomBytes(32)));
  t.is(wrong.status, 401);
  t.is(wrong.body.error.code, 'bad_link_auth');

  const list = await call(srv.url, 'GET', '/api/v1/links', { token: f.owner.token });
  const mine = (list.body.links as k.LinkInfo[]).find((l) => l.linkId === made.linkId)!;
  t.is(mine.downloads, 2);

  const entries = (await auditOf(f.owner, made.linkId)).filter((e) => e.action === 'link.access');
  t.is(entries.length, 3, 'one entry per access, none aggregated');
  t.deepEqual(entries.map((e) => e.outcome).sort(), ['denied', 'success', 'success']);
  for (const e of entries) {
    t.truthy(e.ip);
    t.is(e.userAgent, UA);
    t.is(e.details.purpose, made.body.purpose);
    t.falsy(e.details.aggregated);
  }
  const created = (await auditOf(f.owner, made.linkId)).find((e) => e.action === 'link.create')!;
  t.is(created.details.purpose, made.body.purpose);
  t.is((await auditOf(f.owner, made.linkId)).filter((e) => e.action === 'link.chunks').length, 2);
});

test.serial('a password link: the page gets the KDF parameters; a wrong password is 401, the right one opens; 10 wrong lock the link (429, audited)', async (t) => {
  const f = await fixture();
  const made = makeLink(f, { password: 'Zomer 2024 in Gent!' });
  t.is((await create(f, made)).status, 201);
  const pub = k.PublicLinkInfo.parse(await (await fetch(`${srv.url}/api/v1/public/links/${made.linkId}`)).json());
  t.deepEqual(pub.kdf, made.body.kdf);
  const badKeys = k.deriveLinkKeys(made.secret, k.hashLinkPassword('zomer 2024 in gent', pub.kdf!.salt, k.KDF_MIN));
  t.is((await access(made.linkId, badKeys)).status, 401);
  const ok = await access(made.linkId, k.deriveLinkKeys(made.secret, k.hashLinkPassword('Zomer 2024 in Gent!', pub.kdf!.salt, k.KDF_MIN)));
  t.is(ok.status, 200);
  secrets.push(ok.body.token);
  t.true(k.bytesEqual((await openAsPage(made.linkId, made.keys, ok.body)).bytes, f.content));

  // 1 wrong above, 9 more: the 10th failure locks the link; then even the right password waits.
  for (let i = 0; i < 9; i++) t.is((await access(made.linkId, badKeys)).status, 401);
  const locked = await access(made.linkId, made.keys);
  t.is(locked.status, 429);
  t.is(locked.body.error.code, 'rate_limited');
  t.true(Number(locked.headers.get('retry-after')) > 0);
  const entries = (await auditOf(f.owner, made.linkId)).filter((e) => e.action === 'link.access');
  t.is(entries.length, 12);
  t.is(entries.filter((e) => e.details.status === 401).length, 10);
  t.is(entries.filter((e) => e.details.status === 429 && e.outcome === 'denied').length, 1);
});

test.serial('expired: info, access and an earlier token all stop with 410 expired', async (t) => {
  const f = await fixture();
  const made = makeLink(f, { expiresAt: Date.now() + 1500 });
  t.is((await create(f, made)).status, 201);
  const a = await access(made.linkId, made.keys);
  t.is(a.status, 200);
  secrets.push(a.body.token);
  await new Promise((r) => setTimeout(r, 1700));
  const info = await call(srv.url, 'GET', `/api/v1/public/links/${made.linkId}`);
  t.is(info.status, 410);
  t.deepEqual([info.body.error.code, info.body.reason], ['link_gone', 'expired']);
  const again = await access(made.linkId, made.keys);
  t.deepEqual([again.status, again.body.reason], [410, 'expired']);
  t.is((await chunks(made.linkId, a.body.token, f.chunkIds)).status, 410);
  const list = await call(srv.url, 'GET', `/api/v1/links?spaceId=${f.spaceId}`, { token: f.owner.token });
  t.is(list.body.links[0].state, 'expired');
});

test.serial('revoked: by its creator or a manager only (404 for others, other organisations too); tokens stop at once', async (t) => {
  const f = await fixture();
  const editor = await newColleague(srv.url, f.owner);
  const viewer = await newColleague(srv.url, f.owner);
  for (const [u, role] of [[editor, 'editor'], [viewer, 'viewer']] as const) {
    const body = await addMemberBody(srv.url, f.owner, f.spaceId, f.pair, u, role);
    t.is((await call(srv.url, 'POST', `/api/v1/spaces/${f.spaceId}/members`, { token: f.owner.token, json: body })).status, 201);
  }
  const made = makeLink(f);
  const viewerTry = await create(f, made, viewer);
  t.is(viewerTry.status, 403, 'a viewer cannot create a link');
  t.is((await create(f, made, editor)).status, 201, 'an editor can');
  const other = (await newOrg(srv.url, srv.dataDir, 'OCMW Elders')).admin;
  t.is((await create(f, makeLink(f), other)).status, 404, 'another organisation does not see the space');

  const a = await access(made.linkId, made.keys);
  t.is(a.status, 200);
  secrets.push(a.body.token);
  for (const u of [other, viewer]) {
    t.is((await call(srv.url, 'DELETE', `/api/v1/links/${made.linkId}`, { token: u.token })).status, 404);
    const l = await call(srv.url, 'GET', '/api/v1/links', { token: u.token });
    t.false((l.body.links as k.LinkInfo[]).some((x) => x.linkId === made.linkId));
  }
  t.is((await call(srv.url, 'DELETE', `/api/v1/links/${k.newId()}`, { token: other.token })).status, 404, 'same answer as a missing link');
  // The manager sees the editor's link and may revoke it.
  const managerList = await call(srv.url, 'GET', `/api/v1/links?spaceId=${f.spaceId}`, { token: f.owner.token });
  t.true((managerList.body.links as k.LinkInfo[]).some((x) => x.linkId === made.linkId));
  t.is((await call(srv.url, 'DELETE', `/api/v1/links/${made.linkId}`, { token: f.owner.token })).status, 204);
  t.deepEqual([(await access(made.linkId, made.keys)).body.reason], ['revoked']);
  const c = await chunks(made.linkId, a.body.token, f.chunkIds);
  t.is(c.status, 410, 'the token of an earlier access stops at once');
  const info = await call(srv.url, 'GET', `/api/v1/public/links/${made.linkId}`);
  t.deepEqual([info.status, info.body.reason], [410, 'revoked']);
  const revokes = (await auditOf(f.owner, made.linkId)).filter((e) => e.action === 'link.revoke');
  t.deepEqual(revokes.map((e) => e.outcome), ['denied', 'success'], 'the viewer\'s refused attempt and the manager\'s revocation');
});

test.serial('exhausted: parallel accesses to a link of 3 downloads give exactly 3 successes', async (t) => {
  const f = await fixture();
  const made = makeLink(f, { maxDownloads: 3 });
  t.is((await create(f, made)).status, 201);
  const results = await Promise.all(Array.from({ length: 8 }, () => access(made.linkId, made.keys)));
  for (const r of results) if (r.status === 200) secrets.push(r.body.token);
  t.is(results.filter((r) => r.status === 200).length, 3);
  t.deepEqual(results.filter((r) => r.status !== 200).map((r) => [r.status, r.body.reason]), Array(5).fill([410, 'exhausted']));
  t.deepEqual(results.filter((r) => r.status === 200).map((r) => r.body.downloadsLeft).sort(), [0, 1, 2]);
  const list = await call(srv.url, 'GET', `/api/v1/links?spaceId=${f.spaceId}`, { token: f.owner.token });
  t.like(list.body.links[0], { downloads: 3, state: 'exhausted' });
  t.is((await call(srv.url, 'GET', `/api/v1/public/links/${made.linkId}`)).body.reason, 'exhausted');
});

test.serial('a token reads only the chunks of its link\'s version', async (t) => {
  const f = await fixture();
  const made = makeLink(f);
  t.is((await create(f, made)).status, 201);
  // A newer version of the same file, and another file, each with a chunk of its own.
  const [newer] = encryptAll(f.file.sub, [pseudoRandom(77, 5000)]);
  const otherFile = newFile();
  const [foreign] = encryptAll(otherFile.sub, [pseudoRandom(78, 5000)]);
  await upload(f.owner, f.spaceId, [newer!, foreign!]);
  const v2 = version(f.owner, f.spaceId, f.pair, 1, f.file, { parent: f.versionId, chunks: [[newer!.id, 5000]], hash: k.contentHash(newer!.plaintext) });
  t.is((await call(srv.url, 'POST', `/api/v1/spaces/${f.spaceId}/commits`, { token: f.owner.token, json: { versions: [v2.entry] } })).status, 201);

  const a = await access(made.linkId, made.keys);
  t.is(a.status, 200);
  secrets.push(a.body.token);
  t.is(a.body.versionId, f.versionId, 'the link is a snapshot');
  t.true(k.bytesEqual((await openAsPage(made.linkId, made.keys, a.body)).bytes, f.content));
  t.is((await chunks(made.linkId, a.body.token, [newer!.id])).status, 403);
  t.is((await chunks(made.linkId, a.body.token, [f.chunkIds[0]!, foreign!.id])).status, 403);
  t.is((await chunks(made.linkId, 'A'.repeat(43), [f.chunkIds[0]!])).status, 401);
  const second = makeLink({ ...f, versionId: v2.versionId });
  t.is((await create(f, second)).status, 201);
  t.is((await chunks(second.linkId, a.body.token, [newer!.id])).status, 401, 'a token is bound to its link');
  const noAuth = await fetch(`${srv.url}/api/v1/public/links/${made.linkId}/chunks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ids: f.chunkIds }) });
  t.is(noAuth.status, 401);
  t.is(((await noAuth.json()) as { error: { code: string } }).error.code, 'unauthenticated');
});

test.serial('bad input is answered 400 (or 404), never 500', async (t) => {
  const f = await fixture();
  const cases: [string, Record<string, unknown>][] = [
    ['expiry too far', { expiresAt: Date.now() + (k.LINK_MAX_DAYS + 1) * 86_400_000 }],
    ['expiry in the past', { expiresAt: Date.now() - 1000 }],
    ['wrapped too short', { wrapped: 'A'.repeat(97) }],
    ['wrapped not base64url', { wrapped: '+'.repeat(98) }],
    ['purpose missing', { purpose: undefined }],
    ['purpose empty', { purpose: '' }],
    ['authHash not hex', { authHash: 'Z'.repeat(64) }],
    ['maxDownloads 0', { maxDownloads: 0 }],
    ['unknown version', { versionId: k.newId() }],
    ['weak kdf', { kdf: { salt: k.newSalt(), opsLimit: 1, memLimit: 8192 } }],
  ];
  for (const [what, change] of cases) {
    const made = makeLink(f);
    const res = await call(srv.url, 'POST', `/api/v1/spaces/${f.spaceId}/links`, { token: f.owner.token, json: { ...made.body, ...change } });
    t.is(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
    t.truthy(res.body.error?.code, what);
  }
  // Not the current version, and a deleted file.
  const v2 = version(f.owner, f.spaceId, f.pair, 1, f.file, { parent: f.versionId, chunks: [], deleted: true });
  t.is((await call(srv.url, 'POST', `/api/v1/spaces/${f.spaceId}/commits`, { token: f.owner.token, json: { versions: [v2.entry] } })).status, 201);
  t.is((await create(f, makeLink(f))).status, 400, 'an older version');
  const del = await create(f, makeLink({ ...f, versionId: v2.versionId }));
  t.is(del.status, 400, 'a deleted version');
  t.regex(del.body.error.message, /deleted/);

  t.is((await call(srv.url, 'GET', '/api/v1/public/links/nope')).status, 404);
  t.is((await call(srv.url, 'GET', `/api/v1/public/links/${k.newId()}`)).status, 404);
  t.is((await post(`/api/v1/public/links/${k.newId()}/access`, { auth: k.toBase64Url(new Uint8Array(32)) })).status, 404);
  t.is((await call(srv.url, 'GET', '/api/v1/links?spaceId=bad', { token: f.owner.token })).status, 400);
  // Access bodies to a real link: refused and audited in full.
  const g = await fixture(f.owner);
  const made = makeLink(g);
  t.is((await create(g, made)).status, 201);
  for (const bad of [{}, { auth: 'short' }, { auth: k.toBase64Url(made.keys.linkAuth), extra: 1 }, []]) {
    const r = await post(`/api/v1/public/links/${made.linkId}/access`, bad);
    t.is(r.status, 400, JSON.stringify(bad));
    t.is(r.body.error.code, 'validation_failed');
  }
  t.is((await chunks(made.linkId, 'x', [])).status, 400);
  const entries = (await auditOf(f.owner, made.linkId)).filter((e) => e.action === 'link.access');
  t.is(entries.length, 4);
  t.true(entries.every((e) => e.outcome === 'failed' && e.details.purpose === made.body.purpose));
});

test.serial('no link secret, linkAuth, linkKey or token appears in the server\'s output or data directory', async (t) => {
  t.true(secrets.length > 20);
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(srv.dataDir);
  if (testEngine() === 'sqlite') t.true(files.some((p) => p.endsWith('.sqlite3')));
  // The database as rows too (on PostgreSQL it is not in the data directory): every table that links touch.
  const db = await openServerDb(srv.dataDir);
  const rows: unknown[] = [];
  try {
    for (const table of ['links', 'link_tokens', 'audit_log', 'throttle']) rows.push(await db(table).select('*'));
  } finally {
    await db.destroy();
  }
  t.true(JSON.stringify(rows).includes('link.access'));
  const haystacks = [Buffer.from(srv.output()), Buffer.from(JSON.stringify(rows)), ...files.map((p) => readFileSync(p))];
  for (const s of secrets) {
    const raw = Buffer.from(k.fromBase64Url(s));
    for (const h of haystacks) {
      t.false(h.includes(s), 'as text');
      t.false(h.includes(raw), 'as bytes');
    }
  }
});
