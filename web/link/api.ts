// The three public link endpoints (shared/src/api/links.ts), same origin. Every answer is parsed with the shared
// schemas; every failure becomes a PageError the UI knows how to explain. Only the link id (path) and linkAuth
// (body) ever leave the page: never the fragment. fetch() does not send fragments, and Referrer-Policy is no-referrer.
import { FrameParser, LinkAccess, PublicLinkInfo, type ChunkFrame } from '@kluis/shared';

export type ErrorKind =
  | 'missing' | 'unknown' | 'expired' | 'revoked' | 'exhausted' | 'throttled' | 'wrong-password'
  | 'tampered' | 'damaged' | 'network' | 'session' | 'server' | 'browser';

export class PageError extends Error {
  constructor(readonly kind: ErrorKind, message: string = kind, readonly retryAfterSeconds = 0) {
    super(message);
  }
}

const BASE = '/api/v1/public/links/';

async function request(url: string, init: RequestInit): Promise<Response> {
  try {
    // credentials: 'omit': the page needs no cookie and sends none; cache: 'no-store': nothing of a link is kept.
    return await fetch(url, { ...init, credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' });
  } catch {
    throw new PageError('network', 'fetch failed');
  }
}

/** Maps a non-2xx answer to the reason the visitor should see. */
async function failure(res: Response): Promise<PageError> {
  let body: { error?: { code?: string }; reason?: string } = {};
  try {
    body = await res.json();
  } catch {
    // not JSON: judged by the status alone
  }
  const code = body.error?.code;
  if (res.status === 404) return new PageError('unknown');
  if (res.status === 410 || code === 'link_gone') {
    const reason = body.reason;
    return new PageError(reason === 'revoked' || reason === 'exhausted' ? reason : 'expired');
  }
  if (res.status === 429) {
    const after = Number(res.headers.get('retry-after'));
    return new PageError('throttled', 'rate limited', Number.isFinite(after) && after > 0 ? after : 60);
  }
  if (res.status === 401 && code === 'bad_link_auth') return new PageError('wrong-password');
  if (res.status === 401) return new PageError('session');
  if (res.status >= 500) return new PageError('server', `HTTP ${res.status}`);
  return new PageError('server', `HTTP ${res.status} ${code ?? ''}`);
}

export async function fetchInfo(linkId: string): Promise<PublicLinkInfo> {
  const res = await request(BASE + linkId, { method: 'GET', headers: { accept: 'application/json' } });
  if (!res.ok) throw await failure(res);
  const parsed = PublicLinkInfo.safeParse(await res.json().catch(() => null));
  if (!parsed.success || parsed.data.linkId !== linkId) throw new PageError('server', 'bad link info');
  return parsed.data;
}

export async function access(linkId: string, auth: string): Promise<LinkAccess> {
  const res = await request(`${BASE}${linkId}/access`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ auth }) });
  if (!res.ok) throw await failure(res);
  const parsed = LinkAccess.safeParse(await res.json().catch(() => null));
  if (!parsed.success) throw new PageError('server', 'bad access answer');
  return parsed.data;
}

/**
 * Fetches one batch of chunks and returns their ciphertexts by id, parsing frames as the body streams in. The
 * server sends one frame per distinct id; anything missing, unasked or malformed is tampering (the server is the
 * only party between the page and the sender's ciphertext).
 */
export async function fetchChunks(linkId: string, token: string, ids: string[], onBytes: (n: number) => void): Promise<Map<string, Uint8Array>> {
  const res = await request(`${BASE}${linkId}/chunks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ ids }),
  });
  if (!res.ok) throw await failure(res);
  if (!res.body) throw new PageError('browser', 'no streaming body');
  const wanted = new Set(ids);
  const out = new Map<string, Uint8Array>();
  const parser = new FrameParser();
  const take = (frames: ChunkFrame[]) => {
    for (const f of frames) {
      if (!wanted.has(f.id) || out.has(f.id)) throw new PageError('tampered', `unexpected chunk ${f.id}`);
      out.set(f.id, f.ciphertext);
    }
  };
  const reader = res.body.getReader();
  try {
    for (;;) {
      let step: ReadableStreamReadResult<Uint8Array>;
      try {
        step = await reader.read();
      } catch {
        throw new PageError('network', 'body cut');
      }
      if (step.done) break;
      onBytes(step.value.length);
      try {
        take(parser.push(step.value));
      } catch (err) {
        throw err instanceof PageError ? err : new PageError('tampered', `bad frames: ${(err as Error).message}`);
      }
    }
    parser.end();
  } catch (err) {
    reader.cancel().catch(() => undefined);
    throw err instanceof PageError ? err : new PageError('tampered', `bad frames: ${(err as Error).message}`);
  }
  if (out.size !== wanted.size) throw new PageError('tampered', 'chunks missing from the answer');
  return out;
}
