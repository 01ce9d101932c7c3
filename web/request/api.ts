// The public request endpoints (shared/src/api/requests.ts), same origin. Every answer is parsed with the shared
// schemas; every failure becomes a RequestError the page knows how to explain. Only the request id (path), the
// bearer proof requestAuth (header), ciphertext frames and the commit (sealed manifest, sealed key, signed receipt)
// leave the page: never the fragment, never a file name in the clear.
import { PublicRequestInfo, RequestCommitAnswer, type RequestCommit } from '@kluis/shared';

export type RequestErrorKind = 'missing' | 'unknown' | 'expired' | 'revoked' | 'full' | 'throttled' | 'tampered' | 'network' | 'too-large' | 'bad-name' | 'server' | 'browser';

export class RequestError extends Error {
  constructor(readonly kind: RequestErrorKind, message: string = kind, readonly retryAfterSeconds = 0, readonly nextSlot = 0) {
    super(message);
  }
}

const BASE = '/api/v1/public/requests/';

async function call(url: string, init: RequestInit): Promise<Response> {
  try {
    // credentials: 'omit': the page needs no cookie and sends none; cache: 'no-store': nothing of a request is kept.
    return await fetch(url, { ...init, credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' });
  } catch {
    throw new RequestError('network', 'fetch failed');
  }
}

async function failure(res: Response): Promise<RequestError> {
  let body: { error?: { code?: string }; reason?: string; nextSlot?: number } = {};
  try {
    body = await res.json();
  } catch {
    // not JSON: judged by the status alone
  }
  if (res.status === 404) return new RequestError('unknown');
  if (res.status === 410) return new RequestError(body.reason === 'revoked' || body.reason === 'full' ? body.reason : 'expired');
  if (res.status === 413) return new RequestError('too-large');
  if (res.status === 429) {
    const after = Number(res.headers.get('retry-after'));
    return new RequestError('throttled', 'rate limited', Number.isFinite(after) && after > 0 ? after : 60);
  }
  if (res.status === 401) return new RequestError('missing', 'the server refused the link\'s proof');
  if (res.status === 409 && typeof body.nextSlot === 'number') return new RequestError('server', 'slot taken', 0, body.nextSlot);
  return new RequestError('server', `HTTP ${res.status} ${body.error?.code ?? ''}`);
}

export async function fetchInfo(requestId: string): Promise<PublicRequestInfo> {
  const res = await call(BASE + requestId, { method: 'GET', headers: { accept: 'application/json' } });
  if (!res.ok) throw await failure(res);
  const parsed = PublicRequestInfo.safeParse(await res.json().catch(() => null));
  if (!parsed.success || parsed.data.requestId !== requestId) throw new RequestError('server', 'bad request info');
  return parsed.data;
}

/**
 * Posts one body of chunk frames. As a Blob, not the bytes themselves: Chromium hands a Blob to its network process
 * from the blob store, where an ArrayBuffer body is copied through the page's renderer (measured in headless
 * Chromium for 96 MiB in bodies of 4 MiB: a Blob +41 MiB renderer RSS and 3 s, the same bytes as Uint8Array +250 MiB
 * and 15-28 s, as fetch or XMLHttpRequest alike).
 */
export async function uploadFrames(requestId: string, auth: string, body: Blob): Promise<void> {
  const res = await call(`${BASE}${requestId}/chunks`, {
    method: 'POST', headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${auth}` }, body,
  });
  if (!res.ok) throw await failure(res);
  await res.body?.cancel();
}

export async function commit(requestId: string, auth: string, req: RequestCommit): Promise<{ seq: number; slot: number; filesLeft: number }> {
  const res = await call(`${BASE}${requestId}/commit`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${auth}` }, body: JSON.stringify(req),
  });
  if (!res.ok) throw await failure(res);
  const parsed = RequestCommitAnswer.safeParse(await res.json().catch(() => null));
  if (!parsed.success) throw new RequestError('server', 'bad commit answer');
  return parsed.data;
}
