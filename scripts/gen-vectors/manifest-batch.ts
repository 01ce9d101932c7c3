// Writes test/vectors/manifest-batch.json ONCE: version-2 manifests sealed as one signed batch (docs/crypto.md §8.1).
// Every secret input is recorded (the author's seed, each file key, each salt) so that a second implementation can
// recompute each manifest's canonical body, leaf, the root, every proof, the statement and its signature (Ed25519 is
// deterministic), the plaintext behind each envelope, and open each sealed manifest (its nonce is bytes 1..25).
import { existsSync, writeFileSync } from 'node:fs';
import * as k from '@kluis/shared';

const out = new URL('../../test/vectors/manifest-batch.json', import.meta.url);
if (existsSync(out)) {
  console.error('test/vectors/manifest-batch.json exists: vectors are frozen and never regenerated');
  process.exit(1);
}
await k.initCrypto();
const b64 = k.toBase64Url;
const rnd = k.hazmat.randomBytes;

const authorSeed = rnd(32);
const author = k.hazmat.signSeedKeypair(authorSeed);
const signer = { signPublicKey: author.publicKey, signSecretKey: author.privateKey };
const zeroHash = k.contentHash(new Uint8Array(0));
// Five manifests (an unbalanced tree: proofs of 3, 3, 3, 3 and 1 hashes): a file of two chunks, a folder, an empty
// file, a deletion and a name outside ASCII.
const shapes = [
  { path: 'Dossiers/2026/verslag.pdf', kind: 'file', size: 700_000, chunks: [[k.toHex(rnd(32)), 600_000], [k.toHex(rnd(32)), 100_000]], hash: k.toHex(rnd(32)), deleted: false },
  { path: 'Dossiers/2026', kind: 'dir', size: 0, chunks: [], hash: zeroHash, deleted: false },
  { path: 'leeg.txt', kind: 'file', size: 0, chunks: [], hash: zeroHash, deleted: false },
  { path: 'oud/concept.docx', kind: 'file', size: 0, chunks: [], hash: zeroHash, deleted: true },
  { path: 'Procès-verbal été.odt', kind: 'file', size: 5, chunks: [[k.toHex(rnd(32)), 5]], hash: k.toHex(rnd(32)), deleted: false },
] as const;
const files = shapes.map((s, i) => {
  const fileKey = rnd(32);
  const manifest: k.Manifest = {
    v: 2, memberSeq: 4, fileId: k.newId(), versionId: k.newId(), parent: s.deleted ? k.newId() : null, path: s.path, kind: s.kind,
    size: s.size, mtimeMs: 1_764_000_000_000 + i, chunks: s.chunks.map(([id, n]) => [id, n] as [string, number]), hash: s.hash, deleted: s.deleted,
  };
  return { fileKey, manifest, keys: k.deriveFileSubkeys(fileKey), salt: rnd(16) };
});
const sealed = k.sealManifests(files.map(({ manifest, keys }) => ({ manifest, keys })), signer, files.map((f) => f.salt));
const manifests = files.map((f, i) => {
  const ad = k.concatBytes(k.utf8('kluis/manifest/v1'), k.idBytes(f.manifest.fileId), k.idBytes(f.manifest.versionId));
  const plain = k.openEnvelope(f.keys.manifestKey, sealed[i]!, ad);
  const body = k.canonicalJson(f.manifest);
  const leaf = k.merkleLeafHash(k.concatBytes(k.utf8('kluis/manifest-leaf/v3'), f.salt, k.idBytes(f.manifest.fileId), k.idBytes(f.manifest.versionId), k.utf8(body)));
  return {
    fileKey: b64(f.fileKey), manifestKey: b64(f.keys.manifestKey), salt: b64(f.salt), manifest: f.manifest, body, leaf: b64(leaf),
    plaintext: b64(plain), sealed: b64(sealed[i]!),
  };
});
const proofs = k.merkleTreeProofs(manifests.map((m) => k.fromBase64Url(m.leaf)));
const statement = { v: 3, kind: 'manifest-batch', signer: b64(author.publicKey), size: files.length, root: b64(proofs.root) };
writeFileSync(out, `${JSON.stringify({
  note: 'Kluis batch-signed manifests (docs/crypto.md §8.1). Seed: crypto_sign_seed_keypair. Frozen: never regenerate.',
  author: { signSeed: b64(authorSeed), signPublicKey: b64(author.publicKey) },
  statement, statementCanonical: k.canonicalJson(statement),
  proofs: proofs.proofs.map((p) => p.map(b64)),
  manifests,
}, null, 2)}\n`);
console.log(`wrote ${out.pathname}`);
