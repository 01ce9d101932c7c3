// One conformance suite for every BlobStore (rules: server/src/blobstore/index.ts), run against the filesystem
// store in a temp dir and the MinIO-client store against a real S3 server (Ceph radosgw on 127.0.0.1, started
// once for this file by test/helpers/s3.ts). Nothing is mocked and nothing is skipped.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  BlobNotFoundError,
  BlobRangeError,
  BlobSizeMismatchError,
  BlobUnavailableError,
  InvalidBlobKeyError,
  orgStorageName,
  type BlobStore,
  type OrgBlobStore,
} from '../../server/dist/blobstore/index.js';
import { FsBlobStore, openFsBlobStore } from '../../server/dist/blobstore/fs.js';
import { MinioBlobStore } from '../../server/dist/blobstore/minio.js';
import { startLocalS3, type LocalS3 } from '../helpers/s3.js';

const MiB = 1024 * 1024;

interface Harness {
  store: BlobStore;
  /** Whatever a failed put could have left in the backend for this org (temp files, unfinished uploads). */
  leftovers(orgId: string): Promise<string[]>;
  /** A store of the same kind that cannot work (for the readiness probe). */
  broken(): BlobStore;
  cleanup(): Promise<void>;
}

// ------------------------------------------------------------------------------------------ helpers

let orgCounter = 0;
/** A fresh organisation per test, so tests of one store can run concurrently without seeing each other. */
function freshOrg(h: Harness): OrgBlobStore {
  orgCounter++;
  return h.store.forOrg(`org-${process.pid}-${orgCounter}-${randomBytes(3).toString('hex')}`);
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

async function getBytes(org: OrgBlobStore, key: string): Promise<Buffer> {
  const { size, stream } = await org.get(key);
  const bytes = await readAll(stream);
  if (bytes.length !== size) throw new Error(`get(${key}) announced ${size} bytes, delivered ${bytes.length}`);
  return bytes;
}

async function listKeys(org: OrgBlobStore, prefix?: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const entry of org.list(prefix)) keys.push(entry.key);
  return keys;
}

/** A Readable giving `data` in `chunk`-sized pieces, asynchronously (like a socket or a file). */
function streamOf(data: Uint8Array, chunk = 64 * 1024): Readable {
  let pos = 0;
  return new Readable({
    read() {
      setImmediate(() => {
        if (pos >= data.length) return void this.push(null);
        this.push(Buffer.from(data.subarray(pos, pos + chunk)));
        pos += chunk;
      });
    },
  });
}

/** Gives `goodBytes` bytes, then fails with `error`. */
async function* failingSource(goodBytes: number, error: Error): AsyncGenerator<Uint8Array> {
  const piece = Buffer.alloc(MiB, 7);
  let sent = 0;
  while (sent < goodBytes) {
    const n = Math.min(piece.length, goodBytes - sent);
    yield piece.subarray(0, n);
    sent += n;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw error;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function mbps(bytes: number, ms: number): string {
  return `${((bytes / MiB) / (ms / 1000)).toFixed(0)} MiB/s`;
}

// ------------------------------------------------------------------------------- conformance suite

function conformance(name: string, setup: () => Promise<Harness>): void {
  let harness: Harness | undefined;
  let setupFailure: unknown;
  const ready = (async () => {
    try {
      harness = await setup();
    } catch (err) {
      setupFailure = err;
    }
  })();
  const h = async (): Promise<Harness> => {
    await ready;
    if (!harness) throw setupFailure instanceof Error ? setupFailure : new Error(String(setupFailure));
    return harness;
  };

  test.after.always(`${name}: cleanup`, async () => {
    await ready;
    await harness?.cleanup();
  });

  test(`${name}: ready() resolves; a broken store rejects with BlobUnavailableError`, async (t) => {
    const s = await h();
    await t.notThrowsAsync(s.store.ready());
    const broken = s.broken();
    await t.throwsAsync(broken.ready(), { instanceOf: BlobUnavailableError });
    await broken.close();
  });

  for (const size of [0, 1, 4096]) {
    test(`${name}: put/get round trip of ${size} B (bytes and stream)`, async (t) => {
      const org = freshOrg(await h());
      const data = randomBytes(size);
      await org.put('spaces/s1/chunks/a', data);
      t.deepEqual(await getBytes(org, 'spaces/s1/chunks/a'), data);
      t.is((await org.stat('spaces/s1/chunks/a'))?.size, size);
      t.true(await org.exists('spaces/s1/chunks/a'));

      await org.put('spaces/s1/chunks/b', streamOf(data, 1000), size);
      t.deepEqual(await getBytes(org, 'spaces/s1/chunks/b'), data);
      // An async iterable of Uint8Array (not a Node stream) works too.
      await org.put('spaces/s1/chunks/c', (async function* () { yield new Uint8Array(data); })(), size);
      t.deepEqual(await getBytes(org, 'spaces/s1/chunks/c'), data);
    });
  }

  // Serial (ava runs serial tests first, one at a time) so the throughput it logs is not shared with other tests.
  test.serial(`${name}: a 40 MiB streamed object round-trips (multipart on S3)`, async (t) => {
    const org = freshOrg(await h());
    const data = randomBytes(40 * MiB);
    const t0 = performance.now();
    await org.put('spaces/s1/packs/big', streamOf(data, 256 * 1024), data.length);
    const putMs = performance.now() - t0;
    const t1 = performance.now();
    const back = await getBytes(org, 'spaces/s1/packs/big');
    const getMs = performance.now() - t1;
    t.is(back.length, data.length);
    t.is(sha256(back), sha256(data));
    t.is((await org.stat('spaces/s1/packs/big'))?.size, data.length);
    // Ranged reads across part boundaries (16 MiB parts on S3) return exact bytes.
    const at = 16 * MiB - 100;
    t.deepEqual(Buffer.from(await org.getRange('spaces/s1/packs/big', at, 300)), data.subarray(at, at + 300));
    t.log(`${name}: 40 MiB put ${putMs.toFixed(0)} ms (${mbps(data.length, putMs)}), get ${getMs.toFixed(0)} ms (${mbps(data.length, getMs)})`);
  });

  test(`${name}: getRange at start, middle, end and out of range`, async (t) => {
    const org = freshOrg(await h());
    const data = randomBytes(10_000);
    await org.put('p', data);
    const range = async (offset: number, length: number) => Buffer.from(await org.getRange('p', offset, length));
    t.deepEqual(await range(0, 100), data.subarray(0, 100));
    t.deepEqual(await range(4321, 1234), data.subarray(4321, 4321 + 1234));
    t.deepEqual(await range(9_900, 100), data.subarray(9_900));
    t.deepEqual(await range(0, 10_000), data);
    t.deepEqual(await range(9_999, 1), data.subarray(9_999));
    t.is((await org.getRange('p', 10_000, 0)).length, 0);
    t.is((await org.getRange('p', 5, 0)).length, 0);
    // Out of range: past the end, starting past the end, nonsense numbers.
    await t.throwsAsync(org.getRange('p', 9_950, 100), { instanceOf: BlobRangeError });
    await t.throwsAsync(org.getRange('p', 10_000, 1), { instanceOf: BlobRangeError });
    await t.throwsAsync(org.getRange('p', 20_000, 10), { instanceOf: BlobRangeError });
    await t.throwsAsync(org.getRange('p', 10_001, 0), { instanceOf: BlobRangeError });
    await t.throwsAsync(org.getRange('p', -1, 10), { instanceOf: BlobRangeError });
    await t.throwsAsync(org.getRange('p', 0, -1), { instanceOf: BlobRangeError });
    await t.throwsAsync(org.getRange('p', 0.5, 1), { instanceOf: BlobRangeError });
    // Missing object: NotFound, not a range error.
    await t.throwsAsync(org.getRange('missing', 0, 1), { instanceOf: BlobNotFoundError });
    await t.throwsAsync(org.getRange('missing', 0, 0), { instanceOf: BlobNotFoundError });
  });

  test(`${name}: overwrite replaces the object`, async (t) => {
    const org = freshOrg(await h());
    await org.put('k', Buffer.from('first version, longer'));
    await org.put('k', Buffer.from('second'));
    t.is((await getBytes(org, 'k')).toString(), 'second');
    t.is((await org.stat('k'))?.size, 6);
    await org.put('k', streamOf(Buffer.from('third via stream')), 16);
    t.is((await getBytes(org, 'k')).toString(), 'third via stream');
    t.deepEqual(await listKeys(org), ['k']);
  });

  test(`${name}: delete is idempotent; missing objects follow one rule`, async (t) => {
    const org = freshOrg(await h());
    await org.put('spaces/s/chunks/x', Buffer.from('x'));
    await org.delete('spaces/s/chunks/x');
    await org.delete('spaces/s/chunks/x');
    await org.delete('never/existed');
    t.is(await org.stat('spaces/s/chunks/x'), null);
    t.false(await org.exists('spaces/s/chunks/x'));
    const err = await t.throwsAsync(org.get('spaces/s/chunks/x'), { instanceOf: BlobNotFoundError });
    t.is(err?.code, 'ERR_BLOB_NOT_FOUND');
    t.is((err as BlobNotFoundError | undefined)?.key, 'spaces/s/chunks/x');
    t.deepEqual(await listKeys(org), []);
    // The key can be written again after a delete.
    await org.put('spaces/s/chunks/x', Buffer.from('again'));
    t.is((await getBytes(org, 'spaces/s/chunks/x')).toString(), 'again');
  });

  test(`${name}: stat/exists/get of missing keys, also in an organisation never written to`, async (t) => {
    const s = await h();
    const org = freshOrg(s);
    t.is(await org.stat('nope'), null);
    t.false(await org.exists('nope'));
    await t.throwsAsync(org.get('nope'), { instanceOf: BlobNotFoundError });
    t.deepEqual(await listKeys(org), []);
    await org.put('some/thing', Buffer.from('1'));
    t.is(await org.stat('some/thin'), null);
    t.is(await org.stat('some'), null);
    await t.throwsAsync(org.get('some'), { instanceOf: BlobNotFoundError });
    await t.throwsAsync(org.get('some/thing/deeper'), { instanceOf: BlobNotFoundError });
  });

  test(`${name}: list by prefix is a string prefix, sorted, with sizes`, async (t) => {
    const org = freshOrg(await h());
    const keys = ['spaces/a/chunks/1', 'spaces/a/chunks/2', 'spaces/a/packs/p', 'spaces/a', 'spaces/ab/x', 'spaces/a.b', 'spaces/b/y', 'top', 'spaces/a-z/q', 'spaces/a_/r'];
    await Promise.all(keys.map((k, i) => org.put(k, Buffer.alloc(i + 1, 1))));
    const sorted = [...keys].sort();
    t.deepEqual(await listKeys(org), sorted);
    t.deepEqual(await listKeys(org, ''), sorted);
    t.deepEqual(await listKeys(org, 'spaces/a/'), ['spaces/a/chunks/1', 'spaces/a/chunks/2', 'spaces/a/packs/p']);
    t.deepEqual(await listKeys(org, 'spaces/a'), sorted.filter((k) => k.startsWith('spaces/a')));
    t.deepEqual(await listKeys(org, 'spaces/a/ch'), ['spaces/a/chunks/1', 'spaces/a/chunks/2']);
    t.deepEqual(await listKeys(org, 'spaces/a/chunks/1'), ['spaces/a/chunks/1']);
    t.deepEqual(await listKeys(org, 'spaces/c'), []);
    t.deepEqual(await listKeys(org, 'nothing/here/'), []);
    const sizes = new Map<string, number>();
    for await (const e of org.list('spaces/')) {
      sizes.set(e.key, e.size);
      t.true(Number.isFinite(e.mtimeMs) && e.mtimeMs > 0);
    }
    t.is(sizes.get('spaces/a'), keys.indexOf('spaces/a') + 1);
    t.is(sizes.get('spaces/b/y'), keys.indexOf('spaces/b/y') + 1);
    // An object and keys below it coexist; deleting one leaves the others.
    await org.delete('spaces/a');
    t.deepEqual(await listKeys(org, 'spaces/a/'), ['spaces/a/chunks/1', 'spaces/a/chunks/2', 'spaces/a/packs/p']);
    await org.delete('spaces/a/chunks/1');
    await org.delete('spaces/a/chunks/2');
    t.deepEqual(await listKeys(org, 'spaces/a/'), ['spaces/a/packs/p']);
  });

  test(`${name}: invalid keys and org ids are rejected with a typed error before any I/O`, async (t) => {
    const s = await h();
    const org = freshOrg(s);
    const bad = ['', '/a', 'a/', 'a//b', '..', '../a', 'a/../b', 'a/..', 'a..b', '.', 'a/./b', './a', 'a b', 'a\\b', 'ä', 'a?b', 'a%2Fb', 'a\0b', 'x'.repeat(1025), `a/${'y'.repeat(201)}`];
    for (const key of bad) {
      const label = JSON.stringify(key.length > 40 ? `${key.slice(0, 20)}…(${key.length})` : key);
      await t.throwsAsync(org.put(key, Buffer.from('x')), { instanceOf: InvalidBlobKeyError }, `put ${label}`);
      await t.throwsAsync(org.put(key, streamOf(Buffer.from('x')), 1), { instanceOf: InvalidBlobKeyError }, `put stream ${label}`);
      await t.throwsAsync(org.get(key), { instanceOf: InvalidBlobKeyError }, `get ${label}`);
      await t.throwsAsync(org.getRange(key, 0, 1), { instanceOf: InvalidBlobKeyError }, `getRange ${label}`);
      await t.throwsAsync(org.stat(key), { instanceOf: InvalidBlobKeyError }, `stat ${label}`);
      await t.throwsAsync(org.exists(key), { instanceOf: InvalidBlobKeyError }, `exists ${label}`);
      await t.throwsAsync(org.delete(key), { instanceOf: InvalidBlobKeyError }, `delete ${label}`);
    }
    for (const prefix of ['/a', '../', 'a/../b', 'a b', 'a//']) {
      await t.throwsAsync(listKeys(org, prefix), { instanceOf: InvalidBlobKeyError }, `list ${prefix}`);
    }
    for (const orgId of ['', '../x', '.x', 'a/b', 'x'.repeat(129), 'a b', 'é']) {
      t.throws(() => s.store.forOrg(orgId), { instanceOf: InvalidBlobKeyError }, `org ${JSON.stringify(orgId)}`);
    }
    // Random base64url ids may start with `_` or `-` (regression: 1 in 32 organisations could not store anything).
    for (const orgId of ['_bfCKgw6XL95BVhUn7TQUw', '-9e7Rx9hm50KVzrkoM9rag']) {
      const o = s.store.forOrg(orgId);
      await o.put('k', Buffer.from('v'));
      t.is((await getBytes(o, 'k')).toString(), 'v');
      await o.delete('k');
    }
    // Valid edge cases are accepted.
    for (const key of ['a', 'A-Z_a.z/0-9', '.hidden/x', 'a/.b', 'x'.repeat(200), `${'s/'.repeat(300)}k`]) {
      await org.put(key, Buffer.from(key.slice(0, 5)));
      t.is((await getBytes(org, key)).toString(), key.slice(0, 5));
    }
  });

  test(`${name}: organisations are isolated (same key, different objects)`, async (t) => {
    const s = await h();
    const one = freshOrg(s);
    const two = freshOrg(s);
    // Org ids that are not plain lower-case names (mapped to hashed bucket / directory names) work too.
    const three = s.store.forOrg(`Org.Upper_${randomBytes(3).toString('hex')}`);
    await one.put('spaces/s/chunks/c', Buffer.from('one'));
    await two.put('spaces/s/chunks/c', Buffer.from('two'));
    await three.put('spaces/s/chunks/c', Buffer.from('three'));
    t.is((await getBytes(one, 'spaces/s/chunks/c')).toString(), 'one');
    t.is((await getBytes(two, 'spaces/s/chunks/c')).toString(), 'two');
    t.is((await getBytes(three, 'spaces/s/chunks/c')).toString(), 'three');
    await one.put('only-in-one', Buffer.from('1'));
    t.is(await two.stat('only-in-one'), null);
    t.deepEqual(await listKeys(two), ['spaces/s/chunks/c']);
    await one.delete('spaces/s/chunks/c');
    t.is((await getBytes(two, 'spaces/s/chunks/c')).toString(), 'two');
    t.is(one.orgId === two.orgId, false);
  });

  for (const [label, goodBytes] of [['small', 3 * MiB], ['large (multipart on S3)', 20 * MiB]] as const) {
    test(`${name}: a source failing midway leaves no object and no debris, ${label}`, async (t) => {
      const s = await h();
      const org = freshOrg(s);
      const boom = new Error('source broke');
      const declared = goodBytes + 4 * MiB;
      const err = await t.throwsAsync(org.put('spaces/s/packs/p', failingSource(goodBytes, boom), declared));
      t.is(err, boom, 'the put rejects with the source error itself');
      t.is(await org.stat('spaces/s/packs/p'), null);
      t.deepEqual(await listKeys(org), []);
      t.deepEqual(await s.leftovers(org.orgId), []);
      // A failing overwrite keeps the old object.
      await org.put('spaces/s/packs/p', Buffer.from('old'));
      await t.throwsAsync(org.put('spaces/s/packs/p', failingSource(goodBytes, boom), declared));
      t.is((await getBytes(org, 'spaces/s/packs/p')).toString(), 'old');
      t.deepEqual(await s.leftovers(org.orgId), []);
    });
  }

  test(`${name}: a source shorter or longer than its declared size stores nothing`, async (t) => {
    const s = await h();
    const org = freshOrg(s);
    const data = randomBytes(1000);
    const short = await t.throwsAsync(org.put('k', streamOf(data), 1001), { instanceOf: BlobSizeMismatchError });
    t.is(short?.code, 'ERR_BLOB_SIZE_MISMATCH');
    await t.throwsAsync(org.put('k', streamOf(data), 999), { instanceOf: BlobSizeMismatchError });
    await t.throwsAsync(org.put('k', data, 999), { instanceOf: BlobSizeMismatchError });
    // Large: the multipart path on S3 (declared 17 MiB, delivers 20 MiB / 16 MiB).
    await t.throwsAsync(org.put('big', streamOf(Buffer.alloc(20 * MiB, 3), MiB), 17 * MiB), { instanceOf: BlobSizeMismatchError });
    await t.throwsAsync(org.put('big', streamOf(Buffer.alloc(16 * MiB, 3), MiB), 17 * MiB), { instanceOf: BlobSizeMismatchError });
    // A stream without a size is refused.
    await t.throwsAsync(org.put('k', streamOf(data), undefined as unknown as number), { instanceOf: TypeError });
    t.deepEqual(await listKeys(org), []);
    t.deepEqual(await s.leftovers(org.orgId), []);
  });

  test(`${name}: concurrent puts of different keys all land intact`, async (t) => {
    const org = freshOrg(await h());
    const items = Array.from({ length: 48 }, (_, i) => ({
      key: `spaces/s${i % 3}/chunks/${i.toString().padStart(3, '0')}`,
      data: randomBytes(i % 4 === 0 ? 2 * MiB + i : 4096 + i * 13),
    }));
    await Promise.all(items.map(({ key, data }, i) => (i % 2 ? org.put(key, data) : org.put(key, streamOf(data, 32 * 1024), data.length))));
    const listed = await listKeys(org);
    t.deepEqual(listed, items.map((x) => x.key).sort());
    const back = await Promise.all(items.map(({ key }) => getBytes(org, key)));
    back.forEach((bytes, i) => t.is(sha256(bytes), sha256(items[i]!.data), items[i]!.key));
    // And concurrent deletes of the same directory's keys with puts into it.
    await Promise.all([
      ...items.filter((_, i) => i % 3 === 0).map(({ key }) => org.delete(key)),
      ...Array.from({ length: 16 }, (_, i) => org.put(`spaces/s0/chunks/new-${i}`, Buffer.from(String(i)))),
    ]);
    t.is((await getBytes(org, 'spaces/s0/chunks/new-7')).toString(), '7');
    t.is((await listKeys(org)).length, items.length - items.filter((_, i) => i % 3 === 0).length + 16);
  });
}

// ----------------------------------------------------------------------------------------- harnesses

conformance('fs', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kluis-blobs-'));
  const store = await openFsBlobStore({ root: path.join(dir, 'blobs') });
  return {
    store,
    async leftovers(orgId) {
      // Temp files and empty directories under the org's directory.
      const orgDir = path.join(store.root, orgStorageName(orgId));
      const found: string[] = [];
      const walk = async (d: string): Promise<void> => {
        const entries = await readdir(d, { withFileTypes: true });
        if (entries.length === 0 && d !== orgDir) found.push(`${path.relative(orgDir, d)}/ (empty)`);
        for (const e of entries) {
          const p = path.join(d, e.name);
          if (e.isDirectory()) await walk(p);
          else if (e.name.startsWith('@tmp-')) found.push(path.relative(orgDir, p));
        }
      };
      await walk(orgDir).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      return found;
    },
    broken: () => new FsBlobStore(path.join(dir, 'does-not-exist')),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

let s3: LocalS3 | undefined;
conformance('minio', async () => {
  s3 = await startLocalS3();
  const store = new MinioBlobStore({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey });
  return {
    store,
    async leftovers(orgId) {
      // Unfinished multipart uploads in the org's bucket.
      const bucket = store.bucketFor(orgId);
      if (!(await store.client.bucketExists(bucket))) return [];
      const uploads: string[] = [];
      for await (const u of store.client.listIncompleteUploads(bucket, '', true) as AsyncIterable<{ key: string; uploadId: string }>) {
        uploads.push(`${u.key} (upload ${u.uploadId})`);
      }
      return uploads;
    },
    // Port 1 on loopback: nothing listens there, the connection is refused.
    broken: () => new MinioBlobStore({ endpoint: 'http://127.0.0.1:1', accessKey: 'x', secretKey: 'y', readyTimeoutMs: 3000 }),
    async cleanup() {
      await store.close();
      await s3?.stop();
    },
  };
});

test('minio: a 40 MiB put is a multipart upload of 16 MiB parts, stored in the org bucket', async (t: ExecutionContext) => {
  const info = await startLocalS3();
  const store = new MinioBlobStore({ endpoint: info.endpoint, accessKey: info.accessKey, secretKey: info.secretKey });
  try {
    const orgId = `mp-${randomBytes(4).toString('hex')}`;
    const org = store.forOrg(orgId);
    await org.put('big', streamOf(Buffer.alloc(40 * MiB, 9), MiB), 40 * MiB);
    const st = await store.client.statObject(store.bucketFor(orgId), 'big');
    t.is(st.size, 40 * MiB);
    t.regex(st.etag, /-3$/, 'three parts: 16 + 16 + 8 MiB');
    await org.put('pack', Buffer.alloc(16 * MiB, 1));
    t.notRegex((await store.client.statObject(store.bucketFor(orgId), 'pack')).etag, /-\d+$/, 'a 16 MiB pack is one PUT');
    t.is(store.bucketFor(orgId), `kluis-o-${orgId}`);
    t.regex(store.bucketFor('Mixed.Case'), /^kluis-h-[0-9a-f]{40}$/);
    t.log(`local S3 start ${info.startMs.toFixed(0)} ms, warm-up ${info.warmupMs.toFixed(0)} ms`);
  } finally {
    await store.close();
  }
});
