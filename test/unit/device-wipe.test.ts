// Device keys and wipe reports (docs/crypto.md §14) against the frozen vector test/vectors/device-wipe.json, checked
// a second time with node:crypto's own Ed25519, and the sealed path list: only the account it is sealed to opens it.
import test from 'ava';
import { createPrivateKey, createPublicKey, verify } from 'node:crypto';
import * as k from '@kluis/shared';
import { loadVectors } from '../helpers/vectors.js';

const V = loadVectors('device-wipe.json');
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

test.before(async () => {
  await k.initCrypto();
});

test('the vector: public key from the seed, canonical bytes and signature', (t) => {
  const dev = k.deviceKeysFromSeed(V.seed);
  t.is(dev.publicKey, V.publicKey);
  t.is(new TextDecoder().decode(k.canonicalBytes(V.report)), V.canonical);
  t.is(k.signWipeReport(V.report, dev), V.signature);
  t.notThrows(() => k.verifyWipeReport(V.report, V.signature, V.publicKey));
  // A second implementation: OpenSSL's Ed25519 over "kluis/device-wipe-report/v1" || 0x00 || canonical JSON.
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, Buffer.from(V.seed, 'base64url')]), format: 'der', type: 'pkcs8' });
  t.is(createPublicKey(priv).export({ format: 'jwk' }).x, V.publicKey);
  const message = Buffer.concat([Buffer.from('kluis/device-wipe-report/v1'), Buffer.from([0]), Buffer.from(V.canonical)]);
  t.true(verify(null, message, createPublicKey(priv), Buffer.from(V.signature, 'base64url')));
});

test('a changed report, another key or a changed signature does not verify', (t) => {
  const other = k.deviceKeysFromSeed(k.newDeviceSeed());
  t.throws(() => k.verifyWipeReport({ ...V.report, filesRemoved: 0 }, V.signature, V.publicKey), { instanceOf: k.CryptoError });
  t.throws(() => k.verifyWipeReport({ ...V.report, unsynced: 0 }, V.signature, V.publicKey), { instanceOf: k.CryptoError });
  t.throws(() => k.verifyWipeReport(V.report, V.signature, other.publicKey), { instanceOf: k.CryptoError });
  const sig = Buffer.from(V.signature, 'base64url');
  sig[10] = sig[10]! ^ 1;
  t.throws(() => k.verifyWipeReport(V.report, sig.toString('base64url'), V.publicKey), { instanceOf: k.CryptoError });
  t.true(k.WipeReport.safeParse(V.report).success, 'the vector report has the wire shape');
});

test('sealed unsynced paths open only with the account they are sealed to', (t) => {
  const owner = k.generateAccountKeys();
  const admin = k.generateAccountKeys();
  const paths = ['space/notes.txt', 'space/rapporten/ontwerp é.docx'];
  const sealed = k.sealWipePaths(paths, k.toBase64Url(owner.encPublicKey));
  t.deepEqual(k.openWipePaths(sealed, owner), paths);
  t.throws(() => k.openWipePaths(sealed, admin), { instanceOf: k.CryptoError });
  const bytes = Buffer.from(sealed, 'base64url');
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
  t.throws(() => k.openWipePaths(bytes.toString('base64url'), owner), { instanceOf: k.CryptoError });
});
