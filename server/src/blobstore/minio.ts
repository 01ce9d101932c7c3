// S3 blob store through the `minio` client (v8): MinIO, Ceph RGW, AWS S3 (docs/architecture.md §8). Rules: ./index.ts.
//
// - One bucket per organisation: `<bucketPrefix><orgStorageName(orgId)>` (e.g. `kluis-o-<uuid>`), created on
//   the first put to that organisation (reads of a never-written organisation see an empty store and do not
//   create anything). Path-style requests, so bucket names need no DNS.
// - Puts up to `partSize` bytes (default 16 MiB) go up as ONE PutObject from a buffer; larger objects as a
//   multipart upload of `partSize` parts. 16 MiB because: packs are 8–16 MiB (docs/architecture.md §3.1) and chunks at most
//   2 MiB, so every pack and chunk is a single request (multipart costs 2 extra round trips and a manifest);
//   a part is held in memory while it uploads (and the next is read meanwhile), so 16 MiB bounds memory to
//   ~32 MiB per large put, not the client's default 64 MiB; S3 wants parts >= 5 MiB, and 10,000 parts of
//   16 MiB allow 156 GiB objects (bigger declared sizes get bigger parts).
// - The multipart upload is driven here with the client's part-level calls, not `putObject(stream)`: minio
//   8.0.7's stream path resumes any unfinished upload of the same key it finds (so two concurrent puts of one
//   key can mix parts), does not abort the upload when the source fails, and merges buffered blocks into
//   parts larger than `partSize`. Here a failing source, a size mismatch or a failed part aborts the upload:
//   no object appears and no parts stay behind (only a process that dies mid-upload leaves parts; operators
//   can add an AbortIncompleteMultipartUpload lifecycle rule for that).
// - Object and part PUTs skip the payload hashes (MD5 and SHA-256 of every body) by default: ./s3-put.ts says why
//   and how. `signPayloads: true` (KLUIS_S3_PAYLOAD_SIGNING=signed) keeps minio's own hashed PUTs, for an S3 server
//   that refuses UNSIGNED-PAYLOAD. Reads hash nothing per byte (a GET's payload hash is that of the empty body).
// - S3 errors NoSuchKey / NotFound / NoSuchBucket become `BlobNotFoundError` (or null/false for stat/exists,
//   success for delete, an empty list); InvalidRange becomes `BlobRangeError`.
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { Client } from 'minio';
import { putUnsignedPayload } from './s3-put.js';
import {
  BlobNotFoundError,
  BlobRangeError,
  type BlobListEntry,
  type BlobRead,
  type BlobStat,
  type BlobStore,
  type BlobStream,
  type OrgBlobStore,
  expectedPutSize,
  orgStorageName,
  probeWithTimeout,
  sizedChunks,
  validateKey,
  validatePrefix,
  validateRangeArgs,
} from './index.js';

const MiB = 1024 * 1024;
const S3_MAX_PARTS = 10_000;

export interface MinioBlobStoreOptions {
  /** `http://host:port` or `https://host[:port]`. */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  /** Default `us-east-1` (set, so the client never asks for a bucket's location). */
  region?: string;
  /** Prefix of every bucket name: lower-case letters, digits, hyphens; default `kluis-`. */
  bucketPrefix?: string;
  /** Bytes per multipart part and the single-PUT limit; 5 MiB..1 GiB, default 16 MiB. */
  partSize?: number;
  /** Time limit of the readiness probe, default 5000 ms. */
  readyTimeoutMs?: number;
  /** Most sockets open to the server at once, default 64. */
  maxSockets?: number;
  /** Hash every PUT body (Content-MD5, and SHA-256 in the signature over HTTP) as minio does; default false (./s3-put.ts). */
  signPayloads?: boolean;
}

const NOT_FOUND_CODES = new Set(['NoSuchKey', 'NotFound', 'NoSuchBucket']);

function s3Code(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

function isNotFound(err: unknown): boolean {
  return NOT_FOUND_CODES.has(s3Code(err) ?? '');
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Re-cuts a chunk stream into Buffers of exactly `size` bytes (the last one may be shorter, never empty). */
async function* blocks(chunks: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer, void, undefined> {
  let block = Buffer.allocUnsafe(size);
  let fill = 0;
  for await (const chunk of chunks) {
    let pos = 0;
    while (pos < chunk.byteLength) {
      const n = Math.min(size - fill, chunk.byteLength - pos);
      block.set(chunk.subarray(pos, pos + n), fill);
      fill += n;
      pos += n;
      if (fill === size) {
        yield block;
        block = Buffer.allocUnsafe(size);
        fill = 0;
      }
    }
  }
  if (fill > 0) yield block.subarray(0, fill);
}

export class MinioBlobStore implements BlobStore {
  readonly kind = 'minio' as const;
  readonly endpoint: string;
  readonly bucketPrefix: string;
  readonly partSize: number;
  /** @internal the underlying client, for tests and tools. */
  readonly client: Client;
  readonly signPayloads: boolean;
  private readonly agent: http.Agent;
  private readonly useSSL: boolean;
  private readonly region: string;
  private readonly readyTimeoutMs: number;
  private readonly buckets = new Map<string, Promise<void>>();

  constructor(options: MinioBlobStoreOptions) {
    const url = new URL(options.endpoint);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`S3 endpoint must be http(s)://, got ${options.endpoint}`);
    if (url.pathname !== '/' || url.search || url.username) throw new TypeError(`S3 endpoint must be scheme://host[:port] only, got ${options.endpoint}`);
    this.useSSL = url.protocol === 'https:';
    this.endpoint = url.origin;
    this.region = options.region ?? 'us-east-1';
    this.bucketPrefix = options.bucketPrefix ?? 'kluis-';
    if (!/^[a-z0-9][a-z0-9-]{0,19}$/.test(this.bucketPrefix)) {
      throw new TypeError(`bucket prefix must be 1..20 of a-z 0-9 - starting with a letter or digit, got ${JSON.stringify(this.bucketPrefix)}`);
    }
    this.partSize = options.partSize ?? 16 * MiB;
    if (!Number.isSafeInteger(this.partSize) || this.partSize < 5 * MiB || this.partSize > 1024 * MiB) {
      throw new TypeError(`partSize must be an integer from 5 MiB to 1 GiB, got ${this.partSize}`);
    }
    this.readyTimeoutMs = options.readyTimeoutMs ?? 5000;
    this.signPayloads = options.signPayloads ?? false;
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 64 };
    this.agent = this.useSSL ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    const port = url.port ? Number(url.port) : this.useSSL ? 443 : 80;
    this.client = new Client({
      endPoint: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port,
      useSSL: this.useSSL,
      accessKey: options.accessKey,
      secretKey: options.secretKey,
      region: this.region,
      pathStyle: true,
      partSize: this.partSize,
      transportAgent: this.agent,
    });
  }

  bucketFor(orgId: string): string {
    return this.bucketPrefix + orgStorageName(orgId);
  }

  forOrg(orgId: string): OrgBlobStore {
    return new MinioOrgBlobStore(this, orgId, this.bucketFor(orgId));
  }

  async ready(): Promise<void> {
    await probeWithTimeout(`S3 endpoint ${this.endpoint}`, this.readyTimeoutMs, async () => {
      await this.client.listBuckets();
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  /** Creates the bucket once per process (concurrent callers share the attempt; a failure is retried later). */
  ensureBucket(bucket: string): Promise<void> {
    let pending = this.buckets.get(bucket);
    if (!pending) {
      pending = (async () => {
        if (await this.client.bucketExists(bucket)) return;
        try {
          await this.client.makeBucket(bucket, this.region);
        } catch (err) {
          const code = s3Code(err);
          // Lost a race with another process or node: the bucket is there, which is all we need.
          if (code !== 'BucketAlreadyOwnedByYou' && code !== 'BucketAlreadyExists') throw err;
        }
      })();
      this.buckets.set(bucket, pending);
      pending.catch(() => this.buckets.delete(bucket));
    }
    return pending;
  }

  forgetBucket(bucket: string): void {
    this.buckets.delete(bucket);
  }

  /** One PUT of a whole object. */
  async putObject(bucket: string, key: string, body: Buffer): Promise<void> {
    if (this.signPayloads) await this.client.putObject(bucket, key, body, body.length);
    else await putUnsignedPayload({ client: this.client, agent: this.agent }, bucket, key, body);
  }

  /** One part of a multipart upload; returns its ETag. */
  async putPart(bucket: string, key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string | undefined> {
    if (!this.signPayloads) return putUnsignedPayload({ client: this.client, agent: this.agent }, bucket, key, body, { uploadId, partNumber: String(partNumber) });
    const res = await this.client.uploadPart(
      { bucketName: bucket, objectName: key, uploadID: encodeURIComponent(uploadId), partNumber, headers: this.partHeaders(body) },
      body,
    );
    return res.etag;
  }

  /** Content-MD5 over TLS, where the payload is not signed (over plain HTTP its SHA-256 is in the signature). */
  private partHeaders(body: Buffer): Record<string, string> {
    return this.useSSL ? { 'Content-MD5': createHash('md5').update(body).digest('base64') } : {};
  }
}

class MinioOrgBlobStore implements OrgBlobStore {
  readonly orgId: string;
  private readonly store: MinioBlobStore;
  private readonly bucket: string;

  constructor(store: MinioBlobStore, orgId: string, bucket: string) {
    this.store = store;
    this.orgId = orgId;
    this.bucket = bucket;
  }

  private get client(): Client {
    return this.store.client;
  }

  put(key: string, data: Uint8Array): Promise<void>;
  put(key: string, data: BlobStream, size: number): Promise<void>;
  async put(key: string, data: Uint8Array | BlobStream, size?: number): Promise<void> {
    validateKey(key);
    const expected = expectedPutSize(key, data, size);
    await this.store.ensureBucket(this.bucket);
    if (expected <= this.store.partSize) {
      const body = data instanceof Uint8Array ? asBuffer(data) : await this.collect(key, data, expected);
      await this.retryingBucket(() => this.store.putObject(this.bucket, key, body));
      return;
    }
    await this.putMultipart(key, data, expected);
  }

  /** Runs `op`; if the bucket was removed behind our back (NoSuchBucket), creates it again and retries once. */
  private async retryingBucket<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (s3Code(err) !== 'NoSuchBucket') throw err;
      this.store.forgetBucket(this.bucket);
      await this.store.ensureBucket(this.bucket);
      return await op();
    }
  }

  private async collect(key: string, data: BlobStream, expected: number): Promise<Buffer> {
    const body = Buffer.allocUnsafe(expected);
    let fill = 0;
    for await (const chunk of sizedChunks(key, data, expected)) {
      body.set(chunk, fill);
      fill += chunk.byteLength;
    }
    return body;
  }

  private async putMultipart(key: string, data: Uint8Array | BlobStream, expected: number): Promise<void> {
    const partSize = Math.max(this.store.partSize, Math.ceil(expected / S3_MAX_PARTS / MiB) * MiB);
    const uploadId = await this.retryingBucket(() => this.client.initiateNewMultipartUpload(this.bucket, key, {}));
    const parts: { part: number; etag: string }[] = [];
    let inflight: Promise<{ part: number; etag: string }> | undefined;
    try {
      let partNumber = 1;
      // The next part is read from the source while the previous one uploads (at most one part in flight).
      for await (const block of blocks(sizedChunks(key, data, expected), partSize)) {
        if (inflight) parts.push(await inflight);
        inflight = this.uploadPart(key, uploadId, partNumber++, block);
        inflight.catch(() => {}); // awaited above or below; keeps a failure from counting as unhandled meanwhile
      }
      if (inflight) parts.push(await inflight);
      inflight = undefined;
      await this.client.completeMultipartUpload(this.bucket, key, uploadId, parts);
    } catch (err) {
      if (inflight) await inflight.catch(() => {}); // a part still uploading would outlive the abort
      await this.client.abortMultipartUpload(this.bucket, key, encodeURIComponent(uploadId)).catch(() => {});
      throw err;
    }
  }

  private async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<{ part: number; etag: string }> {
    const etag = await this.store.putPart(this.bucket, key, uploadId, partNumber, body);
    if (!etag) throw new Error(`S3 returned no ETag for part ${partNumber} of ${key}`);
    return { part: partNumber, etag };
  }

  async get(key: string): Promise<BlobRead> {
    validateKey(key);
    let stream: Readable;
    try {
      stream = await this.client.getObject(this.bucket, key);
    } catch (err) {
      if (isNotFound(err)) throw new BlobNotFoundError(key, { cause: err });
      throw err;
    }
    const length = Number((stream as Partial<IncomingMessage>).headers?.['content-length']);
    if (Number.isSafeInteger(length) && length >= 0) return { size: length, stream };
    stream.destroy();
    const st = await this.stat(key);
    if (!st) throw new BlobNotFoundError(key);
    return { size: st.size, stream: await this.client.getObject(this.bucket, key) };
  }

  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    validateKey(key);
    validateRangeArgs(key, offset, length);
    if (length === 0) {
      // A zero-length Range cannot be expressed in HTTP; check existence and bounds instead.
      const st = await this.stat(key);
      if (!st) throw new BlobNotFoundError(key);
      if (offset > st.size) throw new BlobRangeError(key, offset, length, `object has ${st.size} bytes`);
      return new Uint8Array(0);
    }
    let stream: Readable;
    try {
      stream = await this.client.getPartialObject(this.bucket, key, offset, length);
    } catch (err) {
      if (isNotFound(err)) throw new BlobNotFoundError(key, { cause: err });
      if (s3Code(err) === 'InvalidRange') throw new BlobRangeError(key, offset, length, 'beyond the end of the object');
      throw err;
    }
    const out = Buffer.allocUnsafe(length);
    let fill = 0;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        if (fill + chunk.length > length) throw new Error(`S3 sent more than the ${length} bytes asked for (Range ignored?)`);
        out.set(chunk, fill);
        fill += chunk.length;
      }
    } finally {
      stream.destroy();
    }
    // S3 answers a range that starts inside the object but runs past its end with the bytes that exist.
    if (fill !== length) throw new BlobRangeError(key, offset, length, `object ends at ${offset + fill}`);
    return out;
  }

  async stat(key: string): Promise<BlobStat | null> {
    validateKey(key);
    try {
      const st = await this.client.statObject(this.bucket, key);
      return { size: st.size, mtimeMs: st.lastModified.getTime() };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.stat(key)) !== null;
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    try {
      await this.client.removeObject(this.bucket, key);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async *list(prefix = ''): AsyncGenerator<BlobListEntry, void, undefined> {
    validatePrefix(prefix);
    let token = '';
    for (;;) {
      let page;
      try {
        page = await this.client.listObjectsV2Query(this.bucket, prefix, token, '', 1000, '');
      } catch (err) {
        if (isNotFound(err)) return;
        throw err;
      }
      for (const item of page.objects) {
        if (item.name !== undefined) yield { key: item.name, size: item.size, mtimeMs: item.lastModified.getTime() };
      }
      if (!page.isTruncated || !page.nextContinuationToken) return;
      token = page.nextContinuationToken;
    }
  }
}
