// Commits with a batch of wraps sent whole (docs/api.md "A batch of wraps sent whole"): the server rebuilds every wrap
// of the batch, verifies it and stores exactly what the author made; a reference to no batch, a batch sent in part,
// both forms on one version, a tampered member or statement are refused with a clear 400 and store nothing.
import test from 'ava';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { call, newOrg, newSpace, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';

let srv: RunningServer;
let owner: User;
let spaceId: string;
let pair: k.SpaceKeyPair;
test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
  owner = (await newOrg(srv.url, srv.dataDir)).admin;
  ({ spaceId, pair } = await newSpace(srv.url, owner));
});
test.after.always(async () => {
  await srv?.stop();
});

/** `n` new files' first versions, their keys wrapped in one version-2 batch signed by `signer`. */
function newFiles(n: number, signer: k.AccountKeys = owner.keys): { versions: k.CommitVersion[]; wraps: k.BatchFileKeyWrap[] } {
  const files = Array.from({ length: n }, newFile);
  const wraps = k.wrapFileKeysBatch(files.map((f) => ({ fileId: f.fileId, fileKey: f.fileKey })), { spaceId, keyEpoch: 1, recipient: k.toBase64Url(pair.publicKey) }, signer);
  const versions = files.map((f, i) => ({ ...version(owner, spaceId, pair, 1, f, { parent: null, withWrap: false, path: `Map/bestand-${i}.txt` }).entry, fileKeyWrap: wraps[i]! }));
  return { versions, wraps };
}

const commit = (json: unknown) => call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: owner.token, json });
const head = async () => (await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=0&limit=1`, { token: owner.token })).body.head as number;

test.serial('a batch sent whole is stored as the very wraps its author made, and opens', async (t) => {
  const { versions, wraps } = newFiles(37);
  const req = k.compactCommit(versions);
  t.is(req.wrapBatches?.length, 1);
  const res = await commit(req);
  t.is(res.status, 201, JSON.stringify(res.body));
  t.is(res.body.versions.length, 37);
  const page = (await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=${res.body.seq - 37}`, { token: owner.token })).body as { fileKeyWraps: Record<string, k.FileKeyWrap[]> };
  for (const w of wraps) {
    t.is(JSON.stringify(page.fileKeyWraps[w.fileId]), JSON.stringify([w]));
    t.is(k.openFileKeyWrap(page.fileKeyWraps[w.fileId]![0]!, { spaceId, keyEpoch: 1, fileId: w.fileId }, pair, (s) => s === k.toBase64Url(owner.keys.signPublicKey)).length, 32);
  }
});

test.serial('compact and whole wraps in one request: both stored', async (t) => {
  const a = newFiles(3);
  const b = newFiles(2);
  const req = k.compactCommit([...a.versions, ...b.versions.slice(0, 1)]); // b's batch in part: its wrap goes whole
  t.deepEqual(req.versions.map((v) => (v.batchWrap ? 'ref' : 'whole')), ['ref', 'ref', 'ref', 'whole']);
  const res = await commit(req);
  t.is(res.status, 201, JSON.stringify(res.body));
});

// Each case alters a compact request of a fresh batch of 4 and names the error it must get.
type Req = k.CommitRequest;
const refOf = (r: Req, i: number) => r.versions[i]!.batchWrap!;
const cases: [string, (r: Req, whole: k.CommitVersion[]) => unknown, string][] = [
  ['a reference to a batch the request does not have', (r) => ({ ...r, versions: r.versions.map((v, i) => (i === 0 ? { ...v, batchWrap: { ...refOf(r, 0), batch: 1 } } : v)) }), 'validation_failed'],
  ['references without wrapBatches', (r) => ({ versions: r.versions }), 'validation_failed'],
  ['a batch sent in part', (r) => ({ ...r, versions: r.versions.slice(1) }), 'validation_failed'],
  ['fileKeyWrap and batchWrap on one version', (r, whole) => ({ ...r, versions: r.versions.map((v, i) => (i === 0 ? { ...v, fileKeyWrap: whole[0]!.fileKeyWrap } : v)) }), 'validation_failed'],
  ['a statement of the wrong shape (no signature)', (r) => ({ ...r, wrapBatches: [{ ...r.wrapBatches![0]!, sig: undefined }] }), 'validation_failed'],
  ['sealed keys swapped between two versions', (r) => ({ ...r, versions: r.versions.map((v, i) => (i < 2 ? { ...v, batchWrap: { ...refOf(r, i), sealed: refOf(r, 1 - i).sealed } } : v)) }), 'bad_signature'],
  ['a member\'s index changed to another\'s', (r) => ({ ...r, versions: r.versions.map((v, i) => (i === 0 ? { ...v, batchWrap: { ...refOf(r, 0), index: 1 } } : v)) }), 'bad_signature'],
  ['the statement\'s root replaced', (r) => ({ ...r, wrapBatches: [{ ...r.wrapBatches![0]!, root: k.toBase64Url(k.hazmat.randomBytes(32)) }] }), 'bad_signature'],
  ['the statement re-labelled to another epoch', (r) => ({ ...r, wrapBatches: [{ ...r.wrapBatches![0]!, keyEpoch: 2 }] }), 'bad_signature'],
];

for (const [name, alter, code] of cases) {
  test.serial(`refused, nothing stored: ${name}`, async (t) => {
    const { versions } = newFiles(4);
    const before = await head();
    const res = await commit(alter(k.compactCommit(versions), versions));
    t.is(res.status, 400, JSON.stringify(res.body));
    t.is(res.body.error.code, code);
    t.is(typeof res.body.error.message, 'string');
    t.is(await head(), before);
  });
}

test.serial('a batch sent whole but signed by another account is refused: wraps must be signed by the committer', async (t) => {
  const { versions } = newFiles(3, k.generateAccountKeys());
  const res = await commit(k.compactCommit(versions));
  t.is(res.status, 400);
  t.is(res.body.error.code, 'validation_failed');
  t.regex(res.body.error.message, /signed by you/);
});
