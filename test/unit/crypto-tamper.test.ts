// Every region of every envelope, every signature and every key check fails with a typed CryptoError:
// never null, never garbage. Uses the frozen vectors so the bytes under attack are the documented ones.
import test, { type ExecutionContext } from 'ava';
import * as k from '@kluis/shared';
import { loadVectors } from '../helpers/vectors.js';

const V = loadVectors('crypto.json');
const d = k.fromBase64Url;
const e = k.toBase64Url;
const trustAuthor = (signer: string) => signer === V.account.signPublicKey;
const trustAnyone = () => true;

function expectCode(t: ExecutionContext, fn: () => unknown, code: k.ErrorCode | k.ErrorCode[], what: string): void {
  const err = t.throws(fn, { instanceOf: k.CryptoError }, what);
  const codes = Array.isArray(code) ? code : [code];
  if (err) t.true(codes.includes((err as k.CryptoError).code), `${what}: got ${(err as k.CryptoError).code}, want ${codes.join('|')}`);
}

function flip(bytes: Uint8Array, index: number, mask = 0x01): Uint8Array {
  const copy = bytes.slice();
  copy[index]! ^= mask;
  return copy;
}

/** Attacks one envelope region by region; `open` opens a candidate envelope with everything else right. */
function attackEnvelope(t: ExecutionContext, name: string, env: Uint8Array, open: (candidate: Uint8Array) => unknown): void {
  t.notThrows(() => open(env), `${name}: the untouched envelope opens`);
  expectCode(t, () => open(flip(env, 0)), k.ErrorCode.UnsupportedVersion, `${name}: version byte`);
  expectCode(t, () => open(flip(env, 0, 0x03)), k.ErrorCode.UnsupportedVersion, `${name}: version byte 0x02`);
  for (const i of [1, 12, 24]) expectCode(t, () => open(flip(env, i)), k.ErrorCode.DecryptFailed, `${name}: nonce byte ${i}`);
  for (const i of [env.length - 16, env.length - 1]) expectCode(t, () => open(flip(env, i)), k.ErrorCode.DecryptFailed, `${name}: tag byte ${i}`);
  if (env.length > 41) {
    expectCode(t, () => open(flip(env, 25)), k.ErrorCode.DecryptFailed, `${name}: first body byte`);
    expectCode(t, () => open(flip(env, env.length - 17, 0x80)), k.ErrorCode.DecryptFailed, `${name}: last body byte`);
  }
  for (const len of [0, 1, 24, 25, 40]) expectCode(t, () => open(env.subarray(0, len)), len === 0 || len < 41 ? k.ErrorCode.BadEnvelope : k.ErrorCode.DecryptFailed, `${name}: truncated to ${len}`);
  expectCode(t, () => open(env.subarray(0, env.length - 1)), [k.ErrorCode.DecryptFailed, k.ErrorCode.BadEnvelope], `${name}: last byte cut`);
  expectCode(t, () => open(k.concatBytes(env, new Uint8Array([0]))), k.ErrorCode.DecryptFailed, `${name}: byte appended`);
}

test.before(async () => {
  await k.initCrypto();
});

for (const backend of ['sodium', 'node'] as const) {
  test(`envelope (${backend}): every single-bit flip of every byte, truncation, wrong ad and wrong key are refused`, (t) => {
    for (const v of V.envelope.filter((x: { msg: string }) => d(x.msg).length <= 64)) {
      const env = d(v.envelope);
      const ad = k.fromHex(v.adHex);
      for (let i = 0; i < env.length; i++) {
        for (let bit = 0; bit < 8; bit++) {
          expectCode(t, () => k.openEnvelope(d(v.key), flip(env, i, 1 << bit), ad, backend), i === 0 ? k.ErrorCode.UnsupportedVersion : k.ErrorCode.DecryptFailed, `byte ${i} bit ${bit}`);
        }
      }
      for (let len = 0; len < env.length; len++) {
        expectCode(t, () => k.openEnvelope(d(v.key), env.subarray(0, len), ad, backend), [k.ErrorCode.BadEnvelope, k.ErrorCode.DecryptFailed], `truncated to ${len}`);
      }
      expectCode(t, () => k.openEnvelope(d(v.key), env, k.concatBytes(ad, new Uint8Array([0])), backend), k.ErrorCode.DecryptFailed, 'wrong ad');
      expectCode(t, () => k.openEnvelope(d(v.key), env, new Uint8Array(), backend), k.ErrorCode.DecryptFailed, 'empty ad');
      expectCode(t, () => k.openEnvelope(flip(d(v.key), 0), env, ad, backend), k.ErrorCode.DecryptFailed, 'wrong key');
      expectCode(t, () => k.openEnvelope(d(v.key).subarray(0, 31), env, ad, backend), k.ErrorCode.BadKey, 'short key');
    }
  });
}

test('key bundle: tampered envelopes, wrong password, wrong recovery key, swapped public keys', (t) => {
  const a = V.account;
  const bundle: k.KeyBundle = a.bundle;
  attackEnvelope(t, 'bundle/password', d(bundle.sealedByPassword), (c) => k.openKeyBundle({ ...bundle, sealedByPassword: e(c) }, d(a.masterKey)));
  attackEnvelope(t, 'bundle/recovery', d(bundle.sealedByRecovery), (c) => k.openKeyBundleWithRecovery({ ...bundle, sealedByRecovery: e(c) }, d(a.recoveryKey)));
  const wrong = k.derivePasswordKeys('wrong password', V.password[0].salt, k.KDF_MIN);
  expectCode(t, () => k.openKeyBundle(bundle, wrong.masterKey), k.ErrorCode.DecryptFailed, 'wrong password');
  expectCode(t, () => k.openKeyBundleWithRecovery(bundle, flip(d(a.recoveryKey), 5)), k.ErrorCode.DecryptFailed, 'wrong recovery key');
  expectCode(t, () => k.openKeyBundle(bundle, d(a.recoveryKey)), k.ErrorCode.DecryptFailed, 'recovery key used as master key');
  // A server that swaps in another person's public keys (to be sealed to) is caught: the keys are in the ad.
  expectCode(t, () => k.openKeyBundle({ ...bundle, encPublicKey: V.member.encPublicKey }, d(a.masterKey)), k.ErrorCode.DecryptFailed, 'swapped encPublicKey');
  expectCode(t, () => k.openKeyBundle({ ...bundle, sealedByPassword: bundle.sealedByRecovery }, d(a.masterKey)), k.ErrorCode.DecryptFailed, 'recovery copy in the password slot');
  expectCode(t, () => k.openKeyBundle({ ...bundle, v: 2 as 1 }, d(a.masterKey)), k.ErrorCode.UnsupportedVersion, 'unknown bundle version');
});

test('recovery key: typos, wrong length and foreign characters are refused; confusable digits are read', (t) => {
  const text: string = V.account.recoveryKeyText;
  t.is(e(k.parseRecoveryKey(text.toLowerCase().replace(/-/g, ' '))), V.account.recoveryKey);
  const typo = (text[0] === 'A' ? 'B' : 'A') + text.slice(1);
  expectCode(t, () => k.parseRecoveryKey(typo), k.ErrorCode.BadRecoveryKey, 'one character changed');
  expectCode(t, () => k.parseRecoveryKey(text.slice(0, -1)), k.ErrorCode.BadRecoveryKey, 'one character missing');
  expectCode(t, () => k.parseRecoveryKey(text.slice(0, -1) + '!'), k.ErrorCode.BadRecoveryKey, 'foreign character');
  const withO = text.replace(/O/g, '0');
  t.is(e(k.parseRecoveryKey(withO)), V.account.recoveryKey);
});

test('password KDF refuses weak or absurd limits and bad salts', (t) => {
  expectCode(t, () => k.derivePasswordKeys('pw', V.password[0].salt, { opsLimit: 0, memLimit: 8_388_608 }), k.ErrorCode.WeakKdfParams, 'ops 0');
  expectCode(t, () => k.derivePasswordKeys('pw', V.password[0].salt, k.KDF_MIN, k.KDF_MODERATE), k.ErrorCode.WeakKdfParams, 'below production floor');
  expectCode(t, () => k.derivePasswordKeys('pw', V.password[0].salt, { opsLimit: 3, memLimit: 64 * 1024 ** 3 }), k.ErrorCode.WeakKdfParams, 'server asks for 64 GiB');
  expectCode(t, () => k.derivePasswordKeys('pw', 'AAAA', k.KDF_MIN), k.ErrorCode.BadKey, 'short salt');
});

test('wraps: forged fields, swapped signer, untrusted signer, moved wrap and wrong recipient are refused', (t) => {
  const s = V.space;
  const sign = k.hazmat.signSeedKeypair(d(V.member.signSeed));
  const member: k.AccountKeys = { encSecretKey: d(V.member.encSecretKey), encPublicKey: d(V.member.encPublicKey), signPublicKey: sign.publicKey, signSecretKey: sign.privateKey };
  const expect = { spaceId: s.spaceId, keyEpoch: s.keyEpoch };
  const wrap: k.SpaceKeyWrap = s.wrapToMember;
  const open = (w: k.SpaceKeyWrap, trusted: k.SignerPolicy = trustAuthor, ex: k.WrapExpectation = expect) => k.openSpaceKeyWrap(w, ex, member, trusted);
  t.notThrows(() => open(wrap));
  expectCode(t, () => open({ ...wrap, keyEpoch: wrap.keyEpoch + 1 }, trustAuthor, { ...expect, keyEpoch: wrap.keyEpoch + 1 }), k.ErrorCode.BadSignature, 'epoch edited');
  expectCode(t, () => open({ ...wrap, signer: e(member.signPublicKey) }, trustAnyone), k.ErrorCode.BadSignature, 'signer swapped');
  const sig = d(wrap.sig);
  expectCode(t, () => open({ ...wrap, sig: e(flip(sig, 10)) }), k.ErrorCode.BadSignature, 'signature bit flipped');
  expectCode(t, () => open({ ...wrap, sig: e(sig.subarray(0, 63)) }), k.ErrorCode.BadKey, 'signature truncated');
  // A member re-wraps the key correctly but is not allowed to grant it.
  const space = { publicKey: d(s.publicKey), secretKey: d(s.secretKey) };
  const byMember = k.wrapSpaceKey(space, { spaceId: s.spaceId, keyEpoch: s.keyEpoch, recipient: V.member.encPublicKey }, member);
  expectCode(t, () => open(byMember), k.ErrorCode.UntrustedSigner, 'signed by a non-manager');
  t.notThrows(() => open(byMember, trustAnyone));
  expectCode(t, () => open(wrap, trustAuthor, { spaceId: k.newId(), keyEpoch: s.keyEpoch }), k.ErrorCode.WrongRecipient, 'moved to another space');
  expectCode(t, () => open(wrap, trustAuthor, { ...expect, keyEpoch: 4 }), k.ErrorCode.WrongRecipient, 'presented as another epoch');
  // Addressed to somebody else: the author opens nothing even though the signature is good.
  const author = k.openKeyBundle(V.account.bundle, d(V.account.masterKey));
  expectCode(t, () => k.openSpaceKeyWrap(wrap, expect, author, trustAuthor), k.ErrorCode.WrongRecipient, 'not my wrap');
  // A wrap whose sealed secret does not match its stated space public key (server substitutes the public key).
  const other = k.generateSpaceKeyPair();
  const lying = k.wrapSpaceKey(space, { spaceId: s.spaceId, keyEpoch: s.keyEpoch, recipient: V.member.encPublicKey }, author);
  const relabelled = { ...lying, spacePublicKey: e(other.publicKey) };
  expectCode(t, () => open(relabelled), k.ErrorCode.BadSignature, 'space public key relabelled');
  // File-key wrap presented for another file.
  const fileWrap: k.FileKeyWrap = V.file.wrapToSpace;
  expectCode(t, () => k.openFileKeyWrap(fileWrap, { ...expect, fileId: k.newId() }, space, trustAuthor), k.ErrorCode.WrongRecipient, 'file wrap for another file');
  expectCode(t, () => k.openFileKeyWrap({ ...fileWrap, sealed: e(flip(d(fileWrap.sealed), 40)) }, { ...expect, fileId: V.file.fileId }, space, trustAnyone), k.ErrorCode.BadSignature, 'sealed key edited');
  expectCode(t, () => k.openFileKeyWrap(fileWrap, { ...expect, fileId: V.file.fileId }, other, trustAuthor), k.ErrorCode.WrongRecipient, 'wrong space keypair');
});

// decryptChunk and openChunkInPlace (the link page's workers) must refuse the same things with the same codes.
const openers: [string, typeof k.decryptChunk][] = [
  ['decryptChunk', k.decryptChunk],
  // It writes over its input on success: each attempt gets a copy.
  ['openChunkInPlace', (sub, id, c) => k.openChunkInPlace(sub, id, c.slice())],
];
for (const [name, open] of openers) {
  test(`chunks (${name}): tampered envelopes, swapped ids and a lying id are refused`, (t) => {
    const sub = k.deriveFileSubkeys(d(V.file.fileKey));
    const [c0, c1] = V.file.chunks;
    attackEnvelope(t, 'chunk', d(c1.ciphertext), (c) => open(sub, c1.id, c));
    expectCode(t, () => open(sub, c0.id, d(c1.ciphertext)), k.ErrorCode.DecryptFailed, 'ciphertext stored under another id');
    expectCode(t, () => open(sub, 'zz', d(c1.ciphertext)), k.ErrorCode.ChunkIdMismatch, 'malformed id');
    const otherFile = k.deriveFileSubkeys(k.generateFileKey());
    expectCode(t, () => open(otherFile, c1.id, d(c1.ciphertext)), k.ErrorCode.DecryptFailed, 'chunk of another file');
    // Encrypted correctly under the chunk key and the claimed id's ad, but the content is not the id's content.
    const liar = k.hazmat.sealEnvelopeWithNonce(sub.chunkKey, k.utf8('not the content'), k.concatBytes(k.utf8('kluis/chunk/v1'), k.fromHex(c1.id)), k.hazmat.randomBytes(24), 'node');
    expectCode(t, () => open(sub, c1.id, liar), k.ErrorCode.ChunkIdMismatch, 'content does not hash to id');
  });
}

test('openChunkInPlace gives decryptChunk\'s plaintext over the start of its input, for views and any chunk size in turn', (t) => {
  const sub = k.deriveFileSubkeys(k.generateFileKey());
  // Growing and shrinking sizes: the working area in libsodium's heap is reused and grown.
  for (const size of [1, 1000, 600_000, 17, 2_500_000, 64 * 1024, 3]) {
    const plain = k.hazmat.randomBytes(size);
    const { id, ciphertext } = k.encryptChunk(sub, plain);
    const framed = k.concatBytes(new Uint8Array(7), ciphertext, new Uint8Array(5)); // a view inside a larger buffer
    const view = framed.subarray(7, 7 + ciphertext.length);
    const opened = k.openChunkInPlace(sub, id, view);
    t.deepEqual(opened, Uint8Array.from(k.decryptChunk(sub, id, ciphertext)), `size ${size}`);
    t.is(opened.buffer, framed.buffer, `size ${size}: written over its input`);
    t.is(opened.byteOffset, 7);
    t.deepEqual(framed.subarray(0, 7), new Uint8Array(7), 'nothing written before the view');
    t.deepEqual(framed.subarray(framed.length - 5), new Uint8Array(5), 'nothing written after the view');
  }
});

test('manifests: tampered envelope, moved to another version, wrong key, untrusted signer, bad fields', (t) => {
  const f = V.file;
  const sub = k.deriveFileSubkeys(d(f.fileKey));
  const expect = { fileId: f.fileId, versionId: f.manifest.versionId };
  const sealed = d(f.sealedManifest);
  attackEnvelope(t, 'manifest', sealed, (c) => k.openManifest(c, sub, expect, trustAuthor));
  expectCode(t, () => k.openManifest(sealed, sub, { ...expect, versionId: k.newId() }, trustAuthor), k.ErrorCode.DecryptFailed, 'moved to another version');
  expectCode(t, () => k.openManifest(sealed, sub, { ...expect, fileId: k.newId() }, trustAuthor), k.ErrorCode.DecryptFailed, 'moved to another file');
  expectCode(t, () => k.openManifest(sealed, k.deriveFileSubkeys(k.generateFileKey()), expect, trustAuthor), k.ErrorCode.DecryptFailed, 'wrong file key');
  expectCode(t, () => k.openManifest(sealed, sub, expect, () => false), k.ErrorCode.UntrustedSigner, 'author no longer trusted');
  // Someone with the file key but not a writer signs a manifest: refused by policy.
  const stranger = k.generateAccountKeys();
  const forged = k.sealManifest({ ...f.manifest, size: 1, chunks: [[f.chunks[0].id, 1]] }, sub, stranger);
  expectCode(t, () => k.openManifest(forged, sub, expect, trustAuthor), k.ErrorCode.UntrustedSigner, 'signed by a non-member');
  // Signature bytes inside the envelope are checked: re-seal the same plaintext with one signature bit flipped.
  const plain = k.openEnvelope(sub.manifestKey, sealed, k.concatBytes(k.utf8('kluis/manifest/v1'), k.idBytes(expect.fileId), k.idBytes(expect.versionId)));
  const resealed = k.sealEnvelope(sub.manifestKey, flip(plain, 40), k.concatBytes(k.utf8('kluis/manifest/v1'), k.idBytes(expect.fileId), k.idBytes(expect.versionId)));
  expectCode(t, () => k.openManifest(resealed, sub, expect, trustAnyone), k.ErrorCode.BadSignature, 'signature flipped inside');
  const author = k.openKeyBundle(V.account.bundle, d(V.account.masterKey));
  expectCode(t, () => k.sealManifest({ ...f.manifest, path: '../etc/passwd' }, sub, author), k.ErrorCode.UnsafePath, 'unsafe path refused when sealing');
  expectCode(t, () => k.sealManifest({ ...f.manifest, size: f.manifest.size + 1 }, sub, author), k.ErrorCode.BadManifest, 'sizes do not add up');
  expectCode(t, () => k.sealManifest({ ...f.manifest, extra: 1 } as k.Manifest, sub, author), k.ErrorCode.BadManifest, 'unknown field');
});

test('links: wrong secret, wrong or missing password, and a wrap moved to another link are refused', (t) => {
  const [plain, withPw] = V.links;
  attackEnvelope(t, 'link wrap', d(plain.wrapped), (c) => k.openLinkFileKey(c, plain.linkId, k.deriveLinkKeys(plain.linkSecret)));
  expectCode(t, () => k.openLinkFileKey(d(plain.wrapped), plain.linkId, k.deriveLinkKeys(k.newLinkSecret())), k.ErrorCode.DecryptFailed, 'wrong secret');
  expectCode(t, () => k.openLinkFileKey(d(plain.wrapped), k.newId(), k.deriveLinkKeys(plain.linkSecret)), k.ErrorCode.DecryptFailed, 'moved to another link');
  const params = { opsLimit: withPw.opsLimit, memLimit: withPw.memLimit };
  const wrongPw = k.hashLinkPassword('wrong', withPw.salt, params);
  expectCode(t, () => k.openLinkFileKey(d(withPw.wrapped), withPw.linkId, k.deriveLinkKeys(withPw.linkSecret, wrongPw)), k.ErrorCode.DecryptFailed, 'wrong password');
  expectCode(t, () => k.openLinkFileKey(d(withPw.wrapped), withPw.linkId, k.deriveLinkKeys(withPw.linkSecret)), k.ErrorCode.DecryptFailed, 'password omitted');
  t.notDeepEqual(k.deriveLinkKeys(withPw.linkSecret, wrongPw).linkAuth, d(withPw.linkAuth), 'a wrong password gives another linkAuth');
  expectCode(t, () => k.deriveLinkKeys('short'), k.ErrorCode.BadKey, 'short secret');
});

test('identity: a signature for another e-mail or other keys does not verify', (t) => {
  const a = V.account;
  const id = { encPublicKey: a.encPublicKey, signPublicKey: a.signPublicKey };
  expectCode(t, () => k.verifyIdentity(id, 'someone.else@example.org', a.identitySignature), k.ErrorCode.BadSignature, 'other e-mail');
  expectCode(t, () => k.verifyIdentity({ ...id, encPublicKey: V.member.encPublicKey }, a.email, a.identitySignature), k.ErrorCode.BadSignature, 'swapped enc key');
});
