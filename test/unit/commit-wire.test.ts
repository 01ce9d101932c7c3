// A batch of version-2 wraps sent whole in a commit (docs/api.md "A batch of wraps sent whole", docs/crypto.md §5.2):
// compactCommit sends each complete batch as one statement and references, expandWrapBatch gives back the author's
// very wraps (proofs included, byte for byte as JSON), and every way to alter, drop, repeat or swap a member, or to
// alter the statement, is refused with a CryptoError.
import test from 'ava';
import * as k from '@kluis/shared';
import { loadVectors } from '../helpers/vectors.js';

const V = loadVectors('batch-wrap.json');
const e = k.toBase64Url;
const d = k.fromBase64Url;
type Wrap = k.BatchFileKeyWrap;

test.before(async () => {
  await k.initCrypto();
});

/** A commit version carrying `wrap` (the other fields are not looked at by the compact form). */
const versionOf = (fileId: string, wrap?: k.FileKeyWrap): k.CommitVersion => ({
  fileId, versionId: k.newId(), parent: null, keyEpoch: 1, manifest: 'AAAA', chunks: [], deleted: false, ...(wrap ? { fileKeyWrap: wrap } : {}),
});

function freshBatch(n: number, spaceId = k.newId()): Wrap[] {
  const sp = k.generateSpaceKeyPair();
  const items = Array.from({ length: n }, () => ({ fileId: k.newId(), fileKey: k.generateFileKey() }));
  return k.wrapFileKeysBatch(items, { spaceId, keyEpoch: 1, recipient: e(sp.publicKey) }, k.generateAccountKeys());
}

/** What the server does with a compact request's batch `b` (services/commit-wire.ts): members in version order. */
function expand(req: k.CommitRequest, b = 0): Wrap[] {
  const members = req.versions.filter((v) => v.batchWrap?.batch === b).map((v) => ({ fileId: v.fileId, index: v.batchWrap!.index, sealed: v.batchWrap!.sealed }));
  return k.expandWrapBatch(req.wrapBatches![b]!, members);
}

test('vectors: the frozen batch sent whole expands to its five wraps, byte for byte as JSON', (t) => {
  const wraps = V.wraps as Wrap[];
  const req = k.compactCommit(wraps.map((w) => versionOf(w.fileId, w)));
  t.is(req.wrapBatches?.length, 1);
  t.deepEqual(req.wrapBatches![0], { ...V.statement, kind: 'file-key', sig: wraps[0]!.sig });
  t.true(req.versions.every((v, i) => v.fileKeyWrap === undefined && v.batchWrap?.batch === 0 && v.batchWrap.index === i && v.batchWrap.sealed === wraps[i]!.sealed));
  t.true(k.CommitRequest.safeParse(req).success);
  t.deepEqual(expand(req).map((w) => JSON.stringify(w)), wraps.map((w) => JSON.stringify(w)));
});

test('batches of 1, 2 and 500 sent whole, in any order, expand to the author\'s wraps; the body shrinks', (t) => {
  for (const n of [1, 2, 500]) {
    const wraps = freshBatch(n);
    const versions = wraps.map((w) => versionOf(w.fileId, w)).reverse();
    const req = k.compactCommit(versions);
    t.is(req.wrapBatches?.length, 1);
    t.true(k.CommitRequest.safeParse(req).success);
    t.deepEqual(expand(req).map((w) => JSON.stringify(w)), [...wraps].reverse().map((w) => JSON.stringify(w)));
    t.is(versions[0]!.fileKeyWrap, wraps[n - 1], 'the versions given are not changed');
    if (n === 500) {
      const whole = JSON.stringify({ versions }).length;
      const compact = JSON.stringify(req).length;
      t.true(compact < whole * 0.5, `${compact} of ${whole} characters`);
    }
  }
});

test('only complete batches go compact: a part of a batch, version-1 wraps, a relabelled or repeated member go whole', (t) => {
  const [a, b] = [freshBatch(4), freshBatch(3)];
  const sp = k.generateSpaceKeyPair();
  const v1FileId = k.newId();
  const v1 = k.wrapFileKey(k.generateFileKey(), { spaceId: k.newId(), keyEpoch: 1, fileId: v1FileId, recipient: e(sp.publicKey) }, k.generateAccountKeys());
  // a whole, b in part, a v1 wrap and a version without a wrap.
  const req = k.compactCommit([...a.map((w) => versionOf(w.fileId, w)), ...b.slice(0, 2).map((w) => versionOf(w.fileId, w)), versionOf(v1FileId, v1), versionOf(k.newId())]);
  t.is(req.wrapBatches?.length, 1);
  t.deepEqual(req.versions.map((v) => (v.batchWrap ? 'ref' : v.fileKeyWrap ? `v${v.fileKeyWrap.v}` : '-')), ['ref', 'ref', 'ref', 'ref', 'v2', 'v2', 'v1', '-']);
  // Both batches whole: two statements, each member naming its own.
  const two = k.compactCommit([...b.map((w) => versionOf(w.fileId, w)), ...a.map((w) => versionOf(w.fileId, w))]);
  t.is(two.wrapBatches?.length, 2);
  t.deepEqual(two.versions.map((v) => v.batchWrap?.batch), [0, 0, 0, 1, 1, 1, 1]);
  t.deepEqual(expand(two, 1).map((w) => w.fileId), a.map((w) => w.fileId));
  // A wrap on a version of another file, or one member twice: whole, and no statement.
  t.is(k.compactCommit(b.map((w, i) => versionOf(i === 1 ? k.newId() : w.fileId, w))).wrapBatches, undefined);
  t.is(k.compactCommit([...b, b[0]!].map((w) => versionOf(w.fileId, w))).wrapBatches, undefined);
  t.is(k.compactCommit([]).wrapBatches, undefined);
});

// Each case alters the compact form of the five vector wraps (members in index order) and must be refused.
type Members = k.WrapBatchMember[];
const flip = (b64: string) => {
  const bytes = d(b64);
  bytes[10] = bytes[10]! ^ 1;
  return e(bytes);
};
const cases: [string, (s: k.WrapBatchStatement, m: Members) => [k.WrapBatchStatement, Members], k.ErrorCode][] = [
  ['sealed keys swapped between two members', (s, m) => [s, m.map((x, i) => (i === 1 ? { ...x, sealed: m[2]!.sealed } : i === 2 ? { ...x, sealed: m[1]!.sealed } : x))], k.ErrorCode.BadSignature],
  ['indexes swapped between two members', (s, m) => [s, m.map((x, i) => (i === 1 ? { ...x, index: 2 } : i === 2 ? { ...x, index: 1 } : x))], k.ErrorCode.BadSignature],
  ['a member relabelled with another fileId', (s, m) => [s, m.map((x, i) => (i === 3 ? { ...x, fileId: k.newId() } : x))], k.ErrorCode.BadSignature],
  ['a member missing', (s, m) => [s, m.slice(0, 4)], k.ErrorCode.BadSignature],
  ['a member twice (in place of another)', (s, m) => [s, [...m.slice(0, 4), m[0]!]], k.ErrorCode.BadSignature],
  ['an extra member', (s, m) => [s, [...m, { ...m[0]!, index: 5 }]], k.ErrorCode.BadSignature],
  ['an index out of range', (s, m) => [s, m.map((x, i) => (i === 4 ? { ...x, index: 7 } : x))], k.ErrorCode.BadSignature],
  ['a sealed key altered', (s, m) => [s, m.map((x, i) => (i === 0 ? { ...x, sealed: flip(x.sealed) } : x))], k.ErrorCode.BadSignature],
  ['a sealed key truncated', (s, m) => [s, m.map((x, i) => (i === 0 ? { ...x, sealed: e(d(x.sealed).subarray(0, 72)) } : x))], k.ErrorCode.BadSignature],
  ['the signature forged', (s, m) => [{ ...s, sig: flip(s.sig) }, m], k.ErrorCode.BadSignature],
  ['the signer replaced', (s, m) => [{ ...s, signer: e(k.generateAccountKeys().signPublicKey) }, m], k.ErrorCode.BadSignature],
  ['the statement moved to another space', (s, m) => [{ ...s, spaceId: k.newId() }, m], k.ErrorCode.BadSignature],
  ['the statement moved to another epoch', (s, m) => [{ ...s, keyEpoch: 2 }, m], k.ErrorCode.BadSignature],
  ['the recipient replaced', (s, m) => [{ ...s, recipient: e(k.generateSpaceKeyPair().publicKey) }, m], k.ErrorCode.BadSignature],
  ['the ephemeral key replaced', (s, m) => [{ ...s, ephemeral: e(k.generateSpaceKeyPair().publicKey) }, m], k.ErrorCode.BadSignature],
  ['the root replaced', (s, m) => [{ ...s, root: e(k.hazmat.randomBytes(32)) }, m], k.ErrorCode.BadSignature],
  ['the size shrunk with a member dropped', (s, m) => [{ ...s, size: 4 }, m.slice(0, 4)], k.ErrorCode.BadSignature],
];

const vectorForm = (): [k.WrapBatchStatement, Members] => {
  const wraps = V.wraps as Wrap[];
  return [k.wrapBatchStatement(wraps[0]!), wraps.map((w) => ({ fileId: w.fileId, index: w.index, sealed: w.sealed }))];
};

test('the untouched vector batch expands (the cases below start from it)', (t) => {
  const [s, m] = vectorForm();
  t.is(k.expandWrapBatch(s, m).length, 5);
});

for (const [name, alter, code] of cases) {
  test(`tamper, batch sent whole: ${name} is refused`, (t) => {
    const [s, m] = alter(...vectorForm());
    const err = t.throws(() => k.expandWrapBatch(s, m), { instanceOf: k.CryptoError });
    t.is(err?.code, code);
  });
}
