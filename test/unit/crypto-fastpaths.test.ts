// The speed-ups inside the crypto facade must not change a single byte or weaken anything: node's Ed25519 signing
// gives libsodium's signatures exactly, and the pooled randomness hook still gives libsodium full 32-bit values.
import test from 'ava';
import * as k from '@kluis/shared';

test.before(async () => {
  await k.initCrypto();
});

test('signing: the node fast path gives libsodium\'s signature byte for byte, for many keys and messages', (t) => {
  for (let i = 0; i < 200; i++) {
    const keys = k.hazmat.signSeedKeypair(k.hazmat.randomBytes(32));
    const body = k.hazmat.randomBytes(i * 7);
    const fast = k.hazmat.signDetached('kluis/test/v1', body, keys.privateKey);
    const slow = k.hazmat.signDetachedSodium('kluis/test/v1', body, keys.privateKey);
    t.deepEqual(fast, slow);
    // and the same key object again (cached) still signs the same
    t.deepEqual(k.hazmat.signDetached('kluis/test/v1', body, keys.privateKey), slow);
  }
});

test('signing: a wrap signed through the fast path verifies, and a flipped bit does not', (t) => {
  const account = k.generateAccountKeys();
  const space = k.generateSpaceKeyPair();
  const wrap = k.wrapFileKey(k.generateFileKey(), { spaceId: k.newId(), keyEpoch: 1, fileId: k.newId(), recipient: k.toBase64Url(space.publicKey) }, account);
  t.notThrows(() => k.verifyWrapSignature(wrap));
  const sig = k.fromBase64Url(wrap.sig);
  sig[10] = sig[10]! ^ 1;
  t.throws(() => k.verifyWrapSignature({ ...wrap, sig: k.toBase64Url(sig) }), { instanceOf: k.CryptoError });
});

test('randomness: the pooled hook gives libsodium full 32-bit values and unbiased-looking bytes', (t) => {
  let high = 0;
  const values = new Set<number>();
  for (let i = 0; i < 4000; i++) {
    const v = k.hazmat.randomUint32();
    t.true(Number.isInteger(v) && v >= 0 && v <= 0xffffffff);
    if (v > 0xffffff) high++;
    values.add(v);
  }
  // 4000 draws of 32 bits: about 99.6% exceed 2^24, and repeats are vanishingly rare.
  t.true(high > 3900, `only ${high} of 4000 values above 2^24`);
  t.true(values.size > 3990);
  const bytes = k.hazmat.randomBytes(65536);
  const counts = new Array<number>(256).fill(0);
  for (const b of bytes) counts[b]!++;
  // each byte value expected 256 times; a stuck or biased pool falls far outside this band
  t.true(Math.min(...counts) > 150 && Math.max(...counts) < 370, `byte counts ${Math.min(...counts)}..${Math.max(...counts)}`);
  t.notDeepEqual(k.newId(), k.newId());
});

test('new ids are 22 base64url characters and never begin with "-" (they are typed as command arguments)', (t) => {
  // Without the redraw about 1 in 64 ids would begin with '-': 20000 draws would show about 312.
  const ids = Array.from({ length: 20000 }, () => k.newId());
  t.true(ids.every((id) => /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/.test(id)));
  t.true(ids.some((id) => id.includes('-')), 'the alphabet still has "-" inside ids');
  t.is(new Set(ids).size, ids.length);
});
