// What the server side holds after real syncs: neither the blob store (every object in every bucket of the local S3,
// read back in full; or the fs store's files) nor the server's data directory (the sqlite file and its -wal, read
// as raw bytes) nor the server log contains a marker string from inside the files, any file or folder name, or any
// path — in UTF-8, in the NFD form of a name, or as hex. Names include renamed, deleted and empty-folder names.
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'minio';
import { bytes, converge, startSyncEnv, syncOnce, write, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';

const envs: Record<'minio' | 'fs', SyncEnv | undefined> = { minio: undefined, fs: undefined };

test.before(async () => {
  envs.minio = await startSyncEnv({ accounts: ['A', 'B'] });
  envs.fs = await startSyncEnv({ accounts: ['A', 'B'], storage: 'fs' });
});
test.after.always(async () => {
  await envs.fs?.close();
  await envs.minio?.close();
});

interface Needle {
  what: string;
  bytes: Buffer;
}

/** Syncs a tree full of recognisable names and a marker between A and B; returns what must never be found. */
async function populate(env: SyncEnv): Promise<{ needles: Needle[]; clients: SyncClient[] }> {
  const tag = randomBytes(4).toString('hex');
  const marker = `KLUIS-GEHEIM-MARKER-${randomBytes(9).toString('hex')}`;
  const { clients } = await env.newSpace();
  const [a, b] = clients as [SyncClient, SyncClient];
  const names = {
    folder: `Vertrouwelijk-${tag}`,
    nested: `Dossier Janssens-${tag}`,
    deeper: `Medisch verslag ${tag}`,
    file: `patiëntendossier-${tag}.docx`,
    greek: `Ωmega notitie ${tag}.txt`,
    nfd: `Rénée Müller ${tag}.pdf`,
    empty: `Lege-map-${tag}`,
    zero: `Leeg-bestand-${tag}.txt`,
    before: `oude-naam-${tag}.odt`,
    after: `nieuwe-naam-${tag}.odt`,
    deleted: `verwijderd-${tag}.txt`,
    fromB: `van-collega-B-${tag}.xlsx`,
  };
  const text = (n: number) => Buffer.from(`${marker} — vertrouwelijke inhoud ${n} — ${marker}\n`.repeat(n));
  const d = `${names.folder}/${names.nested}/${names.deeper}`;
  write(a.dir, `${d}/${names.file}`, text(3));
  write(a.dir, `${names.folder}/${names.greek}`, text(1));
  write(a.dir, `${names.folder}/${names.nfd.normalize('NFD')}`, Buffer.concat([text(2), bytes(7, 300_000), text(2)]));
  // A MiB-sized file with the marker at several places (large chunks go to S3 objects of their own).
  const big = Buffer.from(bytes(8, 3 * 1024 * 1024));
  for (const at of [0, 700_000, 1_500_000, 3 * 1024 * 1024 - 200]) Buffer.from(marker).copy(big, at);
  write(a.dir, `${d}/groot-${tag}.bin`, big);
  mkdirSync(path.join(a.dir, names.folder, names.empty));
  write(a.dir, names.zero, '');
  write(a.dir, names.before, text(4));
  write(a.dir, names.deleted, text(5));
  await syncOnce(a);
  renameSync(path.join(a.dir, names.before), path.join(a.dir, names.after));
  unlinkSync(path.join(a.dir, names.deleted));
  write(b.dir, names.fromB, text(6));
  await converge([a, b]);

  const needles: Needle[] = [];
  const add = (what: string, s: string) => {
    for (const form of new Set([s, s.normalize('NFC'), s.normalize('NFD')])) {
      needles.push({ what: `${what} (utf8)`, bytes: Buffer.from(form, 'utf8') });
      needles.push({ what: `${what} (hex)`, bytes: Buffer.from(Buffer.from(form, 'utf8').toString('hex')) });
    }
  };
  add('marker', marker);
  for (const [k, v] of Object.entries(names)) add(`name ${k}`, v);
  add('path', `${d}/${names.file}`);
  add('path', `${names.folder}/${names.greek}`);
  return { needles, clients };
}

function scan(t: ExecutionContext, where: string, data: Buffer, needles: Needle[]): void {
  for (const n of needles) t.false(data.includes(n.bytes), `${where} contains the ${n.what}`);
}

/** Every file under `dir`: its relative path and its bytes. */
function walk(dir: string): { rel: string; data: Buffer }[] {
  const out: { rel: string; data: Buffer }[] = [];
  const go = (abs: string, rel: string) => {
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      const p = path.join(abs, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) go(p, r);
      else if (e.isFile()) out.push({ rel: r, data: readFileSync(p) });
    }
  };
  go(dir, '');
  return out;
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(parts);
}

/** The server's data directory: the sqlite file, its -wal/-shm, and (fs store) every blob; names and contents. */
function checkDataDir(t: ExecutionContext, env: SyncEnv, needles: Needle[], when: string): void {
  const files = walk(env.dataDir);
  const names = files.map((f) => f.rel);
  t.true(names.includes('kluis.sqlite3'), `${when}: the database is where expected: ${names.slice(0, 20).join(', ')}`);
  let total = 0;
  for (const f of files) {
    scan(t, `${when}: ${f.rel}`, f.data, needles);
    scan(t, `${when}: the name ${f.rel}`, Buffer.from(f.rel), needles);
    total += f.data.length;
  }
  t.log(`${when}: ${files.length} files, ${total} bytes in the data dir (${names.filter((n) => n.startsWith('kluis.sqlite3')).join(', ')})`);
}

/** Positive control: the client's own index (plain sqlite, local) does hold the names, and the scan finds them there. */
function control(t: ExecutionContext, c: SyncClient, needles: Needle[]): void {
  const index = Buffer.concat(walk(c.home).filter((f) => f.rel.startsWith('index')).map((f) => f.data));
  t.true(needles.some((n) => n.what.startsWith('name') && index.includes(n.bytes)), 'the same scan finds names in the client index');
}

test.serial('S3 store: no object, object key, sqlite page or log line holds the marker, a name or a path', async (t) => {
  const env = envs.minio!;
  const { needles, clients } = await populate(env);
  control(t, clients[0]!, needles);
  const s3 = env.s3!;
  const url = new URL(s3.endpoint);
  const client = new Client({ endPoint: url.hostname, port: Number(url.port), useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: 'us-east-1', pathStyle: true });
  const buckets = await client.listBuckets();
  t.true(buckets.length >= 1, 'the organisation has a bucket');
  let objects = 0;
  let total = 0;
  for (const bucket of buckets) {
    scan(t, `bucket name ${bucket.name}`, Buffer.from(bucket.name), needles);
    const keys: string[] = [];
    for await (const o of client.listObjectsV2(bucket.name, '', true)) if (o.name) keys.push(o.name);
    for (const key of keys) {
      scan(t, `object key ${key}`, Buffer.from(key), needles);
      const data = await collect(await client.getObject(bucket.name, key));
      scan(t, `object ${bucket.name}/${key}`, data, needles);
      objects++;
      total += data.length;
    }
  }
  t.log(`${objects} objects, ${total} bytes read from S3`);
  t.true(total > 3 * 1024 * 1024, 'the blobs are in S3 (the 3 MiB file at least)');
  checkDataDir(t, env, needles, 'running');
  scan(t, 'the server log', Buffer.from(env.srv.output()), needles);
  // After a clean stop the WAL is folded into the main file: look again.
  await env.stopServer('SIGTERM');
  checkDataDir(t, env, needles, 'stopped');
  await env.startServerAgain();
});

test.serial('fs store: no file under the data dir (blobs, sqlite, -wal) holds the marker, a name or a path, by name or content', async (t) => {
  const env = envs.fs!;
  const { needles, clients } = await populate(env);
  control(t, clients[0]!, needles);
  const blobs = walk(path.join(env.dataDir, 'blobs'));
  const total = blobs.reduce((n, f) => n + f.data.length, 0);
  t.true(total > 3 * 1024 * 1024, `the blobs are in the fs store (${total} bytes)`);
  checkDataDir(t, env, needles, 'running');
  scan(t, 'the server log', Buffer.from(env.srv.output()), needles);
  await env.stopServer('SIGTERM');
  checkDataDir(t, env, needles, 'stopped');
  await env.startServerAgain();
});
