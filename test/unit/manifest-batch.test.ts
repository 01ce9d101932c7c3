// Batch-signed manifests (docs/crypto.md §8.1): the frozen vectors recompute byte for byte and open; batches of every
// shape open; and whatever a holder of one file's key (or the server, which holds none) could alter, swap, move or
// truncate in a batch-signed manifest is refused with a CryptoError. Manifests signed alone (§8) still open.
import test, { type ExecutionContext } from 'ava';
import * as k from '@kluis/shared';
import { loadVectors } from '../helpers/vectors.js';

const V = loadVectors('manifest-batch.json');
const d = k.fromBase64Url;
const e = k.toBase64Url;
const ZERO = '0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8'; // BLAKE2b-256 of zero bytes (crypto.md §6)
const adOf = (m: k.Manifest) => k.concatBytes(k.utf8('kluis/manifest/v1'), k.idBytes(m.fileId), k.idBytes(m.versionId));
interface VectorManifest {
  fileKey: string;
  manifestKey: string;
  salt: string;
  manifest: k.Manifest;
  body: string;
  leaf: string;
  plaintext: string;
  sealed: string;
}
const u32be = (n: number) => new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);

test.before(async () => {
  await k.initCrypto();
});

function authorOf(seed = k.hazmat.randomBytes(32)): k.Signer {
  const pair = k.hazmat.signSeedKeypair(seed);
  return { signPublicKey: pair.publicKey, signSecretKey: pair.privateKey };
}

function batchOf(n: number): { manifest: k.Manifest; keys: k.FileSubkeys }[] {
  return Array.from({ length: n }, (_, i) => ({
    manifest: { v: 2, memberSeq: 1, fileId: k.newId(), versionId: k.newId(), parent: null, path: `map/f${i}.txt`, kind: 'file', size: 0, mtimeMs: i, chunks: [], hash: ZERO, deleted: false },
    keys: k.deriveFileSubkeys(k.generateFileKey()),
  }));
}

const open = (sealed: Uint8Array, item: { manifest: k.Manifest; keys: k.FileSubkeys }, trusted: k.SignerPolicy = () => true) =>
  k.openManifest(sealed, item.keys, { fileId: item.manifest.fileId, versionId: item.manifest.versionId }, trusted);

function expectCode(t: ExecutionContext, fn: () => unknown, code: k.ErrorCode, what: string): void {
  const err = t.throws(fn, { instanceOf: k.CryptoError }, what);
  t.is(err?.code, code, what);
}

test('vectors: bodies, leaves, root, proofs, statement and signature recompute; each plaintext re-signs and each manifest opens', (t) => {
  const author = authorOf(d(V.author.signSeed));
  t.is(e(author.signPublicKey), V.author.signPublicKey);
  t.is(k.canonicalJson(V.statement), V.statementCanonical);
  const sig = k.hazmat.signDetachedSodium('kluis/manifest-batch/v3', k.utf8(V.statementCanonical), author.signSecretKey);
  const items = (V.manifests as VectorManifest[]).map((m) => ({ manifest: m.manifest, keys: k.deriveFileSubkeys(d(m.fileKey)) }));
  const leaves: Uint8Array[] = [];
  (V.manifests as VectorManifest[]).forEach((m, i) => {
    t.is(k.canonicalJson(m.manifest), m.body);
    t.is(e(items[i]!.keys.manifestKey), m.manifestKey);
    const leaf = k.merkleLeafHash(k.concatBytes(k.utf8('kluis/manifest-leaf/v3'), d(m.salt), k.idBytes(m.manifest.fileId), k.idBytes(m.manifest.versionId), k.utf8(m.body)));
    t.is(e(leaf), m.leaf);
    leaves.push(leaf);
    t.true(k.verifyMerkleInclusion(i, V.manifests.length, leaf, V.proofs[i].map(d), d(V.statement.root)));
    // The plaintext, field by field: signer, signature, 0x03, index, size, proof length, proof, salt, body.
    const want = k.concatBytes(author.signPublicKey, sig, new Uint8Array([3]), u32be(i), u32be(V.manifests.length), new Uint8Array([V.proofs[i].length]), ...V.proofs[i].map(d), d(m.salt), k.utf8(m.body));
    t.is(e(want), m.plaintext);
    const sealed = d(m.sealed);
    t.is(e(k.hazmat.sealEnvelopeWithNonce(items[i]!.keys.manifestKey, want, adOf(m.manifest), sealed.subarray(1, 25), 'sodium')), m.sealed);
    const opened = open(sealed, items[i]!, (s) => s === V.author.signPublicKey);
    t.deepEqual(opened.manifest, m.manifest);
    t.is(opened.signer, V.author.signPublicKey);
  });
  t.is(e(k.merkleTreeProofs(leaves).root), V.statement.root);
  t.deepEqual(V.proofs.map((p: string[]) => p.length), [3, 3, 3, 3, 1]);
  // The implementation, given the recorded salts, writes exactly the recorded plaintexts.
  const again = k.sealManifests(items, author, V.manifests.map((m: { salt: string }) => d(m.salt)));
  again.forEach((s, i) => t.is(e(k.openEnvelope(items[i]!.keys.manifestKey, s, adOf(items[i]!.manifest))), V.manifests[i].plaintext));
});

test('batches of 1 to 17 manifests: each opens to itself with its signer, with a salt of its own; sealed alone (§8) still opens', (t) => {
  const author = authorOf();
  const salts = new Set<string>();
  let count = 0;
  for (const n of [1, 2, 3, 4, 5, 8, 17]) {
    const items = batchOf(n);
    const sealed = k.sealManifests(items, author);
    sealed.forEach((s, i) => {
      const r = open(s, items[i]!);
      t.deepEqual(r.manifest, items[i]!.manifest);
      t.is(r.signer, e(author.signPublicKey));
      // The plaintext: key, signature, mark, index, size, proof length, proof, then the 16-byte salt.
      const plain = k.openEnvelope(items[i]!.keys.manifestKey, s, adOf(items[i]!.manifest));
      const at = 106 + 32 * plain[105]!;
      salts.add(e(plain.subarray(at, at + 16)));
      count++;
    });
  }
  t.is(salts.size, count, 'every manifest has a salt of its own');
  const [one] = batchOf(1);
  t.deepEqual(open(k.sealManifest(one!.manifest, one!.keys, author), one!).manifest, one!.manifest);
});

test('sealing: an empty batch, a version-1 manifest, a bad salt and a bad manifest are refused', (t) => {
  const author = authorOf();
  expectCode(t, () => k.sealManifests([], author), k.ErrorCode.BadManifest, 'empty batch');
  const [one] = batchOf(1);
  const { memberSeq: _, ...v1 } = one!.manifest;
  expectCode(t, () => k.sealManifests([{ manifest: { ...v1, v: 1 }, keys: one!.keys }], author), k.ErrorCode.BadManifest, 'v1 body');
  expectCode(t, () => k.sealManifests([one!], author, [new Uint8Array(15)]), k.ErrorCode.BadManifest, 'short salt');
  expectCode(t, () => k.sealManifests([{ ...one!, manifest: { ...one!.manifest, path: '../x' } }], author), k.ErrorCode.UnsafePath, 'unsafe path');
});

// A holder of a file's manifest key (a member, a direct-share recipient) can open and re-seal that manifest: every
// change to the signed layout must still be refused. `edit` gets the plaintext and returns the forged one.
function forge(items: { manifest: k.Manifest; keys: k.FileSubkeys }[], sealed: Uint8Array[], i: number, edit: (plain: Uint8Array) => Uint8Array): Uint8Array {
  const ad = adOf(items[i]!.manifest);
  return k.sealEnvelope(items[i]!.keys.manifestKey, edit(k.openEnvelope(items[i]!.keys.manifestKey, sealed[i]!, ad)), ad);
}

test('tampering: index, size, proof, salt, body, signer, signature, mark and truncation are refused', (t) => {
  const author = authorOf();
  const items = batchOf(5);
  const sealed = k.sealManifests(items, author);
  const set = (at: number, bytes: Uint8Array) => (p: Uint8Array) => {
    const c = p.slice();
    c.set(bytes, at);
    return c;
  };
  const flip = (at: number) => (p: Uint8Array) => {
    const c = p.slice();
    c[at]! ^= 1;
    return c;
  };
  const bodyAt = (p: Uint8Array) => 106 + 32 * p[105]! + 16;
  const cases: [string, (p: Uint8Array) => Uint8Array, k.ErrorCode][] = ([
    ['another index', set(97, u32be(1)), k.ErrorCode.BadSignature],
    ['index past the size', set(97, u32be(5)), k.ErrorCode.BadSignature],
    ['another size', set(101, u32be(6)), k.ErrorCode.BadSignature],
    ['a proof hash flipped', flip(110), k.ErrorCode.BadSignature],
    ['one proof hash less', (p) => k.concatBytes(p.subarray(0, 105), new Uint8Array([p[105]! - 1]), p.subarray(106 + 32))],
    ['a proof length past 64', set(105, new Uint8Array([65])), k.ErrorCode.BadSignature],
    ['the salt flipped', (p) => flip(bodyAt(p) - 1)(p), k.ErrorCode.BadSignature],
    ['the body changed (re-canonical)', (p) => k.concatBytes(p.subarray(0, bodyAt(p)), k.canonicalBytes({ ...items[0]!.manifest, mtimeMs: 99 })), k.ErrorCode.BadSignature],
    ['another signer key', set(0, authorOf().signPublicKey), k.ErrorCode.BadSignature],
    ['the signature flipped', flip(40), k.ErrorCode.BadSignature],
    ['another mark byte', set(96, new Uint8Array([4])), k.ErrorCode.BadManifest],
    ['cut inside the proof', (p) => p.subarray(0, 120), k.ErrorCode.BadManifest],
  ] as [string, (p: Uint8Array) => Uint8Array, k.ErrorCode?][]).map(([what, edit, code]) => [what, edit, code ?? k.ErrorCode.BadSignature]);
  for (const [what, edit, code] of cases) expectCode(t, () => open(forge(items, sealed, 0, edit), items[0]!), code, what);
  // The untouched batch still opens (the checks above are of the forgeries, not of a broken batch).
  sealed.forEach((s, i) => t.is(open(s, items[i]!).manifest.path, items[i]!.manifest.path));
});

test('moving: a manifest opened as another version, or given another batch\'s signature, is refused', (t) => {
  const author = authorOf();
  const a = batchOf(4);
  const b = batchOf(4);
  const sa = k.sealManifests(a, author);
  const sb = k.sealManifests(b, author);
  // Re-sealed by a key holder under another version's ids: the leaf binds the ids, so the proof leads elsewhere.
  const moved = { manifest: { ...a[0]!.manifest, versionId: k.newId() }, keys: a[0]!.keys };
  const plain = k.openEnvelope(a[0]!.keys.manifestKey, sa[0]!, adOf(a[0]!.manifest));
  expectCode(t, () => open(k.sealEnvelope(moved.keys.manifestKey, plain, adOf(moved.manifest)), moved), k.ErrorCode.BadSignature, 'other version ids');
  // A's manifest 1 with B's signature (same signer, same size): the root differs, so the signature does not verify,
  // even right after B's statement was verified and remembered.
  t.truthy(open(sb[1]!, b[1]!));
  const bPlain = k.openEnvelope(b[1]!.keys.manifestKey, sb[1]!, adOf(b[1]!.manifest));
  expectCode(t, () => open(forge(a, sa, 1, (p) => k.concatBytes(p.subarray(0, 32), bPlain.subarray(32, 96), p.subarray(96))), a[1]!), k.ErrorCode.BadSignature, 'other batch signature');
  // A's manifest 2 with the proof of manifest 3 (a sibling's path): refused.
  const aPlain3 = k.openEnvelope(a[3]!.keys.manifestKey, sa[3]!, adOf(a[3]!.manifest));
  expectCode(t, () => open(forge(a, sa, 2, (p) => k.concatBytes(p.subarray(0, 106), aPlain3.subarray(106, 106 + 32 * aPlain3[105]!), p.subarray(106 + 32 * p[105]!))), a[2]!), k.ErrorCode.BadSignature, 'sibling proof');
});

test('judging: the signer named in the batch is the one the policy judges, at the body\'s memberSeq', (t) => {
  const author = authorOf();
  const items = batchOf(3);
  const sealed = k.sealManifests(items, author);
  const seen: [string, number | null][] = [];
  const r = k.openManifest(sealed[2]!, items[2]!.keys, { fileId: items[2]!.manifest.fileId, versionId: items[2]!.manifest.versionId }, (s: string, seq: number | null) => {
    seen.push([s, seq]);
    return true;
  });
  t.is(r.signer, e(author.signPublicKey));
  t.deepEqual(seen, [[e(author.signPublicKey), 1]]);
  expectCode(t, () => open(sealed[0]!, items[0]!, () => false), k.ErrorCode.UntrustedSigner, 'untrusted signer');
});

test('a correctly signed batch layout whose body is a version-1 manifest is refused (layout 3 carries version 2 only)', (t) => {
  const author = authorOf();
  const [one] = batchOf(1);
  const { memberSeq: _, ...rest } = one!.manifest;
  const v1: k.Manifest = { ...rest, v: 1 };
  const body = k.canonicalBytes(v1);
  const salt = k.hazmat.randomBytes(16);
  // Built by hand as §8.1 says: a batch of one, whose root is its leaf and whose proof is empty.
  const root = k.merkleLeafHash(k.concatBytes(k.utf8('kluis/manifest-leaf/v3'), salt, k.idBytes(v1.fileId), k.idBytes(v1.versionId), body));
  const statement = k.canonicalBytes({ v: 3, kind: 'manifest-batch', signer: e(author.signPublicKey), size: 1, root: e(root) });
  const sig = k.hazmat.signDetachedSodium('kluis/manifest-batch/v3', statement, author.signSecretKey);
  const plain = k.concatBytes(author.signPublicKey, sig, new Uint8Array([3]), u32be(0), u32be(1), new Uint8Array([0]), salt, body);
  const sealed = k.sealEnvelope(one!.keys.manifestKey, plain, adOf(v1));
  expectCode(t, () => open(sealed, { manifest: v1, keys: one!.keys }), k.ErrorCode.BadManifest, 'v1 body in layout 3');
  // The same bytes with a version-2 body open: the construction above is the format.
  const body2 = k.canonicalBytes(one!.manifest);
  const root2 = k.merkleLeafHash(k.concatBytes(k.utf8('kluis/manifest-leaf/v3'), salt, k.idBytes(v1.fileId), k.idBytes(v1.versionId), body2));
  const sig2 = k.hazmat.signDetachedSodium('kluis/manifest-batch/v3', k.canonicalBytes({ v: 3, kind: 'manifest-batch', signer: e(author.signPublicKey), size: 1, root: e(root2) }), author.signSecretKey);
  const plain2 = k.concatBytes(author.signPublicKey, sig2, new Uint8Array([3]), u32be(0), u32be(1), new Uint8Array([0]), salt, body2);
  t.deepEqual(open(k.sealEnvelope(one!.keys.manifestKey, plain2, adOf(v1)), one!).manifest, one!.manifest);
});
