// File request page benchmark (issue 17 item 6): the same file sent into a space through the request page in
// headless Chromium and, as the baseline in the same run, from Node through the same server.
//   setup    the real server (test/helpers/server.ts: sqlite, fs chunk store, temp data dir, free port), an
//            organisation, its admin, a space; per size one file of deterministic bytes (SplitMix32,
//            test/helpers/det-bytes.ts) written to a temp file; per upload a fresh request for one file
//            (test/helpers/requests.ts, signed as `kluis share request` signs it).
//   node     the baseline: this process reads the file as a stream, cuts it with FastCDC, encrypts each chunk as the
//            page does (encryptChunk, one thread), posts frames in bodies of about the page's BATCH_BYTES one after
//            the other and commits with the sealed manifest, wrap and receipt: the same bytes, the same server.
//   page     /r/<id>#<secret>, the file given to the picker; timed from setInputFiles to the card's "done" state
//            (every chunk encrypted and sent, the version committed).
// Memory, sampled every 100 ms during the page's upload: the RSS of the page's renderer (/proc VmRSS; workers and
// WASM memory live there) before and at its peak, and the page's JS heap (CDP Runtime.getHeapUsage). The goal: the
// renderer's growth does not scale with the file.
// Prints a table and the load average before and after; writes JSON to bench-results/ (or --json).
// Stops exactly the server and the browser it started. Not a test.
//   npm run build && node --import=tsx scripts/bench/request.ts [--size-mib 64,256] [--runs 2] [--json out.json]
import { spawnSync } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as k from '@kluis/shared';
import type { Browser } from 'playwright-core';
import { repoRoot, startServer, type RunningServer } from '../../test/helpers/server.js';
import { newOrg, newSpace, type User } from '../../test/helpers/api.js';
import { DetByteStream } from '../../test/helpers/det-bytes.js';
import { launchChromium, openPage, rendererRss, waitForState } from '../../test/helpers/browser.js';
import { commitUpload, createRequest, requestBody } from '../../test/helpers/requests.js';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '64,256' },
    runs: { type: 'string', default: '2' },
    json: { type: 'string' },
  },
});
const MiB = 1024 * 1024;
const SIZES = values['size-mib'].split(',').map((s) => Number(s.trim())).filter((n) => n > 0).map((n) => Math.round(n * MiB));
if (!SIZES.length) throw new Error('--size-mib: one or more sizes in MiB, comma-separated');
const RUNS = Math.max(1, Number(values.runs));
const BATCH_BYTES = 4 * MiB; // web/request/upload.ts
const log = (s: string) => console.error(s);
const uptime = () => spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();
const mib = (b: number) => b / MiB;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let srv: RunningServer | undefined;
let browser: Browser | undefined;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kluis-bench-request-'));
const stopAll = async () => {
  await browser?.close().catch(() => undefined);
  browser = undefined;
  await srv?.stop().catch(() => undefined);
  srv = undefined;
  rmSync(tmp, { recursive: true, force: true });
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping the browser and the server`);
    void stopAll().finally(() => process.exit(130));
  });
}

interface Measurement {
  size: number;
  run: number;
  mode: 'node' | 'page';
  seconds: number;
  mibps: number;
  rendererBefore?: number;
  rendererPeak?: number;
  jsHeapPeak?: number;
  encrypt?: string;
}

function writeFile(size: number): string {
  const file = path.join(tmp, `bestand-${mib(size)}.bin`);
  const fd = openSync(file, 'w');
  const det = new DetByteStream(size);
  const buf = new Uint8Array(4 * MiB);
  for (let left = size; left > 0; left -= buf.length) writeSync(fd, det.fill(left >= buf.length ? buf : buf.subarray(0, left)));
  closeSync(fd);
  return file;
}

async function newRequest(owner: User, space: { spaceId: string; pair: k.SpaceKeyPair }): Promise<Awaited<ReturnType<typeof requestBody>>> {
  const made = await requestBody(srv!.url, owner, space.spaceId, space.pair, { folder: '', maxFiles: 1 });
  const res = await createRequest(srv!.url, owner, space.spaceId, made);
  if (res.status !== 201) throw new Error(`request: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return made;
}

/** The baseline: the page's algorithm in this process (stream, FastCDC, encryptChunk, frames of BATCH_BYTES, commit). */
async function nodeRun(owner: User, space: { spaceId: string; pair: k.SpaceKeyPair }, file: string, size: number, run: number): Promise<Measurement> {
  const r = await newRequest(owner, space);
  const t0 = performance.now();
  const fileKey = k.generateFileKey();
  const sub = k.deriveFileSubkeys(fileKey);
  const hasher = new k.ContentHasher();
  const chunks: [string, number][] = [];
  let batch: k.ChunkFrame[] = [];
  let bytes = 0;
  const flush = async () => {
    if (!batch.length) return;
    const res = await fetch(`${srv!.url}/api/v1/public/requests/${r.requestId}/chunks`, {
      method: 'POST', headers: { authorization: `Bearer ${k.toBase64Url(r.keys.requestAuth)}`, 'content-type': 'application/octet-stream' }, body: k.encodeFrames(batch),
    });
    if (res.status !== 201) throw new Error(`chunks: ${res.status} ${await res.text()}`);
    batch = [];
    bytes = 0;
  };
  for await (const plain of k.chunkStream(createReadStream(file))) {
    hasher.update(plain);
    const c = k.encryptChunk(sub, plain);
    chunks.push([c.id, plain.length]);
    batch.push(c);
    bytes += c.ciphertext.length;
    if (bytes >= BATCH_BYTES) await flush();
  }
  await flush();
  const fileId = k.newId();
  const versionId = k.newId();
  const author = k.requestAuthor(r.keys);
  const manifest: k.Manifest = { v: 2, memberSeq: r.grant.memberSeq, fileId, versionId, parent: null, path: `node-${run}-${mib(size)}.bin`, kind: 'file', size, mtimeMs: Date.now(), chunks, hash: hasher.digest(), deleted: false };
  const res = await commitUpload(srv!.url, r, {
    fileId, versionId, manifest: k.toBase64Url(k.sealManifest(manifest, sub, author)), chunks: chunks.map((c) => c[0]),
    fileKeyWrap: k.wrapFileKey(fileKey, { spaceId: r.grant.spaceId, keyEpoch: r.grant.keyEpoch, fileId, recipient: r.grant.spacePublicKey }, author),
    receipt: k.signUploadReceipt({ requestId: r.requestId, spaceId: r.grant.spaceId, fileId, versionId, slot: 1 }, r.keys),
  });
  if (res.status !== 201 && res.status !== 200) throw new Error(`commit: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  const seconds = (performance.now() - t0) / 1000;
  return { size, run, mode: 'node', seconds, mibps: mib(size) / seconds };
}

async function pageRun(owner: User, space: { spaceId: string; pair: k.SpaceKeyPair }, file: string, size: number, run: number): Promise<Measurement> {
  const r = await newRequest(owner, space);
  const tp = await openPage(browser!);
  try {
    await tp.page.goto(`${srv!.url}/r/${r.requestId}#${r.secret}`);
    await waitForState(tp.page, 'ready');
    const cdp = await tp.context.newCDPSession(tp.page);
    const before = rendererRss();
    let peak = before;
    let heap = 0;
    let running = true;
    const sampler = (async () => {
      while (running) {
        peak = Math.max(peak, rendererRss());
        try {
          heap = Math.max(heap, ((await cdp.send('Runtime.getHeapUsage')) as { usedSize: number }).usedSize);
        } catch {
          // the page navigated or closed
        }
        await sleep(100);
      }
    })();
    const t0 = performance.now();
    await tp.page.setInputFiles('#picker', [file]);
    await waitForState(tp.page, 'done', 1_800_000);
    const seconds = (performance.now() - t0) / 1000;
    running = false;
    await sampler;
    const encrypt = await tp.page.evaluate(() => (globalThis as any).document.body.dataset.encrypt as string | undefined); // eslint-disable-line @typescript-eslint/no-explicit-any
    return { size, run, mode: 'page', seconds, mibps: mib(size) / seconds, rendererBefore: before, rendererPeak: peak, jsHeapPeak: heap, encrypt: encrypt ?? 'page (no pool)' };
  } finally {
    await tp.context.close();
  }
}

const started = { date: new Date().toISOString(), uptime: uptime(), loadavg: os.loadavg() };
log(`request bench: sizes ${SIZES.map((s) => `${mib(s)} MiB`).join(', ')}, ${RUNS} run(s) each; load at start: ${started.uptime}`);
const results: Measurement[] = [];
let chromiumVersion = '';
try {
  await k.initCrypto();
  srv = await startServer();
  log(`server ${srv.url} (pid ${srv.proc.pid}, data ${srv.dataDir})`);
  const owner = (await newOrg(srv.url, srv.dataDir, 'Bench OCMW')).admin;
  const space = await newSpace(srv.url, owner, 'Bench');
  if (space.res.status !== 201) throw new Error(`space: HTTP ${space.res.status}`);
  browser = await launchChromium();
  chromiumVersion = browser.version();
  for (const size of SIZES) {
    const file = writeFile(size);
    for (let run = 1; run <= RUNS; run++) {
      // Alternate the order so that a drift in the machine's load does not favour one side.
      for (const mode of run % 2 ? (['node', 'page'] as const) : (['page', 'node'] as const)) {
        const m = mode === 'node' ? await nodeRun(owner, space, file, size, run) : await pageRun(owner, space, file, size, run);
        results.push(m);
        log(`  ${mib(size)} MiB run ${run} ${mode.padEnd(4)} ${m.seconds.toFixed(2).padStart(7)} s ${m.mibps.toFixed(1).padStart(6)} MiB/s${m.rendererPeak !== undefined ? `  renderer ${mib(m.rendererBefore!).toFixed(0)} -> peak ${mib(m.rendererPeak).toFixed(0)} MiB (+${mib(m.rendererPeak - m.rendererBefore!).toFixed(0)}), JS heap peak ${mib(m.jsHeapPeak!).toFixed(1)} MiB, encrypts in ${m.encrypt}` : ''}  load ${os.loadavg()[0]!.toFixed(2)}`);
      }
    }
    rmSync(file);
  }
} finally {
  await stopAll();
}
const finished = { date: new Date().toISOString(), uptime: uptime(), loadavg: os.loadavg() };

const rows = ['| size | run | node MiB/s | page MiB/s | page/node | renderer before | renderer peak | growth | JS heap peak |', '|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
for (const size of SIZES) {
  for (let run = 1; run <= RUNS; run++) {
    const n = results.find((m) => m.size === size && m.run === run && m.mode === 'node')!;
    const p = results.find((m) => m.size === size && m.run === run && m.mode === 'page')!;
    rows.push(`| ${mib(size)} MiB | ${run} | ${n.mibps.toFixed(1)} | ${p.mibps.toFixed(1)} | ${(p.mibps / n.mibps).toFixed(2)} | ${mib(p.rendererBefore!).toFixed(0)} MiB | ${mib(p.rendererPeak!).toFixed(0)} MiB | +${mib(p.rendererPeak! - p.rendererBefore!).toFixed(0)} MiB | ${mib(p.jsHeapPeak!).toFixed(1)} MiB |`);
  }
}
console.log(rows.join('\n'));
console.log(`load average: start ${started.loadavg.map((l) => l.toFixed(2)).join(' ')}, end ${finished.loadavg.map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} cores); chromium ${chromiumVersion}`);
const out = values.json ?? path.join(repoRoot, 'bench-results', `request-${started.date.replace(/[:.]/g, '-')}.json`);
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({ bench: 'request', started, finished, chromiumVersion, cores: os.cpus().length, batchBytes: BATCH_BYTES, results }, null, 2));
log(`wrote ${out}`);
