// Crypto pipeline benchmark (issue: foundation, item 8).
// Over the same 256 MiB of random bytes in one run: FastCDC + chunk id + encrypt, and decrypt + verify, beside the
// raw AEAD of libsodium (WASM) and of node:crypto (the baselines), and the pipeline's parts, so a miss can be
// explained; then the libsodium primitives on each backend (sodium-native and WASM, docs/architecture.md §2) in the
// same run. Prints tables and writes bench-results/crypto.json. Not a test: figures go into notes.
//   npm run bench:crypto [-- --mib 256 --runs 3]
import { randomFillSync, createCipheriv } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import os from 'node:os';
import * as k from '@kluis/shared';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '256' }, runs: { type: 'string', default: '3' } } });
const MIB = Number(values.mib);
const RUNS = Number(values.runs);
const SIZE = MIB * 1024 * 1024;

await k.initCrypto();
const data = new Uint8Array(SIZE);
for (let off = 0; off < SIZE; off += 65536) randomFillSync(data, off, Math.min(65536, SIZE - off));
const fileKey = k.generateFileKey();
const sub = k.deriveFileSubkeys(fileKey);
const lengths = k.chunkBoundaries(data);
const chunks: Uint8Array[] = [];
for (let off = 0, i = 0; i < lengths.length; off += lengths[i]!, i++) chunks.push(data.subarray(off, off + lengths[i]!));
const key = k.hazmat.randomBytes(32);
const nonce = k.hazmat.randomBytes(24);
const ad = k.utf8('kluis/chunk/v1');

interface Row { name: string; what: string; mbps: number; seconds: number[] }
const rows: Row[] = [];

async function measure(name: string, what: string, fn: () => unknown | Promise<unknown>): Promise<Row> {
  await fn(); // warm-up (JIT, WASM tier-up)
  const seconds: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    await fn();
    seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  seconds.sort((a, b) => a - b);
  const median = seconds[Math.floor(seconds.length / 2)]!;
  const row = { name, what, mbps: SIZE / 1e6 / median, seconds };
  rows.push(row);
  console.error(`  ${name.padEnd(28)} ${row.mbps.toFixed(0).padStart(6)} MB/s`);
  return row;
}

console.error(`crypto bench: ${MIB} MiB, ${lengths.length} chunks (avg ${(SIZE / lengths.length / 1024).toFixed(0)} KiB), median of ${RUNS} runs`);

// Baselines: the raw AEAD alone over the same chunk sizes.
const sodiumRaw = await measure('baseline: libsodium AEAD', 'crypto_aead_xchacha20poly1305_ietf_encrypt (WASM) per chunk', () => {
  for (const c of chunks) k.hazmat.xchachaEncrypt(c, ad, nonce, key, 'sodium');
});
await measure('baseline: node:crypto AEAD', 'chacha20-poly1305 (IETF) per chunk, no HChaCha20', () => {
  const iv = nonce.subarray(0, 12);
  for (const c of chunks) {
    const cipher = createCipheriv('chacha20-poly1305', key, iv, { authTagLength: 16 });
    cipher.setAAD(ad, { plaintextLength: c.length });
    cipher.update(c);
    cipher.final();
    cipher.getAuthTag();
  }
});

// Parts of the pipeline.
await measure('part: FastCDC boundaries', 'chunkBoundaries over the buffer', () => k.chunkBoundaries(data));
await measure('part: chunk ids', `keyed BLAKE2b-256 per chunk (libsodium ${k.cryptoBackend()})`, () => {
  for (const c of chunks) k.chunkId(sub, c);
});
await measure('part: envelope (node path)', 'HChaCha20 + node:crypto per chunk, with framing', () => {
  for (const c of chunks) k.sealEnvelope(sub.chunkKey, c, ad);
});
await measure('part: whole-file hash', `BLAKE2b-256 streaming (manifest hash, ${k.cryptoBackend()})`, () => {
  const h = new k.ContentHasher();
  for (const c of chunks) h.update(c);
  h.digest();
});

// The pipeline. Each ciphertext is dropped once made, as an upload stage would hand it on (keeping 256 MiB of
// ciphertext alive measures page faults and GC, not crypto).
const enc = await measure('pipeline: chunk+id+encrypt', 'chunkBoundaries + encryptChunk (id + envelope)', () => {
  let off = 0;
  for (const n of k.chunkBoundaries(data)) {
    k.encryptChunk(sub, data.subarray(off, off + n));
    off += n;
  }
});
await measure('pipeline: streamed', 'chunkStream over 1 MiB pieces + encryptChunk', async () => {
  async function* pieces() {
    for (let off = 0; off < SIZE; off += 1 << 20) yield data.subarray(off, off + (1 << 20));
  }
  for await (const c of k.chunkStream(pieces())) k.encryptChunk(sub, c);
});
const ciphertexts = chunks.map((c) => k.encryptChunk(sub, c));
const dec = await measure('pipeline: decrypt+verify', 'decryptChunk (envelope + id recomputed)', () => {
  for (const c of ciphertexts) k.decryptChunk(sub, c.id, c.ciphertext);
});

const table = [
  '| stage | MB/s | x libsodium AEAD | what |',
  '|---|---:|---:|---|',
  ...rows.map((r) => `| ${r.name} | ${r.mbps.toFixed(0)} | ${(r.mbps / sodiumRaw.mbps).toFixed(2)} | ${r.what} |`),
].join('\n');
console.log(table);
const goal = enc.mbps >= sodiumRaw.mbps && dec.mbps >= sodiumRaw.mbps;
console.log(`\ngoal (pipeline >= libsodium raw AEAD): encrypt ${enc.mbps.toFixed(0)} vs ${sodiumRaw.mbps.toFixed(0)} MB/s, decrypt ${dec.mbps.toFixed(0)} MB/s: ${goal ? 'met' : 'MISSED'}`);

// The libsodium backends side by side: throughput of the BLAKE2b calls over the same chunks, and the cost of one
// operation (median of at least 7 timings of a batch of `n`, native and WASM alternating) for signatures and wraps.
interface BackendRow { name: string; unit: 'MiB/s' | 'µs'; native: number; wasm: number }
const backendRows: BackendRow[] = [];
const account = k.generateAccountKeys();
const space = k.generateSpaceKeyPair();
const target = { spaceId: k.newId(), keyEpoch: 1, recipient: k.toBase64Url(space.publicKey) };
const trusted = () => true;
const files = Array.from({ length: 256 }, () => ({ fileId: k.newId(), fileKey: k.generateFileKey() }));
const manifestBody = k.hazmat.randomBytes(400);
const manifestSig = k.hazmat.signDetached('kluis/manifest/v1', manifestBody, account.signSecretKey);
const batch = k.wrapFileKeysBatch(files, target, account);
// A small file's version-2 manifest per file (one chunk), as a first sync of small files seals them (crypto.md §8, §8.1).
const manifests = files.map((f, i) => {
  const keys = k.deriveFileSubkeys(f.fileKey);
  const manifest: k.Manifest = {
    v: 2, memberSeq: 3, fileId: f.fileId, versionId: k.newId(), parent: null, path: `Dossiers/2026/brief-${i}.odt`, kind: 'file', size: 4096,
    mtimeMs: 1_764_000_000_000 + i, chunks: [[k.toHex(k.hazmat.randomBytes(32)), 4096]], hash: k.toHex(k.hazmat.randomBytes(32)), deleted: false,
  };
  return { manifest, keys };
});
const sealedAlone = manifests.map((m) => k.sealManifest(m.manifest, m.keys, account));
const sealedBatch = k.sealManifests(manifests, account);
const openAll = (sealed: Uint8Array[]) => sealed.forEach((s, i) => k.openManifest(s, manifests[i]!.keys, manifests[i]!.manifest, trusted));
const singles = files.map((f) => k.wrapFileKey(f.fileKey, { ...target, fileId: f.fileId }, account));

/** Seconds of one call of `fn` on `backend`. */
function once(backend: k.SodiumBackend, fn: () => void): number {
  k.setCryptoBackend(backend);
  try {
    const t0 = process.hrtime.bigint();
    fn();
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    k.setCryptoBackend(null);
  }
}
const medianOf = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/** Times `fn` (n operations) on both backends in alternation, so that a neighbour's load falls on both alike. */
function compare(name: string, unit: BackendRow['unit'], n: number, fn: () => void): void {
  once('native', fn); // warm-up
  once('wasm', fn);
  const times = { native: [] as number[], wasm: [] as number[] };
  for (let r = 0; r < Math.max(RUNS, 7); r++) {
    times.native.push(once('native', fn));
    times.wasm.push(once('wasm', fn));
  }
  const figure = (seconds: number) => (unit === 'µs' ? (seconds / n) * 1e6 : SIZE / (1 << 20) / seconds);
  const row = { name, unit, native: figure(medianOf(times.native)), wasm: figure(medianOf(times.wasm)) };
  backendRows.push(row);
  console.error(`  ${name.padEnd(42)} native ${row.native.toFixed(1).padStart(8)}  wasm ${row.wasm.toFixed(1).padStart(8)} ${unit}`);
}
if (k.cryptoBackend() === 'native') {
  console.error('libsodium backends (same run):');
  compare('BLAKE2b-256 unkeyed, streaming', 'MiB/s', 1, () => {
    const h = new k.ContentHasher();
    for (const c of chunks) h.update(c);
    h.digest();
  });
  compare('BLAKE2b-256 keyed, per chunk (ids)', 'MiB/s', 1, () => {
    for (const c of chunks) k.chunkId(sub, c);
  });
  compare('Ed25519 sign, 400 B', 'µs', 1000, () => {
    const sign = k.cryptoBackend() === 'wasm' ? k.hazmat.signDetachedSodium : k.hazmat.signDetached;
    for (let i = 0; i < 1000; i++) sign('kluis/manifest/v1', manifestBody, account.signSecretKey);
  });
  // without the addon Node signed with node:crypto (OpenSSL), and still does under KLUIS_SODIUM=wasm
  compare('Ed25519 sign, 400 B (wasm: node:crypto)', 'µs', 1000, () => {
    for (let i = 0; i < 1000; i++) k.hazmat.signDetached('kluis/manifest/v1', manifestBody, account.signSecretKey);
  });
  compare('Ed25519 verify (400-byte manifest)', 'µs', 1000, () => {
    for (let i = 0; i < 1000; i++) k.hazmat.verifyDetached('kluis/manifest/v1', manifestBody, manifestSig, account.signPublicKey);
  });
  compare('wrap v2, per file (batch of 256)', 'µs', files.length, () => k.wrapFileKeysBatch(files, target, account));
  compare('wrap v1, per file (seal + sign)', 'µs', files.length, () => {
    for (const f of files) k.wrapFileKey(f.fileKey, { ...target, fileId: f.fileId }, account);
  });
  compare('seal manifest alone (§8), per file', 'µs', files.length, () => {
    for (const m of manifests) k.sealManifest(m.manifest, m.keys, account);
  });
  compare('seal manifests, batch of 256 (§8.1), per file', 'µs', files.length, () => k.sealManifests(manifests, account));
  compare('open manifest signed alone, per file', 'µs', files.length, () => openAll(sealedAlone));
  compare('open batch-signed manifest, per file', 'µs', files.length, () => openAll(sealedBatch));
  compare('server check v2, per file (statement cached)', 'µs', files.length, () => k.verifyBatchWrapSignatures(batch));
  compare('open wrap v2, per file', 'µs', files.length, () => {
    for (let i = 0; i < files.length; i++) k.openFileKeyWrap(batch[i]!, { ...target, fileId: files[i]!.fileId }, space, trusted);
  });
  compare('open wrap v1, per file (verify + unseal)', 'µs', files.length, () => {
    for (let i = 0; i < files.length; i++) k.openFileKeyWrap(singles[i]!, { ...target, fileId: files[i]!.fileId }, space, trusted);
  });
  console.log(['', '| libsodium call | native | WASM | native / WASM speed |', '|---|---:|---:|---:|',
    ...backendRows.map((r) => `| ${r.name} | ${r.native.toFixed(1)} ${r.unit} | ${r.wasm.toFixed(1)} ${r.unit} | ${(r.unit === 'µs' ? r.wasm / r.native : r.native / r.wasm).toFixed(2)}x |`)].join('\n'));
} else {
  console.error('libsodium backends: sodium-native not loaded (or KLUIS_SODIUM=wasm): no native rows');
}

mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/crypto.json', JSON.stringify({
  bench: 'crypto', date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model,
  bytes: SIZE, chunks: lengths.length, runs: RUNS, envelopeBackend: k.envelopeBackend(), rows, goalMet: goal, backendRows,
}, null, 2) + '\n');
console.log('wrote bench-results/crypto.json');
