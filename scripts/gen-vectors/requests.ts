// Writes test/vectors/requests.json ONCE: a file request (docs/crypto.md §9.2) with its secret and derived keys, the
// creator's signed grant, an upload's receipt, file-key wrap and manifest signed by the request key. Seeds are
// recorded, so every signature recomputes byte for byte; the seals and envelopes (random nonces) are opened instead.
import { existsSync, writeFileSync } from 'node:fs';
import * as k from '@kluis/shared';

const out = new URL('../../test/vectors/requests.json', import.meta.url);
if (existsSync(out)) {
  console.error('test/vectors/requests.json exists: vectors are frozen and never regenerated');
  process.exit(1);
}
await k.initCrypto();
const b64 = k.toBase64Url;

const signSeed = k.hazmat.randomBytes(32);
const sign = k.hazmat.signSeedKeypair(signSeed);
const enc = k.hazmat.boxSeedKeypair(k.hazmat.randomBytes(32));
const creator: k.AccountKeys = { encPublicKey: enc.publicKey, encSecretKey: enc.privateKey, signPublicKey: sign.publicKey, signSecretKey: sign.privateKey };
const space = k.generateSpaceKeyPair();
const spaceId = k.newId();
const requestId = k.newId();
const secret = k.newRequestSecret();
const keys = k.deriveRequestKeys(secret);
const folder = 'Dossiers/Aanvragen 2026';
const grant = k.signUploadGrant({
  requestId, spaceId, keyEpoch: 2, spacePublicKey: b64(space.publicKey), memberSeq: 4, expiresAt: 1_795_600_000_000, maxFiles: 3, folder,
}, keys, creator);
const { sig: _gs, ...grantFields } = grant;

const fileKey = k.generateFileKey();
const fileId = k.newId();
const versionId = k.newId();
const content = k.hazmat.randomBytes(1000);
const sub = k.deriveFileSubkeys(fileKey);
const chunk = k.encryptChunk(sub, content);
const manifest: k.Manifest = {
  v: 2, memberSeq: 4, fileId, versionId, parent: null, path: `${folder}/aanvraag.pdf`, kind: 'file', size: 1000, mtimeMs: 1_795_500_000_000,
  chunks: [[chunk.id, 1000]], hash: k.contentHash(content), deleted: false,
};
const author = k.requestAuthor(keys);
const receipt = k.signUploadReceipt({ requestId, spaceId, fileId, versionId, slot: 1 }, keys);
const { sig: _rs, ...receiptFields } = receipt;

writeFileSync(out, `${JSON.stringify({
  note: 'docs/crypto.md §9.2. Recompute: keys from requestSecret; grant.sig from creator.signSeed over canonical(grant without sig); open grant.folderSealed with space.secretKey and grant.folderForUploader with folderKey (both give folder); receipt.sig from requestSignSeed; open upload.wrap with space, upload.manifest with fileKey, signed by requestSignPublicKey.',
  requestSecret: secret,
  derived: {
    requestSignSeed: b64(k.hazmat.kdf(32, 1, 'kluisreq', k.fromBase64Url(secret))), requestSignPublicKey: b64(keys.signPublicKey), folderKey: b64(keys.folderKey),
    requestAuth: b64(keys.requestAuth), authHash: k.requestAuthHash(keys),
  },
  creator: { signSeed: b64(signSeed), signPublicKey: b64(sign.publicKey) },
  space: { spaceId, keyEpoch: 2, publicKey: b64(space.publicKey), secretKey: b64(space.secretKey) },
  folder,
  grant, grantCanonical: k.fromUtf8(k.canonicalBytes(grantFields)),
  receipt, receiptCanonical: k.fromUtf8(k.canonicalBytes(receiptFields)),
  upload: {
    fileKey: b64(fileKey), content: b64(content), chunk: { id: chunk.id, ciphertext: b64(chunk.ciphertext) }, manifest,
    sealedManifest: b64(k.sealManifest(manifest, sub, author)),
    wrap: k.wrapFileKey(fileKey, { spaceId, keyEpoch: 2, fileId, recipient: b64(space.publicKey) }, author),
  },
}, null, 2)}\n`);
console.log('wrote test/vectors/requests.json');
