// File requests over HTTP (docs/api.md "File requests", docs/crypto.md §9.2): a request made the way the CLI makes it
// takes an upload made the way the page makes it, which a member then opens byte for byte; the server refuses uploads
// after expiry, beyond max files, after revocation or a key rotation, with a wrong proof, a forged receipt or wrap, an
// overwrite, and grants that are forged or not the creator's; the class policy; bad input (400/404, never 500); and
// the audit entry of every access and refusal, with IP, user agent and purpose.
import test from 'ava';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, call, newColleague, newOrg, newSpace, removeBody, type User } from '../helpers/api.js';
import { pseudoRandom } from '../helpers/chunks.js';
import { commitUpload, createRequest, prepareUpload, requestBody, type MadeRequest } from '../helpers/requests.js';

let srv: RunningServer;
const UA = 'Mozilla/5.0 (kluis request test)';
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
}

async function fixture(classification = 'internal'): Promise<Fixture> {
  const { admin } = await newOrg(srv.url, srv.dataDir);
  const { spaceId, pair, res } = await newSpace(srv.url, admin, 'Dossiers', classification);
  if (res.status !== 201) throw new Error(`space: ${JSON.stringify(res.body)}`);
  return { owner: admin, spaceId, pair };
}

async function made(f: Fixture, opts: Parameters<typeof requestBody>[4] = {}): Promise<MadeRequest> {
  const m = await requestBody(srv.url, f.owner, f.spaceId, f.pair, opts);
  const res = await createRequest(srv.url, f.owner, f.spaceId, m);
  if (res.status !== 201) throw new Error(`request: ${res.status} ${JSON.stringify(res.body)}`);
  return m;
}

const info = (requestId: string) => fetch(`${srv.url}/api/v1/public/requests/${requestId}`, { headers: { 'user-agent': UA } });

async function auditOf(admin: User, requestId: string) {
  const res = await call(srv.url, 'GET', `/api/v1/orgs/${admin.orgId}/audit?target=${requestId}&limit=1000`, { token: admin.token });
  if (res.status !== 200) throw new Error(`audit: ${JSON.stringify(res.body)}`);
  return res.body.entries as { action: string; outcome: string; ip: string; userAgent: string | null; details: Record<string, unknown> }[];
}

/** What a member's client does with a change (docs/crypto.md §9.2), with the shared checks: the content, or a refusal. */
function memberOpens(f: Fixture, v: { fileId: string; versionId: string; manifest: string; createdAt: number }, wraps: k.FileKeyWrap[], upload: { grant: unknown; receipt: unknown }, writerAt: (s: string, seq: number) => boolean) {
  const { grant, folder } = k.openGrantForMember(upload.grant, f.spaceId, f.pair, writerAt);
  k.verifyUploadReceipt(upload.receipt, grant.requestPublicKey);
  const fileKey = k.openFileKeyWrap(wraps[0]!, { spaceId: f.spaceId, keyEpoch: grant.keyEpoch, fileId: v.fileId }, f.pair, (s) => s === grant.requestPublicKey);
  const sub = k.deriveFileSubkeys(fileKey);
  const { manifest } = k.openManifest(k.fromBase64Url(v.manifest), sub, v, (s, seq) => s === grant.requestPublicKey && seq === grant.memberSeq);
  const problem = k.requestUploadProblem(grant, folder, upload.receipt as k.UploadReceipt, manifest, v.createdAt);
  if (problem) throw new Error(problem);
  return { manifest, sub };
}

test.serial('an upload through a request reaches the space; a member opens it byte for byte; the server saw no name; all audited', async (t) => {
  const f = await fixture();
  const r = await made(f, { folder: 'Inbox/Burgers', maxFiles: 3 });
  const res = await info(r.requestId);
  t.is(res.status, 200);
  const pub = k.PublicRequestInfo.parse(await res.json());
  t.is(pub.filesLeft, 3);
  t.deepEqual(pub.grant, r.grant);
  // The page's side: the grant opens under the link's secret and names the folder.
  const opened = k.openGrantForUploader(pub.grant, k.deriveRequestKeys(r.secret), r.requestId);
  t.is(opened.folder, 'Inbox/Burgers');
  const content = pseudoRandom(11, 700_000);
  const up = await prepareUpload(srv.url, r, `${opened.folder}/loonfiche maart.pdf`, content);
  const c = await commitUpload(srv.url, r, up.commit);
  t.is(c.status, 201, JSON.stringify(c.body));
  t.is(c.body.slot, 1);
  t.is(c.body.filesLeft, 2);

  const changes = await call(srv.url, 'GET', `/api/v1/spaces/${f.spaceId}/changes?since=0`, { token: f.owner.token });
  const v = changes.body.changes.find((x: { fileId: string }) => x.fileId === up.fileId);
  t.truthy(v);
  t.is(v.authorDeviceId, r.requestId, 'the version names the request as its device');
  const writerAt = (s: string, seq: number) => s === f.owner.identity.signPublicKey && seq >= 1;
  const { manifest, sub } = memberOpens(f, v, changes.body.fileKeyWraps[up.fileId], changes.body.uploads[up.fileId], writerAt);
  t.is(manifest.path, 'Inbox/Burgers/loonfiche maart.pdf');
  const dl = await fetch(`${srv.url}/api/v1/spaces/${f.spaceId}/chunks/download`, { method: 'POST', headers: { authorization: `Bearer ${f.owner.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ ids: manifest.chunks.map((x) => x[0]) }) });
  const frames = k.decodeFrames(new Uint8Array(await dl.arrayBuffer()));
  const byId = new Map(frames.map((fr) => [fr.id, fr.ciphertext]));
  const plain = k.concatBytes(...manifest.chunks.map(([id]) => k.decryptChunk(sub, id, byId.get(id)!)));
  t.is(k.contentHash(plain), k.contentHash(content));

  // The version history carries the same grant and receipt.
  const hist = await call(srv.url, 'GET', `/api/v1/spaces/${f.spaceId}/files/${up.fileId}/versions`, { token: f.owner.token });
  t.deepEqual(hist.body.uploads[up.fileId].grant, r.grant);

  const entries = await auditOf(f.owner, r.requestId);
  const actions = entries.map((e) => `${e.action}:${e.outcome}`);
  for (const a of ['filerequest.create:success', 'filerequest.info:success', 'filerequest.chunks:success', 'filerequest.upload:success']) t.true(actions.includes(a), a);
  const access = entries.find((e) => e.action === 'filerequest.info')!;
  t.is(access.userAgent, UA);
  t.truthy(access.ip);
  t.is(access.details.purpose, 'Aanvraag leefloon 2026/88: bewijsstukken');
  t.false(JSON.stringify(entries).includes('loonfiche'), 'no name in the audit trail');

  const list = await call(srv.url, 'GET', `/api/v1/requests?spaceId=${f.spaceId}`, { token: f.owner.token });
  t.is(list.status, 200);
  const mine = k.FileRequestInfo.parse(list.body.requests[0]);
  t.like(mine, { requestId: r.requestId, files: 1, maxFiles: 3, state: 'active', url: `${PUBLIC_URL}/r/${r.requestId}` });
});

test.serial('max files: the server takes exactly maxFiles uploads; the next is 410 full; a taken slot is 409 with the next one', async (t) => {
  const f = await fixture();
  const r = await made(f, { maxFiles: 2 });
  const a = await prepareUpload(srv.url, r, 'Inbox/a.txt', pseudoRandom(1, 1000), { slot: 1 });
  const b = await prepareUpload(srv.url, r, 'Inbox/b.txt', pseudoRandom(2, 1000), { slot: 1 });
  t.is((await commitUpload(srv.url, r, a.commit)).status, 201);
  const clash = await commitUpload(srv.url, r, b.commit);
  t.is(clash.status, 409);
  t.is(clash.body.nextSlot, 2);
  const b2 = { ...b.commit, receipt: k.signUploadReceipt({ requestId: r.requestId, spaceId: f.spaceId, fileId: b.fileId, versionId: b.versionId, slot: 2 }, r.keys) };
  t.is((await commitUpload(srv.url, r, b2)).status, 201);
  const c = await prepareUpload(srv.url, r, 'Inbox/c.txt', pseudoRandom(3, 1000), { slot: 3 }).catch((e: Error) => e);
  t.true(c instanceof Error && /410/.test(c.message), 'chunks are refused too once full');
  const full = await info(r.requestId);
  t.is(full.status, 410);
  t.like(await full.json(), { error: { code: 'request_gone' }, reason: 'full' });
});

test.serial('expiry, revocation and key rotation end a request (410 with the reason); refusals are audited', async (t) => {
  const f = await fixture();
  const soon = await made(f, { expiresAt: Date.now() + 1500 });
  const up = await prepareUpload(srv.url, soon, 'Inbox/late.txt', pseudoRandom(4, 500));
  await new Promise((res) => setTimeout(res, 1700));
  const late = await commitUpload(srv.url, soon, up.commit);
  t.is(late.status, 410);
  t.is(late.body.reason, 'expired');
  t.is((await info(soon.requestId)).status, 410);

  const r = await made(f);
  t.is((await call(srv.url, 'DELETE', `/api/v1/requests/${r.requestId}`, { token: f.owner.token })).status, 204);
  const after = await info(r.requestId);
  t.is(after.status, 410);
  t.is(((await after.json()) as { reason: string }).reason, 'revoked');
  t.is((await commitUpload(srv.url, r, (await prepareUpload(srv.url, soon, 'x', new Uint8Array(0))).commit)).status, 410);
  const denied = (await auditOf(f.owner, r.requestId)).filter((e) => e.outcome === 'denied');
  t.true(denied.some((e) => e.action === 'filerequest.info' && e.details.reason === 'revoked' && e.userAgent === UA));

  // A member leaves: the space key rotates, and a request sealing to the old key takes nothing more.
  const bob = await newColleague(srv.url, f.owner);
  t.is((await call(srv.url, 'POST', `/api/v1/spaces/${f.spaceId}/members`, { token: f.owner.token, json: await addMemberBody(srv.url, f.owner, f.spaceId, f.pair, bob, 'viewer') })).status, 201);
  const rotating = await made(f);
  const { body } = await removeBody(srv.url, f.owner, f.spaceId, f.pair, bob, [f.owner]);
  t.is((await call(srv.url, 'DELETE', `/api/v1/spaces/${f.spaceId}/members/${bob.userId}`, { token: f.owner.token, json: body })).status, 204);
  const rotated = await info(rotating.requestId);
  t.is(rotated.status, 410);
  t.is(((await rotated.json()) as { reason: string }).reason, 'revoked');
});

test.serial('forged proofs: wrong requestAuth (401, counted), a receipt or wrap not signed by the request key, an overwrite', async (t) => {
  const f = await fixture();
  const r = await made(f);
  const up = await prepareUpload(srv.url, r, 'Inbox/x.txt', pseudoRandom(5, 2000));
  const wrong = await commitUpload(srv.url, r, up.commit, k.toBase64Url(k.deriveRequestKeys(k.newRequestSecret()).requestAuth));
  t.is(wrong.status, 401);
  t.is(wrong.body.error.code, 'bad_link_auth');
  const noAuth = await call(srv.url, 'POST', `/api/v1/public/requests/${r.requestId}/commit`, { json: up.commit });
  t.is(noAuth.status, 401);

  const other = k.deriveRequestKeys(k.newRequestSecret());
  const forgedReceipt = { ...up.commit, receipt: k.signUploadReceipt({ requestId: r.requestId, spaceId: f.spaceId, fileId: up.fileId, versionId: up.versionId, slot: 1 }, other) };
  const a = await commitUpload(srv.url, r, forgedReceipt);
  t.is(a.status, 400);
  t.is(a.body.error.code, 'bad_signature');
  const forgedWrap = await prepareUpload(srv.url, r, 'Inbox/y.txt', pseudoRandom(6, 2000), { author: k.requestAuthor(other) });
  const b = await commitUpload(srv.url, r, forgedWrap.commit);
  t.is(b.status, 400, 'a wrap signed by another key than the request key');
  const tampered = { ...up.commit, receipt: { ...up.commit.receipt, sig: up.commit.receipt.sig.replace(/^./, (ch) => (ch === 'A' ? 'B' : 'A')) } };
  t.is((await commitUpload(srv.url, r, tampered)).status, 400);

  // An existing file cannot be overwritten: its id with no parent is a conflict.
  t.is((await commitUpload(srv.url, r, up.commit)).status, 201);
  const again = await prepareUpload(srv.url, r, 'Inbox/x.txt', pseudoRandom(7, 2000), { fileId: up.fileId, slot: 2 });
  const over = await commitUpload(srv.url, r, again.commit);
  t.is(over.status, 409);
  const still = await info(r.requestId);
  t.is(((await still.json()) as { filesLeft: number }).filesLeft, 4, 'the refused overwrite used no slot');
  const denied = (await auditOf(f.owner, r.requestId)).filter((e) => e.action === 'filerequest.upload' && e.outcome !== 'success');
  t.true(denied.length >= 5, 'every refused upload is audited');
});

test.serial('creation: only writers, with their own valid grant for this space, key and position; policy by class', async (t) => {
  const f = await fixture();
  const viewer = await newColleague(srv.url, f.owner);
  t.is((await call(srv.url, 'POST', `/api/v1/spaces/${f.spaceId}/members`, { token: f.owner.token, json: await addMemberBody(srv.url, f.owner, f.spaceId, f.pair, viewer, 'viewer') })).status, 201);
  const asViewer = await requestBody(srv.url, viewer, f.spaceId, f.pair);
  t.is((await createRequest(srv.url, viewer, f.spaceId, asViewer)).status, 403);

  const notMine = await requestBody(srv.url, f.owner, f.spaceId, f.pair, { signer: viewer.keys });
  const r1 = await createRequest(srv.url, f.owner, f.spaceId, notMine);
  t.is(r1.status, 400);
  t.regex(r1.body.error.message, /signed by you/);
  const m = await requestBody(srv.url, f.owner, f.spaceId, f.pair);
  const forged = { ...m.body, grant: { ...m.grant, maxFiles: 99 }, maxFiles: 99 };
  const r2 = await call(srv.url, 'POST', `/api/v1/spaces/${f.spaceId}/requests`, { token: f.owner.token, json: forged });
  t.is(r2.status, 400);
  t.is(r2.body.error.code, 'bad_signature');
  const otherKey = await requestBody(srv.url, f.owner, f.spaceId, k.generateSpaceKeyPair());
  t.is((await createRequest(srv.url, f.owner, f.spaceId, otherKey)).status, 400);
  const ahead = await requestBody(srv.url, f.owner, f.spaceId, f.pair, { memberSeq: 99 });
  t.is((await createRequest(srv.url, f.owner, f.spaceId, ahead)).status, 400);
  const mismatch = { ...m.body, maxFiles: 4 };
  t.is((await call(srv.url, 'POST', `/api/v1/spaces/${f.spaceId}/requests`, { token: f.owner.token, json: mismatch })).status, 400);

  // internal: links allowed, at most 30 days.
  const long = await requestBody(srv.url, f.owner, f.spaceId, f.pair, { expiresAt: Date.now() + 31 * 86_400_000 });
  const r3 = await createRequest(srv.url, f.owner, f.spaceId, long);
  t.is(r3.status, 403);
  t.is(r3.body.error.code, 'policy_refused');
  const med = await fixture('medical');
  const r4 = await createRequest(srv.url, med.owner, med.spaceId, await requestBody(srv.url, med.owner, med.spaceId, med.pair, { expiresAt: Date.now() + 3_600_000 }));
  t.is(r4.status, 403);
  t.regex(r4.body.error.message, /not allowed for medical/);
  const audit = await call(srv.url, 'GET', `/api/v1/orgs/${med.owner.orgId}/audit?action=filerequest.create&limit=100`, { token: med.owner.token });
  t.true(audit.body.entries.some((e: { outcome: string }) => e.outcome === 'denied' || e.outcome === 'failed'), 'the refusal is audited');
  t.is((await createRequest(srv.url, f.owner, f.spaceId, m)).status, 201);
  t.is((await createRequest(srv.url, f.owner, f.spaceId, m)).status, 409, 'the same id twice');
});

test.serial('bad input to every request endpoint is 400/404/411/413/415, never 500', async (t) => {
  const f = await fixture();
  const r = await made(f);
  const auth = k.toBase64Url(r.keys.requestAuth);
  const cases: [string, string, { token?: string | null; json?: unknown; raw?: string | Uint8Array; contentType?: string }, number[]][] = [
    ['POST', `/api/v1/spaces/${f.spaceId}/requests`, { token: f.owner.token, raw: '{not json' }, [400]],
    ['POST', `/api/v1/spaces/${f.spaceId}/requests`, { token: f.owner.token, json: { requestId: 'x' } }, [400]],
    ['POST', `/api/v1/spaces/${f.spaceId}/requests`, { token: f.owner.token, json: { ...r.body, grant: 'nope' } }, [400]],
    ['POST', `/api/v1/spaces/${f.spaceId}/requests`, { token: f.owner.token, json: { ...r.body, expiresAt: -1 } }, [400]],
    ['POST', `/api/v1/spaces/${f.spaceId}/requests`, { token: f.owner.token, json: { ...r.body, purpose: '\u202e' } }, [400]],
    ['POST', '/api/v1/spaces/nope/requests', { token: f.owner.token, json: r.body }, [404]],
    ['GET', '/api/v1/requests?spaceId=bad', { token: f.owner.token }, [400]],
    ['DELETE', '/api/v1/requests/bad', { token: f.owner.token }, [404]],
    ['DELETE', `/api/v1/requests/${k.newId()}`, { token: f.owner.token }, [404]],
    ['GET', '/api/v1/public/requests/bad', {}, [404]],
    ['GET', `/api/v1/public/requests/${k.newId()}`, {}, [404]],
    ['GET', '/api/v1/public/requests/%00%00', {}, [404]],
    ['POST', `/api/v1/public/requests/${k.newId()}/commit`, { token: auth, json: {} }, [404]],
    ['POST', `/api/v1/public/requests/${r.requestId}/commit`, { token: auth, raw: '[]' }, [400]],
    ['POST', `/api/v1/public/requests/${r.requestId}/commit`, { token: auth, raw: '{"fileId":' }, [400]],
    ['POST', `/api/v1/public/requests/${r.requestId}/commit`, { token: auth, json: { fileId: k.newId() } }, [400]],
    ['POST', `/api/v1/public/requests/${r.requestId}/commit`, { token: 'short', json: {} }, [401]],
    ['POST', `/api/v1/public/requests/${r.requestId}/chunks`, { token: auth, raw: 'garbage', contentType: 'application/octet-stream' }, [400]],
    ['POST', `/api/v1/public/requests/${r.requestId}/chunks`, { token: auth, raw: 'x', contentType: 'text/plain' }, [415]],
    ['POST', `/api/v1/public/requests/${r.requestId}/chunks`, { token: auth, raw: new Uint8Array(36), contentType: 'application/octet-stream' }, [400]],
  ];
  for (const [method, url, opts, expected] of cases) {
    const res = await call(srv.url, method, url, opts);
    t.true(expected.includes(res.status), `${method} ${url} ${JSON.stringify(opts.json ?? opts.raw ?? '').slice(0, 60)}: ${res.status} ${JSON.stringify(res.body)}`);
    t.truthy(res.body?.error?.code, `${method} ${url}: an error body`);
  }
  const big = await fetch(`${srv.url}/api/v1/public/requests/${r.requestId}/chunks`, { method: 'POST', headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/octet-stream', 'content-length': String(64 * 1024 ** 2) }, body: new Uint8Array(10) }).catch(() => null);
  t.true(big === null || big.status === 413 || big.status === 400, `oversized body: ${big?.status}`);
  t.is((await info(r.requestId)).status, 200, 'the request still works');
});
