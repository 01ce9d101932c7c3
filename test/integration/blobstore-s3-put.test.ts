// The minio store's PUTs without payload hashes (server/src/blobstore/s3-put.ts), against a real S3 server (Ceph
// radosgw on 127.0.0.1, test/helpers/s3.ts). The store talks to RGW through a recording HTTP proxy started here,
// so the tests see the requests as RGW receives them: unsigned payloads, no Content-MD5, the old hashed path behind
// `signPayloads`, HTTPS endpoints (the proxy terminates TLS with a throwaway certificate), and how RGW's refusals,
// a retryable answer and an outage reach the caller. Nothing is mocked: the proxy forwards every request to RGW
// unless a test tells it to answer 503 (a fault injection), rewrite a key (tampering) or stop (an outage).
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { S3Error } from 'minio';
import { MinioBlobStore } from '../../server/dist/blobstore/minio.js';
import { loadConfig } from '../../server/dist/config.js';
import { openBlobStore } from '../../server/dist/services.js';
import { startLocalS3, type LocalS3 } from '../helpers/s3.js';
import { repoRoot } from '../helpers/server.js';

const MiB = 1024 * 1024;

interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  status?: number;
}

interface RecordingProxy {
  endpoint: string;
  seen: Recorded[];
  /** PUTs still to be answered 503 SlowDown by the proxy itself (Infinity: all of them). */
  failPuts: number;
  /** Rewrites the path of PUTs on their way to RGW (a tampering middlebox). */
  rewritePut?: (url: string) => string;
  /** Stops listening and drops every connection (an outage); `start()` listens again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

const SLOW_DOWN = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';

/** A recording proxy in front of `target`; with `tls` it speaks HTTPS to the store (and HTTP to RGW). */
async function startProxy(target: string, tls?: { key: string; cert: string }): Promise<RecordingProxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const handler: http.RequestListener = (req, res) => {
    const rec: Recorded = { method: req.method!, url: req.url!, headers: req.headers };
    proxy.seen.push(rec);
    if (req.method === 'PUT' && proxy.failPuts > 0) {
      proxy.failPuts--;
      req.resume();
      req.on('end', () => {
        rec.status = 503;
        res.writeHead(503, { 'content-type': 'application/xml' }).end(SLOW_DOWN);
      });
      return;
    }
    // Headers go on unchanged (Host included: it is part of the signature RGW checks).
    const path = req.method === 'PUT' && proxy.rewritePut ? proxy.rewritePut(req.url!) : req.url;
    const up = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path, headers: req.headers, agent }, (answer) => {
      rec.status = answer.statusCode;
      res.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(res);
    });
    up.on('error', (err) => res.destroy(err));
    req.pipe(up);
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  const listen = (port: number) => new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  const proxy: RecordingProxy = {
    endpoint: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    seen: [],
    failPuts: 0,
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
    start: () => listen(port),
  };
  return proxy;
}

let s3: LocalS3 | undefined;
const proxies: RecordingProxy[] = [];
const stores: MinioBlobStore[] = [];

async function setup(options: { signPayloads?: boolean; secretKey?: string } = {}) {
  s3 = await startLocalS3();
  const proxy = await startProxy(s3.endpoint);
  proxies.push(proxy);
  const store = new MinioBlobStore({ endpoint: proxy.endpoint, accessKey: s3.accessKey, secretKey: options.secretKey ?? s3.secretKey, signPayloads: options.signPayloads });
  stores.push(store);
  const orgId = `put-${randomBytes(4).toString('hex')}`;
  return { proxy, store, orgId, org: store.forOrg(orgId) };
}

test.after.always('cleanup', async () => {
  for (const store of stores) await store.close();
  for (const proxy of proxies) await proxy.stop().catch(() => undefined);
  await s3?.stop();
});

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const md5 = (data: Uint8Array) => createHash('md5').update(data).digest('hex');
const puts = (seen: Recorded[]) => seen.filter((r) => r.method === 'PUT' && !/^\/[^/]+\/?$/.test(r.url.split('?')[0]!)); // not bucket creations

async function readBack(org: ReturnType<MinioBlobStore['forOrg']>, key: string): Promise<Buffer> {
  const { stream } = await org.get(key);
  const parts: Buffer[] = [];
  for await (const piece of stream) parts.push(piece as Buffer);
  return Buffer.concat(parts);
}

test('s3 put: objects and parts go up with UNSIGNED-PAYLOAD and no Content-MD5, and RGW stores them intact', async (t) => {
  const { proxy, store, orgId, org } = await setup();
  const small = randomBytes(3 * MiB + 17);
  const big = randomBytes(40 * MiB + 5);
  await org.put('spaces/s/packs/p1', small);
  await org.put('spaces/s/chunks/big', Readable.from([big.subarray(0, 20 * MiB), big.subarray(20 * MiB)]), big.length);

  const sent = puts(proxy.seen);
  t.is(sent.length, 1 + 3, 'one object PUT and three part PUTs (16 + 16 + 8 MiB)');
  for (const r of sent) {
    t.is(r.status, 200, `${r.url.split('?')[0]} accepted by RGW`);
    t.is(r.headers['content-md5'], undefined, 'no Content-MD5');
    t.is(r.headers['x-amz-content-sha256'], undefined, 'no payload hash header');
    const q = new URL(r.url, 'http://x').searchParams;
    // A presigned request: the payload hash of its canonical request is UNSIGNED-PAYLOAD by definition (SigV4).
    t.is(q.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256');
    t.is(q.get('X-Amz-SignedHeaders'), 'host');
    t.regex(q.get('X-Amz-Signature') ?? '', /^[0-9a-f]{64}$/);
  }
  t.deepEqual(sent.slice(1).map((r) => new URL(r.url, 'http://x').searchParams.get('partNumber')), ['1', '2', '3']);

  t.true((await readBack(org, 'spaces/s/packs/p1')).equals(small));
  t.true((await readBack(org, 'spaces/s/chunks/big')).equals(big));
  // RGW still computes the MD5 ETag of what it stored, from the bytes it received.
  t.is((await store.client.statObject(store.bucketFor(orgId), 'spaces/s/packs/p1')).etag, md5(small));
  t.regex((await store.client.statObject(store.bucketFor(orgId), 'spaces/s/chunks/big')).etag, /-3$/);
});

test('s3 put: signPayloads keeps minio\'s hashed PUTs (SHA-256 of the body in the signature over HTTP)', async (t) => {
  const { proxy, org } = await setup({ signPayloads: true });
  const small = randomBytes(MiB + 3);
  const big = randomBytes(20 * MiB);
  await org.put('spaces/s/packs/p1', small);
  await org.put('spaces/s/chunks/big', Readable.from([big]), big.length);
  const sent = puts(proxy.seen);
  t.is(sent.length, 1 + 2);
  t.is(sent[0]!.headers['x-amz-content-sha256'], sha256(small));
  t.is(sent[1]!.headers['x-amz-content-sha256'], sha256(big.subarray(0, 16 * MiB)));
  t.is(sent[2]!.headers['x-amz-content-sha256'], sha256(big.subarray(16 * MiB)));
  t.true((await readBack(org, 'spaces/s/packs/p1')).equals(small));
  t.true((await readBack(org, 'spaces/s/chunks/big')).equals(big));
});

test('s3 put: the signature still covers the key: a PUT redirected to another key is refused by RGW', async (t) => {
  const { proxy, org } = await setup();
  await org.put('first', Buffer.from('bucket made'));
  proxy.rewritePut = (url) => url.replace('/second?', '/third?');
  const err = await t.throwsAsync(org.put('second', Buffer.from('meant for second')));
  t.true(err instanceof S3Error);
  t.is((err as S3Error).code, 'SignatureDoesNotMatch', 'RGW\'s XML error code reaches the caller');
  proxy.rewritePut = undefined;
  t.is(await org.stat('second'), null);
  t.is(await org.stat('third'), null);
});

test('s3 put: a bucket removed behind the store\'s back is made again (NoSuchBucket from the unsigned PUT)', async (t) => {
  const { proxy, store, orgId, org } = await setup();
  await org.put('a', Buffer.from('one'));
  await store.client.removeObject(store.bucketFor(orgId), 'a');
  await store.client.removeBucket(store.bucketFor(orgId));
  await org.put('b', Buffer.from('two'));
  t.is((await readBack(org, 'b')).toString(), 'two');
  const objectPuts = puts(proxy.seen).map((r) => [r.url.split('?')[0], r.status]);
  t.deepEqual(objectPuts, [[`/${store.bucketFor(orgId)}/a`, 200], [`/${store.bucketFor(orgId)}/b`, 404], [`/${store.bucketFor(orgId)}/b`, 200]]);
});

test('s3 put: a 503 is retried once; a store that keeps answering 503 gives S3Error SlowDown', async (t) => {
  const { proxy, org } = await setup();
  await org.put('warm', Buffer.from('bucket made'));
  proxy.failPuts = 1;
  await org.put('once', Buffer.from('after one 503'));
  t.is((await readBack(org, 'once')).toString(), 'after one 503');
  proxy.failPuts = Infinity;
  const err = await t.throwsAsync(org.put('never', Buffer.from('x')));
  t.is((err as S3Error).code, 'SlowDown', 'the code errors.ts answers as 503 unavailable');
  t.is(puts(proxy.seen).filter((r) => r.url.split('?')[0]!.endsWith('/never')).length, 2, 'tried twice');
  proxy.failPuts = 0;
});

test('s3 put: an outage rejects with the socket error, and puts work again when S3 is back', async (t) => {
  const { proxy, org } = await setup();
  await org.put('before', Buffer.from('before the outage'));
  await proxy.stop();
  // The first put may still find a kept-alive socket the proxy has just closed (ECONNRESET); the next cannot.
  const unavailable = ['ECONNREFUSED', 'ECONNRESET', 'EPIPE']; // among the codes errors.ts answers as 503 unavailable
  const first = await t.throwsAsync(org.put('during', Buffer.from('lost')));
  t.true(unavailable.includes((first as NodeJS.ErrnoException).code ?? ''), (first as NodeJS.ErrnoException).code);
  const second = await t.throwsAsync(org.put('during', Buffer.from('lost')));
  t.is((second as NodeJS.ErrnoException).code, 'ECONNREFUSED');
  await proxy.start();
  await org.put('after', Buffer.from('after the outage'));
  t.is((await readBack(org, 'after')).toString(), 'after the outage');
  t.is(await org.stat('during'), null);
});

test('s3 put: KLUIS_S3_PAYLOAD_SIGNING chooses the path (unsigned by default), and a wrong value is refused', async (t) => {
  const base = { KLUIS_DATA_DIR: '/tmp/kluis-config-only', KLUIS_STORAGE: 'minio', KLUIS_S3_ENDPOINT: 'http://127.0.0.1:9', KLUIS_S3_ACCESS_KEY: 'k', KLUIS_S3_SECRET_KEY: 's' };
  for (const [value, signed] of [[undefined, false], ['unsigned', false], ['signed', true]] as const) {
    const store = await openBlobStore(loadConfig({ ...base, KLUIS_S3_PAYLOAD_SIGNING: value }));
    t.true(store instanceof MinioBlobStore);
    t.is((store as MinioBlobStore).signPayloads, signed, String(value));
    await store.close();
  }
  t.throws(() => loadConfig({ ...base, KLUIS_S3_PAYLOAD_SIGNING: 'md5' }), { name: 'ConfigError', message: /^KLUIS_S3_PAYLOAD_SIGNING: / });
});

// A store in a child process that trusts the proxy's self-signed certificate (NODE_EXTRA_CA_CERTS is read at start):
// puts a small object and a two-part one over HTTPS, reads both back, prints whether they match.
const TLS_CHILD = `
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
const { MinioBlobStore } = await import(process.env.T_MODULE);
const e = process.env;
const store = new MinioBlobStore({ endpoint: e.T_ENDPOINT, accessKey: e.T_ACCESS, secretKey: e.T_SECRET, signPayloads: e.T_SIGN === '1' });
const org = store.forOrg(e.T_ORG);
const small = randomBytes(1024 * 1024 + 1);
const big = randomBytes(20 * 1024 * 1024 + 1);
await org.put('small', small);
await org.put('big', Readable.from([big]), big.length);
const read = async (key) => { const parts = []; for await (const p of (await org.get(key)).stream) parts.push(p); return Buffer.concat(parts); };
console.log(JSON.stringify({ small: (await read('small')).equals(small), big: (await read('big')).equals(big) }));
await store.close();
`;

test('s3 put: over an HTTPS endpoint, unsigned PUTs (and the signed ones with Content-MD5) store the bytes intact', async (t) => {
  s3 = await startLocalS3();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kluis-s3-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { encoding: 'utf8' });
  t.is(made.status, 0, made.stderr);
  const proxy = await startProxy(s3.endpoint, { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') });
  proxies.push(proxy);
  for (const sign of [false, true]) {
    proxy.seen.length = 0;
    const child = spawn(process.execPath, ['--input-type=module', '-e', TLS_CHILD], {
      env: {
        PATH: process.env.PATH ?? '', NODE_EXTRA_CA_CERTS: cert, T_MODULE: pathToFileURL(path.join(repoRoot, 'server/dist/blobstore/minio.js')).href,
        T_ENDPOINT: proxy.endpoint, T_ACCESS: s3.accessKey, T_SECRET: s3.secretKey, T_SIGN: sign ? '1' : '0', T_ORG: `tls-${randomBytes(4).toString('hex')}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise((resolve) => child.on('exit', resolve));
    t.is(code, 0, out);
    t.deepEqual(JSON.parse(out.trim().split('\n').pop()!), { small: true, big: true }, out);
    const sent = puts(proxy.seen);
    t.is(sent.length, 1 + 2, 'one object PUT, two part PUTs');
    for (const r of sent) {
      t.is(r.status, 200);
      if (sign) {
        // minio over TLS: UNSIGNED-PAYLOAD in the header, but an MD5 of every body
        t.is(r.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD');
        t.regex(String(r.headers['content-md5']), /^[A-Za-z0-9+/]{22}==$/);
      } else {
        t.is(r.headers['content-md5'], undefined);
        t.is(r.headers['x-amz-content-sha256'], undefined);
        t.is(new URL(r.url, 'http://x').searchParams.get('X-Amz-SignedHeaders'), 'host');
      }
    }
  }
});
