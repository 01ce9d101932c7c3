// The fast BLAKE2b (shared/src/crypto/fast-blake2b.ts, hash-wasm's WebAssembly build) must be the very function sodium
// computes: whole-file hashes (docs/crypto.md §7) and keyed chunk ids (§5) are compared here against sodium on every
// length class around BLAKE2b's 128-byte block, streamed in odd pieces, several hashes in progress at once (more
// than the pool holds), and a forged chunk is still refused when ids go through it.
import { spawnSync } from 'node:child_process';
import test from 'ava';
import * as k from '@kluis/shared';
import { hashInPieces } from '../helpers/chunks.js';

const SIZES = [0, 1, 2, 127, 128, 129, 255, 256, 257, 4096, 65537, (1 << 20) + 3, 5 * (1 << 20) + 1];
const keysOf = (fileKey: Uint8Array): k.FileSubkeys => k.deriveFileSubkeys(fileKey);

test.before(async () => {
  delete process.env.KLUIS_SODIUM; // this process tests the fast BLAKE2b itself (see the last test for the variable)
  await k.initCrypto({ wasm: 'lazy' });
});

test.serial('before loading, hashes are sodium\'s; loading is idempotent and makes the fast BLAKE2b available', async (t) => {
  t.false(k.fastBlake2bLoaded());
  const data = k.hazmat.randomBytes(1 << 20);
  const before = new k.ContentHasher().update(data).digest();
  await Promise.all([k.loadFastBlake2b(), k.loadFastBlake2b()]);
  t.true(k.fastBlake2bLoaded());
  t.is(new k.ContentHasher().update(data).digest(), before);
  t.is(before, k.contentHash(data));
});

test.serial('whole-file hashes: the same digest as sodium for every length, streamed in odd pieces', async (t) => {
  await k.loadFastBlake2b();
  const pieces = [1, 127, 128, 129, 4097, 65535, 0, 3];
  for (const size of SIZES) {
    const data = k.hazmat.randomBytes(size);
    t.is(hashInPieces(data, pieces), k.contentHash(data), `size ${size}`);
  }
});

test.serial('several hashes in progress at once (more than the pool holds) each get their own digest', async (t) => {
  await k.loadFastBlake2b();
  const inputs = Array.from({ length: 5 }, (_, i) => k.hazmat.randomBytes(300_000 + i));
  const hashers = inputs.map(() => new k.ContentHasher());
  for (let at = 0; at < 300_005; at += 10_000) inputs.forEach((d, i) => hashers[i]!.update(d.subarray(at, at + 10_000)));
  t.deepEqual(hashers.map((h) => h.digest()), inputs.map((d) => k.contentHash(d)));
  const h = new k.ContentHasher();
  h.digest();
  t.throws(() => h.digest(), { message: /already finished/ });
  t.throws(() => h.update(new Uint8Array(1)), { message: /already finished/ });
  // after the pool refilled, new hashers are right too
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.is(new k.ContentHasher().update(inputs[0]!).digest(), k.contentHash(inputs[0]!));
});

test.serial('chunk ids of prepared keys equal sodium\'s keyed BLAKE2b; other keys are untouched', async (t) => {
  const keys = keysOf(k.generateFileKey());
  const other = keysOf(k.generateFileKey());
  const chunks = SIZES.map((n) => k.hazmat.randomBytes(n));
  const expected = chunks.map((c) => k.chunkId(keys, c));
  const expectedOther = chunks.map((c) => k.chunkId(other, c));
  t.deepEqual(expected, chunks.map((c) => k.hazmat.blake2b(32, c, keys.chunkIdKey)).map((b) => k.toHex(b)));
  await k.prepareChunkIds(keys);
  await k.prepareChunkIds(keys); // again: the same instance is kept
  t.deepEqual(chunks.map((c) => k.chunkId(keys, c)), expected);
  t.deepEqual(chunks.map((c) => k.chunkId(other, c)), expectedOther);
  // interleaved with another prepared key: each instance keeps its own key
  await k.prepareChunkIds(other);
  t.deepEqual(chunks.map((c, i) => [k.chunkId(keys, c), k.chunkId(other, chunks[SIZES.length - 1 - i]!)]), expected.map((e, i) => [e, expectedOther[SIZES.length - 1 - i]!]));
});

test.serial('a chunk checked through prepared keys: opened when whole, refused when its plaintext is not its id\'s', async (t) => {
  const keys = keysOf(k.generateFileKey());
  await k.prepareChunkIds(keys);
  const plain = k.hazmat.randomBytes(200_000);
  const { id, ciphertext } = k.encryptChunk(keys, plain);
  t.is(id, k.toHex(k.hazmat.blake2b(32, plain, keys.chunkIdKey)));
  t.deepEqual(k.decryptChunk(keys, id, ciphertext), plain);
  // a chunk sealed under this file's keys with a wrong id (a server swapping ids it cannot forge plaintexts for)
  const wrongId = k.chunkId(keys, k.hazmat.randomBytes(16));
  const mislabelled = k.sealChunk(keys, wrongId, plain);
  t.throws(() => k.decryptChunk(keys, wrongId, mislabelled), { message: /does not match its id/ });
});

test('KLUIS_SODIUM=native or wasm keeps all hashing on sodium: the fast BLAKE2b is not loaded', (t) => {
  const script = "import * as k from '@kluis/shared'; await k.initCrypto(); await k.loadFastBlake2b(); console.log(k.fastBlake2bLoaded());";
  for (const [value, expected] of [['native', 'false'], ['wasm', 'false'], ['', 'true']] as const) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...(value ? { KLUIS_SODIUM: value } : {}) } });
    t.is(r.stdout.trim(), expected, `KLUIS_SODIUM=${value}: ${r.stderr}`);
  }
});
