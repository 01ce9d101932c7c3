// Partial rescans (scan.ts `only`): the watcher names folders, only those are walked, the rest comes from the last
// scan. Property: after random changes confined to the named folders, a partial scan equals a fresh full scan.
import test from 'ava';
import { mkdir, mkdtemp, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { initCrypto } from '@kluis/shared';
import { scanFolder, type ScanResult } from '../../desktop/dist/sync/scan.js';

const OLD = new Date('2026-01-01T00:00:00Z');

async function put(root: string, rel: string, content: string): Promise<void> {
  const abs = path.join(root, ...rel.split('/'));
  await mkdir(path.dirname(abs), { recursive: true });
  await writeFile(abs, content);
  await utimes(abs, OLD, OLD);
}

const view = (r: ScanResult) => ({
  entries: [...r.entries.values()].map((e) => `${e.path}|${e.kind}|${e.kind === 'file' ? `${e.size}|${e.hash}` : ''}`).sort(),
  skipped: r.skipped.map((s) => `${s.path}|${s.reason}`).sort(),
  refused: r.refused.map((s) => s.path).sort(),
});

/** A small deterministic PRNG, so a failure can be replayed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

test.before(async () => {
  await initCrypto();
});

test('a partial rescan of the changed folders equals a full scan (40 random rounds)', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'kluis-partial-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const dirs = ['', 'a', 'a/x', 'b', 'b/y/z', 'c'];
  for (const d of dirs) for (let i = 0; i < 3; i++) await put(root, d === '' ? `f${i}.txt` : `${d}/f${i}.txt`, `${d}-${i}`);
  const seed = Date.now() % 100000;
  t.log(`seed ${seed}`);
  const rand = prng(seed);
  let previous = await scanFolder(root, new Map(), { settleMs: 0 });
  for (let round = 0; round < 40; round++) {
    const touched = new Set<string>();
    const changes = 1 + Math.floor(rand() * 3);
    for (let c = 0; c < changes; c++) {
      const d = dirs[Math.floor(rand() * dirs.length)]!;
      const name = `${d === '' ? '' : `${d}/`}f${Math.floor(rand() * 5)}.txt`;
      const what = rand();
      if (what < 0.4) await put(root, name, `round ${round} change ${c}`);
      else if (what < 0.7) await unlink(path.join(root, ...name.split('/'))).catch(() => undefined);
      else await put(root, `${d === '' ? '' : `${d}/`}new${round}/n.txt`, `new in round ${round}`);
      touched.add(d);
    }
    const partial = await scanFolder(root, new Map(), { settleMs: 0, only: { previous, dirs: [...touched] } });
    const full = await scanFolder(root, new Map(), { settleMs: 0 });
    t.deepEqual(view(partial), view(full), `round ${round}, changed ${[...touched].join(', ')}`);
    previous = partial;
  }
});

test('outside the named folders nothing is read: a change there is not seen until its folder is named', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'kluis-partial-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await put(root, 'a/one.txt', 'one');
  await put(root, 'b/two.txt', 'two');
  const first = await scanFolder(root, new Map(), { settleMs: 0 });
  await put(root, 'b/two.txt', 'TWO!');
  await put(root, 'a/three.txt', 'three');
  const onlyA = await scanFolder(root, new Map(), { settleMs: 0, only: { previous: first, dirs: ['a'] } });
  t.true(onlyA.entries.has('a/three.txt'));
  t.is(onlyA.entries.get('b/two.txt')!.hash, first.entries.get('b/two.txt')!.hash);
  t.is(onlyA.hashed, 2, 'only the files under a/ were read');
  const withB = await scanFolder(root, new Map(), { settleMs: 0, only: { previous: onlyA, dirs: ['b', 'a'] } });
  t.not(withB.entries.get('b/two.txt')!.hash, first.entries.get('b/two.txt')!.hash);
});
