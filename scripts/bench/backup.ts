// Organisation backups (issue 20 §3, docs/backup.md): backup, verify and restore MB/s beside a plain copy of the same
// objects in the same run. One organisation on the fs blob store and sqlite in a temp data dir, filled through the
// ChunkStore with `--mib` MiB of chunk ciphertext (7/8 in packs of small chunks, 1/8 as 2 MiB standalone chunks) and
// `--versions` version rows. Baselines: `cp -r` of the organisation's blob directory (no fsync) and the same copy back
// into a new directory (what a restore must at least do). Prints a table and the load average, writes
// bench-results/backup.json. Not a test: figures go into notes.
//   npm run build && node --import=tsx scripts/bench/backup.ts -- --mib 256 --reps 3
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { generateBackupKeyPair, initCrypto } from '@kluis/shared';
import { loadConfig } from '../../server/dist/config.js';
import { openServices, type OpenedServices } from '../../server/dist/services.js';
import { loadOrCreateServerSigningKey } from '../../server/dist/audit/signing-key.js';
import { orgStorageName } from '../../server/dist/blobstore/index.js';
import { createBackup } from '../../server/dist/backup/create.js';
import { checkBackup } from '../../server/dist/backup/verify.js';
import { openBackup, restoreBackup } from '../../server/dist/backup/restore.js';
import { createSpace } from '../../test/helpers/chunkstore-fixture.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '256' }, reps: { type: 'string', default: '3' }, versions: { type: 'string', default: '5000' } }, allowPositionals: true });
const MiB = 1024 * 1024;
const TOTAL = Number(values.mib) * MiB;
const REPS = Math.max(1, Number(values.reps));
const VERSIONS = Number(values.versions);

await initCrypto();
const root = mkdtempSync(path.join(os.tmpdir(), 'kluis-bench-backup-'));
const open = (dir: string) => openServices(loadConfig({ KLUIS_DATA_DIR: dir, KLUIS_ENV: 'test', KLUIS_LOG_LEVEL: 'silent' }), pino({ level: 'silent' }));
const source = await open(path.join(root, 'source'));

// The organisation: one space, chunks through the ChunkStore (packs and standalone objects), version rows.
const { orgId, userId, spaceId } = await createSpace(source.db);
const pair = generateBackupKeyPair();
await source.db('org_backup_keys').insert({ org_id: orgId, public_key: pair.publicKey, set_by: null, set_at: Date.now() });
const pool = randomBytes(4 * MiB);
let filled = 0;
let n = 0;
const chunk = (size: number) => ({ id: randomBytes(32).toString('hex'), ciphertext: pool.subarray(n++ % 1000, (n % 1000) + size) });
while (filled < (TOTAL * 7) / 8) {
  const batch = Array.from({ length: 500 }, () => chunk(16 * 1024 + (n % 64) * 1024));
  await source.chunks.putBatch(orgId, spaceId, batch);
  filled += batch.reduce((a, c) => a + c.ciphertext.length, 0);
}
while (filled < TOTAL) {
  await source.chunks.putBatch(orgId, spaceId, [chunk(2 * MiB)]);
  filled += 2 * MiB;
}
for (let done = 0; done < VERSIONS; done += 500) {
  const now = Date.now();
  const files = Array.from({ length: Math.min(500, VERSIONS - done) }, (_, i) => ({ id: `f${String(done + i).padStart(20, '0')}`, space_id: spaceId, head_version_id: null, created_at: now }));
  await source.db('files').insert(files);
  await source.db('versions').insert(files.map((f, i) => ({ id: `v${f.id.slice(1)}`, file_id: f.id, space_id: spaceId, seq: done + i + 1, parent_id: null, key_epoch: 1, manifest: randomBytes(600), deleted: false, stored_bytes: 0, author_user_id: userId, author_device_id: 'd', created_at: now })));
}
await source.db('spaces').where({ id: spaceId }).update({ seq: VERSIONS });
const key = await loadOrCreateServerSigningKey(path.join(root, 'source'));
const blobDir = path.join(root, 'source', 'blobs', orgStorageName(orgId));

interface Row { name: string; runs: number[]; seconds: number; mbps: number; ratio?: number }
const rows: Row[] = [];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
async function time(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

const runs: Record<string, number[]> = {};
let objectBytes = 0;
for (let rep = 0; rep < REPS; rep++) {
  const copy = path.join(root, `copy-${rep}`);
  const out = path.join(root, `backup-${rep}`);
  (runs['plain copy (cp -r of the objects)'] ??= []).push(await time(() => cpSync(blobDir, copy, { recursive: true })));
  (runs['backup (snapshot + objects + audit, sealed)'] ??= []).push(await time(async () => {
    objectBytes = (await createBackup(source, key, orgId, out)).objectBytes;
  }));
  (runs['backup verify (no key)'] ??= []).push(await time(() => checkBackup(out)));
  (runs['plain copy back (cp -r into a new dir)'] ??= []).push(await time(() => cpSync(copy, path.join(root, `copy-back-${rep}`), { recursive: true })));
  const target: OpenedServices = await open(path.join(root, `target-${rep}`));
  (runs['restore (verify + open + objects + rows)'] ??= []).push(await time(async () => restoreBackup(target, await openBackup(out, pair.secretKey), { client: 'bench' })));
  await target.close();
  for (const d of [copy, out, path.join(root, `copy-back-${rep}`), path.join(root, `target-${rep}`)]) rmSync(d, { recursive: true, force: true });
}
await source.close();

const baseOf: Record<string, string> = {
  'backup (snapshot + objects + audit, sealed)': 'plain copy (cp -r of the objects)',
  'backup verify (no key)': 'plain copy (cp -r of the objects)',
  'restore (verify + open + objects + rows)': 'plain copy back (cp -r into a new dir)',
};
for (const [name, r] of Object.entries(runs)) {
  const seconds = median(r);
  rows.push({ name, runs: r, seconds, mbps: objectBytes / 1e6 / seconds });
}
for (const row of rows) {
  const base = rows.find((r) => r.name === baseOf[row.name]);
  if (base) row.ratio = row.mbps / base.mbps;
}
const load = os.loadavg();
console.log(`\n${(objectBytes / MiB).toFixed(0)} MiB of objects, ${VERSIONS} versions; median of ${REPS}; MB/s of object bytes`);
console.log(`${'step'.padEnd(46)} ${'s'.padStart(7)} ${'MB/s'.padStart(8)}  vs copy`);
for (const r of rows) console.log(`${r.name.padEnd(46)} ${r.seconds.toFixed(2).padStart(7)} ${r.mbps.toFixed(1).padStart(8)}  ${r.ratio !== undefined ? `x${r.ratio.toFixed(2)}` : '(baseline)'}`);
console.log(`load average ${load.map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} cores)`);
mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/backup.json', `${JSON.stringify({ at: new Date().toISOString(), objectBytes, versions: VERSIONS, reps: REPS, loadavg: load, cores: os.cpus().length, rows }, null, 1)}\n`);
console.log('wrote bench-results/backup.json');
rmSync(root, { recursive: true, force: true });
