// The sync client's upload path on one large file, without the network (issue 22, W1): what a GiB costs the client
// in CPU from the disk to the bytes a request would send. Three rows, each measured in this run on the same file:
//   read       the file read in 1 MiB pieces, nothing else (the floor of the I/O)
//   crypto     read + the work no implementation can skip: the whole-file hash, a keyed chunk id and an envelope of
//              every 512 KiB block (fixed blocks, no FastCDC, no pipeline)
//   upload     what `kluis sync` runs: scan.ts hashFile, then read-encrypt.ts readAndEncrypt (FastCDC, chunk ids,
//              envelopes) into a real ChunkUploader, whose framed batch bodies go to a counting sink instead of a
//              socket
// CPU is process.cpuUsage() (every thread of this process: the main thread, libuv's pool, V8's GC helpers); each row
// is the median of --reps runs. The gap between `upload` and `crypto` is the pipeline's own cost (copies,
// allocations, garbage collection, FastCDC). Prints a table and the load average; writes bench-results/upload-path.json.
//   npm run build && node --import=tsx scripts/bench/upload-path.ts [--mib 512] [--reps 3]
import { randomFillSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chunkId, ContentHasher, deriveFileSubkeys, generateFileKey, initCrypto, sealChunk } from '@kluis/shared';
import type { ApiClient } from '../../desktop/dist/api/client.js';
import { readAndEncrypt } from '../../desktop/dist/sync/read-encrypt.js';
import { hashFile } from '../../desktop/dist/sync/file-hash.js';
import { ChunkUploader } from '../../desktop/dist/sync/transfer.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '512' }, reps: { type: 'string', default: '3' }, only: { type: 'string' } } });
const MiB = 1024 * 1024;
const SIZE = Number(values.mib) * MiB;
const REPS = Math.max(1, Number(values.reps));
const PIECE = MiB;

async function* pieces(file: string): AsyncGenerator<Uint8Array> {
  const h = await open(file, 'r');
  try {
    const buf = new Uint8Array(PIECE);
    for (;;) {
      const { bytesRead } = await h.read(buf, 0, PIECE, null);
      if (bytesRead === 0) return;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await h.close();
  }
}

/** Stands in for the HTTP client: takes each batch's framed body as a socket would, and counts the bytes. */
class CountingSink {
  bytes = 0;
  async uploadFramed(_spaceId: string, body: Uint8Array): Promise<{ stored: number; duplicate: number }> {
    this.bytes += body.length;
    await new Promise<void>((resolve) => setImmediate(resolve)); // a request's turn of the event loop
    return { stored: 0, duplicate: 0 };
  }
  async missingChunks(_spaceId: string, ids: string[]): Promise<string[]> {
    return ids;
  }
}

let keys: ReturnType<typeof deriveFileSubkeys>;

const ROWS: Record<string, (file: string) => Promise<number>> = {
  async read(file) {
    let n = 0;
    for await (const p of pieces(file)) n += p.length;
    return n;
  },
  async crypto(file) {
    const hasher = new ContentHasher();
    let n = 0;
    for await (const p of pieces(file)) {
      hasher.update(p);
      for (let o = 0; o < p.length; o += 512 * 1024) {
        const block = p.subarray(o, o + 512 * 1024);
        sealChunk(keys, chunkId(keys, block), block);
      }
      n += p.length;
    }
    hasher.digest();
    return n;
  },
  async upload(file) {
    const st = await (await open(file, 'r')).stat();
    const hashed = await hashFile(file, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino });
    if (!hashed) throw new Error('the file changed while it was hashed');
    const sink = new CountingSink();
    const uploader = new ChunkUploader(sink as unknown as ApiClient, 'bench');
    const r = await readAndEncrypt(file, keys, uploader, false, { expect: { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, hash: hashed.hash } });
    await uploader.flush();
    if (!r) throw new Error('readAndEncrypt: the file changed since its hash');
    return sink.bytes;
  },
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  await initCrypto();
  keys = deriveFileSubkeys(generateFileKey());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kluis-bench-upload-'));
  const file = path.join(dir, 'big.bin');
  const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
  try {
    const h = await open(file, 'w');
    const block = new Uint8Array(8 * MiB);
    for (let done = 0; done < SIZE; done += block.length) await h.write(randomFillSync(block), 0, Math.min(block.length, SIZE - done));
    await h.close();
    console.error(`upload-path bench: ${SIZE / MiB} MiB file, ${REPS} reps, load ${load()}`);
    const results: Record<string, { wall: number[]; cpu: number[]; bytes: number }> = {};
    for (let rep = 0; rep < REPS; rep++) {
      for (const [name, fn] of Object.entries(ROWS).filter(([n]) => !values.only || values.only.split(',').includes(n))) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const bytes = await fn(file);
        const wall = (performance.now() - t0) / 1000;
        const c = process.cpuUsage(c0);
        const r = (results[name] ??= { wall: [], cpu: [], bytes });
        r.wall.push(wall);
        r.cpu.push((c.user + c.system) / 1e6);
        console.error(`  rep ${rep + 1} ${name.padEnd(7)} ${wall.toFixed(2)} s, cpu ${((c.user + c.system) / 1e6).toFixed(2)} s`);
      }
    }
    const gib = SIZE / (1024 * MiB);
    const rows = Object.entries(results).map(([name, r]) => ({ name, wall: median(r.wall), cpu: median(r.cpu), cpuPerGiB: median(r.cpu) / gib, mibPerCpuSecond: SIZE / MiB / median(r.cpu), bytesOut: r.bytes }));
    const base = rows.find((r) => r.name === 'crypto') ?? rows[0]!;
    console.log(`| row | wall s | CPU s | CPU s per GiB | MiB per CPU s | × crypto's CPU |`);
    console.log(`|---|---:|---:|---:|---:|---:|`);
    for (const r of rows) console.log(`| ${r.name} | ${r.wall.toFixed(2)} | ${r.cpu.toFixed(2)} | ${r.cpuPerGiB.toFixed(2)} | ${r.mibPerCpuSecond.toFixed(0)} | ${(r.cpu / base.cpu).toFixed(2)} |`);
    console.log(`\npeak RSS of this process: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB; load average at the end: ${load()}`);
    mkdirSync('bench-results', { recursive: true });
    writeFileSync('bench-results/upload-path.json', JSON.stringify({ size: SIZE, reps: REPS, rows, load: os.loadavg() }, null, 2));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
