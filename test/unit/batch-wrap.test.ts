// File-key wraps of version 2 (docs/crypto.md §5.2): the frozen vectors recompute byte for byte and open, and every
// way a server could alter, swap, move or truncate a wrap of a batch is refused with a CryptoError.
import test from 'ava';
import * as k from '@kluis/shared';
import { loadVectors } from '../helpers/vectors.js';

const V = loadVectors('batch-wrap.json');
const d = k.fromBase64Url;
const e = k.toBase64Url;
type Wrap = k.BatchFileKeyWrap;
const space = (): k.SpaceKeyPair => ({ publicKey: d(V.space.publicKey), secretKey: d(V.space.secretKey) });
const trustAuthor = (signer: string) => signer === V.author.signPublicKey;
const expectOf = (i: number) => ({ spaceId: V.spaceId as string, keyEpoch: V.keyEpoch as number, fileId: V.files[i].fileId as string });
const u32be = (n: number) => new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
const copy = (w: Wrap): Wrap => JSON.parse(JSON.stringify(w)) as Wrap;

test.before(async () => {
  await k.initCrypto();
});

test('vectors: seeds give the recorded keys; X25519 and BLAKE2b give the recorded wrap key', (t) => {
  const sp = k.hazmat.boxSeedKeypair(d(V.space.seed));
  t.is(e(sp.publicKey), V.space.publicKey);
  t.is(e(sp.privateKey), V.space.secretKey);
  t.is(e(k.hazmat.signSeedKeypair(d(V.author.signSeed)).publicKey), V.author.signPublicKey);
  const eph = k.hazmat.boxSeedKeypair(d(V.ephemeral.seed));
  t.is(e(eph.publicKey), V.ephemeral.publicKey);
  const shared = k.hazmat.x25519(eph.privateKey, sp.publicKey);
  t.is(e(shared), V.shared);
  t.is(e(k.hazmat.x25519(sp.privateKey, eph.publicKey)), V.shared, 'the recipient derives the same secret');
  t.is(e(k.hazmat.blake2b(32, k.concatBytes(k.utf8('kluis/wrap-key/v2'), shared, eph.publicKey, sp.publicKey))), V.wrapKey);
});

for (const backend of ['sodium', 'node'] as const) {
  test(`vectors (${backend} envelope): each sealed key re-seals byte for byte with its recorded nonce`, (t) => {
    V.wraps.forEach((w: Wrap, i: number) => {
      const sealed = d(w.sealed);
      const ad = k.concatBytes(k.utf8('kluis/wrap/v2'), k.idBytes(V.spaceId), u32be(V.keyEpoch), k.idBytes(w.fileId));
      t.is(e(k.hazmat.sealEnvelopeWithNonce(d(V.wrapKey), d(V.files[i].fileKey), ad, sealed.subarray(1, 25), backend)), w.sealed);
    });
  });
}

test('vectors: leaves, root, every proof and the signature recompute; every wrap opens to its file key', (t) => {
  const leaves = V.wraps.map((w: Wrap) => k.merkleLeafHash(k.concatBytes(k.utf8('kluis/wrap-leaf/v2'), k.idBytes(w.fileId), d(w.sealed))));
  const root = d(V.statement.root);
  t.is(k.canonicalJson(V.statement), V.statementCanonical);
  const author = k.hazmat.signSeedKeypair(d(V.author.signSeed));
  const sig = k.hazmat.signDetachedSodium('kluis/wrap-batch/v2', k.utf8(V.statementCanonical), author.privateKey);
  V.wraps.forEach((w: Wrap, i: number) => {
    t.is(w.v, 2);
    t.is(w.index, i);
    t.is(w.size, 5);
    t.is(w.root, V.statement.root);
    t.is(w.sig, e(sig));
    t.true(k.verifyMerkleInclusion(i, 5, leaves[i], w.proof.map(d), root));
    t.true(k.FileKeyWrapSchema.safeParse(w).success);
    t.is(e(k.openFileKeyWrap(w, expectOf(i), space(), trustAuthor)), V.files[i].fileKey);
  });
  t.deepEqual(V.wraps.map((w: Wrap) => w.proof.length), [3, 3, 3, 3, 1]);
});

test('a fresh batch of 1, 2 and 300 keys opens; one X25519 key and one signature serve the whole batch', (t) => {
  const sp = k.generateSpaceKeyPair();
  const author = k.generateAccountKeys();
  const spaceId = k.newId();
  for (const n of [1, 2, 300]) {
    const items = Array.from({ length: n }, () => ({ fileId: k.newId(), fileKey: k.generateFileKey() }));
    const wraps = k.wrapFileKeysBatch(items, { spaceId, keyEpoch: 1, recipient: e(sp.publicKey) }, author);
    t.is(new Set(wraps.map((w) => w.sig)).size, 1);
    t.is(new Set(wraps.map((w) => w.ephemeral)).size, 1);
    wraps.forEach((w, i) => t.is(e(k.openFileKeyWrap(w, { spaceId, keyEpoch: 1, fileId: items[i]!.fileId }, sp, () => true)), e(items[i]!.fileKey)));
  }
  t.throws(() => k.wrapFileKeysBatch([], { spaceId, keyEpoch: 1, recipient: e(sp.publicKey) }, author), { instanceOf: k.CryptoError });
});

// Each case alters wrap `i` (or builds one from two) and names the CryptoError code it must get.
const cases: [string, (ws: Wrap[]) => Wrap, k.ErrorCode][] = [
  ['statement signature forged (one bit of sig)', (ws) => ({ ...copy(ws[1]!), sig: flip(ws[1]!.sig) }), k.ErrorCode.BadSignature],
  ['signed by another key (signer replaced)', (ws) => ({ ...copy(ws[1]!), signer: e(k.generateAccountKeys().signPublicKey) }), k.ErrorCode.BadSignature],
  ['sealed keys swapped between two members of the batch', (ws) => ({ ...copy(ws[1]!), sealed: ws[2]!.sealed }), k.ErrorCode.BadSignature],
  ['proofs swapped between two members of the batch', (ws) => ({ ...copy(ws[1]!), proof: ws[2]!.proof }), k.ErrorCode.BadSignature],
  ['index changed', (ws) => ({ ...copy(ws[1]!), index: 2 }), k.ErrorCode.BadSignature],
  ['index out of range', (ws) => ({ ...copy(ws[1]!), index: 5 }), k.ErrorCode.BadSignature],
  ['size changed', (ws) => ({ ...copy(ws[1]!), size: 6 }), k.ErrorCode.BadSignature],
  ['wrap moved to another fileId (relabelled)', (ws) => ({ ...copy(ws[1]!), fileId: V.files[2].fileId }), k.ErrorCode.BadSignature],
  ['statement from another space (spaceId relabelled)', (ws) => ({ ...copy(ws[1]!), spaceId: k.newId() }), k.ErrorCode.BadSignature],
  ['statement from another epoch (keyEpoch relabelled)', (ws) => ({ ...copy(ws[1]!), keyEpoch: 4 }), k.ErrorCode.BadSignature],
  ['ephemeral key replaced', (ws) => ({ ...copy(ws[1]!), ephemeral: e(k.generateSpaceKeyPair().publicKey) }), k.ErrorCode.BadSignature],
  ['recipient replaced', (ws) => ({ ...copy(ws[1]!), recipient: e(k.generateSpaceKeyPair().publicKey) }), k.ErrorCode.BadSignature],
  ['root replaced', (ws) => ({ ...copy(ws[1]!), root: e(k.hazmat.randomBytes(32)) }), k.ErrorCode.BadSignature],
  ['proof truncated', (ws) => ({ ...copy(ws[1]!), proof: ws[1]!.proof.slice(0, -1) }), k.ErrorCode.BadSignature],
  ['proof extended', (ws) => ({ ...copy(ws[1]!), proof: [...ws[1]!.proof, ws[1]!.root] }), k.ErrorCode.BadSignature],
  ['sealed key truncated', (ws) => ({ ...copy(ws[1]!), sealed: e(d(ws[1]!.sealed).subarray(0, 72)) }), k.ErrorCode.BadSignature],
  ['signature truncated', (ws) => ({ ...copy(ws[1]!), sig: e(d(ws[1]!.sig).subarray(0, 63)) }), k.ErrorCode.BadKey],
];

function flip(b64: string): string {
  const bytes = d(b64);
  bytes[10] = bytes[10]! ^ 1;
  return e(bytes);
}

for (const [name, make, code] of cases) {
  test(`tamper: ${name} is refused`, (t) => {
    const w = make(V.wraps as Wrap[]);
    const err = t.throws(() => k.verifyWrapSignature(w), { instanceOf: k.CryptoError });
    t.is(err?.code, code);
    t.throws(() => k.openFileKeyWrap(w, expectOf(1), space(), trustAuthor), { instanceOf: k.CryptoError });
  });
}

test('tamper: an untouched wrap opened as another file, space or epoch is refused (expectation, then ad)', (t) => {
  const w = V.wraps[1] as Wrap;
  for (const expect of [expectOf(2), { ...expectOf(1), spaceId: k.newId() }, { ...expectOf(1), keyEpoch: 2 }]) {
    const err = t.throws(() => k.openFileKeyWrap(w, expect, space(), trustAuthor), { instanceOf: k.CryptoError });
    t.is(err?.code, k.ErrorCode.WrongRecipient);
  }
});

test('a wrap by a signer the policy does not trust, or opened with another space key, is refused', (t) => {
  const w = V.wraps[0] as Wrap;
  t.is(t.throws(() => k.openFileKeyWrap(w, expectOf(0), space(), () => false), { instanceOf: k.CryptoError })?.code, k.ErrorCode.UntrustedSigner);
  t.is(t.throws(() => k.openFileKeyWrap(w, expectOf(0), k.generateSpaceKeyPair(), trustAuthor), { instanceOf: k.CryptoError })?.code, k.ErrorCode.WrongRecipient);
});

test('a wrap re-signed by the server over its own batch statement does not verify as the author', (t) => {
  // The server can make a valid batch of its own (it knows the space public key), but only under its own signer key:
  // a client's policy (writers of the epoch) refuses it.
  const server = k.generateAccountKeys();
  const [forged] = k.wrapFileKeysBatch([{ fileId: V.files[0].fileId, fileKey: k.generateFileKey() }], { spaceId: V.spaceId, keyEpoch: V.keyEpoch, recipient: V.space.publicKey }, server);
  t.is(t.throws(() => k.openFileKeyWrap(forged!, expectOf(0), space(), trustAuthor), { instanceOf: k.CryptoError })?.code, k.ErrorCode.UntrustedSigner);
  t.is(t.throws(() => k.openFileKeyWrap({ ...forged!, signer: V.author.signPublicKey }, expectOf(0), space(), trustAuthor), { instanceOf: k.CryptoError })?.code, k.ErrorCode.BadSignature);
});

test('version-1 wraps still verify and open beside version 2', (t) => {
  const author = k.generateAccountKeys();
  const sp = k.generateSpaceKeyPair();
  const fileKey = k.generateFileKey();
  const target = { spaceId: k.newId(), keyEpoch: 1, fileId: k.newId(), recipient: e(sp.publicKey) };
  const w1 = k.wrapFileKey(fileKey, target, author);
  t.is(w1.v, 1);
  k.verifyWrapSignature(w1);
  t.true(k.FileKeyWrapSchema.safeParse(w1).success);
  t.is(e(k.openFileKeyWrap(w1, target, sp, () => true)), e(fileKey));
  t.false(k.FileKeyWrapSchema.safeParse({ ...w1, v: 3 }).success);
});

test('many at once (the server\'s check): a complete batch, a part of one and a mix pass; any altered member fails', (t) => {
  const all = V.wraps as Wrap[];
  k.verifyBatchWrapSignatures(all);
  k.verifyBatchWrapSignatures([...all].reverse());
  k.verifyBatchWrapSignatures(all.slice(1, 4));
  const sp = k.generateSpaceKeyPair();
  const other = k.wrapFileKeysBatch([{ fileId: k.newId(), fileKey: k.generateFileKey() }, { fileId: k.newId(), fileKey: k.generateFileKey() }], { spaceId: k.newId(), keyEpoch: 1, recipient: e(sp.publicKey) }, k.generateAccountKeys());
  k.verifyBatchWrapSignatures([...other, ...all]);
  for (const [name, make, code] of cases) {
    for (const others of [all.filter((_, i) => i !== 1), all.filter((_, i) => i === 0)]) {
      const err = t.throws(() => k.verifyBatchWrapSignatures([...others, make(all)]), { instanceOf: k.CryptoError }, name);
      t.is(err?.code, code, name);
    }
  }
  // A proof that differs from the tree's (an extra hash) in an otherwise complete batch.
  t.throws(() => k.verifyBatchWrapSignatures(all.map((w, i) => (i === 4 ? { ...w, proof: [...w.proof, w.proof[0]!] } : w))), { instanceOf: k.CryptoError });
  // The same wrap twice is not a complete batch: checked one by one, and it is valid.
  k.verifyBatchWrapSignatures([all[0]!, all[0]!, all[2]!, all[3]!, all[4]!]);
});
