// Helpers for the server-level retention / shutdown / crash suites: chunk transfer over HTTP (framed batches,
// slow streamed bodies that can be cut at a byte offset), and an inspection of a server's data directory that reads
// the sqlite tables and the blob directory DIRECTLY (not through the server), so a broken server cannot hide its
// own mistakes.
import { createHash } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import * as k from '@kluis/shared';
import type { Db } from '../../server/dist/db/db.js';
import { openFsBlobStore } from '../../server/dist/blobstore/fs.js';
import { orgStorageName, type BlobStore } from '../../server/dist/blobstore/index.js';
import { drained } from '../../desktop/dist/api/http-transport.js';
import { checkIndex } from './chunkstore-fixture.js';
import { openServerDb, repoRoot } from './server.js';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Seeded PRNG (mulberry32): the seed goes into the test log, so a failing run can be repeated. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** POSTs a framed batch; resolves with the status and JSON body. */
export async function uploadBatch(base: string, token: string, spaceId: string, frames: k.ChunkFrame[]): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(`${base}/api/v1/spaces/${spaceId}/chunks/upload`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body: k.encodeFrames(frames) });
  return { status: res.status, body: await res.json() };
}

/** Downloads `ids` (in batches of 5,000) and returns id -> ciphertext; throws on any non-200 answer. */
export async function downloadAll(base: string, token: string, spaceId: string, ids: string[]): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (let i = 0; i < ids.length; i += 5000) {
    const part = ids.slice(i, i + 5000);
    const res = await fetch(`${base}/api/v1/spaces/${spaceId}/chunks/download`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ ids: part }) });
    const body = new Uint8Array(await res.arrayBuffer());
    if (res.status !== 200) throw new Error(`download: ${res.status} ${new TextDecoder().decode(body).slice(0, 500)}`);
    for (const f of k.decodeFrames(body)) out.set(f.id, f.ciphertext);
  }
  return out;
}

export interface SlowRequest {
  /** Resolves with the answer, or rejects when the connection breaks first. */
  response: Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>;
  /** Bytes handed to the socket so far. */
  sent(): number;
  /** Resolves once `n` bytes were handed to the socket (or the request failed). */
  reached(n: number): Promise<void>;
  /** Holds the body at the next piece boundary until `resume()`. */
  pause(): void;
  resume(): void;
  /** The whole body was handed over. */
  finished: Promise<void>;
}

/**
 * Sends `body` in `pieceBytes` pieces with `pauseMs` between them (a slow client), with its Content-Length, on
 * a keep-alive agent like the desktop client's.
 */
export function slowRequest(url: string, options: { method: string; headers: Record<string, string>; body: Uint8Array; pieceBytes: number; pauseMs: number; agent?: http.Agent }): SlowRequest {
  const agent = options.agent ?? new http.Agent({ keepAlive: true });
  let sent = 0;
  let paused = false;
  let wake: (() => void) | null = null;
  const waiters: { n: number; resolve: () => void }[] = [];
  const notify = (all = false) => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (all || sent >= waiters[i]!.n) {
        waiters[i]!.resolve();
        waiters.splice(i, 1);
      }
    }
  };
  const req = http.request(url, { method: options.method, agent, headers: { ...options.headers, 'content-length': String(options.body.length) } });
  const response = new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => (text += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', (err) => {
      notify(true);
      reject(err);
    });
  });
  response.catch(() => {}); // the caller decides whether a failure matters
  const finished = (async () => {
    let at = 0;
    while (at < options.body.length) {
      while (paused) await new Promise<void>((resolve) => (wake = resolve));
      if (req.destroyed) return;
      const piece = options.body.subarray(at, Math.min(options.body.length, at + options.pieceBytes));
      const ok = req.write(piece);
      at += piece.length;
      sent = at;
      notify();
      if (!ok) await drained(req);
      if (options.pauseMs > 0 && at < options.body.length) await sleep(options.pauseMs);
    }
    req.end();
  })();
  finished.catch(() => {});
  return {
    response,
    sent: () => sent,
    reached: (n) => (sent >= n || req.destroyed ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
      wake?.();
      wake = null;
    },
    finished,
  };
}

/** Runs kluis-admin on a data directory, as a child the caller may kill. */
export function spawnAdmin(dataDir: string, args: string[], env: Record<string, string> = {}): { proc: ChildProcess; done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> } {
  const proc = spawn(process.execPath, [path.join(repoRoot, 'server/dist/admin/cli.js'), ...args], {
    env: { PATH: process.env.PATH ?? '', KLUIS_DATA_DIR: dataDir, KLUIS_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  adminChildren.add(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => proc.on('exit', (code, signal) => {
    adminChildren.delete(proc);
    // Let the pipes drain.
    setImmediate(() => resolve({ code, signal, stdout, stderr }));
  }));
  return { proc, done };
}
const adminChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of adminChildren) p.kill('SIGKILL');
});

/** Opens a data directory's database (no migration) read-write, for inspection and for moving times back. */
export function openDataDb(dataDir: string): Promise<Db> {
  return openServerDb(dataDir); // the sqlite file, or the server's PostgreSQL database (helpers/server.ts)
}

export interface StoreReport {
  problems: string[];
  /** chunk rows: space -> id -> live */
  chunks: Map<string, Map<string, boolean>>;
  packs: number;
  /** `@tmp-*` files of interrupted fs writes (garbage that no row references). */
  tempFiles: number;
}

/**
 * Checks the index of every space against its objects (see checkIndex in chunkstore-fixture.ts: a row pointing at
 * a missing object or beyond its end, a standalone object of the wrong size, dead_bytes that do not add up, retired
 * packs left, and with `orphans` objects no row references). With the fs store it also stats every object the
 * index names straight on disk (`<blobs>/<org>/spaces/<space>/packs/<pack>@`): a partial pack cannot hide there.
 * Pass `blobs` for another store (the S3 one); by default the data dir's fs store is used.
 */
export async function inspectStore(dataDir: string, options: { orphans?: boolean; blobs?: BlobStore } = {}): Promise<StoreReport> {
  const db = await openDataDb(dataDir);
  const blobs = options.blobs ?? (await openFsBlobStore({ root: path.join(dataDir, 'blobs') }));
  const report: StoreReport = { problems: [], chunks: new Map(), packs: 0, tempFiles: 0 };
  try {
    const spaces = (await db('spaces').select('id', 'org_id')) as { id: string; org_id: string }[];
    for (const s of spaces) {
      for (const p of await checkIndex(db, blobs.forOrg(s.org_id), s.id, { orphans: options.orphans })) report.problems.push(`space ${s.id}: ${p}`);
      const rows = (await db('chunks').where({ space_id: s.id }).select('id', 'live', 'pack_id', 'length')) as { id: string; live: number | boolean; pack_id: string | null; length: number }[];
      report.chunks.set(s.id, new Map(rows.map((r) => [r.id, Boolean(r.live)])));
      const packs = (await db('packs').where({ space_id: s.id }).select('id', 'size', 'state')) as { id: string; size: number; state: string }[];
      report.packs += packs.length;
      if (options.blobs) continue;
      const dir = path.join(dataDir, 'blobs', orgStorageName(s.org_id), 'spaces', s.id);
      const sizeOf = async (file: string) => stat(file).then((st) => st.size, () => -1);
      const packSize = new Map(packs.map((p) => [p.id, Number(p.size)]));
      const onDisk = new Map<string, number>();
      for (const p of packs) onDisk.set(p.id, await sizeOf(path.join(dir, 'packs', `${p.id}@`)));
      for (const r of rows) {
        if (r.pack_id === null) {
          const size = await sizeOf(path.join(dir, 'chunks', `${r.id}@`));
          if (size !== Number(r.length)) report.problems.push(`space ${s.id}: chunk ${r.id}: file on disk has ${size} bytes, row says ${r.length}`);
        } else if (onDisk.get(r.pack_id) !== packSize.get(r.pack_id)) {
          report.problems.push(`space ${s.id}: chunk ${r.id}: pack file ${r.pack_id} on disk has ${onDisk.get(r.pack_id)} bytes, row says ${packSize.get(r.pack_id)}`);
        }
      }
      for (const sub of ['packs', 'chunks']) {
        const names = await readdir(path.join(dir, sub)).catch(() => [] as string[]);
        report.tempFiles += names.filter((n) => n.startsWith('@tmp-')).length;
      }
    }
  } finally {
    await db.destroy();
    if (!options.blobs) await blobs.close();
  }
  return report;
}
