// Object and part PUTs without payload hashes, for ./minio.ts (docs/architecture.md, "Object store: payload hashes").
//
// minio 8's putObject hashes every body twice: MD5 for Content-MD5 and, over plain HTTP, SHA-256 for the SigV4
// payload hash (uploadPart: SHA-256 over HTTP). On a 1 GiB sync that was ~3 s of server CPU per GiB, the largest
// item of its profile. Kluis does not need them: every chunk ciphertext is an AEAD envelope whose tag and keyed id
// the clients check (docs/crypto.md), so a body damaged on the way to S3 is refused at the reader; TCP/TLS already
// guard the hop. So these PUTs are signed with the payload hash `UNSIGNED-PAYLOAD`, as S3 defines for presigned URLs:
// the minio client computes the presigned URL locally (the region is configured, so it asks the server nothing),
// and the body goes up as one `node:http(s)` request on the store's keep-alive agent. The signature still covers
// method, bucket, key and query (upload id, part number), and expires after PRESIGN_SECONDS.
//
// Errors are shaped like minio's: an `S3Error` whose `code` is the S3 error code of the XML answer (NoSuchBucket,
// SlowDown...) or, for an answer without one, the code minio derives from the status; socket errors (ECONNREFUSED...)
// propagate unchanged. Like minio's request layer, a retryable status (5xx, 408, 429) is retried once after a short
// pause, with a freshly signed URL.
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { S3Error, type Client } from 'minio';

/** Lifetime of a signed PUT URL: checked by S3 when the request arrives, so the body may take longer. */
const PRESIGN_SECONDS = 15 * 60;
/** minio's retryable statuses (internal/request.ts), retried once as there. */
const RETRYABLE = new Set([408, 429, 499, 500, 502, 503, 504, 520]);
const RETRY_PAUSE_MS = 100;
/** minio's codes for answers without an XML error (internal/xml-parser.ts parseResponseError). */
const STATUS_CODES: Record<number, string> = { 301: 'MovedPermanently', 307: 'TemporaryRedirect', 403: 'AccessDenied', 404: 'NotFound', 405: 'MethodNotAllowed', 501: 'MethodNotAllowed', 503: 'SlowDown' };

export interface UnsignedPutTarget {
  client: Client;
  agent: http.Agent;
}

/** PUTs `body` to `bucket/key` (with `query`: a part of a multipart upload) and returns the ETag S3 answered. */
export async function putUnsignedPayload(target: UnsignedPutTarget, bucket: string, key: string, body: Buffer, query: Record<string, string> = {}): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const url = await target.client.presignedUrl('PUT', bucket, key, PRESIGN_SECONDS, query);
    const res = await send(target.agent, url, body);
    const text = await readText(res);
    if (res.statusCode === 200) return (res.headers.etag ?? '').replace(/^"|"$/g, '');
    if (attempt === 0 && RETRYABLE.has(res.statusCode ?? 0)) {
      await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS * (1 + Math.random())));
      continue;
    }
    throw s3Error(res, text, key);
  }
}

function send(agent: http.Agent, url: string, body: Buffer): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const transport = target.protocol === 'https:' ? https : http;
    const req = transport.request(target, { method: 'PUT', agent, headers: { 'content-length': String(body.length) } }, resolve);
    req.on('error', reject);
    req.end(body);
  });
}

async function readText(res: IncomingMessage): Promise<string> {
  let text = '';
  res.setEncoding('utf8');
  for await (const piece of res as AsyncIterable<string>) {
    // An error answer is a small XML document; a success has no body. Keep at most 64 KiB of either.
    if (text.length < 65_536) text += piece;
  }
  return text;
}

function xmlField(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  return m ? m[1] : undefined;
}

function s3Error(res: IncomingMessage, xml: string, key: string): S3Error {
  const status = res.statusCode ?? 0;
  const code = xmlField(xml, 'Code') ?? STATUS_CODES[status] ?? `HTTP${status}`;
  const message = xmlField(xml, 'Message') || `S3 answered ${status} to PUT ${key}`;
  const err = new S3Error(message);
  Object.assign(err, { code, key, amzRequestid: res.headers['x-amz-request-id'] });
  return err;
}
