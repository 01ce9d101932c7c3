// Organisation backups (docs/backup.md §2): the frozen vectors recompute byte for byte, and a record opens only at its
// own place with its own file's key; the manifest signature covers every member.
import test from 'ava';
import * as k from '@kluis/shared';
import { loadVectors } from '../helpers/vectors.js';

const V = loadVectors('backup.json');
const d = k.fromBase64Url;

test.before(async () => {
  await k.initCrypto();
});

test('vectors: keys, sealed content key, file keys', (t) => {
  const pair = k.backupKeyPairFromSecret(d(V.secretKey));
  t.is(pair.publicKey, V.publicKey);
  t.is(k.toBase64Url(k.openBackupContentKey(V.sealedKey, pair)), V.contentKey);
  t.is(k.toBase64Url(k.backupFileKey(d(V.contentKey), 1)), V.fileKey1);
  t.is(k.toBase64Url(k.backupFileKey(d(V.contentKey), 2)), V.fileKey2);
  t.is(k.toBase64Url(k.hazmat.kdf(32, 2, 'kluisbak', d(V.contentKey))), V.fileKey2);
});

test('vectors: the record re-seals byte for byte on both envelope paths and opens at its place', (t) => {
  const r = V.record;
  const ad = k.fromHex(r.adHex);
  t.deepEqual(ad.subarray(0, 22), k.utf8('kluis/backup-record/v1'));
  t.deepEqual(ad.subarray(22, 38), k.idBytes(r.backupId));
  t.is(ad.length, 22 + 16 + 13);
  for (const backend of ['sodium', 'node'] as const) {
    t.is(k.toBase64Url(k.hazmat.sealEnvelopeWithNonce(d(V.fileKey2), k.utf8(r.payloadUtf8), ad, d(r.nonce), backend)), r.sealed);
  }
  const place = { backupId: r.backupId, fileIndex: r.fileIndex, recordIndex: r.recordIndex, last: r.last };
  t.is(k.fromUtf8(k.openBackupRecord(d(V.fileKey2), place, d(r.sealed))), r.payloadUtf8);
});

test('a record moved to another place, file, backup or key, or marked not last, fails to open', (t) => {
  const r = V.record;
  const place = { backupId: r.backupId, fileIndex: r.fileIndex, recordIndex: r.recordIndex, last: r.last };
  const sealed = d(r.sealed);
  for (const other of [{ ...place, recordIndex: 2 }, { ...place, fileIndex: 1 }, { ...place, last: false }, { ...place, backupId: k.newId() }]) {
    t.throws(() => k.openBackupRecord(d(V.fileKey2), other, sealed), { instanceOf: k.CryptoError });
  }
  t.throws(() => k.openBackupRecord(d(V.fileKey1), place, sealed), { instanceOf: k.CryptoError });
  for (let i = 0; i < sealed.length; i += 7) {
    const bad = sealed.slice();
    bad[i] = bad[i]! ^ 0x80;
    t.throws(() => k.openBackupRecord(d(V.fileKey2), place, bad), undefined, `byte ${i}`);
  }
});

test('vectors: the manifest signature verifies; any changed member or another server key is refused', (t) => {
  const server = k.serverSigningKeyFromSeed(d(V.serverSeed));
  t.is(server.publicKey, V.manifest.serverPublicKey);
  const { signature, ...body } = V.manifest;
  t.is(k.fromUtf8(k.canonicalBytes(body)), V.manifestCanonical);
  t.is(k.signBackupManifest(V.manifest, server.secretKey), signature);
  t.notThrows(() => k.verifyBackupManifest(V.manifest, server.publicKey));
  for (const change of [{ orgId: 'x' }, { createdAt: V.manifest.createdAt + 1 }, { counts: { ...V.manifest.counts, objects: 1 } }, { sealedKey: k.newBackupContentKey(V.publicKey).sealedKey }]) {
    t.throws(() => k.verifyBackupManifest({ ...V.manifest, ...change }, server.publicKey), { instanceOf: k.CryptoError });
  }
  t.throws(() => k.verifyBackupManifest(V.manifest, k.generateServerSigningKey().publicKey), { instanceOf: k.CryptoError });
});

test('another organisation\'s key does not open the sealed content key', (t) => {
  const other = k.generateBackupKeyPair();
  const err = t.throws(() => k.openBackupContentKey(V.sealedKey, other));
  t.is((err as k.KluisError).code, k.ErrorCode.DecryptFailed);
  t.throws(() => k.backupKeyPairFromSecret(new Uint8Array(31)));
  t.throws(() => k.backupFileKey(d(V.contentKey), 0));
});
