// The API client's requests over Node's own http and https modules (issue 22). Node's fetch (undici) loads its code and
// compiles its HTTP parser, a WebAssembly module, in every process at its first request: in a no-op
// `kluis sync --once` of 10,000 files that was about 75 ms of wall time and 0.24 s of CPU (docs/architecture.md §4).
// What this keeps of fetch's behaviour: no redirect is followed (the client refuses one), idle connections are
// reused, and a server silent for five minutes fails the request, as undici's header and body timeouts did.
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';

/** An idle connection is closed after this long: well below the server's keep-alive (65 s, server/src/main.ts). */
const IDLE_MS = 4_000;
/** A request fails when the server sends nothing for this long (undici's headersTimeout and bodyTimeout). */
export const SILENCE_MS = 300_000;

const agents = {
  'http:': new http.Agent({ keepAlive: true, timeout: IDLE_MS }),
  'https:': new https.Agent({ keepAlive: true, timeout: IDLE_MS }),
};

/** A request body: sent at once (string, bytes) or written as it comes, with backpressure. */
export type RequestBody = string | Uint8Array | AsyncIterable<Uint8Array>;

export interface HttpRequest {
  method: string;
  headers: Record<string, string>;
  body?: RequestBody;
  signal?: AbortSignal;
  /** For tests: how long the server may stay silent. */
  silenceMs?: number;
}

/**
 * Sends one request; resolves with the response as soon as its head arrives (the body is the caller's to read or
 * discard). Rejects with the socket's error (ECONNREFUSED, ECONNRESET, ...), an AbortError when `signal` aborts, or
 * an ETIMEDOUT error after `silenceMs` without a byte.
 */
export function send(url: URL, r: HttpRequest): Promise<IncomingMessage> {
  const protocol = url.protocol === 'https:' ? 'https:' : 'http:';
  const request = protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const body = r.body;
    const headers = { ...r.headers };
    // Said outright: for DELETE (and GET, OPTIONS) Node writes neither a length nor chunked framing of its own, and
    // the server would read the body as the start of a next request (a bare HTTP 400).
    if (typeof body === 'string') headers['content-length'] = String(Buffer.byteLength(body));
    else if (body instanceof Uint8Array) headers['content-length'] = String(body.byteLength);
    const req = request(url, { method: r.method, headers, agent: agents[protocol], signal: r.signal });
    const silence = r.silenceMs ?? SILENCE_MS;
    req.setTimeout(silence, () => req.destroy(Object.assign(new Error(`the server sent nothing for ${silence / 1000} s`), { code: 'ETIMEDOUT' })));
    // Kept for the request's whole life: an error after the answer (the body still being written) must not go unheard.
    req.on('error', reject);
    req.once('response', resolve);
    if (body === undefined || typeof body === 'string' || body instanceof Uint8Array) req.end(body);
    else writeAll(req, body).catch((err: unknown) => req.destroy(err as Error));
  });
}

async function writeAll(req: http.ClientRequest, body: AsyncIterable<Uint8Array>): Promise<void> {
  for await (const piece of body) {
    if (req.destroyed) return;
    if (!req.write(piece)) await drained(req);
  }
  if (!req.destroyed) req.end();
}

/** Resolves when the request can take more, or has ended (then a writer stops). */
export function drained(req: http.ClientRequest): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.off('drain', done);
      req.off('close', done);
      resolve();
    };
    req.on('drain', done);
    req.on('close', done);
  });
}
