// The link page's streamed ZIP (web/link/zip.ts, docs/api.md "Link page"): written to memory here, its size must be
// the one announced beforehand, Info-ZIP must accept it (every CRC checked) and give back each file byte for byte
// under its UTF-8 name; the CRC-32 is the standard one (the check value of "123456789").
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { crc32, ZipWriter, zipSize } from '../../web/link/zip.js';
import { pseudoRandom } from '../helpers/chunks.js';

test('CRC-32 check value, and continued over pieces', (t) => {
  const text = new TextEncoder().encode('123456789');
  t.is(crc32(0, text), 0xcbf43926);
  t.is(crc32(crc32(0, text.subarray(0, 4)), text.subarray(4)), 0xcbf43926);
});

test('a streamed ZIP has the announced size and unpacks byte for byte with Info-ZIP', async (t) => {
  const files: [string, Uint8Array][] = [
    ['Dossier/advies.pdf', pseudoRandom(5, 300_000)],
    ['Dossier/Bijlagen/scan één.tiff', pseudoRandom(6, 70_000)],
    ['Dossier/leeg.txt', new Uint8Array()],
  ];
  const parts: Uint8Array[] = [];
  // As the page's service-worker sink does (web/link/save.ts), the writer takes each buffer over: one that holds
  // only these bytes is transferred (detached here), a view into a larger one is copied.
  const zip = new ZipWriter({
    write: async (b) => {
      parts.push(b.slice());
      if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) structuredClone(b.buffer, { transfer: [b.buffer as ArrayBuffer] });
    },
  });
  for (const [name, data] of files) {
    await zip.begin({ name, size: data.length });
    // In pieces, as decrypted chunks arrive.
    for (let at = 0; at < data.length; at += 65_536) await zip.data(data.subarray(at, at + 65_536));
    await zip.end();
  }
  await zip.finish();
  const bytes = Buffer.concat(parts);
  t.is(bytes.length, zipSize(files.map(([name, data]) => ({ name, size: data.length }))));
  t.is(zip.written, bytes.length);
  const dir = mkdtempSync(path.join(tmpdir(), 'kluis-zip-unit-'));
  try {
    writeFileSync(path.join(dir, 'a.zip'), bytes);
    const env = { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };
    execFileSync('unzip', ['-tq', 'a.zip'], { cwd: dir, env });
    execFileSync('unzip', ['-q', 'a.zip', '-d', 'out'], { cwd: dir, env });
    for (const [name, data] of files) t.true(readFileSync(path.join(dir, 'out', ...name.split('/'))).equals(data), name);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sizes at and above 4 GiB take ZIP64 records, counted in the announced size', (t) => {
  const small = zipSize([{ name: 'a', size: 10 }]);
  // local header 30+1, data, descriptor 16, central 46+1, end 22
  t.is(small, 31 + 10 + 16 + 47 + 22);
  const big = zipSize([{ name: 'a', size: 2 ** 32 }]);
  // + 20 zip64 extra (local), 8 more in the descriptor, + 20 extra in the central record, + zip64 end record and locator
  t.is(big - 2 ** 32, 31 + 20 + 24 + 47 + 20 + 56 + 20 + 22);
});
