// The audit trail's Merkle tree log (docs/crypto.md §12 "Merkle tree log"): RFC 9162 hashing against the frozen vectors
// (whose roots over the RFC 6962 test leaves are the published ones), inclusion and consistency proofs that verify for
// random entries and head pairs and fail when anything in them is altered.
import test from 'ava';
import * as k from '@kluis/shared';
import { loadVectors } from '../helpers/vectors.js';

const V = loadVectors('audit-merkle.json');
const h = k.fromHex;

/** MTH of RFC 9162 §2.1.1 straight from its definition, for comparison with the stored-subtree code. */
function naiveRoot(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return k.merkleEmptyRoot();
  if (leaves.length === 1) return leaves[0]!;
  let split = 1;
  while (split * 2 < leaves.length) split *= 2;
  return k.merkleNodeHash(naiveRoot(leaves.slice(0, split)), naiveRoot(leaves.slice(split)));
}

/** An in-memory tree: the nodes MerkleFrontier.push makes, as the server stores them. */
function memoryTree(leaves: Uint8Array[]): k.MerkleNodeReader {
  const nodes = new Map<string, Uint8Array>();
  const f = new k.MerkleFrontier();
  for (const l of leaves) for (const n of f.push(l)) nodes.set(`${n.level}/${n.index}`, n.hash);
  return async (ns) => ns.map((n) => nodes.get(`${n.level}/${n.index}`)!);
}

/** A deterministic pseudo-random generator (xorshift32), so a failure can be replayed. */
function rng(seed: number): (n: number) => number {
  let x = seed;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

function flipped(proof: Uint8Array[], i: number): Uint8Array[] {
  return proof.map((p, j) => (j === i ? Uint8Array.from(p, (b, bi) => (bi === 0 ? b ^ 1 : b)) : p));
}

test.before(async () => {
  await k.initCrypto();
});

test('vectors: leaf, node and empty hashes and the roots of 1..8 RFC 6962 test leaves', (t) => {
  const leaves = V.leaves.map((x: string) => k.merkleLeafHash(h(x)));
  t.deepEqual(leaves.map(k.toHex), V.leafHashes);
  t.is(k.toHex(k.merkleEmptyRoot()), V.emptyRoot);
  for (const r of V.roots) t.is(k.toHex(naiveRoot(leaves.slice(0, r.size))), r.root, `root of ${r.size}`);
  // Published with RFC 6962's reference implementation (certificate-transparency merkle tree tests).
  t.is(V.roots[0].root, '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
  t.is(V.roots[7].root, '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328');
});

test('vectors: every proof is what the stored-subtree code builds, and verifies', async (t) => {
  const leaves: Uint8Array[] = V.leafHashes.map(h);
  const read = memoryTree(leaves);
  const root = (n: number) => h(V.roots[n - 1].root);
  for (const r of V.roots) t.is(k.toHex(await k.merkleRootAt(read, r.size)), r.root);
  for (const v of V.inclusion) {
    t.deepEqual((await k.merkleInclusionProof(read, v.index, v.size)).map(k.toHex), v.path, `inclusion ${v.index} in ${v.size}`);
    t.true(k.verifyMerkleInclusion(v.index, v.size, leaves[v.index]!, v.path.map(h), root(v.size)));
  }
  for (const v of V.consistency) {
    t.deepEqual((await k.merkleConsistencyProof(read, v.first, v.second)).map(k.toHex), v.path, `consistency ${v.first} → ${v.second}`);
    t.true(k.verifyMerkleConsistency(v.first, v.second, root(v.first), root(v.second), v.path.map(h)));
  }
});

test('vectors: the leaf of an audit entry and a signed tree head', (t) => {
  const a = V.auditEntry;
  t.is(new TextDecoder().decode(k.canonicalBytes(a.entry)), a.canonical);
  t.is(k.auditLeafHash(a.entry), a.leafHash);
  const key = k.serverSigningKeyFromSeed(h(V.treeHead.seed));
  t.is(key.publicKey, V.treeHead.publicKey);
  t.is(k.signAuditTreeHead(V.treeHead.head, key), V.treeHead.signature);
  t.notThrows(() => k.verifyAuditTreeHead(V.treeHead.head, V.treeHead.signature, V.treeHead.publicKey));
  for (const changed of [{ ...V.treeHead.head, size: 7 }, { ...V.treeHead.head, ts: V.treeHead.head.ts + 1 }, { ...V.treeHead.head, root: V.roots[6].root }]) {
    t.throws(() => k.verifyAuditTreeHead(changed, V.treeHead.signature, V.treeHead.publicKey));
  }
});

test('vectors: an altered proof, leaf, index, size or root fails', (t) => {
  const leaves: Uint8Array[] = V.leafHashes.map(h);
  const root = (n: number) => h(V.roots[n - 1].root);
  for (const v of V.inclusion) {
    const path = v.path.map(h);
    for (let i = 0; i < path.length; i++) t.false(k.verifyMerkleInclusion(v.index, v.size, leaves[v.index]!, flipped(path, i), root(v.size)));
    if (path.length > 0) t.false(k.verifyMerkleInclusion(v.index, v.size, leaves[v.index]!, path.slice(0, -1), root(v.size)), 'truncated');
    t.false(k.verifyMerkleInclusion(v.index, v.size, leaves[v.index]!, [...path, leaves[0]!], root(v.size)), 'extended');
    t.false(k.verifyMerkleInclusion(v.index, v.size, leaves[(v.index + 1) % 8]!, path, root(v.size)), 'other leaf');
    if (v.size > 1) t.false(k.verifyMerkleInclusion((v.index + 1) % v.size, v.size, leaves[v.index]!, path, root(v.size)), 'other index');
    t.false(k.verifyMerkleInclusion(v.index, v.size, leaves[v.index]!, path, root(v.size === 8 ? 7 : v.size + 1)), 'other root');
  }
  for (const v of V.consistency) {
    const path = v.path.map(h);
    for (let i = 0; i < path.length; i++) t.false(k.verifyMerkleConsistency(v.first, v.second, root(v.first), root(v.second), flipped(path, i)));
    if (v.first !== v.second) {
      t.false(k.verifyMerkleConsistency(v.first, v.second, root(v.first), root(v.second), path.slice(0, -1)), 'truncated');
      t.false(k.verifyMerkleConsistency(v.first, v.second, root(v.second), root(v.second), path), 'first root replaced');
      t.false(k.verifyMerkleConsistency(v.first, v.second, root(v.first), root(v.first), path), 'second root replaced');
    }
    t.false(k.verifyMerkleConsistency(v.first, v.second, root(v.first), root(v.second), [...path, leaves[0]!]), 'extended');
  }
});

test('random entries and head pairs of a 5,000-leaf tree: proofs verify, and fail when altered', async (t) => {
  const leaves = Array.from({ length: 5000 }, (_, i) => k.merkleLeafHash(new TextEncoder().encode(`entry ${i}`)));
  const read = memoryTree(leaves);
  const pick = rng(20_2026);
  const roots = new Map<number, Uint8Array>();
  const root = async (n: number) => roots.get(n) ?? roots.set(n, await k.merkleRootAt(read, n)).get(n)!;
  for (const n of [1, 2, 3, 1000, 1024, 1025, 4999, 5000]) t.is(k.toHex(await root(n)), k.toHex(naiveRoot(leaves.slice(0, n))), `root of ${n}`);
  for (let round = 0; round < 200; round++) {
    const size = 1 + pick(5000);
    const index = pick(size);
    const path = await k.merkleInclusionProof(read, index, size);
    t.true(k.verifyMerkleInclusion(index, size, leaves[index]!, path, await root(size)), `inclusion ${index} in ${size}`);
    if (path.length > 0) t.false(k.verifyMerkleInclusion(index, size, leaves[index]!, flipped(path, pick(path.length)), await root(size)));
    const first = 1 + pick(size);
    const proof = await k.merkleConsistencyProof(read, first, size);
    t.true(k.verifyMerkleConsistency(first, size, await root(first), await root(size), proof), `consistency ${first} → ${size}`);
    if (proof.length > 0) t.false(k.verifyMerkleConsistency(first, size, await root(first), await root(size), flipped(proof, pick(proof.length))));
    if (first < size) {
      // A fork: the same sizes over a history whose entry `first - 1` differs.
      const forked = leaves.slice(0, size);
      forked[first - 1] = k.merkleLeafHash(new TextEncoder().encode('rewritten'));
      t.false(k.verifyMerkleConsistency(first, size, await root(first), naiveRoot(forked), proof));
    }
  }
});

test('proofs refuse impossible sizes', async (t) => {
  const read = memoryTree([k.merkleLeafHash(new Uint8Array(0))]);
  await t.throwsAsync(k.merkleInclusionProof(read, 1, 1));
  await t.throwsAsync(k.merkleConsistencyProof(read, 2, 1));
  await t.throwsAsync(k.merkleConsistencyProof(read, 0, 1));
  t.false(k.verifyMerkleInclusion(-1, 1, new Uint8Array(32), [], new Uint8Array(32)));
  t.false(k.verifyMerkleConsistency(0, 1, new Uint8Array(32), new Uint8Array(32), []));
});
