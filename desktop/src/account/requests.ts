// File requests from the client side (docs/crypto.md §9.2, docs/api.md "File requests"): the request secret is made
// here and goes only into the printed URL's fragment. The server gets the request's limits, hex(BLAKE2b-256(requestAuth))
// and the grant this account signs: the request key, the space key of the current epoch, this client's verified
// membership position, and the folder sealed to the space key (for members) and under the secret (for the uploader).
import * as z from 'zod';
import {
  FileRequestInfo, REQUEST_MAX_FILES, deriveRequestKeys, newId, newRequestSecret, requestAuthHash, signUploadGrant, type CreateFileRequest,
} from '@kluis/shared';
import { ApiRequestError, type ApiClient } from '../api/client.js';
import { ProtocolError } from '../api/endpoints.js';
import type { SpaceCrypto } from '../sync/remote.js';
import { UsageError } from './auth.js';
import { parsed } from './links.js';

/** --max-files N → N (1 .. REQUEST_MAX_FILES). */
export function parseMaxFiles(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1 || n > REQUEST_MAX_FILES) throw new UsageError(`--max-files: a whole number from 1 to ${REQUEST_MAX_FILES}`);
  return n;
}

export interface NewRequest {
  /** the space's keys and verified membership (SpaceCrypto.load) */
  sc: SpaceCrypto;
  /** the folder's path inside the space ("" for its top folder) */
  folder: string;
  expiresInMs: number;
  maxFiles: number;
  purpose: string;
}

/** Creates the request; answers the server's FileRequestInfo and the full URL with the secret in its fragment. */
export async function createRequest(c: ApiClient, r: NewRequest): Promise<FileRequestInfo & { link: string }> {
  const requestId = newId();
  const secret = newRequestSecret();
  const keys = deriveRequestKeys(secret);
  const expiresAt = Date.now() + r.expiresInMs;
  const grant = signUploadGrant({
    requestId, spaceId: r.sc.spaceId, keyEpoch: r.sc.keyEpoch, spacePublicKey: r.sc.membership.epochs.get(r.sc.keyEpoch)!, memberSeq: r.sc.memberSeq,
    expiresAt, maxFiles: r.maxFiles, folder: r.folder,
  }, keys, r.sc.account.keys);
  const body: CreateFileRequest = { requestId, authHash: requestAuthHash(keys), expiresAt, maxFiles: r.maxFiles, purpose: r.purpose, grant };
  const info = parsed(FileRequestInfo, await c.json('POST', `/api/v1/spaces/${encodeURIComponent(r.sc.spaceId)}/requests`, body), 'request');
  if (info.requestId !== requestId) throw new ProtocolError('the server answered for another request');
  return { ...info, link: `${info.url}#${secret}` };
}

export async function listRequests(c: ApiClient, spaceId?: string): Promise<FileRequestInfo[]> {
  const q = spaceId ? `?spaceId=${encodeURIComponent(spaceId)}` : '';
  return parsed(z.object({ requests: z.array(FileRequestInfo) }), await c.json('GET', `/api/v1/requests${q}`), 'requests').requests;
}

/** Revokes a request; false when the server knows no request of this id (it may be a link or a share). */
export async function revokeRequest(c: ApiClient, requestId: string): Promise<boolean> {
  try {
    await c.json('DELETE', `/api/v1/requests/${encodeURIComponent(requestId)}`);
    return true;
  } catch (err) {
    if (err instanceof ApiRequestError && err.status === 404) return false;
    throw err;
  }
}
