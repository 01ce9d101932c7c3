// Writes test/vectors/crypto.json ONCE. Known-answer vectors are frozen: this script refuses to overwrite them.
// Every secret input is recorded so that a second implementation can recompute or open every value.
import { existsSync, writeFileSync } from 'node:fs';
import * as k from '@kluis/shared';

const out = new URL('../../test/vectors/crypto.json', import.meta.url);
if (existsSync(out)) {
  console.error('test/vectors/crypto.json exists: vectors are frozen and never regenerated');
  process.exit(1);
}
await k.initCrypto();
const b64 = k.toBase64Url;
const hex = k.toHex;
const rnd = k.hazmat.randomBytes;

// Password KDF, including a password typed in NFD (e + combining acute) that must hash as NFC.
const passwords = [
  { password: 'correct horse battery staple', params: k.KDF_MIN },
  { password: 'Wachtwoord-cafe\u0301-€', params: k.KDF_MIN },
  { password: 'Interactief wachtwoord 2026', params: k.KDF_INTERACTIVE },
].map(({ password, params }) => {
  const salt = k.newSalt();
  const { masterKey, authKey } = k.derivePasswordKeys(password, salt, params);
  return { password, passwordNfcUtf8Hex: hex(k.utf8(password.normalize('NFC'))), salt, opsLimit: params.opsLimit, memLimit: params.memLimit, masterKey: b64(masterKey), authKey: b64(authKey), authVerifier: k.authKeyVerifier(authKey) };
});

// Envelopes with chosen nonces: both backends must give these bytes.
const envelopes = [0, 1, 15, 16, 64, 1000, 70_000].map((size) => {
  const key = rnd(32);
  const nonce = rnd(24);
  const ad = k.utf8(`kluis/test/v1 size=${size}`);
  const msg = rnd(size);
  const envelope = k.hazmat.sealEnvelopeWithNonce(key, msg, ad, nonce, 'sodium');
  return { key: b64(key), nonce: b64(nonce), adHex: hex(ad), msg: b64(msg), envelope: b64(envelope) };
});

// Account identity, key bundle, recovery key.
const account = k.generateAccountKeys();
const email = 'an.peeters@ocmw-gent.example';
const recoveryKey = k.generateRecoveryKey();
const pw = passwords[0]!;
const bundle = k.sealKeyBundle(account, k.fromBase64Url(pw.masterKey), recoveryKey);
const accountVector = {
  email,
  encSecretKey: b64(account.encSecretKey),
  signSeed: b64(account.signSecretKey.subarray(0, 32)),
  encPublicKey: b64(account.encPublicKey),
  signPublicKey: b64(account.signPublicKey),
  masterKey: pw.masterKey,
  passwordBundleKey: b64(k.hazmat.kdf(32, 1, 'kluisacc', k.fromBase64Url(pw.masterKey))),
  recoveryKey: b64(recoveryKey),
  recoveryKeyText: k.formatRecoveryKey(recoveryKey),
  recoveryBundleKey: b64(k.hazmat.kdf(32, 1, 'kluisrec', recoveryKey)),
  bundle,
  identitySignature: k.signIdentity(account, email),
  fingerprint: k.fingerprint(k.publicIdentity(account)),
};

// A second member, a space and its wraps.
const member = k.generateAccountKeys();
const spaceId = k.newId();
const space = k.generateSpaceKeyPair();
const spaceWrap = k.wrapSpaceKey(space, { spaceId, keyEpoch: 3, recipient: b64(member.encPublicKey) }, account);
const fileId = k.newId();
const fileKey = k.generateFileKey();
const fileWrap = k.wrapFileKey(fileKey, { spaceId, keyEpoch: 3, fileId, recipient: b64(space.publicKey) }, account);
const sub = k.deriveFileSubkeys(fileKey);

// Chunks of a file.
const chunks = [1, 4096, 131_072].map((size) => {
  const plaintext = rnd(size);
  const { id, ciphertext } = k.encryptChunk(sub, plaintext);
  return { plaintext: b64(plaintext), id, ciphertext: b64(ciphertext) };
});
const whole = k.concatBytes(...chunks.map((c) => k.fromBase64Url(c.plaintext)));
const versionId = k.newId();
const manifest: k.Manifest = {
  v: 1, fileId, versionId, parent: null, path: 'Dossiers/2026/verslag één.docx', kind: 'file', size: whole.length,
  mtimeMs: 1_795_000_000_123, chunks: chunks.map((c) => [c.id, k.fromBase64Url(c.plaintext).length] as [string, number]),
  hash: k.contentHash(whole), deleted: false,
};
const sealedManifest = k.sealManifest(manifest, sub, account);

// Links, with and without password.
const linkFileKey = fileKey;
const links = [null, 'Geheim-Link-Wachtwoord'].map((password) => {
  const linkId = k.newId();
  const linkSecret = k.newLinkSecret();
  const salt = k.newSalt();
  const passwordHash = password === null ? null : k.hashLinkPassword(password, salt, k.KDF_MIN);
  const keys = k.deriveLinkKeys(linkSecret, passwordHash);
  return {
    linkId, linkSecret, password, salt: password === null ? null : salt, opsLimit: k.KDF_MIN.opsLimit, memLimit: k.KDF_MIN.memLimit,
    passwordHash: passwordHash && b64(passwordHash), linkKey: b64(keys.linkKey), linkAuth: b64(keys.linkAuth),
    fileKey: b64(linkFileKey), wrapped: b64(k.wrapFileKeyForLink(linkFileKey, linkId, keys)),
  };
});

const canonical = [
  { value: { b: 1, a: [true, false, null], c: { z: 'x', y: -0 } }, text: '' },
  { value: { path: 'tab\there "quoted" back\\slash \u0001 é 中文 😀', n: 9007199254740991 }, text: '' },
].map((c) => ({ ...c, text: k.canonicalJson(c.value) }));

const vectors = {
  note: 'Frozen known-answer vectors for docs/crypto.md. Binary values are base64url without padding unless the key ends in Hex. Never regenerate.',
  password: passwords,
  envelope: envelopes,
  account: accountVector,
  member: { encSecretKey: b64(member.encSecretKey), signSeed: b64(member.signSecretKey.subarray(0, 32)), encPublicKey: b64(member.encPublicKey) },
  space: { spaceId, keyEpoch: 3, publicKey: b64(space.publicKey), secretKey: b64(space.secretKey), wrapToMember: spaceWrap },
  file: {
    fileId, fileKey: b64(fileKey), wrapToSpace: fileWrap,
    subkeys: { chunkKey: b64(sub.chunkKey), chunkIdKey: b64(sub.chunkIdKey), manifestKey: b64(sub.manifestKey) },
    chunks,
    manifest, manifestCanonical: k.canonicalJson(manifest), sealedManifest: b64(sealedManifest),
  },
  links,
  canonical,
};
writeFileSync(out, JSON.stringify(vectors, null, 2) + '\n');
console.log('wrote', out.pathname);
