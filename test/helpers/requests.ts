// File requests for tests (docs/crypto.md §9.2): a request body made the way `kluis share request` makes it, and an
// upload made the way the request page makes it (chunks encrypted under a fresh file key, frames, then one commit with
// the wrap, manifest and receipt signed by the request key). Each step can be bent to forge what a test needs.
import * as k from '@kluis/shared';
import { call, spaceLog, type Res, type User } from './api.js';

export interface MadeRequest {
  requestId: string;
  secret: string;
  keys: k.RequestKeys;
  grant: k.UploadGrant;
  body: k.CreateFileRequest;
}

/** A request body signed by `creator` into `folder` (fields may be overridden; `grant` is re-signed unless given). */
export async function requestBody(base: string, creator: User, spaceId: string, pair: k.SpaceKeyPair, opts: { folder?: string; maxFiles?: number; expiresAt?: number; purpose?: string; signer?: k.AccountKeys; memberSeq?: number } = {}): Promise<MadeRequest> {
  const state = await spaceLog(base, creator, spaceId);
  const requestId = k.newId();
  const secret = k.newRequestSecret();
  const keys = k.deriveRequestKeys(secret);
  const expiresAt = opts.expiresAt ?? Date.now() + 7 * 86_400_000;
  const maxFiles = opts.maxFiles ?? 5;
  const grant = k.signUploadGrant({
    requestId, spaceId, keyEpoch: state.keyEpoch, spacePublicKey: k.toBase64Url(pair.publicKey), memberSeq: opts.memberSeq ?? state.seq, expiresAt, maxFiles, folder: opts.folder ?? 'Inbox',
  }, keys, opts.signer ?? creator.keys);
  return { requestId, secret, keys, grant, body: { requestId, authHash: k.requestAuthHash(keys), expiresAt, maxFiles, purpose: opts.purpose ?? 'Aanvraag leefloon 2026/88: bewijsstukken', grant } };
}

export async function createRequest(base: string, creator: User, spaceId: string, made: MadeRequest): Promise<Res> {
  return call(base, 'POST', `/api/v1/spaces/${spaceId}/requests`, { token: creator.token, json: made.body });
}

export interface Upload {
  fileId: string;
  versionId: string;
  fileKey: Uint8Array;
  manifest: k.Manifest;
  commit: k.RequestCommit;
}

/** Encrypts `content` as the page does and uploads its chunks; returns the commit body (not sent). */
export async function prepareUpload(base: string, r: { requestId: string; keys: k.RequestKeys; grant: k.UploadGrant }, path: string, content: Uint8Array, opts: { slot?: number; author?: k.Signer; parent?: string | null; fileId?: string } = {}): Promise<Upload> {
  const fileKey = k.generateFileKey();
  const sub = k.deriveFileSubkeys(fileKey);
  const fileId = opts.fileId ?? k.newId();
  const versionId = k.newId();
  const plain: Uint8Array[] = [];
  let at = 0;
  for (const n of k.chunkBoundaries(content)) {
    plain.push(content.subarray(at, at + n));
    at += n;
  }
  const chunks = plain.map((p) => k.encryptChunk(sub, p));
  if (chunks.length) {
    const res = await fetch(`${base}/api/v1/public/requests/${r.requestId}/chunks`, {
      method: 'POST', headers: { authorization: `Bearer ${k.toBase64Url(r.keys.requestAuth)}`, 'content-type': 'application/octet-stream' }, body: k.encodeFrames(chunks),
    });
    if (res.status !== 201) throw new Error(`chunks: ${res.status} ${await res.text()}`);
  }
  const author = opts.author ?? k.requestAuthor(r.keys);
  const manifest: k.Manifest = {
    v: 2, memberSeq: r.grant.memberSeq, fileId, versionId, parent: opts.parent ?? null, path, kind: 'file', size: content.length, mtimeMs: 1_795_000_000_000,
    chunks: chunks.map((c, i) => [c.id, plain[i]!.length]), hash: k.contentHash(content), deleted: false,
  };
  const commit: k.RequestCommit = {
    fileId, versionId, manifest: k.toBase64Url(k.sealManifest(manifest, sub, author)), chunks: chunks.map((c) => c.id),
    fileKeyWrap: k.wrapFileKey(fileKey, { spaceId: r.grant.spaceId, keyEpoch: r.grant.keyEpoch, fileId, recipient: r.grant.spacePublicKey }, author),
    receipt: k.signUploadReceipt({ requestId: r.requestId, spaceId: r.grant.spaceId, fileId, versionId, slot: opts.slot ?? 1 }, r.keys),
  };
  return { fileId, versionId, fileKey, manifest, commit };
}

export function commitUpload(base: string, r: { requestId: string; keys: k.RequestKeys }, body: unknown, auth = k.toBase64Url(r.keys.requestAuth)): Promise<Res> {
  return call(base, 'POST', `/api/v1/public/requests/${r.requestId}/commit`, { token: auth, json: body });
}
