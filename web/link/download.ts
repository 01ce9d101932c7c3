// Opening a link and streaming its file: the crypto of docs/crypto.md §5–§9 through the shared facade.
//   linkKeys -> access (linkAuth) -> fileKey -> subkeys -> manifest -> chunks in order, each verified (envelope and
//   keyed id, its size against the manifest's list) -> sink, and the total size checked before the save is completed.
//   The page does not recompute the whole-file hash: the verified chunk list already fixes every byte (docs/crypto.md
//   §6 "Verifying a download").
import {
  deriveFileSubkeys, deriveLinkKeys, fromBase64Url, hashLinkPassword, openFolderListing, openLinkFileKey,
  openManifest, toBase64Url, type FolderListing, type LinkAccess, type LinkKdf, type LinkKeys, type Manifest,
} from '@kluis/shared';
import { access, PageError, requestChunks, type ChunkAnswer } from './api.js';
import type { Sink } from './save.js';
import { decryptor } from './decrypt-pool.js';

/**
 * Plaintext bytes per chunk request: few round trips. Memory does not follow it: a batch is decrypted frame by frame
 * as its body streams in, and the next batch's request is only started (its body unread) meanwhile.
 */
export const BATCH_BYTES = 192 * 1024 * 1024;
/** Chunks per request (the API allows 1000; small files have small chunks). */
export const BATCH_IDS = 1000;

export interface Opened {
  access: LinkAccess;
  manifest: Manifest;
  sub: ReturnType<typeof deriveFileSubkeys>;
  /** a folder link's listing (docs/crypto.md §9.1); `manifest` is then the folder's own */
  folder?: FolderListing;
}

/** What one download needs: the token, the content's chunk list, size and hash, and its subkeys. */
export interface Source {
  access: { token: string };
  manifest: Pick<Manifest, 'chunks' | 'size' | 'hash'>;
  sub: ReturnType<typeof deriveFileSubkeys>;
}

/** The listing of a folder link; a listing that does not open or does not parse is tampering. */
function openListing(granted: LinkAccess, linkId: string, keys: LinkKeys): FolderListing {
  try {
    return openFolderListing(fromBase64Url(granted.listing ?? ''), linkId, keys);
  } catch {
    throw new PageError('tampered', 'listing does not open');
  }
}

/** Proves the secret (and password) to the server, opens the file key and the manifest. */
export async function openLink(linkId: string, secret: string, kdf: LinkKdf | null, password: string | null): Promise<Opened> {
  // Argon2id runs here, in the page's thread, with the link's own limits (at least KDF_MIN, as the server requires).
  const pwHash = kdf && password !== null ? hashLinkPassword(password, kdf.salt, kdf) : null;
  const keys = deriveLinkKeys(secret, pwHash);
  pwHash?.fill(0);
  const granted = await access(linkId, toBase64Url(keys.linkAuth));
  let fileKey: Uint8Array;
  let folder: FolderListing | undefined;
  try {
    try {
      fileKey = openLinkFileKey(fromBase64Url(granted.wrapped), linkId, keys);
    } catch {
      // linkAuth was accepted but linkKey does not open the wrap: a broken link or a server that swapped `wrapped`.
      throw new PageError('damaged', 'wrap does not open');
    }
    if (granted.kind === 'folder') folder = openListing(granted, linkId, keys);
  } finally {
    keys.linkKey.fill(0);
  }
  const sub = deriveFileSubkeys(fileKey);
  fileKey.fill(0);
  let manifest: Manifest;
  try {
    // The page cannot judge the space's membership: it trusts the link's creator for the signer (any valid
    // signature); the content is still bound to the manifest by the keyed chunk ids and their sizes.
    manifest = openManifest(fromBase64Url(granted.manifest), sub, { fileId: granted.fileId, versionId: granted.versionId }, () => true).manifest;
  } catch {
    throw new PageError('tampered', 'manifest does not open');
  }
  if (manifest.kind !== (folder ? 'dir' : 'file') || manifest.deleted) throw new PageError('tampered', 'link names no file');
  return { access: granted, manifest, sub, ...(folder ? { folder } : {}) };
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
 * Streams the file into `sink`. Resumable: `state.next` is the index of the next chunk, so after a network error the
 * caller can call again with the same state and the same sink.
 */
export interface DownloadState {
  next: number;
  written: number;
}

export function newDownload(): DownloadState {
  return { next: 0, written: 0 };
}

/** The next batch from chunk `from`: chunks in file order up to BATCH_BYTES / BATCH_IDS distinct ids (a repeated chunk is asked once). */
function planBatch(chunks: Manifest['chunks'], from: number): { from: number; entries: [string, number][]; ids: string[] } {
  const entries: [string, number][] = [];
  const ids = new Set<string>();
  let bytes = 0;
  for (let i = from; i < chunks.length; i++) {
    const [id, size] = chunks[i]!;
    if (!ids.has(id) && (ids.size >= BATCH_IDS || (bytes > 0 && bytes + size > BATCH_BYTES))) break;
    ids.add(id);
    entries.push([id, size]);
    bytes += size;
  }
  return { from, entries, ids: [...ids] };
}

export async function download(linkId: string, opened: Source, sink: Sink, state: DownloadState, onProgress: (p: Progress) => void): Promise<void> {
  const { manifest, sub } = opened;
  const chunks = manifest.chunks;
  const token = opened.access.token;
  const dec = await decryptor();
  // Chunks handed to the decryptor, in file order, not yet saved.
  const queue: { id: string; size: number; plain: Promise<Uint8Array | null> }[] = [];
  const writeNext = async () => {
    const { id, size, plain } = queue.shift()!;
    await writeChunk(id, size, await plain, sink, state);
    onProgress({ done: state.written, total: manifest.size });
  };
  // Cancels the request started ahead of time when this call ends early (an error: the caller may resume later).
  const ahead = new AbortController();
  let pending: { from: number; answer: Promise<ChunkAnswer> } | null = null;
  try {
    // `from`: the first chunk not yet asked for; state.next: the first not yet saved (decryptions run between them).
    let from = state.next;
    while (from < chunks.length) {
      const batch = planBatch(chunks, from);
      const answer = await (pending?.from === batch.from ? pending.answer : requestChunks(linkId, token, batch.ids, ahead.signal));
      pending = null;
      // Overlap: ask for the next batch now, so the server prepares it (token check, audit entry, its first reads)
      // while this one is decrypted; its body is read only after this one's, so that meanwhile at most the browser's
      // network buffers hold it, never a second batch in the page's memory.
      const after = batch.from + batch.entries.length;
      if (after < chunks.length) {
        const nextBatch = planBatch(chunks, after);
        pending = { from: after, answer: requestChunks(linkId, token, nextBatch.ids, ahead.signal) };
        pending.answer.catch(() => undefined); // judged when awaited; abandoned when this call fails
      }
      // Each chunk goes to decryption as soon as its frame is in (ciphertexts wait here only when they arrive ahead of
      // their turn or serve again later in this batch: a repeated chunk); plaintexts are hashed and saved in file
      // order. At most `dec.parallel` chunks are being decrypted at once, so memory does not follow the file.
      const uses = new Map<string, number>();
      for (const [id] of batch.entries) uses.set(id, (uses.get(id) ?? 0) + 1);
      const arrived = new Map<string, Uint8Array>();
      let at = 0;
      for await (const frame of answer.frames()) {
        arrived.set(frame.id, frame.ciphertext);
        while (at < batch.entries.length && arrived.has(batch.entries[at]![0])) {
          const [id, size] = batch.entries[at]!;
          const left = uses.get(id)! - 1;
          uses.set(id, left);
          // The decryptor takes the buffer over: a ciphertext needed again is handed over as a copy.
          const ciphertext = left === 0 ? arrived.get(id)! : arrived.get(id)!.slice();
          if (left === 0) arrived.delete(id);
          queue.push({ id, size, plain: caught(dec.decrypt(sub, id, ciphertext)) });
          at++;
          while (queue.length > dec.parallel) await writeNext();
        }
      }
      if (at < batch.entries.length) throw new PageError('tampered', 'chunks missing from the answer');
      from = after;
    }
    while (queue.length) await writeNext();
  } finally {
    if (pending) ahead.abort();
  }
  // Every chunk verified against its keyed id and listed size, in the manifest's order: the content is the manifest's.
  if (state.written !== manifest.size) throw new PageError('tampered', 'size differs from the manifest');
}

/** A decryption whose failure is kept as null (judged in order by writeChunk; never an unhandled rejection). */
function caught(p: Promise<Uint8Array>): Promise<Uint8Array | null> {
  return p.catch(() => null);
}

/** Hands a verified chunk to the sink; then counts it as done in `state`. */
async function writeChunk(id: string, size: number, plain: Uint8Array | null, sink: Sink, state: DownloadState): Promise<void> {
  if (!plain) throw new PageError('tampered', `chunk ${id} does not verify`);
  if (plain.length !== size) throw new PageError('tampered', `chunk ${id} has the wrong size`);
  await sink.write(plain);
  state.next++;
  state.written += size;
}
