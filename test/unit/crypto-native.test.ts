// sodium-native (Node) and libsodium's WASM build (browsers, the Electron renderer) must give the same bytes for every
// primitive the facade routes to the native addon (docs/architecture.md §2): both are libsodium, but the native calls
// write into buffers we allocate and take optional keys differently, so each routed call is compared here on inputs
// of many sizes, and the frozen vectors run on WASM too (crypto-wasm-vectors.test.ts).
import { spawnSync } from 'node:child_process';
import test from 'ava';
import * as k from '@kluis/shared';
import { hashInPieces } from '../helpers/chunks.js';

const SIZES = [0, 1, 2, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 4096, 65537, 1 << 20];
const BACKENDS = ['native', 'wasm'] as const;

/** Runs `f` on each backend in turn and returns both results. */
function both<T>(f: () => T): { native: T; wasm: T } {
  try {
    k.setCryptoBackend('native');
    const native = f();
    k.setCryptoBackend('wasm');
    return { native, wasm: f() };
  } finally {
    k.setCryptoBackend(null);
  }
}

test.before(async () => {
  await k.initCrypto();
});

test('in Node with sodium-native installed the automatic backend is native', (t) => {
  t.is(k.cryptoBackend(), 'native');
  k.setCryptoBackend('wasm');
  t.is(k.cryptoBackend(), 'wasm');
  k.setCryptoBackend(null);
  t.is(k.cryptoBackend(), 'native');
});

test('BLAKE2b one-shot: unkeyed and keyed, every output and key length class, the same bytes on both backends', (t) => {
  for (const size of SIZES) {
    const msg = k.hazmat.randomBytes(size);
    for (const outLen of [16, 32, 64]) {
      for (const key of [null, k.hazmat.randomBytes(16), k.hazmat.randomBytes(32), k.hazmat.randomBytes(64)]) {
        const r = both(() => k.hazmat.blake2b(outLen, msg, key));
        t.is(r.native.length, outLen);
        t.deepEqual(r.native, r.wasm, `size ${size}, out ${outLen}, key ${key?.length ?? 'none'}`);
      }
    }
    // a view into a larger buffer hashes its own bytes only
    const big = k.hazmat.randomBytes(size + 10);
    const view = big.subarray(5, 5 + size);
    const r = both(() => k.hazmat.blake2b(32, view));
    t.deepEqual(r.native, r.wasm);
    t.deepEqual(r.native, k.hazmat.blake2b(32, view.slice()));
  }
});

test('chunk ids and whole-file hashes (keyed and unkeyed BLAKE2b-256) agree between backends', (t) => {
  const keys = k.deriveFileSubkeys(k.generateFileKey());
  for (const size of SIZES) {
    const data = k.hazmat.randomBytes(size);
    const ids = both(() => k.chunkId(keys, data));
    t.is(ids.native, ids.wasm);
    const hashes = both(() => k.contentHash(data));
    t.is(hashes.native, hashes.wasm);
  }
});

test('streaming ContentHasher: odd piece sizes give the one-shot hash on both backends', (t) => {
  const data = k.hazmat.randomBytes((1 << 20) + 7);
  const expected = k.contentHash(data);
  const pieces = [0, 1, 3, 127, 128, 129, 4097, 65535, 1, 0];
  for (const backend of BACKENDS) {
    k.setCryptoBackend(backend);
    try {
      t.is(hashInPieces(data, pieces), expected, backend);
      t.is(new k.ContentHasher().digest(), k.contentHash(new Uint8Array(0)), `${backend}: empty input`);
      const h = new k.ContentHasher();
      h.digest();
      t.throws(() => h.update(new Uint8Array(1)), { message: /already finished/ });
    } finally {
      k.setCryptoBackend(null);
    }
  }
  // a hasher keeps the backend it was made on when the choice changes under it
  const h = new k.ContentHasher().update(data.subarray(0, 1000));
  k.setCryptoBackend('wasm');
  try {
    t.is(h.update(data.subarray(1000)).digest(), expected);
  } finally {
    k.setCryptoBackend(null);
  }
});

test('Ed25519: native signatures equal libsodium.js\'s byte for byte, and each backend verifies the other\'s', (t) => {
  for (let i = 0; i < 60; i++) {
    const keys = k.hazmat.signSeedKeypair(k.hazmat.randomBytes(32));
    const body = k.hazmat.randomBytes(SIZES[i % SIZES.length]!);
    const sig = both(() => k.hazmat.signDetached('kluis/test/v1', body, keys.privateKey));
    t.deepEqual(sig.native, sig.wasm);
    t.deepEqual(sig.native, k.hazmat.signDetachedSodium('kluis/test/v1', body, keys.privateKey));
    const ok = both(() => k.hazmat.verifyDetached('kluis/test/v1', body, sig.native, keys.publicKey));
    t.deepEqual(ok, { native: undefined, wasm: undefined });
  }
});

test('Ed25519 verification refuses the same forgeries with bad_signature on both backends', (t) => {
  const keys = k.hazmat.signSeedKeypair(k.hazmat.randomBytes(32));
  const body = k.hazmat.randomBytes(100);
  const sig = k.hazmat.signDetached('kluis/test/v1', body, keys.privateKey);
  const flipped = (bytes: Uint8Array, at: number) => {
    const c = bytes.slice();
    c[at] = c[at]! ^ 1;
    return c;
  };
  const cases: [string, () => void][] = [
    ['flipped signature', () => k.hazmat.verifyDetached('kluis/test/v1', body, flipped(sig, 40), keys.publicKey)],
    ['flipped body', () => k.hazmat.verifyDetached('kluis/test/v1', flipped(body, 0), sig, keys.publicKey)],
    ['other context', () => k.hazmat.verifyDetached('kluis/test/v2', body, sig, keys.publicKey)],
    ['other key', () => k.hazmat.verifyDetached('kluis/test/v1', body, sig, k.hazmat.signSeedKeypair(k.hazmat.randomBytes(32)).publicKey)],
    ['short signature', () => k.hazmat.verifyDetached('kluis/test/v1', body, sig.subarray(0, 63), keys.publicKey)],
    ['all-zero key', () => k.hazmat.verifyDetached('kluis/test/v1', body, sig, new Uint8Array(32))],
    // S >= L (non-canonical): libsodium refuses it; so must the native build
    ['non-canonical S', () => k.hazmat.verifyDetached('kluis/test/v1', body, (() => { const c = sig.slice(); c.fill(0xff, 32); return c; })(), keys.publicKey)],
  ];
  for (const backend of BACKENDS) {
    k.setCryptoBackend(backend);
    try {
      for (const [what, f] of cases) {
        const e = t.throws(f, { instanceOf: k.CryptoError }, `${backend}: ${what}`);
        t.is(e?.code, k.ErrorCode.BadSignature);
      }
    } finally {
      k.setCryptoBackend(null);
    }
  }
});

test('sealed boxes: each backend opens the other\'s, and a tampered or misaddressed box does not open on either', (t) => {
  const a = k.generateSpaceKeyPair();
  const b = k.generateSpaceKeyPair();
  for (const size of [0, 1, 32, 129, 4096]) {
    const msg = k.hazmat.randomBytes(size);
    const boxes = both(() => k.hazmat.sealBox(msg, a.publicKey));
    t.is(boxes.native.length, size + 48);
    t.is(boxes.wasm.length, size + 48);
    for (const box of [boxes.native, boxes.wasm]) {
      const opened = both(() => k.hazmat.openSealedBox(box, a.publicKey, a.secretKey));
      t.deepEqual(opened.native, msg);
      t.deepEqual(opened.wasm, msg);
      const bad = box.slice();
      bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
      for (const backend of BACKENDS) {
        k.setCryptoBackend(backend);
        try {
          t.throws(() => k.hazmat.openSealedBox(bad, a.publicKey, a.secretKey));
          t.throws(() => k.hazmat.openSealedBox(box, b.publicKey, b.secretKey));
          t.throws(() => k.hazmat.openSealedBox(box.subarray(0, 47), a.publicKey, a.secretKey));
        } finally {
          k.setCryptoBackend(null);
        }
      }
    }
  }
});

test('file-key wraps of version 1 and 2 made on one backend open on the other; a forged wrap fails with the same code on both', (t) => {
  const account = k.generateAccountKeys();
  const space = k.generateSpaceKeyPair();
  const trusted = (s: string) => s === k.toBase64Url(account.signPublicKey);
  const target = { spaceId: k.newId(), keyEpoch: 3, recipient: k.toBase64Url(space.publicKey) };
  for (const maker of BACKENDS) {
    k.setCryptoBackend(maker);
    const fileId = k.newId();
    const fileKey = k.generateFileKey();
    const v1 = k.wrapFileKey(fileKey, { ...target, fileId }, account);
    const v2 = k.wrapFileKeysBatch([{ fileId, fileKey }, { fileId: k.newId(), fileKey: k.generateFileKey() }], target, account)[0]!;
    for (const reader of BACKENDS) {
      k.setCryptoBackend(reader);
      for (const wrap of [v1, v2]) {
        // (compared as hex: the node:crypto envelope path hands back a Buffer)
        t.is(k.toHex(k.openFileKeyWrap(wrap, { ...target, fileId }, space, trusted)), k.toHex(fileKey), `${maker} -> ${reader}, v${wrap.v}`);
        const sig = k.fromBase64Url(wrap.sig);
        sig[5] = sig[5]! ^ 1;
        const e = t.throws(() => k.openFileKeyWrap({ ...wrap, sig: k.toBase64Url(sig) }, { ...target, fileId }, space, trusted), { instanceOf: k.CryptoError });
        t.is(e?.code, k.ErrorCode.BadSignature);
      }
      // a correctly signed v1 wrap whose sealed box does not open: decrypt_failed on both
      const sealed = k.fromBase64Url(v1.sealed);
      sealed[60] = sealed[60]! ^ 1;
      const { sig: _sig, ...fields } = { ...v1, sealed: k.toBase64Url(sealed) };
      const forged = { ...fields, sig: k.toBase64Url(k.hazmat.signDetached('kluis/wrap/v1', k.canonicalBytes(fields), account.signSecretKey)) };
      const e = t.throws(() => k.openFileKeyWrap(forged, { ...target, fileId }, space, trusted), { instanceOf: k.CryptoError });
      t.is(e?.code, k.ErrorCode.DecryptFailed);
    }
    k.setCryptoBackend(null);
  }
});

test('file subkeys (crypto_kdf) and SHA-256 Merkle hashes agree between backends', (t) => {
  for (let i = 0; i < 20; i++) {
    const key = k.generateFileKey();
    const sub = both(() => k.deriveFileSubkeys(key));
    t.deepEqual(sub.native, sub.wasm);
    const raw = both(() => k.hazmat.kdf(32, i + 1, 'kluisfil', key));
    t.deepEqual(raw.native, raw.wasm);
  }
  for (const size of SIZES) {
    const data = k.hazmat.randomBytes(size);
    const leaf = both(() => k.merkleLeafHash(data));
    t.deepEqual(leaf.native, leaf.wasm);
    const direct = both(() => k.hazmat.sha256(data));
    t.deepEqual(direct.native, direct.wasm);
  }
  const empty = both(() => k.merkleEmptyRoot());
  t.is(k.toHex(empty.native), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  t.deepEqual(empty.native, empty.wasm);
});

test('X25519: the same shared secret on both backends, and a small-order public key refused by both', (t) => {
  for (let i = 0; i < 20; i++) {
    const a = k.generateSpaceKeyPair();
    const b = k.generateSpaceKeyPair();
    const ab = both(() => k.hazmat.x25519(a.secretKey, b.publicKey));
    t.deepEqual(ab.native, ab.wasm);
    t.deepEqual(ab.native, k.hazmat.x25519(b.secretKey, a.publicKey));
  }
  const a = k.generateSpaceKeyPair();
  for (const backend of BACKENDS) {
    k.setCryptoBackend(backend);
    try {
      t.throws(() => k.hazmat.x25519(a.secretKey, new Uint8Array(32)), undefined, backend);
      // a batch wrap to a small-order recipient fails with bad_key on both
      const e = t.throws(() => k.wrapFileKeysBatch([{ fileId: k.newId(), fileKey: k.generateFileKey() }], { spaceId: k.newId(), keyEpoch: 1, recipient: k.toBase64Url(new Uint8Array(32)) }, k.generateAccountKeys()), { instanceOf: k.CryptoError });
      t.is(e?.code, k.ErrorCode.BadKey);
    } finally {
      k.setCryptoBackend(null);
    }
  }
});

test('without the addon (it cannot be resolved) crypto falls back to WASM and still gives the recorded bytes', (t) => {
  const hooks = new URL('../helpers/no-sodium-native.mjs', import.meta.url).href;
  const shared = new URL('../../shared/dist/index.js', import.meta.url).href;
  const script = `const k = await import(${JSON.stringify(shared)}); await k.initCrypto();
    console.log(k.cryptoBackend(), k.contentHash(new Uint8Array(0)));`;
  const run = (withHooks: boolean) => {
    const pre = withHooks ? ['--import', `data:text/javascript,import{register}from'node:module';register(${JSON.stringify(hooks)})`] : [];
    const r = spawnSync(process.execPath, [...pre, '--input-type=module', '-e', script], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
    t.is(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  const empty = '0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8'; // BLAKE2b-256 of nothing
  t.is(run(true), `wasm ${empty}`);
  t.is(run(false), `native ${empty}`);
});

test('envelopes: sodium-native\'s AEAD (up to 64 KiB on the node backend), node:crypto and libsodium.js seal the same bytes, each opens the others\', and a flipped bit fails on all', (t) => {
  const key = k.hazmat.randomBytes(32);
  const nonce = k.hazmat.randomBytes(24);
  const ad = k.utf8('kluis/chunk/v1');
  for (const size of [0, 1, 4096, 65535, 65536, 65537, 200_000]) {
    const msg = Uint8Array.from({ length: size }, (_, i) => (i * 7 + size) & 0xff);
    const sealed = {
      nativeSmall: both(() => k.hazmat.sealEnvelopeWithNonce(key, msg, ad, nonce, 'node')).native,
      nodeCrypto: both(() => k.hazmat.sealEnvelopeWithNonce(key, msg, ad, nonce, 'node')).wasm,
      sodium: k.hazmat.sealEnvelopeWithNonce(key, msg, ad, nonce, 'sodium'),
    };
    t.deepEqual(sealed.nativeSmall, sealed.sodium, `${size} bytes: native backend`);
    t.deepEqual(sealed.nodeCrypto, sealed.sodium, `${size} bytes: node:crypto`);
    const opened = both(() => [k.openEnvelope(key, sealed.sodium, ad, 'node'), k.openEnvelope(key, sealed.nativeSmall, ad, 'sodium')]);
    for (const pair of [opened.native, opened.wasm]) for (const m of pair) t.deepEqual(Uint8Array.from(m), msg); // node:crypto answers a Buffer
    const tampered = Uint8Array.from(sealed.sodium);
    tampered[tampered.length - 1]! ^= 1;
    for (const backend of BACKENDS) {
      k.setCryptoBackend(backend);
      try {
        for (const env of ['node', 'sodium'] as const) t.throws(() => k.openEnvelope(key, tampered, ad, env), { code: k.ErrorCode.DecryptFailed } as never, `${size} bytes, ${backend}/${env}`);
        t.throws(() => k.openEnvelope(key, sealed.sodium, k.utf8('kluis/other/v1'), 'node'), { code: k.ErrorCode.DecryptFailed } as never);
      } finally {
        k.setCryptoBackend(null);
      }
    }
  }
});

test('random bytes on the native backend: the requested length, and not repeating', (t) => {
  k.setCryptoBackend('native');
  try {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) seen.add(k.toBase64Url(k.hazmat.randomBytes(24)));
    t.is(seen.size, 1000);
    t.is(k.hazmat.randomBytes(0).length, 0);
    t.is(k.hazmat.randomBytes(100_000).length, 100_000);
    t.true(k.hazmat.randomBytes(100_000).some((b) => b !== 0));
  } finally {
    k.setCryptoBackend(null);
  }
});

test('XChaCha20-Poly1305 sealed into a caller\'s array (sodium-native at every size) equals OpenSSL\'s and libsodium.js\'s bytes', (t) => {
  const { xchachaEncrypt, xchachaDecrypt, randomBytes } = k.hazmat;
  const key = randomBytes(32);
  const nonce = randomBytes(24);
  const ad = randomBytes(33);
  for (const n of [0, 1, 4096, 65536, 65537, 1 << 20, (2 << 20) + 3]) {
    const msg = randomBytes(n);
    const libsodium = xchachaEncrypt(msg, ad, nonce, key, 'sodium');
    // no `out`: OpenSSL above 64 KiB; with `out`: sodium-native on the native backend, OpenSSL on the WASM one
    const plain = both(() => xchachaEncrypt(msg, ad, nonce, key, 'node'));
    const into = both(() => {
      const out = new Uint8Array(n + 16 + 10);
      xchachaEncrypt(msg, ad, nonce, key, 'node', out, 7);
      t.deepEqual([out[0], out[6], out[7 + n + 16]], [0, 0, 0], `${n} bytes: nothing written outside the destination`);
      return out.subarray(7, 7 + n + 16);
    });
    for (const [what, bytes] of [['OpenSSL', plain.native], ['into, native', into.native], ['into, WASM', into.wasm]] as const) {
      t.deepEqual(Buffer.from(bytes), Buffer.from(libsodium), `${n} bytes: ${what}`);
    }
    t.deepEqual(Buffer.from(xchachaDecrypt(into.native, ad, nonce, key, 'node')), Buffer.from(msg));
  }
});
