// Typed HTTP client of the Kluis API for the sync engine and the CLI. Errors come back typed: ApiRequestError
// carries the server's { code, message } and status; NetworkError means the server could not be reached (retry).
import type { IncomingMessage } from 'node:http';
import { ErrorCode, FrameBadIdError, KluisError, isChunkId, parseFrames, frameStream, framedSize, type ChunkFrame, type FrameLimits } from '@kluis/shared';
import { send, type RequestBody } from './http-transport.js';

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

const utf8 = new TextDecoder();

/** An answer of the server: its status, and its body to read once (as it comes or whole) or to discard. */
export class Answer {
  readonly status: number;
  constructor(private readonly res: IncomingMessage) {
    this.status = res.statusCode ?? 0;
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** The body as it arrives. */
  get body(): AsyncIterable<Uint8Array> {
    return this.res;
  }

  /** The whole body; a connection lost on the way is a NetworkError (retried). */
  async bytes(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    try {
      for await (const part of this.res) parts.push(part as Uint8Array);
    } catch (err) {
      throw new NetworkError(`the server's answer broke off: ${(err as Error).message}`);
    }
    const whole = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    return new Uint8Array(whole.buffer, whole.byteOffset, whole.byteLength);
  }

  async json(): Promise<unknown> {
    return JSON.parse(utf8.decode(await this.bytes()));
  }

  /** Reads the body to nowhere: the connection goes back to be reused. */
  discard(): void {
    this.res.resume();
  }

  /** Ends the connection if the body has not been read to its end (a reader that stopped early). */
  close(): void {
    if (!this.res.complete) this.res.destroy();
  }
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

  /**
   * Sends a request; returns the answer when it succeeded (its body is the caller's to read or discard), throws a
   * typed error otherwise. No redirect is followed: an API that answers 3xx is set up wrong, and the bearer token
   * stays with this server.
   */
  async raw(method: string, path: string, init: { json?: unknown; body?: Uint8Array | AsyncIterable<Uint8Array>; contentType?: string; signal?: AbortSignal; contentLength?: number } = {}): Promise<Answer> {
    const headers = this.headers();
    let body: RequestBody | undefined;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.body !== undefined) {
      headers['content-type'] = init.contentType ?? 'application/octet-stream';
      if (init.contentLength !== undefined) headers['content-length'] = String(init.contentLength);
      body = init.body;
    }
    let res: IncomingMessage;
    try {
      res = await send(new URL(this.baseUrl + path), { method, headers, body, signal: init.signal });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new NetworkError(`cannot reach ${this.baseUrl}: ${(err as Error).message}`);
    }
    const answer = new Answer(res);
    if (answer.ok) return answer;
    if (answer.status >= 300 && answer.status < 400) {
      answer.discard();
      throw new NetworkError(`${this.baseUrl} answered with a redirect: use the address it redirects to as the server address`);
    }
    let parsed: Json = {};
    try {
      parsed = (await answer.json()) as Json;
    } catch {
      // not a JSON error body (a proxy page): keep the status
    }
    const error = (parsed.error ?? {}) as { code?: ErrorCode; message?: string };
    if (answer.status >= 500 && !error.code) throw new NetworkError(`server error ${answer.status}`);
    throw new ApiRequestError(answer.status, error.code ?? ErrorCode.Internal, error.message ?? `HTTP ${answer.status}`, parsed);
  }

  async json<T = Json>(method: string, path: string, json?: unknown): Promise<T> {
    const answer = await this.raw(method, path, json === undefined ? {} : { json });
    if (answer.status === 204) {
      answer.discard();
      return undefined as T;
    }
    return (await answer.json()) as T;
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
   * twice more (into the array, then by the HTTP client of the time) and that garbage was most of the upload's GC
   * (issue 22 profile).
   */
  async uploadChunks(spaceId: string, frames: ChunkFrame[]): Promise<{ stored: number; duplicate: number }> {
    const items = frames.splice(0, frames.length);
    // Checked before the request: a bad id met while streaming would only show as a broken request.
    for (const f of items) if (!isChunkId(f.id)) throw new FrameBadIdError(0, String(f.id), 'expected 64 lower-case hex digits, not all zero');
    const contentLength = framedSize(items.map((f) => f.ciphertext.length));
    const body = frameStream(items, { blockBytes: UPLOAD_BLOCK });
    const res = await this.raw('POST', `/api/v1/spaces/${spaceId}/chunks/upload`, { body, contentLength });
    return (await res.json()) as { stored: number; duplicate: number };
  }

  /**
   * Uploads one framed batch already built in `body` (the uploader seals chunks straight into it: chunk-uploader.ts),
   * written as it is, not copied. With `pace` (a bandwidth limit), the body goes in 64 KiB pieces, each after `pace`
   * let it. The caller must not change `body` until this resolves.
   */
  async uploadFramed(spaceId: string, body: Uint8Array, pace?: (bytes: number) => Promise<void>): Promise<{ stored: number; duplicate: number }> {
    const res = await this.raw('POST', `/api/v1/spaces/${spaceId}/chunks/upload`, { body: pace ? paced(body, pace) : body, contentLength: body.length });
    return (await res.json()) as { stored: number; duplicate: number };
  }

  /** Streams the requested chunks back (framed); the caller checks each against its id (decryptChunk). */
  async *downloadChunks(spaceId: string, ids: string[], limits?: Partial<FrameLimits>): AsyncGenerator<ChunkFrame> {
    const res = await this.raw('POST', `/api/v1/spaces/${spaceId}/chunks/download`, { json: { ids } });
    try {
      yield* parseFrames(res.body, limits);
    } finally {
      res.close();
    }
  }

  async putChunk(spaceId: string, id: string, ciphertext: Uint8Array): Promise<void> {
    (await this.raw('PUT', `/api/v1/spaces/${spaceId}/chunks/${id}`, { body: ciphertext, contentLength: ciphertext.length })).discard();
  }

  async getChunk(spaceId: string, id: string): Promise<Uint8Array> {
    return await (await this.raw('GET', `/api/v1/spaces/${spaceId}/chunks/${id}`)).bytes();
  }

  /** Server-sent events as parsed {event, data} records until the signal aborts or the stream ends. */
  async *events(signal: AbortSignal): AsyncGenerator<{ event: string; data: unknown }> {
    // The request carries the signal: an abort destroys the connection, and the read below ends with it.
    const res = await this.raw('GET', '/api/v1/events', { signal });
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const value of res.body) {
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
    } catch (err) {
      if (signal.aborted) throw signal.reason; // an AbortError, whatever the broken read said
      throw err;
    } finally {
      res.close(); // a reader that stops early (break) ends the stream too
    }
    if (signal.aborted) throw signal.reason;
  }
}

/** `body` in PACED_PIECE pieces, each sent after `pace` let it. */
async function* paced(body: Uint8Array, pace: (bytes: number) => Promise<void>): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < body.length; at += PACED_PIECE) {
    const n = Math.min(PACED_PIECE, body.length - at);
    await pace(n);
    yield body.subarray(at, at + n);
  }
}
