// Known-answer tests: the committed vectors (test/vectors/crypto.json) must open and recompute byte for byte.
import test from 'ava';
import * as k from '@kluis/shared';
import { loadVectors } from '../helpers/vectors.js';

const V = loadVectors('crypto.json');
const d = k.fromBase64Url;
const e = k.toBase64Url;
const trustAuthor = (signer: string) => signer === V.account.signPublicKey;
const member = (): k.AccountKeys => {
  const sign = k.hazmat.signSeedKeypair(d(V.member.signSeed));
  return { encSecretKey: d(V.member.encSecretKey), encPublicKey: d(V.member.encPublicKey), signPublicKey: sign.publicKey, signSecretKey: sign.privateKey };
};

test.before(async () => {
  await k.initCrypto();
});

test('password KDF: Argon2id13 gives the recorded masterKey, authKey and verifier (NFD input hashes as NFC)', (t) => {
  for (const v of V.password) {
    const keys = k.derivePasswordKeys(v.password, v.salt, { opsLimit: v.opsLimit, memLimit: v.memLimit });
    t.is(e(keys.masterKey), v.masterKey);
    t.is(e(keys.authKey), v.authKey);
    t.is(k.authKeyVerifier(keys.authKey), v.authVerifier);
    t.true(k.checkAuthKey(keys.authKey, v.authVerifier));
    t.false(k.checkAuthKey(k.hazmat.randomBytes(32), v.authVerifier));
    // The raw primitive over the recorded UTF-8 bytes gives the same 64 bytes.
    const raw = k.hazmat.pwhash(64, k.fromHex(v.passwordNfcUtf8Hex), d(v.salt), v.opsLimit, v.memLimit);
    t.is(e(raw.subarray(0, 32)), v.masterKey);
  }
  t.not(V.password[1].password, V.password[1].password.normalize('NFC'), 'the second vector really is typed in NFD');
});

for (const backend of ['sodium', 'node'] as const) {
  test(`envelope (${backend} path): recorded nonce gives the recorded bytes, and opens`, (t) => {
    for (const v of V.envelope) {
      const sealed = k.hazmat.sealEnvelopeWithNonce(d(v.key), d(v.msg), k.fromHex(v.adHex), d(v.nonce), backend);
      t.is(e(sealed), v.envelope);
      t.is(e(k.openEnvelope(d(v.key), d(v.envelope), k.fromHex(v.adHex), backend)), v.msg);
    }
  });
}

test('envelope: the automatic backend in Node is the node:crypto fast path', (t) => {
  t.is(k.envelopeBackend(), 'node');
});

test('subkeys: crypto_kdf "kluisfil" ids 1..3 give the recorded chunk, chunk-id and manifest keys', (t) => {
  const sub = k.deriveFileSubkeys(d(V.file.fileKey));
  t.deepEqual({ chunkKey: e(sub.chunkKey), chunkIdKey: e(sub.chunkIdKey), manifestKey: e(sub.manifestKey) }, V.file.subkeys);
  t.is(e(k.hazmat.kdf(32, 1, 'kluisacc', d(V.account.masterKey))), V.account.passwordBundleKey);
  t.is(e(k.hazmat.kdf(32, 1, 'kluisrec', d(V.account.recoveryKey))), V.account.recoveryBundleKey);
});

test('key bundle opens with the masterKey and with the recovery key, giving the recorded identity', (t) => {
  const a = V.account;
  for (const keys of [k.openKeyBundle(a.bundle, d(a.masterKey)), k.openKeyBundleWithRecovery(a.bundle, k.parseRecoveryKey(a.recoveryKeyText))]) {
    t.is(e(keys.encSecretKey), a.encSecretKey);
    t.is(e(keys.signSecretKey.subarray(0, 32)), a.signSeed);
    t.is(e(keys.encPublicKey), a.encPublicKey);
    t.is(e(keys.signPublicKey), a.signPublicKey);
  }
  t.is(k.formatRecoveryKey(d(a.recoveryKey)), a.recoveryKeyText);
});

test('identity signature and fingerprint are the recorded ones', (t) => {
  const a = V.account;
  const id = { encPublicKey: a.encPublicKey, signPublicKey: a.signPublicKey };
  t.notThrows(() => k.verifyIdentity(id, a.email, a.identitySignature));
  t.notThrows(() => k.verifyIdentity(id, a.email.toUpperCase(), a.identitySignature), 'e-mail compares case-insensitively');
  t.is(k.fingerprint(id), a.fingerprint);
  const keys = k.openKeyBundle(a.bundle, d(a.masterKey));
  t.is(k.signIdentity(keys, a.email), a.identitySignature, 'Ed25519 is deterministic');
});

test('space key wrap: the member opens the recorded space keypair', (t) => {
  const s = V.space;
  const pair = k.openSpaceKeyWrap(s.wrapToMember, { spaceId: s.spaceId, keyEpoch: s.keyEpoch }, member(), trustAuthor);
  t.is(e(pair.secretKey), s.secretKey);
  t.is(e(pair.publicKey), s.publicKey);
});

test('file key wrap: the space keypair opens the recorded file key', (t) => {
  const s = V.space;
  const space = { publicKey: d(s.publicKey), secretKey: d(s.secretKey) };
  const fileKey = k.openFileKeyWrap(V.file.wrapToSpace, { spaceId: s.spaceId, keyEpoch: s.keyEpoch, fileId: V.file.fileId }, space, trustAuthor);
  t.is(e(fileKey), V.file.fileKey);
});

test('chunks: recorded ids recompute, ciphertexts open (both backends)', (t) => {
  const sub = k.deriveFileSubkeys(d(V.file.fileKey));
  for (const backend of ['sodium', 'node'] as const) {
    k.setEnvelopeBackend(backend);
    try {
      for (const c of V.file.chunks) {
        t.is(k.chunkId(sub, d(c.plaintext)), c.id);
        t.is(e(k.decryptChunk(sub, c.id, d(c.ciphertext))), c.plaintext);
      }
    } finally {
      k.setEnvelopeBackend(null);
    }
  }
});

test('manifest: canonical text, decryption and signature match the record', (t) => {
  const f = V.file;
  t.is(k.canonicalJson(f.manifest), f.manifestCanonical);
  const sub = k.deriveFileSubkeys(d(f.fileKey));
  const { manifest, signer } = k.openManifest(d(f.sealedManifest), sub, { fileId: f.fileId, versionId: f.manifest.versionId }, trustAuthor);
  t.deepEqual(manifest, f.manifest);
  t.is(signer, V.account.signPublicKey);
  const whole = k.concatBytes(...f.chunks.map((c: { plaintext: string }) => d(c.plaintext)));
  t.is(k.contentHash(whole), f.manifest.hash);
  const h = new k.ContentHasher();
  for (const c of f.chunks) h.update(d(c.plaintext));
  t.is(h.digest(), f.manifest.hash, 'streaming hash equals one-shot hash');
});

test('links: recorded secret (and password) derive the recorded keys and open the file key', (t) => {
  for (const l of V.links) {
    const pwHash = l.password === null ? null : k.hashLinkPassword(l.password, l.salt, { opsLimit: l.opsLimit, memLimit: l.memLimit });
    if (pwHash) t.is(e(pwHash), l.passwordHash);
    const keys = k.deriveLinkKeys(l.linkSecret, pwHash);
    t.is(e(keys.linkKey), l.linkKey);
    t.is(e(keys.linkAuth), l.linkAuth);
    t.is(e(k.openLinkFileKey(d(l.wrapped), l.linkId, keys)), l.fileKey);
  }
});

test('canonical JSON: recorded texts', (t) => {
  for (const c of V.canonical) t.is(k.canonicalJson(c.value), c.text);
});

test('chunk ids of the FastCDC vector input: boundaries, keyed ids and whole-file hash match the record', async (t) => {
  const { detBytes } = await import('../helpers/det-bytes.js');
  const C = loadVectors('chunk-ids.json');
  const input = detBytes(C.input.seed, C.input.length);
  const sub = k.deriveFileSubkeys(d(C.fileKey));
  t.is(e(sub.chunkIdKey), C.chunkIdKey);
  let offset = 0;
  const got = k.chunkBoundaries(input).map((length) => {
    const c = { offset, length, id: k.chunkId(sub, input.subarray(offset, offset + length)) };
    offset += length;
    return c;
  });
  t.deepEqual(got, C.chunks);
  t.is(k.contentHash(input), C.wholeFileHash);
  t.is(k.contentHash(new Uint8Array()), '0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8', 'the empty hash of docs/crypto.md §6');
});
