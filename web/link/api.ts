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

/** One chunk request whose answer's headers arrived; its body is read only through `frames()`. */
export interface ChunkAnswer {
  /**
   * The frames in the order they arrive, parsed as the body streams in: each is yielded as soon as it is complete,
   * so the caller can decrypt it while the network brings the next (what is not read yet waits in the browser's
   * network buffers and, beyond those, at the server: TCP flow control, not this page's memory). Anything missing,
   * unasked or repeated is tampering. Leaving the loop early cancels the body.
   */
  frames(): AsyncGenerator<ChunkFrame, void, undefined>;
}

/**
 * Asks for one batch of chunks; resolves once the answer's status and headers are in, without reading its body.
 * The server sends one frame per distinct id; anything missing, unasked or malformed is tampering (the server is
 * the only party between the page and the sender's ciphertext). `signal` abandons the request (and its body).
 */
export async function requestChunks(linkId: string, token: string, ids: string[], signal?: AbortSignal): Promise<ChunkAnswer> {
  const res = await request(`${BASE}${linkId}/chunks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ ids }),
    ...(signal ? { signal } : {}),
  });
  if (!res.ok) throw await failure(res);
  const body = res.body;
  if (!body) throw new PageError('browser', 'no streaming body');
  return { frames: () => readFrames(body, new Set(ids)) };
}

async function* readFrames(body: ReadableStream<Uint8Array>, wanted: Set<string>): AsyncGenerator<ChunkFrame, void, undefined> {
  const seen = new Set<string>();
  const parser = new FrameParser();
  const reader = body.getReader();
  let finished = false;
  const parse = (piece: Uint8Array | null): ChunkFrame[] => {
    let frames: ChunkFrame[] = [];
    try {
      if (piece) frames = parser.push(piece);
      else parser.end();
    } catch (err) {
      throw new PageError('tampered', `bad frames: ${(err as Error).message}`);
    }
    for (const f of frames) {
      if (!wanted.has(f.id) || seen.has(f.id)) throw new PageError('tampered', `unexpected chunk ${f.id}`);
      seen.add(f.id);
    }
    return frames;
  };
  try {
    for (;;) {
      let step: ReadableStreamReadResult<Uint8Array>;
      try {
        step = await reader.read();
      } catch {
        throw new PageError('network', 'body cut');
      }
      if (step.done) break;
      yield* parse(step.value);
    }
    parse(null);
    finished = true;
  } finally {
    // An error here or in the caller's loop (a chunk that does not verify): drop the rest of the body.
    if (!finished) reader.cancel().catch(() => undefined);
  }
  if (seen.size !== wanted.size) throw new PageError('tampered', 'chunks missing from the answer');
}
