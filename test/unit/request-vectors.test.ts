// File requests (docs/crypto.md §9.2): the frozen vectors recompute byte for byte, and a member's client refuses every
// upload the grant does not allow: a forged grant or signature, another folder, after expiry, beyond the file count,
// an overwrite, a grant by someone who was no writer.
import test from 'ava';
import * as k from '@kluis/shared';
import { loadVectors } from '../helpers/vectors.js';

const V = loadVectors('requests.json');
const d = k.fromBase64Url;
const space = (): k.SpaceKeyPair => ({ publicKey: d(V.space.publicKey), secretKey: d(V.space.secretKey) });
const creator = (): k.AccountKeys => {
  const s = k.hazmat.signSeedKeypair(d(V.creator.signSeed));
  return { signPublicKey: s.publicKey, signSecretKey: s.privateKey, encPublicKey: new Uint8Array(32), encSecretKey: new Uint8Array(32) };
};
/** The creator was a writer from position 3 on. */
const writerAt = (signer: string, seq: number) => signer === V.creator.signPublicKey && seq >= 3;

test.before(async () => {
  await k.initCrypto();
});

test('vectors: the secret derives the recorded keys and auth hash', (t) => {
  const keys = k.deriveRequestKeys(V.requestSecret);
  t.is(k.toBase64Url(k.hazmat.kdf(32, 1, 'kluisreq', d(V.requestSecret))), V.derived.requestSignSeed);
  t.is(k.toBase64Url(keys.signPublicKey), V.derived.requestSignPublicKey);
  t.is(k.toBase64Url(keys.folderKey), V.derived.folderKey);
  t.is(k.toBase64Url(keys.requestAuth), V.derived.requestAuth);
  t.is(k.requestAuthHash(keys), V.derived.authHash);
});

test('vectors: the grant and receipt re-sign byte for byte and open for member and uploader', (t) => {
  const { sig, ...fields } = V.grant;
  t.is(k.fromUtf8(k.canonicalBytes(fields)), V.grantCanonical);
  t.is(k.toBase64Url(k.hazmat.signDetachedSodium('kluis/upload-grant/v1', k.canonicalBytes(fields), creator().signSecretKey)), sig);
  t.is(k.openGrantForMember(V.grant, V.space.spaceId, space(), writerAt).folder, V.folder);
  t.is(k.openGrantForUploader(V.grant, k.deriveRequestKeys(V.requestSecret), V.grant.requestId).folder, V.folder);
  const { sig: rsig, ...rfields } = V.receipt;
  t.is(k.fromUtf8(k.canonicalBytes(rfields)), V.receiptCanonical);
  t.is(k.toBase64Url(k.hazmat.signDetachedSodium('kluis/request-upload/v1', k.canonicalBytes(rfields), k.hazmat.signSeedKeypair(d(V.derived.requestSignSeed)).privateKey)), rsig);
  t.notThrows(() => k.verifyUploadReceipt(V.receipt, V.derived.requestSignPublicKey));
});

test('vectors: the upload opens with the space key and is allowed by its grant', (t) => {
  const reqPk = V.derived.requestSignPublicKey;
  const fileKey = k.openFileKeyWrap(V.upload.wrap, { spaceId: V.space.spaceId, keyEpoch: 2, fileId: V.upload.manifest.fileId }, space(), (s) => s === reqPk);
  t.is(k.toBase64Url(fileKey), V.upload.fileKey);
  const sub = k.deriveFileSubkeys(fileKey);
  const { manifest, signer } = k.openManifest(d(V.upload.sealedManifest), sub, { fileId: V.upload.manifest.fileId, versionId: V.upload.manifest.versionId }, (s, seq) => s === reqPk && seq === V.grant.memberSeq);
  t.deepEqual(manifest, V.upload.manifest);
  t.is(signer, reqPk);
  t.is(k.toBase64Url(k.decryptChunk(sub, V.upload.chunk.id, d(V.upload.chunk.ciphertext))), V.upload.content);
  t.is(k.requestUploadProblem(V.grant, V.folder, V.receipt, manifest, V.grant.expiresAt), null);
});

test('member: a grant by someone who was not a writer at its position is refused', (t) => {
  const err = t.throws(() => k.openGrantForMember(V.grant, V.space.spaceId, space(), (s, seq) => writerAt(s, seq) && seq > 4));
  t.is((err as k.KluisError).code, k.ErrorCode.UntrustedSigner);
});

test('member and uploader: a forged grant (any field changed, or re-signed by another key) is refused', (t) => {
  for (const [field, value] of [['maxFiles', 1000], ['expiresAt', V.grant.expiresAt + 1], ['memberSeq', 5], ['requestPublicKey', V.creator.signPublicKey]] as const) {
    const forged = { ...V.grant, [field]: value };
    t.throws(() => k.openGrantForMember(forged, V.space.spaceId, space(), writerAt), undefined, field);
    t.throws(() => k.openGrantForUploader(forged, k.deriveRequestKeys(V.requestSecret), V.grant.requestId), undefined, field);
  }
  // A server swapping in a grant of its own, with a space key it holds: signed by its key, for the same request key.
  const own = k.generateSpaceKeyPair();
  const keys = k.deriveRequestKeys(V.requestSecret);
  const serverAccount = { ...creator(), ...(() => { const s = k.hazmat.signSeedKeypair(k.hazmat.randomBytes(32)); return { signPublicKey: s.publicKey, signSecretKey: s.privateKey }; })() };
  const swapped = k.signUploadGrant({ requestId: V.grant.requestId, spaceId: V.space.spaceId, keyEpoch: 2, spacePublicKey: k.toBase64Url(own.publicKey), memberSeq: 4, expiresAt: V.grant.expiresAt, maxFiles: 3, folder: V.folder }, { ...keys, folderKey: k.hazmat.randomBytes(32) }, serverAccount);
  t.throws(() => k.openGrantForUploader(swapped, keys, V.grant.requestId), undefined, 'the folder does not open under the link\'s key');
  t.throws(() => k.openGrantForMember(swapped, V.space.spaceId, space(), writerAt), undefined, 'another space key, and not a writer');
});

test('member: a receipt or manifest signed by another key than the grant\'s request key is refused', (t) => {
  const other = k.deriveRequestKeys(k.newRequestSecret());
  const forged = k.signUploadReceipt({ requestId: V.receipt.requestId, spaceId: V.receipt.spaceId, fileId: V.receipt.fileId, versionId: V.receipt.versionId, slot: 1 }, other);
  t.throws(() => k.verifyUploadReceipt(forged, V.derived.requestSignPublicKey));
  t.throws(() => k.verifyUploadReceipt({ ...V.receipt, slot: 2 }, V.derived.requestSignPublicKey));
  const sub = k.deriveFileSubkeys(d(V.upload.fileKey));
  const sealed = k.sealManifest(V.upload.manifest, sub, k.requestAuthor(other));
  const err = t.throws(() => k.openManifest(sealed, sub, { fileId: V.upload.manifest.fileId, versionId: V.upload.manifest.versionId }, (s: string) => s === V.derived.requestSignPublicKey));
  t.is((err as k.KluisError).code, k.ErrorCode.UntrustedSigner);
});

test('member: uploads outside the folder, after expiry, beyond max files, or not a new file are refused', (t) => {
  const m: k.Manifest = V.upload.manifest;
  const problem = (mm: Partial<k.Manifest>, r: Partial<k.UploadReceipt> = {}, at = V.grant.expiresAt) =>
    k.requestUploadProblem(V.grant, V.folder, { ...V.receipt, ...r }, { ...m, ...mm }, at);
  t.regex(problem({ path: 'Dossiers/other.pdf' }) ?? '', /outside the requested folder/);
  t.regex(problem({ path: `${V.folder}/sub/deeper.pdf` }) ?? '', /outside the requested folder/);
  t.regex(problem({ path: 'elsewhere.pdf' }) ?? '', /outside the requested folder/);
  t.regex(problem({}, {}, V.grant.expiresAt + 1) ?? '', /after the request expired/);
  t.regex(problem({}, { slot: 4 }) ?? '', /more files than the request allows/);
  t.regex(problem({ parent: k.newId() }) ?? '', /only add a new file/);
  t.regex(problem({ deleted: true }) ?? '', /only add a new file/);
  t.regex(problem({ memberSeq: 5 }) ?? '', /another membership position/);
  t.regex(problem({}, { versionId: k.newId() }) ?? '', /another version/);
});
