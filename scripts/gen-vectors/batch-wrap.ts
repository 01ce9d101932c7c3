// Writes test/vectors/batch-wrap.json ONCE: file-key wraps of version 2, made in one batch (docs/crypto.md §5.2).
// Every secret input is recorded (space and author keys as seeds, the batch's ephemeral keypair, the file keys) so
// that a second implementation can recompute the wrap key, each envelope (its nonce is bytes 1..25 of `sealed`), the
// leaves, the root, every proof and the signature (Ed25519 is deterministic), and open every wrap.
import { existsSync, writeFileSync } from 'node:fs';
import * as k from '@kluis/shared';

const out = new URL('../../test/vectors/batch-wrap.json', import.meta.url);
if (existsSync(out)) {
  console.error('test/vectors/batch-wrap.json exists: vectors are frozen and never regenerated');
  process.exit(1);
}
await k.initCrypto();
const b64 = k.toBase64Url;
const rnd = k.hazmat.randomBytes;

const spaceSeed = rnd(32);
const space = k.hazmat.boxSeedKeypair(spaceSeed);
const authorSeed = rnd(32);
const author = k.hazmat.signSeedKeypair(authorSeed);
const ephemeralSeed = rnd(32);
const ephemeral = k.hazmat.boxSeedKeypair(ephemeralSeed);
const spaceId = k.newId();
const keyEpoch = 3;
// Five wraps: an unbalanced tree (proofs of 2 and 3 hashes), so both branches of the proof algorithm are exercised.
const items = Array.from({ length: 5 }, () => ({ fileId: k.newId(), fileKey: rnd(32) }));
const wraps = k.wrapFileKeysBatch(items, { spaceId, keyEpoch, recipient: b64(space.publicKey) }, { signPublicKey: author.publicKey, signSecretKey: author.privateKey }, { publicKey: ephemeral.publicKey, privateKey: ephemeral.privateKey });
const shared = k.hazmat.x25519(ephemeral.privateKey, space.publicKey);
const wrapKey = k.hazmat.blake2b(32, k.concatBytes(k.utf8('kluis/wrap-key/v2'), shared, ephemeral.publicKey, space.publicKey));
const first = wraps[0]!;
const statement = { v: 2, spaceId, keyEpoch, recipient: first.recipient, ephemeral: first.ephemeral, signer: first.signer, size: first.size, root: first.root };

writeFileSync(out, `${JSON.stringify({
  note: 'Kluis file-key wraps v2 (docs/crypto.md §5.2). Seeds: crypto_box_seed_keypair / crypto_sign_seed_keypair. Frozen: never regenerate.',
  spaceId, keyEpoch,
  space: { seed: b64(spaceSeed), publicKey: b64(space.publicKey), secretKey: b64(space.privateKey) },
  author: { signSeed: b64(authorSeed), signPublicKey: b64(author.publicKey) },
  ephemeral: { seed: b64(ephemeralSeed), publicKey: b64(ephemeral.publicKey), secretKey: b64(ephemeral.privateKey) },
  shared: b64(shared), wrapKey: b64(wrapKey),
  files: items.map((i) => ({ fileId: i.fileId, fileKey: b64(i.fileKey) })),
  statement, statementCanonical: k.canonicalJson(statement),
  wraps,
}, null, 2)}\n`);
console.log(`wrote ${out.pathname}`);
