import test from 'ava';
import * as k from '@kluis/shared';

test('base64url: round trips every length, refuses padding, foreign characters and non-canonical tails', (t) => {
  for (let n = 0; n < 40; n++) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
    const text = k.toBase64Url(bytes);
    t.is(text, Buffer.from(bytes).toString('base64url'));
    t.deepEqual(k.fromBase64Url(text), bytes);
  }
  t.throws(() => k.fromBase64Url('AAA='), { instanceOf: k.EncodingError });
  t.throws(() => k.fromBase64Url('A+B/'), { instanceOf: k.EncodingError });
  t.throws(() => k.fromBase64Url('A'), { instanceOf: k.EncodingError });
  t.throws(() => k.fromBase64Url('AB'), { instanceOf: k.EncodingError }, 'AB has non-zero leftover bits');
  t.deepEqual(k.fromBase64Url('AA'), new Uint8Array([0]));
});

test('base32 and hex round trip', (t) => {
  const bytes = Uint8Array.from({ length: 35 }, (_, i) => (i * 91) & 0xff);
  t.deepEqual(k.fromBase32(k.toBase32(bytes)), bytes);
  t.is(k.toBase32(k.utf8('foobar')), 'MZXW6YTBOI'); // RFC 4648 §10 test vector
  t.is(k.toHex(k.fromHex('00ff10')), '00ff10');
  t.throws(() => k.fromHex('0g'), { instanceOf: k.EncodingError });
  const every = Uint8Array.from({ length: 256 }, (_, i) => i);
  t.deepEqual(k.fromHex(k.toHex(every)), every);
  // toHex works in blocks of 4,096 bytes: lengths around and across the block edge.
  for (const n of [0, 1, 32, 4095, 4096, 4097, 8192, 10_001]) {
    const long = Uint8Array.from({ length: n }, (_, i) => (i * 131 + (i >> 8)) & 0xff);
    t.is(k.toHex(long), Buffer.from(long).toString('hex'), `length ${n}`);
  }
  t.deepEqual(k.fromHex('ABCDEFabcdef0919'), Uint8Array.from([0xab, 0xcd, 0xef, 0xab, 0xcd, 0xef, 0x09, 0x19]));
  t.deepEqual(k.fromHex(''), new Uint8Array(0));
  for (const bad of ['0', 'abc', 'g0', '0G', ' 0', '0:', '/0', '@0', '0`', 'é0', '0\u0130', '\u{1F600}', '0\u0000']) {
    t.throws(() => k.fromHex(bad), { instanceOf: k.EncodingError }, JSON.stringify(bad));
  }
  t.throws(() => k.fromUtf8(new Uint8Array([0xc3])), { instanceOf: k.EncodingError });
});

test('canonical JSON: sorted keys, no whitespace, integers only, refuses what has no single form', (t) => {
  t.is(k.canonicalJson({ b: [1, { d: null, c: 'x' }], a: true }), '{"a":true,"b":[1,{"c":"x","d":null}]}');
  t.is(k.canonicalJson({ s: 'é\n"\\\u0007' }), '{"s":"é\\n\\"\\\\\\u0007"}');
  for (const bad of [1.5, NaN, Infinity, 2 ** 53, '\ud800', { a: undefined }, new Date(0), () => 1]) {
    t.throws(() => k.canonicalJson(bad), { instanceOf: k.CryptoError }, String(bad));
  }
  t.is(k.canonicalJson(-0), '0');
  t.is(k.canonicalJson({ z: [-0, 0, -7, 2 ** 53 - 1], '\ud83d\ude00': '\ud83d\ude00 \u001f' }), '{"z":[0,0,-7,9007199254740991],"\ud83d\ude00":"\ud83d\ude00 \\u001f"}');
  t.is(k.canonicalJson(Object.assign(Object.create(null), { b: 1, a: [] })), '{"a":[],"b":1}');
  t.is(k.canonicalJson([[], {}, '', false]), '[[],{},"",false]');
  // eslint-disable-next-line no-sparse-arrays
  for (const [i, bad] of [[1, , 3], [undefined], { ['\udc00']: 1 }, ['a\ud800b'], [1n], { a: [new Map()] }, [Symbol('s')]].entries()) {
    t.throws(() => k.canonicalJson(bad), { instanceOf: k.CryptoError }, `case ${i}`);
  }
});

test('space paths: NFC, relative, no dot segments, no control characters or backslashes', (t) => {
  // Limits are in UTF-8 bytes: 255 per name, 4096 per path (é is 2 bytes, 😀 4, 한 3).
  const names = ['x'.repeat(255), 'é'.repeat(127), '😀'.repeat(63) + 'abc', '한'.repeat(85)];
  const paths = [`${'é'.repeat(120)}/`.repeat(16) + 'x'.repeat(240), `${'한'.repeat(85)}/`.repeat(15) + 'é'.repeat(127) + 'x'];
  t.deepEqual(paths.map((p) => new TextEncoder().encode(p).length), [4096, 4095]);
  for (const ok of ['a', 'Map/Sub map/bestand één.txt', '.hidden', 'a..b', ...names, ...paths]) t.is(k.assertSpacePath(ok), ok);
  const tooLong = ['x'.repeat(256), 'é'.repeat(128), '😀'.repeat(64), `a/${'한'.repeat(86)}`, 'a/'.repeat(2100) + 'a', paths[0] + 'x', paths[1] + 'x'];
  for (const bad of ['', '/abs', 'a//b', 'a/', './a', 'a/../b', '..', 'a\\b', 'a\u0000b', 'e\u0301', ...tooLong]) {
    const err = t.throws(() => k.assertSpacePath(bad), { instanceOf: k.CryptoError }, JSON.stringify(bad).slice(0, 40));
    t.is(err?.code, k.ErrorCode.UnsafePath);
  }
});

test('ids: 16 random bytes, base64url, distinct', async (t) => {
  await k.initCrypto();
  const ids = new Set(Array.from({ length: 1000 }, () => k.newId()));
  t.is(ids.size, 1000);
  for (const id of ids) t.is(k.idBytes(id).length, 16);
  t.throws(() => k.idBytes('AAAA'), { instanceOf: k.CryptoError });
});
