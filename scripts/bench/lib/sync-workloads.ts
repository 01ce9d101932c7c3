// Workloads of scripts/bench/sync.ts, generated once into a folder with deterministic bytes (an AES-256-CTR key
// stream under a key derived from a tag: fast, incompressible, the same on every run and machine), streamed to disk
// in 4 MiB pieces so no workload is ever held in memory. Every generated file gets an mtime a minute in the past:
// `kluis sync --once` waits for files modified within the last second ("settling"), and so would a user's files.
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, utimesSync, writeSync } from 'node:fs';
import path from 'node:path';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** An endless deterministic byte stream: `take(n)` returns the next n bytes. */
export class DetStream {
  private readonly cipher;
  private readonly zeros = Buffer.alloc(4 * MiB);
  constructor(tag: string) {
    const key = createHash('sha256').update(`kluis-bench-sync:${tag}`).digest();
    this.cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  }
  take(n: number): Buffer {
    if (n <= this.zeros.length) return this.cipher.update(this.zeros.subarray(0, n));
    return Buffer.concat(Array.from({ length: Math.ceil(n / this.zeros.length) }, (_, i) => this.take(Math.min(this.zeros.length, n - i * this.zeros.length))));
  }
}

const past = () => (Date.now() - 60_000) / 1000;

/** Writes `size` bytes of `stream` to `file` (parents created), 4 MiB at a time. */
export function writeStreamed(file: string, size: number, stream: DetStream): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const fd = openSync(file, 'w');
  try {
    for (let done = 0; done < size;) {
      const piece = stream.take(Math.min(4 * MiB, size - done));
      writeSync(fd, piece);
      done += piece.length;
    }
  } finally {
    closeSync(fd);
  }
  const t = past();
  utimesSync(file, t, t);
}

export interface FileSpec {
  /** POSIX path relative to the workload folder */
  rel: string;
  size: number;
}

export interface Workload {
  name: string;
  dir: string;
  files: FileSpec[];
  bytes: number;
  what: string;
}

export function generate(name: string, dir: string, files: FileSpec[], what: string): Workload {
  const stream = new DetStream(name);
  for (const f of files) writeStreamed(path.join(dir, ...f.rel.split('/')), f.size, stream);
  return { name, dir, files, bytes: files.reduce((s, f) => s + f.size, 0), what };
}

/** One file of `size` bytes (W1, and the 4 GiB file). */
export const singleFile = (name: string, size: number): FileSpec[] => [{ rel: name, size }];

/** `count` files of `size` bytes spread evenly over `folders` folders (W2, and the 100k tiny files). */
export function manyFiles(count: number, size: number, folders: number, ext = 'bin'): FileSpec[] {
  const width = String(folders - 1).length;
  return Array.from({ length: count }, (_, i) => ({ rel: `d${String(i % folders).padStart(width, '0')}/f${String(i).padStart(6, '0')}.${ext}`, size }));
}

/**
 * W4, "like an office share": sizes drawn log-uniformly within classes of typical office files (by count), then all
 * multiplied by one factor so that they add up to exactly `total` bytes (the largest file takes the rounding):
 *   40% 1–64 KiB     notes, mails, small spreadsheets (.txt .eml .csv)
 *   30% 64–512 KiB   letters, reports, spreadsheets (.docx .xlsx .odt)
 *   23% 0.5–2 MiB    PDFs, presentations (.pdf .pptx)
 *    6% 2–6 MiB      scans, photos (.jpg .tif)
 *    1% 8–32 MiB     recordings, big scans, archives (.mp4 .zip)
 * (before scaling about 1.4 GB for 2,000 files; the factor is ~0.73). Spread over 5 departments x 10 case folders.
 * Content is incompressible, as most office formats (zip containers, PDFs, JPEGs) nearly are.
 */
export const OFFICE_MIX = [
  { share: 0.4, min: 1 * KiB, max: 64 * KiB, exts: ['txt', 'eml', 'csv'] },
  { share: 0.3, min: 64 * KiB, max: 512 * KiB, exts: ['docx', 'xlsx', 'odt'] },
  { share: 0.23, min: 512 * KiB, max: 2 * MiB, exts: ['pdf', 'pptx'] },
  { share: 0.06, min: 2 * MiB, max: 6 * MiB, exts: ['jpg', 'tif'] },
  { share: 0.01, min: 8 * MiB, max: 32 * MiB, exts: ['mp4', 'zip'] },
];

export function officeMix(count: number, total: number): FileSpec[] {
  // mulberry32: a small deterministic PRNG for the sizes
  let a = 0x0ff1ce;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const raw: { cls: number; size: number }[] = [];
  OFFICE_MIX.forEach((c, cls) => {
    const n = cls === OFFICE_MIX.length - 1 ? count - raw.length : Math.round(c.share * count);
    for (let i = 0; i < n; i++) raw.push({ cls, size: Math.exp(Math.log(c.min) + rnd() * (Math.log(c.max) - Math.log(c.min))) });
  });
  const factor = total / raw.reduce((s, f) => s + f.size, 0);
  const sizes = raw.map((f) => Math.max(1, Math.floor(f.size * factor)));
  const largest = sizes.indexOf(Math.max(...sizes));
  sizes[largest]! += total - sizes.reduce((s, x) => s + x, 0);
  // shuffle the order (deterministically) so classes are mixed across folders
  const order = raw.map((_, i) => i).sort((x, y) => ((x * 2654435761) >>> 0) % 1000003 - ((y * 2654435761) >>> 0) % 1000003);
  return order.map((i, n) => {
    const c = OFFICE_MIX[raw[i]!.cls]!;
    return { rel: `afdeling-${n % 5}/dossier-${Math.floor(n / 5) % 10}/doc-${String(n).padStart(4, '0')}.${c.exts[n % c.exts.length]}`, size: sizes[i]! };
  });
}

/** How many files of a spec fall into each OFFICE_MIX size range after scaling (for the JSON). */
export function mixSummary(files: FileSpec[]): { range: string; files: number; bytes: number }[] {
  const edges = [0, 64 * KiB, 512 * KiB, 2 * MiB, 8 * MiB, Infinity];
  const label = (b: number) => (b === Infinity ? 'inf' : b >= MiB ? `${b / MiB}M` : `${b / KiB}K`);
  return edges.slice(0, -1).map((lo, i) => {
    const hi = edges[i + 1]!;
    const inRange = files.filter((f) => f.size >= lo && f.size < hi);
    return { range: `${label(lo)}-${label(hi)}`, files: inRange.length, bytes: inRange.reduce((s, f) => s + f.size, 0) };
  });
}

/**
 * W3: overwrites 1 MiB in the middle of `file` (in place, same size) with other deterministic bytes and gives it an
 * mtime a few seconds in the past, distinct from the generated one (so every tool sees a changed file at once).
 */
export function overwriteMiddle(file: string, fileSize: number, length = MiB): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, new DetStream('w3').take(length), 0, length, Math.max(0, Math.floor(fileSize / 2) - length / 2));
  } finally {
    closeSync(fd);
  }
  const t = (Date.now() - 5_000) / 1000;
  utimesSync(file, t, t);
}
