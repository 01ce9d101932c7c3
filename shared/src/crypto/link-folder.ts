// Folder links (docs/crypto.md §9.1): a snapshot of every file under a folder, listed for the link page and sealed
// under the link's key, so the server stores the listing without reading a name, a size or a file key. The server
// separately knows which versions the snapshot holds (to let the link's token read exactly their chunks).
import { CryptoError, ErrorCode } from '../errors.js';
import { canonicalBytes } from '../canonical.js';
import { concatBytes, fromBase64Url, utf8 } from '../encoding.js';
import { assertSpacePath } from '../paths.js';
import { assertContent } from './content.js';
import { openEnvelope, sealEnvelope } from './envelope.js';
import { idBytes } from './primitives.js';
import type { LinkKeys } from './link.js';

/** One file of a folder snapshot: everything the page needs to fetch, decrypt and verify it. */
export interface FolderListingFile {
  /** NFC POSIX path relative to the linked folder (never empty, no "..") */
  path: string;
  size: number;
  /** BLAKE2b-256 hex of the plaintext (the manifest's `hash`) */
  hash: string;
  fileId: string;
  versionId: string;
  /** b64u of the 32-byte file key of the version's key epoch */
  fileKey: string;
  /** [chunkId, plaintext size] in file order (the manifest's `chunks`) */
  chunks: [string, number][];
}

export interface FolderListing {
  v: 1;
  /** the linked folder's own name (last segment of its path) */
  name: string;
  /** sorted by path (JavaScript string order), no path twice */
  files: FolderListingFile[];
}

/** Most files one folder link may hold (the page lists them all; the server checks each version). */
export const LINK_MAX_FILES = 10_000;

const FILE_FIELDS = 'chunks,fileId,fileKey,hash,path,size,versionId';

/** ad of the listing envelope: "kluis/link-listing/v1" || linkId (16 raw bytes). */
export function folderListingAd(linkId: string): Uint8Array {
  return concatBytes(utf8('kluis/link-listing/v1'), idBytes(linkId, 'linkId'));
}

/** Throws CryptoError(bad_manifest) unless `l` is a well-formed listing. */
export function assertFolderListing(l: unknown): asserts l is FolderListing {
  const bad = (why: string): never => {
    throw new CryptoError(ErrorCode.BadManifest, `bad folder listing: ${why}`);
  };
  if (typeof l !== 'object' || l === null || Array.isArray(l)) bad('not an object');
  const o = l as Record<string, unknown>;
  if (o.v !== 1) throw new CryptoError(ErrorCode.UnsupportedVersion, `unknown folder listing version ${String(o.v)}`);
  if (Object.keys(o).sort().join(',') !== 'files,name,v') bad('unexpected fields');
  if (typeof o.name !== 'string' || o.name.includes('/')) bad('name');
  assertSpacePath(o.name as string);
  if (!Array.isArray(o.files) || o.files.length > LINK_MAX_FILES) bad('files');
  let previous: string | null = null;
  for (const f of o.files as Record<string, unknown>[]) {
    if (typeof f !== 'object' || f === null || Object.keys(f).sort().join(',') !== FILE_FIELDS) bad('file entry fields');
    if (typeof f.path !== 'string') bad('path');
    assertSpacePath(f.path as string);
    if (previous !== null && !(previous < (f.path as string))) bad('paths not sorted or repeated');
    previous = f.path as string;
    if (typeof f.fileId !== 'string' || typeof f.versionId !== 'string') bad('ids');
    idBytes(f.fileId as string, 'fileId');
    idBytes(f.versionId as string, 'versionId');
    if (typeof f.fileKey !== 'string' || fromBase64Url(f.fileKey).length !== 32) bad('fileKey');
    assertContent(f, bad);
  }
}

/** Env(linkKey, canonical JSON of the listing, ad = folderListingAd(linkId)). */
export function sealFolderListing(listing: FolderListing, linkId: string, keys: LinkKeys): Uint8Array {
  assertFolderListing(listing);
  return sealEnvelope(keys.linkKey, canonicalBytes(listing), folderListingAd(linkId));
}

/** Opens and checks a listing; a wrong key or a changed byte fails with CryptoError(decrypt_failed). */
export function openFolderListing(sealed: Uint8Array, linkId: string, keys: LinkKeys): FolderListing {
  const text = new TextDecoder('utf-8', { fatal: true }).decode(openEnvelope(keys.linkKey, sealed, folderListingAd(linkId)));
  const listing: unknown = JSON.parse(text);
  assertFolderListing(listing);
  return listing;
}
