// Share links from the client side (docs/crypto.md §9, docs/api.md "Share links"): the link secret is made here and
// goes only into the printed URL's fragment; the server gets the link's limits, the file key wrapped under linkKey and
// hex(BLAKE2b-256(linkAuth)). With a password, linkKey and linkAuth also depend on Argon2id(password) with a fresh salt.
import * as z from 'zod';
import {
  KDF_INTERACTIVE, LINK_MAX_DAYS, LINK_MAX_DOWNLOADS, LinkInfo, deriveLinkKeys, hashLinkPassword, linkAuthHash, newId, newLinkSecret, newSalt,
  sealFolderListing, toBase64Url, wrapFileKeyForLink, type CreateFolderLinkRequest, type CreateLinkRequest, type FolderListingFile, type KdfParams, type LinkKeys,
} from '@kluis/shared';
import type { ApiClient } from '../api/client.js';
import { ProtocolError, api } from '../api/endpoints.js';
import { UsageError } from './auth.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** "1h", "36h", "7d", "30d" → milliseconds; at most LINK_MAX_DAYS days. */
export function parseExpiry(text: string): number {
  const m = /^([1-9]\d{0,4})([hd])$/.exec(text.trim());
  if (!m) throw new UsageError(`--expires: a number of hours or days, e.g. 1h, 7d, 30d (got "${text}")`);
  const ms = Number(m[1]) * (m[2] === 'h' ? HOUR_MS : DAY_MS);
  if (ms > LINK_MAX_DAYS * DAY_MS) throw new UsageError(`--expires: at most ${LINK_MAX_DAYS}d`);
  return ms;
}

/** --max-downloads N → N (1 .. LINK_MAX_DOWNLOADS). */
export function parseMaxDownloads(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1 || n > LINK_MAX_DOWNLOADS) throw new UsageError(`--max-downloads: a whole number from 1 to ${LINK_MAX_DOWNLOADS}`);
  return n;
}

/**
 * Argon2id limits for a link password: the server's floor, and at least INTERACTIVE (the page runs Argon2id in the
 * browser, possibly on a phone, so MODERATE's 256 MiB is not the default here).
 */
export function linkKdfParams(serverFloor: KdfParams): KdfParams {
  return { opsLimit: Math.max(serverFloor.opsLimit, KDF_INTERACTIVE.opsLimit), memLimit: Math.max(serverFloor.memLimit, KDF_INTERACTIVE.memLimit) };
}

export interface NewLink {
  spaceId: string;
  fileId: string;
  versionId: string;
  /** the file key of the version's key epoch */
  fileKey: Uint8Array;
  expiresInMs: number;
  maxDownloads: number | null;
  password: string | null;
  purpose: string;
}

/** An answer parsed with `schema`, or a ProtocolError naming the first bad field (also used by ./requests.ts). */
export function parsed<T extends z.ZodTypeAny>(schema: T, value: unknown, what: string): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ProtocolError(`unexpected answer from the server (${what}: ${r.error.issues[0]!.path.join('.')}: ${r.error.issues[0]!.message})`);
  return r.data;
}

/** A fresh link id and secret, and with a password its KDF parameters: the keys of a new link (file or folder). */
async function newLinkKeys(c: ApiClient, password: string | null): Promise<{ linkId: string; secret: string; kdf: CreateLinkRequest['kdf']; keys: LinkKeys }> {
  const linkId = newId();
  const secret = newLinkSecret();
  let kdf: CreateLinkRequest['kdf'] = null;
  let pwHash: Uint8Array | null = null;
  if (password !== null) {
    const params = linkKdfParams((await api.info(c)).kdf);
    kdf = { salt: newSalt(), ...params };
    pwHash = hashLinkPassword(password, kdf.salt, params);
  }
  return { linkId, secret, kdf, keys: deriveLinkKeys(secret, pwHash) };
}

async function postLink(c: ApiClient, path: string, body: CreateLinkRequest | CreateFolderLinkRequest, secret: string): Promise<LinkInfo & { link: string }> {
  const info = parsed(LinkInfo, await c.json('POST', path, body), 'link');
  if (info.linkId !== body.linkId) throw new ProtocolError('the server answered for another link');
  return { ...info, link: `${info.url}#${secret}` };
}

/** Creates the link; answers the server's LinkInfo and the full URL with the secret in its fragment. */
export async function createLink(c: ApiClient, l: NewLink): Promise<LinkInfo & { link: string }> {
  const { linkId, secret, kdf, keys } = await newLinkKeys(c, l.password);
  const body: CreateLinkRequest = {
    linkId, fileId: l.fileId, versionId: l.versionId, kdf, authHash: linkAuthHash(keys.linkAuth),
    wrapped: toBase64Url(wrapFileKeyForLink(l.fileKey, linkId, keys)), expiresAt: Date.now() + l.expiresInMs, maxDownloads: l.maxDownloads, purpose: l.purpose,
  };
  return postLink(c, `/api/v1/spaces/${encodeURIComponent(l.spaceId)}/links`, body, secret);
}

/** A folder link: `fileId`/`versionId`/`fileKey` are the folder's own entry; `files` the snapshot (docs/crypto.md §9.1). */
export interface NewFolderLink extends NewLink {
  name: string;
  files: FolderListingFile[];
}

export async function createFolderLink(c: ApiClient, l: NewFolderLink): Promise<LinkInfo & { link: string }> {
  const { linkId, secret, kdf, keys } = await newLinkKeys(c, l.password);
  const files = [...l.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const body: CreateFolderLinkRequest = {
    linkId, fileId: l.fileId, versionId: l.versionId, files: files.map((f) => ({ fileId: f.fileId, versionId: f.versionId })),
    listing: toBase64Url(sealFolderListing({ v: 1, name: l.name, files }, linkId, keys)),
    kdf, authHash: linkAuthHash(keys.linkAuth), wrapped: toBase64Url(wrapFileKeyForLink(l.fileKey, linkId, keys)),
    expiresAt: Date.now() + l.expiresInMs, maxDownloads: l.maxDownloads, purpose: l.purpose,
  };
  return postLink(c, `/api/v1/spaces/${encodeURIComponent(l.spaceId)}/folder-links`, body, secret);
}

export async function listLinks(c: ApiClient, spaceId?: string): Promise<LinkInfo[]> {
  const q = spaceId ? `?spaceId=${encodeURIComponent(spaceId)}` : '';
  return parsed(z.object({ links: z.array(LinkInfo) }), await c.json('GET', `/api/v1/links${q}`), 'links').links;
}

export async function revokeLink(c: ApiClient, linkId: string): Promise<void> {
  await c.json('DELETE', `/api/v1/links/${encodeURIComponent(linkId)}`);
}
