// Opening a link and streaming its file: the crypto of docs/crypto.md §5–§9 through the shared facade.
//   linkKeys -> access (linkAuth) -> fileKey -> subkeys -> manifest -> chunks in order, each verified -> sink,
//   and the whole-file BLAKE2b hash compared with the manifest's before the save is completed.
import {
  ContentHasher, decryptChunk, deriveFileSubkeys, deriveLinkKeys, fromBase64Url, hashLinkPassword, openLinkFileKey,
  openManifest, toBase64Url, type LinkAccess, type LinkKdf, type Manifest,
} from '@kluis/shared';
import { access, fetchChunks, PageError } from './api.js';
import type { Sink } from './save.js';

/** Plaintext bytes per chunk request: bounded memory (one batch in flight) and few round trips. */
export const BATCH_BYTES = 16 * 1024 * 1024;
/** Chunks per request (the API allows 1000; small files have small chunks). */
export const BATCH_IDS = 64;

export interface Opened {
  access: LinkAccess;
  manifest: Manifest;
  sub: ReturnType<typeof deriveFileSubkeys>;
}

/** Proves the secret (and password) to the server, opens the file key and the manifest. */
export async function openLink(linkId: string, secret: string, kdf: LinkKdf | null, password: string | null): Promise<Opened> {
  // Argon2id runs here, in the page's thread, with the link's own limits (at least KDF_MIN, as the server requires).
  const pwHash = kdf && password !== null ? hashLinkPassword(password, kdf.salt, kdf) : null;
  const keys = deriveLinkKeys(secret, pwHash);
  pwHash?.fill(0);
  const granted = await access(linkId, toBase64Url(keys.linkAuth));
  let fileKey: Uint8Array;
  try {
    fileKey = openLinkFileKey(fromBase64Url(granted.wrapped), linkId, keys);
  } catch {
    // linkAuth was accepted but linkKey does not open the wrap: a broken link or a server that swapped `wrapped`.
    throw new PageError('damaged', 'wrap does not open');
  } finally {
    keys.linkKey.fill(0);
  }
  const sub = deriveFileSubkeys(fileKey);
  fileKey.fill(0);
  let manifest: Manifest;
  try {
    // The page cannot judge the space's membership: it trusts the link's creator for the signer (any valid
    // signature); the content is still bound to the manifest by the chunk ids and the whole-file hash.
    manifest = openManifest(fromBase64Url(granted.manifest), sub, { fileId: granted.fileId, versionId: granted.versionId }, () => true).manifest;
  } catch {
    throw new PageError('tampered', 'manifest does not open');
  }
  if (manifest.kind !== 'file' || manifest.deleted) throw new PageError('tampered', 'link names no file');
  return { access: granted, manifest, sub };
}

/** The file name to save as: the last segment of the manifest's path. */
export function fileName(m: Manifest): string {
  return m.path.split('/').pop() || 'download';
}

export interface Progress {
  done: number;
  total: number;
}

/**
 * Streams the file into `sink`. Resumable: `state.next` is the index of the next chunk and the hasher lives in
 * `state`, so after a network error the caller can call again with the same state and the same sink.
 */
export interface DownloadState {
  next: number;
  written: number;
  hasher: ContentHasher;
}

export function newDownload(): DownloadState {
  return { next: 0, written: 0, hasher: new ContentHasher() };
}

export async function download(linkId: string, opened: Opened, sink: Sink, state: DownloadState, onProgress: (p: Progress) => void): Promise<void> {
  const { manifest, sub } = opened;
  const chunks = manifest.chunks;
  while (state.next < chunks.length) {
    // The next batch: chunks in file order up to BATCH_BYTES / BATCH_IDS distinct ids (a repeated chunk is asked once).
    const batch: [string, number][] = [];
    const ids = new Set<string>();
    let bytes = 0;
    for (let i = state.next; i < chunks.length; i++) {
      const [id, size] = chunks[i]!;
      if (!ids.has(id) && (ids.size >= BATCH_IDS || (bytes > 0 && bytes + size > BATCH_BYTES))) break;
      ids.add(id);
      batch.push([id, size]);
      bytes += size;
    }
    const got = await fetchChunks(linkId, opened.access.token, [...ids], () => undefined);
    for (const [id, size] of batch) {
      let plain: Uint8Array;
      try {
        plain = decryptChunk(sub, id, got.get(id)!);
      } catch {
        throw new PageError('tampered', `chunk ${id} does not verify`);
      }
      if (plain.length !== size) throw new PageError('tampered', `chunk ${id} has the wrong size`);
      state.hasher.update(plain);
      await sink.write(plain);
      state.next++;
      state.written += size;
      onProgress({ done: state.written, total: manifest.size });
    }
  }
  if (state.hasher.digest() !== manifest.hash) throw new PageError('tampered', 'whole-file hash differs');
}
