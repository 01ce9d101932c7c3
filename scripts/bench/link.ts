// Link page benchmark (issue 17, "Benchmark"): a share link opened in headless Chromium (Debian's /usr/bin/chromium
// through playwright-core, test/helpers/browser.ts flags, a fresh profile), beside a plain download of the same
// ciphertext from the same server by the same browser, in one run.
//   setup    the real server (test/helpers/server.ts: sqlite, fs chunk store, temp data dir, free port), an
//            organisation, its admin, a space; per size one file of deterministic bytes (SplitMix32,
//            test/helpers/det-bytes.ts) cut by FastCDC and encrypted as the CLI does (chunkStream + encryptChunk),
//            uploaded in frames of 64 chunks, committed with a signed manifest, and a link without password.
//   kluis    the link page: /s/<id>#<secret>, "Open", "Download" saved through the File System Access path with
//            showSaveFilePicker stubbed to a writable that only counts bytes (disk speed out of the figure); timed
//            from the click on Download to the card's "done" state (every chunk fetched, decrypted, its id and size
//            checked, the total compared, the writable closed; docs/crypto.md §6 "Verifying a download"). Byte count checked against the file size.
//   plain    the baseline: a page script on the same origin POSTs /access with the link's linkAuth for a token and
//            fetches the link's chunk frames with it, up to 1000 ids per request (the API's most), one request
//            after the other, reading each body stream to the end and discarding it: the same ciphertext bytes,
//            the same server, the same browser, no crypto, no parsing, no saving.
//   batches  the same plain download in the page's own batches (BATCH_IDS / BATCH_BYTES of web/link/download.ts),
//            for reference: what the request shape alone costs.
// Memory, sampled every 100 ms during each download: the RSS (VmRSS, /proc) of every Chromium renderer process
// (the highest one is "renderer RSS") and the sum over the browser's whole process tree; the page's JS heap through
// CDP Runtime.getHeapUsage (usedSize; ArrayBuffer backing stores, where the chunks live, are outside it and show in
// the renderer's RSS). The goal: >= 0.5x plain, and peak memory that does not grow with the file.
// CPU, from /proc per thread (lib/thread-cpu.ts) before and after each download: seconds per GiB of the page's main
// thread, its workers, the rest of the renderer, the network process, the other browser processes and the server
// (kernel part apart). Browser and server share the machine's cores, so when they are all busy the speed ratio
// follows the CPU ratio; on a loaded machine the CPU figures are steadier than the wall-clock ones.
// Prints a table and the load average before and after, writes JSON with --json. Stops exactly the server and the
// browser it started. Not a test.
// --profile adds one link-page download per size under the CDP sampling profiler (not timed in the table) and prints
// where the page's main thread spent it: idle (waiting for the network), WASM (libsodium, when the page decrypts on
// its own thread), GC, and the bundle's own functions (named when built with KLUIS_WEB_NOMINIFY=1 npm run build).
//   npm run build && node --import=tsx scripts/bench/link.ts [--size-mib 256,1024] [--runs 2] [--json out.json] [--profile]
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as k from '@kluis/shared';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { repoRoot, startServer, type RunningServer } from '../../test/helpers/server.js';
import { call, newOrg, newSpace, type User } from '../../test/helpers/api.js';
import { newFile, version } from '../../test/helpers/files.js';
import { DetByteStream } from '../../test/helpers/det-bytes.js';
import { CHROMIUM, launchChromium } from '../../test/helpers/browser.js';
import { cpuBetween, cpuSnapshot } from './lib/thread-cpu.js';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    runs: { type: 'string', default: '2' },
    json: { type: 'string' },
    profile: { type: 'boolean', default: false },
  },
});
const MiB = 1024 * 1024;
const SIZES = values['size-mib'].split(',').map((s) => Number(s.trim())).filter((n) => n > 0).map((n) => Math.round(n * MiB));
if (!SIZES.length) throw new Error('--size-mib: one or more sizes in MiB, comma-separated');
const RUNS = Math.max(1, Number(values.runs));
const PLAIN_IDS = 1000; // LinkChunksRequest's most
// The page's batch sizes, read from its source (web/link/ is built for the browser, not imported here).
const pageSource = readFileSync(path.join(repoRoot, 'web/link/download.ts'), 'utf8');
const pageConst = (name: string) => {
  const m = new RegExp(`export const ${name} = ([0-9 *]+);`).exec(pageSource);
  if (!m) throw new Error(`web/link/download.ts: ${name} not found`);
  return m[1]!.split('*').reduce((n, x) => n * Number(x.trim()), 1);
};
const BATCH_IDS = pageConst('BATCH_IDS');
const BATCH_BYTES = pageConst('BATCH_BYTES');
const log = (s: string) => console.error(s);
const uptime = () => spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();
const mib = (b: number) => b / MiB;

// ------------------------------------------------------------------------------------------------ processes

let srv: RunningServer | undefined;
let browser: Browser | undefined;
let browserPid: number | undefined;
const stopAll = async () => {
  await browser?.close().catch(() => undefined);
  browser = undefined;
  await srv?.stop().catch(() => undefined);
  srv = undefined;
};
process.on('exit', () => {
  // Only our own browser (its pid); the server helper SIGKILLs the servers it started on exit.
  if (browser && browserPid) {
    try {
      process.kill(browserPid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping the browser and the server`);
    void stopAll().finally(() => process.exit(130));
  });
}

// ------------------------------------------------------------------------------------------------ memory sampling

interface ProcInfo { pid: number; ppid: number; type: string; rss: number }

/** Chromium's process tree under `root` (the browser process), each with its --type and VmRSS. */
function chromiumTree(root: number): ProcInfo[] {
  const all: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8');
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
      all.push({ pid: Number(name), ppid, type: '', rss });
    } catch {
      // gone meanwhile
    }
  }
  const children = new Map<number, ProcInfo[]>();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const out: ProcInfo[] = [];
  const self = all.find((p) => p.pid === root);
  const queue = self ? [self] : [];
  while (queue.length) {
    const p = queue.shift()!;
    try {
      const cmd = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8');
      p.type = /--type=([a-z-]+)/.exec(cmd)?.[1] ?? 'browser';
      if (p.type === 'utility' && cmd.includes('NetworkService')) p.type = 'network';
    } catch {
      continue;
    }
    out.push(p);
    queue.push(...(children.get(p.pid) ?? []));
  }
  return out;
}

interface MemPeaks {
  rendererRss: number;
  networkRss: number;
  treeRss: number;
  jsHeapUsed: number;
  jsHeapTotal: number;
  /** ArrayBuffer backing stores, when this Chromium reports them (Runtime.getHeapUsage backingStorageSize). */
  backingStore: number | null;
  samples: number;
  /** The highest renderer RSS in each quarter of the download: flat means bounded, rising means it grows. */
  rendererRssByQuarter: number[];
}

/** Samples every 100 ms until stopped; returns the peaks. */
function sampleMemory(cdp: CDPSession): { stop: () => Promise<MemPeaks> } {
  const peaks: MemPeaks = { rendererRss: 0, networkRss: 0, treeRss: 0, jsHeapUsed: 0, jsHeapTotal: 0, backingStore: null, samples: 0, rendererRssByQuarter: [] };
  const timeline: [number, number][] = [];
  const t0 = performance.now();
  let running = true;
  const procs = (async () => {
    while (running) {
      if (browserPid) {
        const tree = chromiumTree(browserPid);
        const renderer = Math.max(0, ...tree.filter((p) => p.type === 'renderer').map((p) => p.rss));
        timeline.push([performance.now() - t0, renderer]);
        for (const p of tree) {
          if (p.type === 'renderer') peaks.rendererRss = Math.max(peaks.rendererRss, p.rss);
          if (p.type === 'network') peaks.networkRss = Math.max(peaks.networkRss, p.rss);
        }
        peaks.treeRss = Math.max(peaks.treeRss, tree.reduce((n, p) => n + p.rss, 0));
        peaks.samples++;
      }
      await sleep(100);
    }
  })();
  const heap = (async () => {
    while (running) {
      try {
        const h = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number; totalSize: number; backingStorageSize?: number };
        peaks.jsHeapUsed = Math.max(peaks.jsHeapUsed, h.usedSize);
        peaks.jsHeapTotal = Math.max(peaks.jsHeapTotal, h.totalSize);
        if (typeof h.backingStorageSize === 'number') peaks.backingStore = Math.max(peaks.backingStore ?? 0, h.backingStorageSize);
      } catch {
        // the page navigated or closed
      }
      await sleep(100);
    }
  })();
  return {
    async stop() {
      running = false;
      await Promise.all([procs, heap]);
      const end = performance.now() - t0;
      peaks.rendererRssByQuarter = [0, 1, 2, 3].map((q) => Math.max(0, ...timeline.filter(([t]) => t >= (q * end) / 4 && t < ((q + 1) * end) / 4).map(([, r]) => r)));
      return peaks;
    },
  };
}

/** The browser process playwright-core spawned from this process: our child running CHROMIUM, with no --type. */
function ownChromium(): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))?.[1]);
      if (ppid !== process.pid) continue;
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (!argv.some((a) => a.startsWith('--type=')) && /chrom/.test(argv[0] ?? '')) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds by group (page main thread, page workers, rest of the renderer, network process, other browser processes, server). */
function cpuNow() {
  const procs = [...(browserPid ? chromiumTree(browserPid).map((p) => ({ pid: p.pid, label: p.type })) : []), ...(srv?.proc.pid ? [{ pid: srv.proc.pid, label: 'server' }] : [])];
  return cpuSnapshot(procs, (label, thread, main) => label === 'renderer'
    ? (main ? 'page main' : /DedicatedWorker/.test(thread) ? 'page workers' : 'renderer other')
    : label === 'network' || label === 'server' ? label : 'browser other');
}
const CPU_GROUPS = ['page main', 'page workers', 'renderer other', 'network', 'browser other', 'server'];

// ------------------------------------------------------------------------------------------------ setup

interface BenchLink { size: number; linkId: string; secret: string; url: string; chunks: [string, number][]; ciphertextBytes: number; framedBytes: number }

async function uploadFrames(owner: User, spaceId: string, batch: k.ChunkFrame[]): Promise<void> {
  const res = await fetch(`${srv!.url}/api/v1/spaces/${spaceId}/chunks/upload`, {
    method: 'POST', headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/octet-stream' }, body: k.encodeFrames(batch),
  });
  if (res.status !== 201) throw new Error(`upload: HTTP ${res.status} ${await res.text()}`);
}

/** One file of `size` deterministic bytes, chunked and encrypted like the CLI, uploaded, committed; a link to it. */
async function makeLink(owner: User, space: { spaceId: string; pair: k.SpaceKeyPair }, size: number): Promise<BenchLink> {
  const f = newFile();
  const det = new DetByteStream(0x6b6c7569 ^ size);
  async function* pieces() {
    for (let at = 0; at < size; at += MiB) yield det.fill(new Uint8Array(Math.min(MiB, size - at)));
  }
  const hasher = new k.ContentHasher();
  const chunks: [string, number][] = [];
  let batch: k.ChunkFrame[] = [];
  let ciphertextBytes = 0;
  let framedBytes = 0;
  for await (const plain of k.chunkStream(pieces())) {
    hasher.update(plain);
    const c = k.encryptChunk(f.sub, plain);
    chunks.push([c.id, plain.length]);
    ciphertextBytes += c.ciphertext.length;
    framedBytes += 36 + c.ciphertext.length;
    batch.push({ id: c.id, ciphertext: c.ciphertext });
    if (batch.length === 64) {
      await uploadFrames(owner, space.spaceId, batch);
      batch = [];
    }
  }
  if (batch.length) await uploadFrames(owner, space.spaceId, batch);
  const v = version(owner, space.spaceId, space.pair, 1, f, { parent: null, path: `Bench/archief-${mib(size)}MiB.bin`, chunks, hash: hasher.digest() });
  const commit = await call(srv!.url, 'POST', `/api/v1/spaces/${space.spaceId}/commits`, { token: owner.token, json: { versions: [v.entry] } });
  if (commit.status !== 201) throw new Error(`commit: HTTP ${commit.status} ${JSON.stringify(commit.body)}`);
  const linkId = k.newId();
  const secret = k.newLinkSecret();
  const keys = k.deriveLinkKeys(secret, null);
  const res = await call(srv!.url, 'POST', `/api/v1/spaces/${space.spaceId}/links`, {
    token: owner.token,
    json: {
      linkId, fileId: f.fileId, versionId: v.versionId, kdf: null, authHash: k.linkAuthHash(keys.linkAuth),
      wrapped: k.toBase64Url(k.wrapFileKeyForLink(f.fileKey, linkId, keys)), expiresAt: Date.now() + 86_400_000,
      maxDownloads: null, purpose: 'benchmark',
    },
  });
  if (res.status !== 201) throw new Error(`link: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return { size, linkId, secret, url: `${srv!.url}/s/${linkId}#${secret}`, chunks, ciphertextBytes, framedBytes };
}

// ------------------------------------------------------------------------------------------------ the measurements

interface Measurement { mode: 'kluis' | 'plain' | 'batches'; size: number; run: number; seconds: number; mibps: number; bytes: number; requests?: number; mem: MemPeaks; cpu: Record<string, number> }

const COUNTING_PICKER = `
  globalThis.__benchBytes = 0;
  globalThis.__benchClosed = false;
  globalThis.showSaveFilePicker = async () => ({
    createWritable: async () => ({
      write: async (bytes) => { globalThis.__benchBytes += bytes.byteLength; },
      close: async () => { globalThis.__benchClosed = true; },
      abort: async () => undefined,
    }),
    remove: async () => undefined,
  });
`;

/** A fresh context (its own renderer) whose showSaveFilePicker hands out a writable that only counts bytes. */
async function countingContext(b: Browser): Promise<{ context: BrowserContext; page: Page; cdp: CDPSession }> {
  const context = await b.newContext({ locale: 'en-GB', viewport: { width: 900, height: 720 } });
  // A string, not a function: tsx (esbuild keepNames) would wrap the inner functions in a helper the page lacks.
  await context.addInitScript(COUNTING_PICKER);
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  return { context, page, cdp };
}

async function kluisRun(link: BenchLink, run: number, profile = false): Promise<Measurement & { profile?: ProfileSplit }> {
  const { context, page, cdp } = await countingContext(browser!);
  try {
    await page.goto(link.url);
    await page.locator('#card[data-state="locked"]').waitFor({ timeout: 60_000 });
    await page.click('#open');
    await page.locator('#card[data-state="ready"]').waitFor({ timeout: 60_000 });
    if (profile) {
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: 1000 });
      await cdp.send('Profiler.start');
    }
    const sampler = sampleMemory(cdp);
    const cpu0 = cpuNow();
    const t0 = performance.now();
    await page.click('#download');
    await page.locator('#card[data-state="done"], #card[data-state^="error"]').waitFor({ timeout: 30 * 60_000 });
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuBetween(cpu0, cpuNow());
    const mem = await sampler.stop();
    const split = profile ? profileSplit(((await cdp.send('Profiler.stop')) as { profile: CpuProfile }).profile) : undefined;
    const state = await page.getAttribute('#card', 'data-state');
    if (state !== 'done') throw new Error(`the link page ended in ${state}`);
    const got = await page.evaluate(() => {
      const w = globalThis as any; // eslint-disable-line @typescript-eslint/no-explicit-any
      return { bytes: w.__benchBytes as number, closed: w.__benchClosed as boolean, sink: w.document.body.dataset.sink as string };
    });
    if (got.bytes !== link.size || !got.closed || got.sink !== 'fs-access') throw new Error(`saved ${got.bytes} of ${link.size} bytes (closed ${got.closed}, sink ${got.sink})`);
    return { mode: 'kluis', size: link.size, run, seconds, mibps: mib(link.size) / seconds, bytes: got.bytes, mem, cpu, ...(split ? { profile: split } : {}) };
  } finally {
    await context.close();
  }
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}
interface ProfileSplit { totalMs: number; byCategory: Record<string, number>; topFunctions: [string, number][] }

/** Self time of the sampled main thread by category and by function (ms). */
function profileSplit(p: CpuProfile): ProfileSplit {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const byCategory: Record<string, number> = {};
  const byFn = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const ms = (p.timeDeltas[i] ?? 0) / 1000;
    const f = byId.get(id)?.callFrame ?? { functionName: '?', url: '' };
    const cat = f.functionName === '(idle)' ? 'idle (waiting: network, writable)'
      : f.functionName === '(garbage collector)' ? 'garbage collector'
        : f.functionName === '(program)' ? 'browser (program: rendering, IPC, fetch plumbing)'
          : f.url.startsWith('wasm://') || /^\$?(wasm-function|func)/.test(f.functionName) ? 'WASM (libsodium)'
            : f.url.includes('/s/assets/') ? 'page JS (bundle)'
              : 'other JS / builtins';
    byCategory[cat] = (byCategory[cat] ?? 0) + ms;
    const fn = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\//, '')}`.trim();
    byFn.set(fn, (byFn.get(fn) ?? 0) + ms);
    total += ms;
  });
  return { totalMs: total, byCategory, topFunctions: [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 12) };
}

/** Batches of ids in file order: at most `maxIds` distinct ids and (past the first) `maxBytes` plaintext bytes. */
function batches(chunks: [string, number][], maxIds: number, maxBytes: number): string[][] {
  const out: string[][] = [];
  let ids = new Set<string>();
  let bytes = 0;
  for (const [id, size] of chunks) {
    if (!ids.has(id) && (ids.size >= maxIds || (bytes > 0 && bytes + size > maxBytes))) {
      out.push([...ids]);
      ids = new Set();
      bytes = 0;
    }
    ids.add(id);
    bytes += size;
  }
  if (ids.size) out.push([...ids]);
  return out;
}

async function plainRun(link: BenchLink, run: number, mode: 'plain' | 'batches'): Promise<Measurement> {
  const { context, page, cdp } = await countingContext(browser!);
  try {
    // The page's own origin, without a fragment: the link page shows "incomplete" and asks the server nothing.
    await page.goto(`${srv!.url}/s/${link.linkId}`);
    await page.locator('#card[data-state="error-missing"]').waitFor({ timeout: 60_000 });
    const groups = mode === 'plain' ? batches(link.chunks, PLAIN_IDS, Number.MAX_SAFE_INTEGER) : batches(link.chunks, BATCH_IDS, BATCH_BYTES);
    const auth = k.toBase64Url(k.deriveLinkKeys(link.secret, null).linkAuth);
    const sampler = sampleMemory(cdp);
    const cpu0 = cpuNow();
    const t0 = performance.now();
    const got = await page.evaluate(async ({ linkId, auth, groups }) => {
      const base = `/api/v1/public/links/${linkId}`;
      const opts = { credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' } as const;
      const acc = await fetch(`${base}/access`, { ...opts, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ auth }) });
      if (!acc.ok) throw new Error(`access: HTTP ${acc.status}`);
      const { token } = (await acc.json()) as { token: string };
      let bytes = 0;
      for (const ids of groups) {
        const res = await fetch(`${base}/chunks`, { ...opts, method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ ids }) });
        if (!res.ok || !res.body) throw new Error(`chunks: HTTP ${res.status}`);
        const reader = res.body.getReader();
        for (;;) {
          const step = await reader.read();
          if (step.done) break;
          bytes += step.value.byteLength;
        }
      }
      return bytes;
    }, { linkId: link.linkId, auth, groups });
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuBetween(cpu0, cpuNow());
    const mem = await sampler.stop();
    if (got !== link.framedBytes) throw new Error(`plain download got ${got} of ${link.framedBytes} framed bytes`);
    // MiB/s of the file's size, like the link page's figure (the framed ciphertext is 0.01 % larger).
    return { mode, size: link.size, run, seconds, mibps: mib(link.size) / seconds, bytes: got, requests: groups.length, mem, cpu };
  } finally {
    await context.close();
  }
}

// ------------------------------------------------------------------------------------------------ main

const started = { date: new Date().toISOString(), uptime: uptime(), loadavg: os.loadavg() };
log(`link bench: sizes ${SIZES.map((s) => `${mib(s)} MiB`).join(', ')}, ${RUNS} run(s) each; load at start: ${started.uptime}`);
const results: Measurement[] = [];
const profiles: { size: number; seconds: number; split: ProfileSplit }[] = [];
const links: Omit<BenchLink, 'chunks' | 'secret' | 'url'>[] = [];
let chromiumVersion = '';
try {
  await k.initCrypto();
  srv = await startServer();
  log(`server ${srv.url} (pid ${srv.proc.pid}, data ${srv.dataDir})`);
  const owner = (await newOrg(srv.url, srv.dataDir, 'Bench OCMW')).admin;
  const space = await newSpace(srv.url, owner, 'Bench');
  if (space.res.status !== 201) throw new Error(`space: HTTP ${space.res.status}`);
  browser = await launchChromium();
  browserPid = ownChromium();
  if (!browserPid) throw new Error('cannot find the Chromium process this bench started');
  chromiumVersion = browser.version();
  log(`chromium ${chromiumVersion} (${CHROMIUM}, pid ${browserPid})`);

  for (const size of SIZES) {
    const t0 = performance.now();
    const link = await makeLink(owner, space, size);
    links.push({ size, linkId: link.linkId, ciphertextBytes: link.ciphertextBytes, framedBytes: link.framedBytes });
    log(`${mib(size)} MiB: ${link.chunks.length} chunks (avg ${(size / link.chunks.length / 1024).toFixed(0)} KiB), uploaded and linked in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    for (let run = 1; run <= RUNS; run++) {
      // Alternate the order so that a drift in the machine's load does not favour one side.
      const order: Measurement['mode'][] = run % 2 ? ['plain', 'kluis', 'batches'] : ['kluis', 'plain', 'batches'];
      const perGiB = (seconds = 0) => ((seconds * 1024) / mib(size)).toFixed(1);
      for (const mode of order) {
        const m = mode === 'kluis' ? await kluisRun(link, run) : await plainRun(link, run, mode);
        results.push(m);
        log(`  run ${run} ${mode.padEnd(7)} ${m.seconds.toFixed(2).padStart(7)} s ${m.mibps.toFixed(1).padStart(7)} MiB/s  renderer ${mib(m.mem.rendererRss).toFixed(0)} MiB, tree ${mib(m.mem.treeRss).toFixed(0)} MiB, JS heap ${mib(m.mem.jsHeapUsed).toFixed(1)} MiB${m.mem.backingStore !== null ? `, ArrayBuffers ${mib(m.mem.backingStore).toFixed(0)} MiB` : ''}, renderer by quarter ${m.mem.rendererRssByQuarter.map((r) => mib(r).toFixed(0)).join('/')} MiB (${m.mem.samples} samples)  load ${os.loadavg()[0]!.toFixed(2)}`);
        log(`        CPU s per GiB: ${CPU_GROUPS.map((g) => `${g} ${perGiB(m.cpu[g])} (kernel ${perGiB(m.cpu[`${g} (kernel)`])})`).join(', ')}; all ${perGiB(CPU_GROUPS.reduce((a, g) => a + (m.cpu[g] ?? 0), 0))} over ${((m.seconds * 1024) / mib(size)).toFixed(1)} s of wall`);
      }
    }
    if (values.profile) {
      const p = await kluisRun(link, 0, true);
      profiles.push({ size, seconds: p.seconds, split: p.profile! });
      log(`  profiled ${mib(size)} MiB (${p.mibps.toFixed(1)} MiB/s under the profiler):`);
      for (const [cat, ms] of Object.entries(p.profile!.byCategory).sort((a, b) => b[1] - a[1])) log(`    ${(ms / 1000).toFixed(2).padStart(7)} s ${((ms / p.profile!.totalMs) * 100).toFixed(0).padStart(3)} %  ${cat}`);
      log('    top functions (self time):');
      for (const [fn, ms] of p.profile!.topFunctions) log(`    ${(ms / 1000).toFixed(2).padStart(7)} s  ${fn}`);
    }
  }
} finally {
  await stopAll();
}
const finished = { date: new Date().toISOString(), uptime: uptime(), loadavg: os.loadavg() };

// ------------------------------------------------------------------------------------------------ the table

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};
const of = (size: number, mode: Measurement['mode']) => results.filter((r) => r.size === size && r.mode === mode);
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
const cpuPerGiB = (m: Measurement, group?: string) => ((group ? (m.cpu[group] ?? 0) : CPU_GROUPS.reduce((a, g) => a + (m.cpu[g] ?? 0), 0)) * 1024) / mib(m.size);
const summary = SIZES.map((size) => {
  const kl = of(size, 'kluis');
  const pl = of(size, 'plain');
  const ba = of(size, 'batches');
  const kluis = median(kl.map((r) => r.mibps));
  const plain = median(pl.map((r) => r.mibps));
  const max = (rs: Measurement[], f: (m: MemPeaks) => number) => Math.max(...rs.map((r) => f(r.mem)));
  return {
    sizeMiB: mib(size), runs: kl.length, kluisMiBs: kluis, plainMiBs: plain, batchesMiBs: median(ba.map((r) => r.mibps)), ratio: kluis / plain,
    kluisRendererRssMiB: mib(max(kl, (m) => m.rendererRss)), plainRendererRssMiB: mib(max(pl, (m) => m.rendererRss)),
    kluisJsHeapMiB: mib(max(kl, (m) => m.jsHeapUsed)), kluisTreeRssMiB: mib(max(kl, (m) => m.treeRss)), plainTreeRssMiB: mib(max(pl, (m) => m.treeRss)),
    kluisNetworkRssMiB: mib(max(kl, (m) => m.networkRss)),
    // CPU seconds per GiB over every part of both sides (browser and server): on 2 shared cores the ratio follows these.
    kluisCpuPerGiB: median(kl.map((r) => cpuPerGiB(r))), plainCpuPerGiB: median(pl.map((r) => cpuPerGiB(r))),
    kluisPageMainCpuPerGiB: median(kl.map((r) => cpuPerGiB(r, 'page main'))), kluisWorkersCpuPerGiB: median(kl.map((r) => cpuPerGiB(r, 'page workers'))),
  };
});
console.log([
  '| file | Kluis link page MiB/s | plain MiB/s | ratio | page batches MiB/s | Kluis peak renderer RSS MiB | plain peak renderer RSS MiB | Kluis peak JS heap MiB | Kluis peak browser tree RSS MiB | Kluis CPU s/GiB (page main, workers) | plain CPU s/GiB | CPU ratio |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...summary.map((s) => `| ${s.sizeMiB} MiB | ${f1(s.kluisMiBs)} | ${f1(s.plainMiBs)} | ${s.ratio.toFixed(2)} | ${f1(s.batchesMiBs)} | ${f0(s.kluisRendererRssMiB)} | ${f0(s.plainRendererRssMiB)} | ${f1(s.kluisJsHeapMiB)} | ${f0(s.kluisTreeRssMiB)} | ${f1(s.kluisCpuPerGiB)} (${f1(s.kluisPageMainCpuPerGiB)}, ${f1(s.kluisWorkersCpuPerGiB)}) | ${f1(s.plainCpuPerGiB)} | ${(s.plainCpuPerGiB / s.kluisCpuPerGiB).toFixed(2)} |`),
].join('\n'));
console.log(`(MiB/s and CPU: median of ${RUNS} run(s), MiB of the file; CPU: seconds of every thread of the browser and the server per GiB, CPU ratio = plain / Kluis; memory: the highest peak over the runs. plain = the link's chunk frames fetched with its token, ${PLAIN_IDS} ids per request, bodies read to the end and dropped; page batches = the same in the page's batches of ${BATCH_IDS} ids / ${mib(BATCH_BYTES)} MiB)`);
const speedMet = summary.every((s) => s.ratio >= 0.5);
let memoryNote = 'one size only: run two sizes to see whether memory grows';
let memoryMet: boolean | null = null;
if (summary.length >= 2) {
  const lo = summary[0]!;
  const hi = summary[summary.length - 1]!;
  const grew = hi.kluisRendererRssMiB - lo.kluisRendererRssMiB;
  const grewHeap = hi.kluisJsHeapMiB - lo.kluisJsHeapMiB;
  // "Does not grow with the file": the extra file bytes must not show up in the renderer (allow noise of 64 MiB
  // or a tenth of the extra bytes, whichever is more).
  memoryMet = grew < Math.max(64, (hi.sizeMiB - lo.sizeMiB) / 10);
  memoryNote = `renderer peak ${f0(lo.kluisRendererRssMiB)} MiB at ${lo.sizeMiB} MiB, ${f0(hi.kluisRendererRssMiB)} MiB at ${hi.sizeMiB} MiB (${grew >= 0 ? '+' : ''}${f0(grew)} MiB for +${hi.sizeMiB - lo.sizeMiB} MiB of file); JS heap ${grewHeap >= 0 ? '+' : ''}${f1(grewHeap)} MiB`;
}
console.log(`\ngoal >= 0.5x plain: ${speedMet ? 'met' : 'MISSED'} (${summary.map((s) => `${s.sizeMiB} MiB ${s.ratio.toFixed(2)}x`).join(', ')})`);
console.log(`goal memory does not grow with the file: ${memoryMet === null ? 'n/a' : memoryMet ? 'met' : 'MISSED'}: ${memoryNote}`);
console.log(`\nload: start ${started.uptime}\n      end   ${finished.uptime}`);

if (values.json) {
  writeFileSync(values.json, JSON.stringify({
    bench: 'link', started, finished, node: process.version, chromium: chromiumVersion, chromiumPath: CHROMIUM, cpus: os.cpus().length, cpu: os.cpus()[0]?.model,
    runs: RUNS, sizes: SIZES, pageBatch: { ids: BATCH_IDS, bytes: BATCH_BYTES }, plainIdsPerRequest: PLAIN_IDS,
    baseline: `plain: POST /api/v1/public/links/:id/access for a token, then POST .../chunks with ${PLAIN_IDS} ids per request, sequential, body streams read to the end and discarded, in a page script on the same origin of the same browser`,
    links, summary, goal: { speedMet, memoryMet, memoryNote }, measurements: results, profiles,
  }, null, 2) + '\n');
  console.log(`wrote ${values.json}`);
}
