// A Node process that leaves libsodium's WASM build out (`initCrypto({ wasm: 'lazy' })`, as the CLI, the desktop
// engine and the sync workers do; shared/src/crypto/sodium.ts): everything the client does runs on sodium-native and
// gives the bytes the WASM build gives. This file runs in a process of its own (ava), so nothing loaded WASM before
// the first test; the last test loads it and compares.
import test from 'ava';
import * as k from '@kluis/shared';

const enc = new TextEncoder();
const seed = (byte: number, n = 32) => new Uint8Array(n).fill(byte);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Public keys of the account whose secrets are seed(1) and seed(2), as each backend rebuilds them. */
function identity(): { encPublicKey: string; signPublicKey: string } {
  const sign = k.hazmat.signSeedKeypair(seed(2));
  const box = k.hazmat.boxSeedKeypair(seed(3));
  return { encPublicKey: hex(box.publicKey), signPublicKey: hex(sign.publicKey) };
}

function outputs(): Record<string, string> {
  const big = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
  const key = seed(4);
  const nonce = seed(5, 24);
  const ad = enc.encode('kluis/test');
  const sealedBig = k.hazmat.sealEnvelopeWithNonce(key, big, ad, nonce, 'node');
  const fake = k.fakeRecoveryMaterial(seed(6), 'an@example.be');
  return {
    ...identity(),
    argon2id: hex(k.hazmat.pwhash(32, enc.encode('correct horse'), seed(7, 16), 1, 8192)),
    kdf: hex(k.hazmat.kdf(32, 3, 'kluistst', seed(8))),
    sealedBig: hex(k.hazmat.blake2b(32, sealedBig)),
    openedBig: hex(k.hazmat.blake2b(32, k.openEnvelope(key, sealedBig, ad))),
    fakeRecovery: JSON.stringify(fake),
  };
}

let lazy: Record<string, string>;

test.serial('lazy: WASM is not loaded, and the native backend does the work', async (t) => {
  await k.initCrypto({ wasm: 'lazy' });
  t.false(k.wasmLoaded());
  t.is(k.cryptoBackend(), 'native');
  lazy = outputs();
  t.false(k.wasmLoaded(), 'nothing above loaded WASM');
});

test.serial('lazy: an account opens from its stored secrets (and refuses others), a file key seals and opens, a chunk round-trips and a flipped bit fails', (t) => {
  const keys = k.generateAccountKeys();
  const again = k.accountKeysFromSecrets(k.accountSecrets(keys), { encPublicKey: k.toBase64Url(keys.encPublicKey), signPublicKey: k.toBase64Url(keys.signPublicKey) });
  t.deepEqual(again.signSecretKey, keys.signSecretKey);
  t.throws(() => k.accountKeysFromSecrets({ encSecretKey: seed(9), signSeed: seed(10) }, { encPublicKey: k.toBase64Url(keys.encPublicKey), signPublicKey: k.toBase64Url(keys.signPublicKey) }), { message: /do not match/ });

  const fileKey = k.generateFileKey();
  const sub = k.deriveFileSubkeys(fileKey);
  const plain = new Uint8Array(300_000).fill(42);
  const { id, ciphertext } = k.encryptChunk(sub, plain);
  t.deepEqual(k.decryptChunk(sub, id, ciphertext), plain);
  t.deepEqual(k.openChunkInPlace(sub, id, ciphertext.slice()), plain);
  const tampered = ciphertext.slice();
  tampered[tampered.length - 1]! ^= 1;
  t.throws(() => k.decryptChunk(sub, id, tampered));

  const a = k.hazmat.sealBox(fileKey, keys.encPublicKey);
  t.deepEqual(k.hazmat.openSealedBox(a, keys.encPublicKey, keys.encSecretKey), fileKey);
  k.wipeBytes(fileKey);
  t.deepEqual(fileKey, new Uint8Array(fileKey.length));
  t.true(k.constantTimeEqual(seed(1), seed(1)));
  t.false(k.constantTimeEqual(seed(1), seed(2)));
  t.false(k.wasmLoaded());
});

test.serial('lazy: an operation only the WASM build has fails with a clear error instead of loading it', (t) => {
  t.throws(() => k.hazmat.randomUint32(), { message: /WASM is not loaded in this process/ });
  t.throws(() => k.setCryptoBackend('wasm'), { message: /WASM is not loaded here/ });
});

test.serial('an eager initCrypto afterwards loads WASM, and WASM gives the same bytes', async (t) => {
  await k.initCrypto();
  t.true(k.wasmLoaded());
  k.setCryptoBackend('wasm');
  try {
    t.deepEqual(outputs(), lazy);
  } finally {
    k.setCryptoBackend(null);
  }
  t.is(typeof k.hazmat.randomUint32(), 'number');
});
