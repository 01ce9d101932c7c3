// Typed HTTP client of the Kluis API for the sync engine and the CLI. Errors come back typed: ApiRequestError
// carries the server's { code, message } and status; NetworkError means the server could not be reached (retry).
import { ErrorCode, FrameBadIdError, KluisError, isChunkId, parseFrames, frameStream, framedSize, type ChunkFrame, type FrameLimits } from '@kluis/shared';

export const CLIENT_NAME = 'kluis-desktop/0.1.0';
/** A paced upload (bandwidth limit) sends its body in pieces of this size. */
const PACED_PIECE = 64 * 1024;
/** An upload body's blocks: ciphertexts below this are gathered (few writes for small files), larger ones go as they are. */
const UPLOAD_BLOCK = 64 * 1024;

/** The server answered with an error. */
export class ApiRequestError extends KluisError {
  override name = 'ApiRequestError';
  constructor(
    readonly status: number,
    code: ErrorCode,
    message: string,
    readonly body: Record<string, unknown> = {},
  ) {
    super(code, message);
  }
}

/** The server could not be reached or the connection broke: safe to retry later. */
export class NetworkError extends Error {
  override name = 'NetworkError';
}

export interface ClientOptions {
  baseUrl: string;
  token?: string | null;
  clientName?: string;
}

type Json = Record<string, unknown>;

export class ApiClient {
  readonly baseUrl: string;
  token: string | null;
  private readonly clientName: string;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.token = options.token ?? null;
    this.clientName = options.clientName ?? CLIENT_NAME;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { 'x-kluis-client': this.clientName, ...extra };
    if (this.token) h.authorization = `Bearer ${this.token}`;
    return h;
  }

  /** Sends a request; returns the raw response when it succeeded, throws a typed error otherwise. */
  async raw(method: string, path: string, init: { json?: unknown; body?: Uint8Array | ReadableStream<Uint8Array>; contentType?: string; signal?: AbortSignal; contentLength?: number } = {}): Promise<Response> {
    const headers = this.headers();
    let body: RequestInit['body'];
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.body !== undefined) {
      headers['content-type'] = init.contentType ?? 'application/octet-stream';
      if (init.contentLength !== undefined) headers['content-length'] = String(init.contentLength);
      body = init.body as RequestInit['body'];
    }
    let res: Response;
    try {
      // No redirect is followed (an API that answers 3xx is set up wrong; the bearer token stays with this server).
      // That also lets fetch send the request it was given (the Fetch standard's HTTP-network-or-cache fetch, for
      // `redirect: 'error'` and no window): otherwise it sends a clone whose body is a tee of ours, so every JSON body
      // was copied once more, kept by the branch nobody reads (0.16 s of client CPU in W2's first sync, issue 22).
      res = await fetch(this.baseUrl + path, {
        method, headers, body, signal: init.signal, redirect: 'error', window: null, ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
      } as RequestInit);
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      const cause = ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message;
      if (cause === 'unexpected redirect') throw new NetworkError(`${this.baseUrl} answered with a redirect: use the address it redirects to as the server address`);
      throw new NetworkError(`cannot reach ${this.baseUrl}: ${cause}`);
    }
    if (res.ok) return res;
    let parsed: Json = {};
    try {
      parsed = (await res.json()) as Json;
    } catch {
      // not a JSON error body (a proxy page): keep the status
    }
    const error = (parsed.error ?? {}) as { code?: ErrorCode; message?: string };
    if (res.status >= 500 && !error.code) throw new NetworkError(`server error ${res.status}`);
    throw new ApiRequestError(res.status, error.code ?? ErrorCode.Internal, error.message ?? `HTTP ${res.status}`, parsed);
  }

  async json<T = Json>(method: string, path: string, json?: unknown): Promise<T> {
    const res = await this.raw(method, path, json === undefined ? {} : { json });
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  // ----- chunks (framed batches, docs/api.md "Chunk batch frames")

  async missingChunks(spaceId: string, ids: string[]): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i += 10_000) {
      const r = await this.json<{ missing: string[] }>('POST', `/api/v1/spaces/${spaceId}/chunks/missing`, { ids: ids.slice(i, i + 10_000) });
      out.push(...r.missing);
    }
    return out;
  }

  /**
   * Uploads one framed batch. `frames` is emptied at once (the body holds them until sent). The body is streamed:
   * headers, small ciphertexts gathered in blocks, large ciphertexts as they are. A body of one array was copied
   * twice more (into the array, then by fetch) and that garbage was most of the upload's GC (issue 22 profile).
   */
  async uploadChunks(spaceId: string, frames: ChunkFrame[]): Promise<{ stored: number; duplicate: number }> {
    const items = frames.splice(0, frames.length);
    // Checked before the request: a bad id met while streaming would only show as a failed fetch.
    for (const f of items) if (!isChunkId(f.id)) throw new FrameBadIdError(0, String(f.id), 'expected 64 lower-case hex digits, not all zero');
    const contentLength = framedSize(items.map((f) => f.ciphertext.length));
    const body = ReadableStream.from(frameStream(items, { blockBytes: UPLOAD_BLOCK }));
    const res = await this.raw('POST', `/api/v1/spaces/${spaceId}/chunks/upload`, { body, contentLength });
    return (await res.json()) as { stored: number; duplicate: number };
  }

  /**
   * Uploads one framed batch already built in `body` (the uploader seals chunks straight into it: chunk-uploader.ts).
   * Handed to fetch as a stream of views: a Uint8Array body would be copied (the fetch standard takes a copy of a
   * BufferSource). With `pace` (a bandwidth limit), the body goes in 64 KiB pieces, each after `pace` let it; without,
   * in one piece. The caller must not change `body` until this resolves.
   */
  async uploadFramed(spaceId: string, body: Uint8Array, pace?: (bytes: number) => Promise<void>): Promise<{ stored: number; duplicate: number }> {
    const piece = pace ? PACED_PIECE : body.length;
    let at = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (at >= body.length) return controller.close();
        const n = Math.min(piece, body.length - at);
        await pace?.(n);
        controller.enqueue(body.subarray(at, at + n));
        at += n;
      },
    });
    const res = await this.raw('POST', `/api/v1/spaces/${spaceId}/chunks/upload`, { body: stream, contentLength: body.length });
    return (await res.json()) as { stored: number; duplicate: number };
  }

  /** Streams the requested chunks back (framed); the caller checks each against its id (decryptChunk). */
  async *downloadChunks(spaceId: string, ids: string[], limits?: Partial<FrameLimits>): AsyncGenerator<ChunkFrame> {
    const res = await this.raw('POST', `/api/v1/spaces/${spaceId}/chunks/download`, { json: { ids } });
    if (!res.body) return;
    yield* parseFrames(res.body as unknown as AsyncIterable<Uint8Array>, limits);
  }

  async putChunk(spaceId: string, id: string, ciphertext: Uint8Array): Promise<void> {
    await this.raw('PUT', `/api/v1/spaces/${spaceId}/chunks/${id}`, { body: ciphertext, contentLength: ciphertext.length });
  }

  async getChunk(spaceId: string, id: string): Promise<Uint8Array> {
    const res = await this.raw('GET', `/api/v1/spaces/${spaceId}/chunks/${id}`);
    return new Uint8Array(await res.arrayBuffer());
  }

  /** Server-sent events as parsed {event, data} records until the signal aborts or the stream ends. */
  async *events(signal: AbortSignal): AsyncGenerator<{ event: string; data: unknown }> {
    const res = await this.raw('GET', '/api/v1/events', { signal });
    const reader = res.body!.getReader();
    // The stream ends when `signal` aborts: cancelled here, not left to fetch. Node's fetch (undici) follows a request's
    // signal through a WeakRef to the Request object, and a request sent as it is (raw: no clone) is held by nothing
    // else once fetch has answered; after a garbage collection the abort no longer reached the connection
    // (nodejs/node#55428) and a watcher never stopped. A cancelled reader's pending read ends as done.
    const onAbort = () => void reader.cancel(signal.reason).catch(() => undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (signal.aborted) throw signal.reason; // an AbortError, as from fetch
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let sep: number;
        while ((sep = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, sep);
          buffer = buffer.slice(sep + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).trim());
          }
          if (data.length) yield { event, data: JSON.parse(data.join('\n')) };
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      reader.releaseLock();
    }
  }
}
