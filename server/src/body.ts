// JSON request bodies: which size limit applies to which endpoint, which endpoints are not JSON at all, and what a
// body that cannot be read answers. Everything wrong with a body is the client's doing, so it is a 4xx in the JSON
// error shape: a Content-Encoding that does not decode (corrupt gzip, deflate or br) 400, one we do not support 415,
// too large 413, malformed JSON 400.
import type { Context, Middleware, Next } from 'koa';
import { bodyParser } from '@koa/bodyparser';
import { ErrorCode } from '@kluis/shared';
import { DomainError } from './domain-error.js';

/** JSON bodies: small everywhere, larger for batch commits (hundreds of versions with their manifests). */
export const JSON_LIMIT = '256kb';
export const COMMIT_JSON_LIMIT = '32mb';
/** chunks/missing and chunks/download: their 10,000 ids (MAX_CHUNK_IDS) take about 670 KB of JSON. */
export const CHUNK_IDS_JSON_LIMIT = '1mb';

// The router matches paths case-insensitively and with an optional trailing slash: so do these.
const COMMITS = /^\/api\/v1\/spaces\/[^/]+\/commits\/?$/i;
/** A folder link carries its sealed listing (up to FOLDER_LISTING_MAX_CHARS) and up to 10,000 version ids. */
const FOLDER_LINKS = /^\/api\/v1\/spaces\/[^/]+\/folder-links\/?$/i;
const CHUNK_IDS = /^\/api\/v1\/spaces\/[^/]+\/chunks\/(?:missing|download)\/?$/i;
/** chunks/upload and PUT chunks/:chunkId: their bodies are binary and read by the route as they arrive. */
const CHUNK_BYTES = /^\/api\/v1\/spaces\/[^/]+\/chunks\/[^/]+\/?$/i;

/** Parses JSON bodies with the limit of the endpoint; leaves binary bodies to their routes. */
export function jsonBodies(): Middleware {
  const options = { enableTypes: ['json' as const], encoding: 'utf-8', parsedMethods: ['POST', 'PUT', 'PATCH', 'DELETE'] };
  const small = bodyParser({ ...options, jsonLimit: JSON_LIMIT });
  const chunkIds = bodyParser({ ...options, jsonLimit: CHUNK_IDS_JSON_LIMIT });
  const commits = bodyParser({ ...options, jsonLimit: COMMIT_JSON_LIMIT });
  return async (ctx: Context, next: Next) => {
    const path = ctx.path;
    const parser = COMMITS.test(path) || FOLDER_LINKS.test(path) ? commits : CHUNK_IDS.test(path) ? chunkIds : CHUNK_BYTES.test(path) ? null : small;
    if (!parser) return next();
    // The parser calls next() once the body is read: an error before that is the body's, after it the route's.
    let parsed = false;
    try {
      await parser(ctx, () => {
        parsed = true;
        return next();
      });
    } catch (err) {
      throw parsed ? err : bodyError(err);
    }
  };
}

/** zlib's and brotli's codes for input that does not decompress (corrupt or cut short). */
const UNDECODABLE = /^(?:Z_|ERR__ERROR_|ERR_BROTLI)/;

/** The answer to a body that could not be read or parsed. */
function bodyError(err: unknown): unknown {
  const e = err as { status?: unknown; code?: unknown; errno?: unknown; type?: unknown };
  if (e.status === 415) {
    // inflation and raw-body: an unknown Content-Encoding, or a charset other than UTF-8. The header is not echoed.
    const what = e.type === 'charset.unsupported' ? 'charset: send UTF-8 JSON' : 'Content-Encoding: send gzip, deflate, br or none';
    return new DomainError(ErrorCode.UnsupportedMediaType, `unsupported ${what}`);
  }
  if (typeof e.errno === 'number' && typeof e.code === 'string' && UNDECODABLE.test(e.code)) {
    return new DomainError(ErrorCode.BadRequest, 'the body does not decode as its Content-Encoding says');
  }
  // Malformed JSON, too large, cut off by the client ...: errorMiddleware maps these (and keeps their texts out).
  return err;
}
