// The audit trail's Merkle tree log (docs/crypto.md §12, "Merkle tree log"): RFC 9162 §2.1 hashing over the audit
// entries, signed tree heads, and the inclusion and consistency proofs of RFC 9162 §2.1.3 and §2.1.4 with their
// verification algorithms. Proofs are built from stored perfect subtrees (node (level, index) covers the leaves
// [index·2^level, (index+1)·2^level)), so a proof reads O(log n) nodes and never the leaves.
//
// Sizes and indexes are plain numbers up to 2^53: the algorithms halve them by division, never with 32-bit bit
// operators.
import { CryptoError, ErrorCode } from '../errors.js';
import { fromHex, toBase64Url, toHex } from '../encoding.js';
import { canonicalBytes } from '../canonical.js';
import { decodeB64, sha256, signDetached, verifyDetached } from './primitives.js';
import type { ServerSigningKey } from './server.js';

// The bytes a leaf (prefix 0x00) or node (0x01) hash covers are laid out in this scratch array (grown when needed) and hashed from there:
// a batch of 500 manifests or wraps hashes about 1,000 leaves and nodes, and a new array for each was a good part of
// its cost (issue 22). sha256 is synchronous, so nothing else writes to it in between.
let scratch = new Uint8Array(1024);

function hashParts(prefix: number, parts: readonly Uint8Array[]): Uint8Array {
  let length = 1;
  for (const p of parts) length += p.length;
  if (length > scratch.length) scratch = new Uint8Array(Math.max(length, scratch.length * 2));
  scratch[0] = prefix;
  let at = 1;
  for (const p of parts) {
    scratch.set(p, at);
    at += p.length;
  }
  return sha256(scratch.subarray(0, length));
}

/** SHA-256 of the empty string: the root of the empty tree (RFC 9162 §2.1.1). */
export function merkleEmptyRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/** SHA-256(0x00 || data). */
export function merkleLeafHash(data: Uint8Array): Uint8Array {
  return hashParts(0, [data]);
}

/** merkleLeafHash of the concatenation of `parts` (every leaf of a manifest or wrap batch). */
export function merkleLeafHashOf(...parts: Uint8Array[]): Uint8Array {
  return hashParts(0, parts);
}

/** SHA-256(0x01 || left || right). */
export function merkleNodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return hashParts(1, [left, right]);
}

/** The leaf of an audit entry: hex(SHA-256(0x00 || canonical(entry))), entry being the 13-member object of the chain. */
export function auditLeafHash(entry: unknown): string {
  return toHex(merkleLeafHash(canonicalBytes(entry)));
}

const odd = (x: number): boolean => x % 2 === 1;
const half = (x: number): number => Math.floor(x / 2);

/** The largest power of two smaller than n (n >= 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * The RFC 9162 §2.1.1 tree hash of `leaves` (at least one) and, for each leaf, its §2.1.3.1 inclusion proof (leaf
 * upward): what a signer of a batch (docs/crypto.md §5.2, §8.1) hands out beside one signature over the root.
 */
export function merkleTreeProofs(leaves: readonly Uint8Array[]): { root: Uint8Array; proofs: Uint8Array[][] } {
  if (leaves.length === 0) throw new CryptoError(ErrorCode.BadKey, 'a Merkle batch needs at least one leaf');
  const proofs = leaves.map((): Uint8Array[] => []);
  const build = (lo: number, hi: number): Uint8Array => {
    if (hi - lo === 1) return leaves[lo]!;
    const k = splitPoint(hi - lo);
    const left = build(lo, lo + k);
    const right = build(lo + k, hi);
    for (let i = lo; i < lo + k; i++) proofs[i]!.push(right);
    for (let i = lo + k; i < hi; i++) proofs[i]!.push(left);
    return merkleNodeHash(left, right);
  };
  return { root: build(0, leaves.length), proofs };
}

function isPowerOfTwo(n: number): boolean {
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

/**
 * Incremental root over leaves appended one by one: keeps the perfect subtrees of the right edge (one per set bit of
 * the size), O(log n) memory. `push` returns the nodes it completed, leaf first, as (level, index, hash).
 */
export class MerkleFrontier {
  /** frontier[level]: the perfect subtree of 2^level leaves waiting for a right sibling, or undefined. */
  private readonly frontier: (Uint8Array | undefined)[];
  size: number;

  constructor(size = 0, frontier: (Uint8Array | undefined)[] = []) {
    this.size = size;
    this.frontier = frontier.slice();
  }

  /** The (level, index) of the perfect subtrees that make up a tree of `size` leaves, largest first. */
  static parts(size: number): { level: number; index: number }[] {
    const out: { level: number; index: number }[] = [];
    let rest = size;
    for (let level = 0; rest > 0; level++, rest = half(rest)) {
      if (odd(rest)) out.push({ level, index: rest - 1 });
    }
    return out.reverse();
  }

  push(leaf: Uint8Array): { level: number; index: number; hash: Uint8Array }[] {
    const made = [{ level: 0, index: this.size, hash: leaf }];
    let h = leaf;
    let level = 0;
    let n = this.size;
    while (odd(n)) {
      h = merkleNodeHash(this.frontier[level]!, h);
      this.frontier[level] = undefined;
      level++;
      n = half(n);
      made.push({ level, index: half(made[made.length - 1]!.index), hash: h });
    }
    this.frontier[level] = h;
    this.size++;
    return made;
  }

  /** MTH of the leaves pushed so far. */
  root(): Uint8Array {
    let r: Uint8Array | undefined;
    for (let level = 0; level < this.frontier.length; level++) {
      const f = this.frontier[level];
      if (f) r = r ? merkleNodeHash(f, r) : f;
    }
    return r ?? merkleEmptyRoot();
  }

  clone(): MerkleFrontier {
    return new MerkleFrontier(this.size, this.frontier);
  }
}

/** Reads stored perfect subtrees: one hash per requested (level, index), in order. */
export type MerkleNodeReader = (nodes: readonly { level: number; index: number }[]) => Promise<Uint8Array[]>;

type Get = (level: number, index: number) => Uint8Array;

/** MTH(D[lo:hi]) from perfect subtrees; lo is aligned as everywhere in RFC 9162's recursion. */
function mth(get: Get, lo: number, hi: number): Uint8Array {
  const n = hi - lo;
  if (isPowerOfTwo(n) && lo % n === 0) return get(Math.log2(n), lo / n);
  const k = splitPoint(n);
  return merkleNodeHash(mth(get, lo, lo + k), mth(get, lo + k, hi));
}

/** PATH(m, D[lo:hi]) of RFC 9162 §2.1.3.1. */
function path(get: Get, m: number, lo: number, hi: number): Uint8Array[] {
  const n = hi - lo;
  if (n <= 1) return [];
  const k = splitPoint(n);
  return m < k ? [...path(get, m, lo, lo + k), mth(get, lo + k, hi)] : [...path(get, m - k, lo + k, hi), mth(get, lo, lo + k)];
}

/** SUBPROOF(m, D[lo:hi], b) of RFC 9162 §2.1.4.1. */
function subproof(get: Get, m: number, lo: number, hi: number, b: boolean): Uint8Array[] {
  const n = hi - lo;
  if (m === n) return b ? [] : [mth(get, lo, hi)];
  const k = splitPoint(n);
  return m <= k ? [...subproof(get, m, lo, lo + k, b), mth(get, lo + k, hi)] : [...subproof(get, m - k, lo + k, hi, false), mth(get, lo, lo + k)];
}

/** Runs `build` twice: first to learn which stored nodes it needs, then on those nodes read in one call. */
async function withNodes<T>(read: MerkleNodeReader, build: (get: Get) => T): Promise<T> {
  const wanted = new Map<string, { level: number; index: number }>();
  const zero = new Uint8Array(32);
  build((level, index) => {
    wanted.set(`${level}/${index}`, { level, index });
    return zero;
  });
  const list = [...wanted.values()];
  const hashes = await read(list);
  const got = new Map(list.map((n, i) => [`${n.level}/${n.index}`, hashes[i]!]));
  return build((level, index) => got.get(`${level}/${index}`)!);
}

function checkSizes(ok: boolean, message: string): void {
  if (!ok) throw new CryptoError(ErrorCode.BadRequest, message);
}

/** MTH of the first `size` leaves (size >= 1). */
export async function merkleRootAt(read: MerkleNodeReader, size: number): Promise<Uint8Array> {
  checkSizes(Number.isSafeInteger(size) && size >= 1, 'tree size: a positive integer');
  return withNodes(read, (get) => mth(get, 0, size));
}

/** The inclusion proof of leaf `index` (0-based) in the tree of `size` leaves. */
export async function merkleInclusionProof(read: MerkleNodeReader, index: number, size: number): Promise<Uint8Array[]> {
  checkSizes(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size, 'inclusion proof: needs 0 <= index < size');
  return withNodes(read, (get) => path(get, index, 0, size));
}

/** The consistency proof between the trees of `first` and `second` leaves (1 <= first <= second). */
export async function merkleConsistencyProof(read: MerkleNodeReader, first: number, second: number): Promise<Uint8Array[]> {
  checkSizes(Number.isSafeInteger(first) && Number.isSafeInteger(second) && first >= 1 && first <= second, 'consistency proof: needs 1 <= first <= second');
  return withNodes(read, (get) => subproof(get, first, 0, second, true));
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/**
 * RFC 9162 §2.1.3.2 without the final comparison: the root that `proof` leads to from leaf `index` (hash `leaf`) of a
 * tree of `size` leaves, or null when the proof does not fit such a tree (wrong length, index out of range).
 */
export function merkleRootFromInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[]): Uint8Array | null {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return null;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return null;
    if (odd(fn) || fn === sn) {
      r = merkleNodeHash(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = merkleNodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? r : null;
}

/** RFC 9162 §2.1.3.2: true iff `proof` shows leaf `index` with hash `leaf` in the tree of `size` leaves with `root`. */
export function verifyMerkleInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  const r = merkleRootFromInclusion(index, size, leaf, proof);
  return r !== null && equal(r, root);
}

/** RFC 9162 §2.1.4.2: true iff `proof` shows the tree (`first`, `firstRoot`) is a prefix of (`second`, `secondRoot`). */
export function verifyMerkleConsistency(first: number, second: number, firstRoot: Uint8Array, secondRoot: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 1 || first > second) return false;
  if (first === second) return proof.length === 0 && equal(firstRoot, secondRoot);
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = merkleNodeHash(c, fr);
      sr = merkleNodeHash(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = merkleNodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equal(fr, firstRoot) && equal(sr, secondRoot);
}

/** A signed tree head: the server vouches that the first `size` audit entries have Merkle root `root` (hex) at `ts`. */
export interface AuditTreeHead {
  size: number;
  root: string;
  ts: number;
}

/** Sign("kluis/audit-tree-head/v1", canonical({root, size, ts})). */
export function signAuditTreeHead(head: AuditTreeHead, key: ServerSigningKey): string {
  return toBase64Url(signDetached('kluis/audit-tree-head/v1', canonicalBytes({ root: head.root, size: head.size, ts: head.ts }), key.secretKey));
}

/** Throws CryptoError(bad_signature) unless the tree head was signed by `publicKey`. */
export function verifyAuditTreeHead(head: AuditTreeHead, signature: string, publicKey: string): void {
  verifyDetached('kluis/audit-tree-head/v1', canonicalBytes({ root: head.root, size: head.size, ts: head.ts }), decodeB64(signature, 'signature', 64), decodeB64(publicKey, 'publicKey', 32));
}

/** Hex helpers for proofs on the wire (lower-case hex, 64 digits each). */
export function merkleHashesToHex(hashes: readonly Uint8Array[]): string[] {
  return hashes.map(toHex);
}

export function merkleHashesFromHex(hashes: readonly string[]): Uint8Array[] {
  return hashes.map((h) => {
    if (!/^[0-9a-f]{64}$/.test(h)) throw new CryptoError(ErrorCode.BadRequest, 'a Merkle hash is 64 lower-case hex digits');
    return fromHex(h);
  });
}
