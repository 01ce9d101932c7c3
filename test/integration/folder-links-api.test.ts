// Folder links over HTTP (docs/api.md "Folder links", docs/crypto.md §9.1): a snapshot made the way the CLI makes it
// is opened the way the page opens it (access, the sealed listing, each file's chunks with the one token), byte for
// byte; the token reads exactly the snapshot's chunks; one opening is one download; password, revocation, policy,
// who may create, bad input, and the audit entry of every access.
import test from 'ava';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, call, newColleague, newOrg, newSpace, type User } from '../helpers/api.js';
import { newFile, version, type FileHandle } from '../helpers/files.js';
import { encryptAll, pseudoRandom } from '../helpers/chunks.js';

let srv: RunningServer;
const UA = 'Mozilla/5.0 (kluis folder link test)';

test.before(async () => {
  await k.initCrypto();
  srv = await startServer({ KLUIS_PUBLIC_URL: 'https://kluis.gent.example.be' });
});
test.afterEach.always((t) => {
  if (!t.passed) t.log(`server log:\n${srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await srv?.stop();
});

interface Stored {
  file: FileHandle;
  versionId: string;
  path: string;
  content: Uint8Array;
  chunks: [string, number][];
}

interface Fixture {
  owner: User;
  spaceId: string;
  pair: k.SpaceKeyPair;
  folder: Stored;
  inside: Stored[];
  outside: Stored;
}

async function commit(o: User, spaceId: string, pair: k.SpaceKeyPair, path: string, pieces: Uint8Array[], kind: k.ManifestKind = 'file'): Promise<Stored> {
  const file = newFile();
  const enc = encryptAll(file.sub, pieces);
  if (enc.length) {
    const res = await fetch(`${srv.url}/api/v1/spaces/${spaceId}/chunks/upload`, { method: 'POST', headers: { authorization: `Bearer ${o.token}`, 'content-type': 'application/octet-stream' }, body: k.encodeFrames(enc) });
    if (res.status !== 201) throw new Error(`upload: ${res.status}`);
  }
  const content = k.concatBytes(...pieces);
  const chunks = enc.map((c) => [c.id, c.plaintext.length] as [string, number]);
  const v = version(o, spaceId, pair, 1, file, { parent: null, chunks, hash: k.contentHash(content), path, kind });
  const res = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: o.token, json: { versions: [v.entry] } });
  if (res.status !== 201) throw new Error(`commit: ${JSON.stringify(res.body)}`);
  return { file, versionId: v.versionId, path, content, chunks };
}

/** A space with the folder Dossier (two files, one in a subfolder) and a file outside it. */
async function fixture(classification = 'internal'): Promise<Fixture> {
  const o = (await newOrg(srv.url, srv.dataDir)).admin;
  const { spaceId, pair } = await newSpace(srv.url, o, 'Dossiers', classification);
  const folder = await commit(o, spaceId, pair, 'Dossier', [], 'dir');
  const inside = [
    await commit(o, spaceId, pair, 'Dossier/advies.pdf', [pseudoRandom(1, 200_000), pseudoRandom(2, 3000)]),
    await commit(o, spaceId, pair, 'Dossier/bijlagen/scan één.tiff', [pseudoRandom(3, 150_000)]),
  ];
  const outside = await commit(o, spaceId, pair, 'Andere/geheim.txt', [pseudoRandom(4, 5000)]);
  return { owner: o, spaceId, pair, folder, inside, outside };
}

interface Made {
  linkId: string;
  keys: k.LinkKeys;
  body: Record<string, unknown>;
}

function makeFolderLink(f: Fixture, opts: { password?: string; maxDownloads?: number | null; files?: Stored[] } = {}): Made {
  const linkId = k.newId();
  const salt = k.newSalt();
  const keys = k.deriveLinkKeys(k.newLinkSecret(), opts.password ? k.hashLinkPassword(opts.password, salt, k.KDF_MIN) : null);
  const files = (opts.files ?? f.inside).map((s) => ({
    path: s.path.slice('Dossier/'.length), size: s.content.length, hash: k.contentHash(s.content), fileId: s.file.fileId, versionId: s.versionId, fileKey: k.toBase64Url(s.file.fileKey), chunks: s.chunks,
  }));
  const listing = k.sealFolderListing({ v: 1, name: 'Dossier', files }, linkId, keys);
  const body = {
    linkId, fileId: f.folder.file.fileId, versionId: f.folder.versionId, files: files.map((x) => ({ fileId: x.fileId, versionId: x.versionId })), listing: k.toBase64Url(listing),
    kdf: opts.password ? { salt, ...k.KDF_MIN } : null, authHash: k.linkAuthHash(keys.linkAuth), wrapped: k.toBase64Url(k.wrapFileKeyForLink(f.folder.file.fileKey, linkId, keys)),
    expiresAt: Date.now() + 86_400_000, maxDownloads: opts.maxDownloads ?? null, purpose: 'Dossier 2024/117: stukken voor de advocaat',
  };
  return { linkId, keys, body };
}

const create = (f: Fixture, made: Made | Record<string, unknown>, as = f.owner) =>
  call(srv.url, 'POST', `/api/v1/spaces/${f.spaceId}/folder-links`, { token: as.token, json: 'body' in made ? made.body : made });

async function post(url: string, json: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(srv.url + url, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': UA, ...headers }, body: JSON.stringify(json) });
  const bytes = new Uint8Array(await res.arrayBuffer());
  let body: any = null; // eslint-disable-line @typescript-eslint/no-explicit-any
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    // frames
  }
  return { status: res.status, body, bytes };
}

const access = (m: Made, auth = m.keys.linkAuth) => post(`/api/v1/public/links/${m.linkId}/access`, { auth: k.toBase64Url(auth) });
const chunks = (m: Made, token: string, ids: string[]) => post(`/api/v1/public/links/${m.linkId}/chunks`, { ids }, { authorization: `Bearer ${token}` });

/** As the page: the folder's manifest, the listing, then each file from its chunks. */
async function openAsPage(m: Made, granted: k.LinkAccess): Promise<{ listing: k.FolderListing; files: Map<string, Uint8Array> }> {
  const sub = k.deriveFileSubkeys(k.openLinkFileKey(k.fromBase64Url(granted.wrapped), m.linkId, m.keys));
  const { manifest } = k.openManifest(k.fromBase64Url(granted.manifest), sub, { fileId: granted.fileId, versionId: granted.versionId }, () => true);
  if (manifest.kind !== 'dir') throw new Error('the folder manifest is no folder');
  const listing = k.openFolderListing(k.fromBase64Url(granted.listing!), m.linkId, m.keys);
  const files = new Map<string, Uint8Array>();
  for (const entry of listing.files) {
    const got = await chunks(m, granted.token, entry.chunks.map(([id]) => id));
    if (got.status !== 200) throw new Error(`chunks: ${got.status}`);
    const byId = new Map(k.decodeFrames(got.bytes).map((fr) => [fr.id, fr.ciphertext]));
    const fsub = k.deriveFileSubkeys(k.fromBase64Url(entry.fileKey));
    const bytes = k.concatBytes(...entry.chunks.map(([id]) => k.decryptChunk(fsub, id, byId.get(id)!)));
    if (k.contentHash(bytes) !== entry.hash) throw new Error('hash mismatch');
    files.set(entry.path, bytes);
  }
  return { listing, files };
}

async function auditOf(admin: User, linkId: string) {
  const res = await call(srv.url, 'GET', `/api/v1/orgs/${admin.orgId}/audit?target=${linkId}&limit=1000`, { token: admin.token });
  if (res.status !== 200) throw new Error(`audit: ${JSON.stringify(res.body)}`);
  return res.body.entries as { action: string; outcome: string; ip: string | null; userAgent: string | null; details: Record<string, unknown> }[];
}

test.serial('a folder link opens every file of its snapshot byte for byte with one token; each access is audited with ip, user agent and purpose', async (t) => {
  const f = await fixture();
  const made = makeFolderLink(f, { maxDownloads: 2 });
  const res = await create(f, made);
  t.is(res.status, 201, JSON.stringify(res.body));
  const info = k.LinkInfo.parse(res.body);
  t.is(info.kind, 'folder');
  t.is(info.fileId, f.folder.file.fileId);

  const a = await access(made);
  t.is(a.status, 200, JSON.stringify(a.body));
  const granted = k.LinkAccess.parse(a.body);
  t.is(granted.kind, 'folder');
  t.is(granted.downloadsLeft, 1, 'opening the link is one download, whatever is then saved');
  const { listing, files } = await openAsPage(made, granted);
  t.is(listing.name, 'Dossier');
  t.deepEqual(listing.files.map((x) => x.path), ['advies.pdf', 'bijlagen/scan één.tiff']);
  for (const s of f.inside) t.true(k.bytesEqual(files.get(s.path.slice('Dossier/'.length))!, s.content), s.path);

  t.is((await access(made)).status, 200);
  const third = await access(made);
  t.is(third.status, 410);
  t.is(third.body.reason, 'exhausted');

  const entries = await auditOf(f.owner, made.linkId);
  const accesses = entries.filter((e) => e.action === 'link.access');
  t.deepEqual(accesses.map((e) => e.outcome).sort(), ['denied', 'success', 'success']);
  for (const e of accesses) {
    t.truthy(e.ip);
    t.is(e.userAgent, UA);
    t.is(e.details.purpose, made.body.purpose);
    t.is(e.details.kind, 'folder');
  }
  const created = entries.find((e) => e.action === 'link.create')!;
  t.is(created.details.files, 2);
  t.is(entries.filter((e) => e.action === 'link.chunks').length, 2, 'each chunk request is audited');
  // The server keeps the listing sealed: no name of the snapshot is in its database rows or log.
  t.false(srv.output().includes('advies.pdf'));
});

test.serial('the token reads only the chunks of the snapshot: a file outside it, or one more chunk among the right ones, is 403', async (t) => {
  const f = await fixture();
  const made = makeFolderLink(f);
  t.is((await create(f, made)).status, 201);
  const granted = k.LinkAccess.parse((await access(made)).body);
  const out = await chunks(made, granted.token, [f.outside.chunks[0]![0]]);
  t.is(out.status, 403);
  t.is(out.body.error.code, 'forbidden');
  const mixed = await chunks(made, granted.token, [f.inside[0]!.chunks[0]![0], f.outside.chunks[0]![0]]);
  t.is(mixed.status, 403);
  // The snapshot's other file reads; a token that is not this link's reads nothing.
  t.is((await chunks(made, granted.token, [f.inside[1]!.chunks[0]![0]])).status, 200);
  t.is((await chunks(made, 'A'.repeat(43), [f.inside[1]!.chunks[0]![0]])).status, 401);
});

test.serial('password, revocation and a tampered listing', async (t) => {
  const f = await fixture();
  const made = makeFolderLink(f, { password: 'Zomer in Gent' });
  t.is((await create(f, made)).status, 201);
  const pub = await fetch(`${srv.url}/api/v1/public/links/${made.linkId}`);
  t.truthy(k.PublicLinkInfo.parse(await pub.json()).kdf);
  const wrongKeys = k.deriveLinkKeys(k.newLinkSecret(), null);
  const wrong = await access(made, wrongKeys.linkAuth);
  t.is(wrong.status, 401);
  t.is(wrong.body.error.code, 'bad_link_auth');
  const granted = k.LinkAccess.parse((await access(made)).body);
  // One changed byte of the sealed listing: the page cannot open it.
  const sealed = k.fromBase64Url(granted.listing!);
  sealed[sealed.length - 5]! ^= 1;
  t.throws(() => k.openFolderListing(sealed, made.linkId, made.keys), { instanceOf: k.CryptoError });
  // A listing moved to another link does not open either (the link id is bound in).
  t.throws(() => k.openFolderListing(k.fromBase64Url(granted.listing!), k.newId(), made.keys), { instanceOf: k.CryptoError });

  t.is((await call(srv.url, 'DELETE', `/api/v1/links/${made.linkId}`, { token: f.owner.token })).status, 204);
  const after = await chunks(made, granted.token, [f.inside[0]!.chunks[0]![0]]);
  t.is(after.status, 410);
  t.is(after.body.reason, 'revoked');
  const list = await call(srv.url, 'GET', '/api/v1/links', { token: f.owner.token });
  t.is((list.body.links as k.LinkInfo[]).find((l) => l.linkId === made.linkId)!.state, 'revoked');
});

test.serial('who may create a folder link, policy by class, and bad input (400, never 500)', async (t) => {
  const f = await fixture();
  const viewer = await newColleague(srv.url, f.owner);
  const body = await addMemberBody(srv.url, f.owner, f.spaceId, f.pair, viewer, 'viewer');
  t.is((await call(srv.url, 'POST', `/api/v1/spaces/${f.spaceId}/members`, { token: f.owner.token, json: body })).status, 201);
  t.is((await create(f, makeFolderLink(f), viewer)).status, 403, 'a viewer cannot');
  const other = (await newOrg(srv.url, srv.dataDir, 'OCMW Elders')).admin;
  t.is((await create(f, makeFolderLink(f), other)).status, 404);

  const medical = await fixture('medical');
  const refused = await create(medical, makeFolderLink(medical));
  t.is(refused.status, 403);
  t.is(refused.body.error.code, 'policy_refused');

  const base = makeFolderLink(f).body;
  const bad: [string, Record<string, unknown>][] = [
    ['a file twice', { ...base, files: [...(base.files as unknown[]), (base.files as unknown[])[0]] }],
    ['the folder among its files', { ...base, files: [{ fileId: f.folder.file.fileId, versionId: f.folder.versionId }] }],
    ['a version of another file', { ...base, files: [{ fileId: f.inside[0]!.file.fileId, versionId: f.inside[1]!.versionId }] }],
    ['no files', { ...base, files: [] }],
    ['no listing', { ...base, listing: '' }],
    ['a listing that is not base64url', { ...base, listing: '!'.repeat(100) }],
    ['an unknown field', { ...base, extra: 1 }],
    ['the folder version unknown', { ...base, versionId: k.newId() }],
    ['expired already', { ...base, expiresAt: Date.now() - 1000 }],
  ];
  for (const [what, b] of bad) {
    const r = await create(f, b);
    t.is(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
    t.truthy(r.body.error?.code, what);
  }
  const first = makeFolderLink(f);
  t.is((await create(f, first)).status, 201);
  t.is((await create(f, { ...makeFolderLink(f).body, linkId: first.linkId })).status, 409, 'a link id once');
  // After a new version of a file, a snapshot naming the old one is refused (the CLI says: sync, then again).
  const next = version(f.owner, f.spaceId, f.pair, 1, f.inside[0]!.file, { parent: f.inside[0]!.versionId, chunks: f.inside[0]!.chunks, hash: k.contentHash(f.inside[0]!.content), path: f.inside[0]!.path });
  t.is((await call(srv.url, 'POST', `/api/v1/spaces/${f.spaceId}/commits`, { token: f.owner.token, json: { versions: [next.entry] } })).status, 201);
  const stale = await create(f, makeFolderLink(f));
  t.is(stale.status, 400);
  t.regex(stale.body.error.message, /not the current version/);
});
