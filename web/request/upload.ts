// One file's way from the visitor's disk to the space (docs/crypto.md §9.2), in bounded memory: the file is read as a
// stream, cut with FastCDC, each chunk encrypted under a fresh file key (in workers, encrypt-pool.ts, a few chunks in
// flight) and sent in batches of frames of about BATCH_BYTES, one batch on the line while the next one fills; only
// the chunk list (ids and sizes) grows with the file. Then the file key is sealed to the space's
// public key, the manifest (with the name) sealed under the file key, both signed with the request key, and the
// version committed with a receipt for the next slot.
import {
  ContentHasher, assertSpacePath, chunkStream, deriveFileSubkeys, frameHeader, generateFileKey, newId, requestAuthor, sealManifest,
  signUploadReceipt, toBase64Url, wrapFileKey, type ChunkFrame, type Manifest, type RequestKeys, type UploadGrant,
} from '@kluis/shared';
import { RequestError, commit, uploadFrames } from './api.js';
import { encryptor } from './encrypt-pool.js';

/** Ciphertext per chunk request: large enough to keep the line busy, small enough for a phone's memory. */
const BATCH_BYTES = 4 * 1024 * 1024;
/** Bytes read from the file at a time. */
const PIECE_BYTES = 1024 * 1024;
/** Tries of one batch when the connection drops (with a growing pause), before the visitor is asked. */
const TRIES = 4;

export interface Target {
  requestId: string;
  /** requestAuth, base64url */
  auth: string;
  keys: RequestKeys;
  grant: UploadGrant;
  folder: string;
}

/** The name as it will stand in the folder: NFC, without separators or control characters; refused if still unsafe. */
export function spacePath(folder: string, name: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = name.normalize('NFC').replace(/[\u0000-\u001f\u007f/\\]/g, '_').trim();
  const p = folder === '' ? clean : `${folder}/${clean}`;
  try {
    return assertSpacePath(p);
  } catch {
    throw new RequestError('bad-name');
  }
}

/** The file's bytes in pieces; read into one reused buffer where the browser can (a BYOB reader), else as it hands them. */
async function* pieces(file: Blob): AsyncGenerator<Uint8Array> {
  let byob: ReadableStreamBYOBReader | null = null;
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  try {
    byob = file.stream().getReader({ mode: 'byob' });
  } catch {
    reader = file.stream().getReader();
  }
  try {
    // A piece is only used until the next one is asked for (chunkStream copies what it keeps), so the buffer can be reused.
    let buffer = new ArrayBuffer(PIECE_BYTES);
    for (;;) {
      const { done, value } = byob ? await byob.read(new Uint8Array(buffer)) : await reader!.read();
      if (done || !value) return;
      if (byob) buffer = value.buffer as ArrayBuffer;
      yield value;
    }
  } catch (err) {
    if (err instanceof RequestError) throw err;
    throw new RequestError('browser', 'the file could not be read');
  } finally {
    (byob ?? reader)!.releaseLock();
  }
}

async function withRetry<T>(fn: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof RequestError) || err.kind !== 'network' || i >= TRIES) throw err;
      await new Promise((r) => setTimeout(r, 500 * 2 ** i));
    }
  }
}

/** Uploads `file` into the request's folder; `progress(done)` gets the plaintext bytes sent so far. */
export async function uploadFile(t: Target, file: File, nextSlot: () => number, progress: (done: number) => void): Promise<{ slot: number; filesLeft: number }> {
  const path = spacePath(t.folder, file.name);
  const fileId = newId();
  const versionId = newId();
  const fileKey = generateFileKey();
  const subkeys = deriveFileSubkeys(fileKey);
  const hasher = new ContentHasher();
  const enc = await encryptor();
  const chunks: [string, number][] = [];
  const sent = new Set<string>();
  // A bounded pipeline: reading and cutting (here), encrypting (enc.parallel chunks in the workers) and sending (one
  // batch on the line while the next one fills) run side by side; nothing in it grows with the file.
  const encrypting: Promise<{ id: string; ciphertext: Uint8Array; size: number }>[] = [];
  let sending: Promise<void> = Promise.resolve();
  let batch: ChunkFrame[] = [];
  let batchBytes = 0;
  let done = 0;
  let doneInBatch = 0;
  const flush = async () => {
    await sending; // at most one batch on the line; its failure stops the upload here
    if (batch.length === 0 && doneInBatch === 0) return;
    // The frames' bytes straight into the Blob (uploadFrames says why a Blob), without concatenating them first.
    const body = new Blob(batch.flatMap((f) => [frameHeader(f.id, f.ciphertext.length), f.ciphertext] as Uint8Array<ArrayBuffer>[]));
    const plainBytes = doneInBatch;
    batch = [];
    batchBytes = 0;
    doneInBatch = 0;
    sending = withRetry(() => uploadFrames(t.requestId, t.auth, body)).then(() => {
      done += plainBytes;
      progress(done);
    });
    sending.catch(() => undefined); // awaited at the next flush; not an unhandled rejection meanwhile
  };
  const take = async () => {
    const { id, ciphertext, size } = await encrypting.shift()!;
    chunks.push([id, size]);
    doneInBatch += size;
    if (sent.has(id)) return; // the same content twice in one file: stored once
    sent.add(id);
    batch.push({ id, ciphertext });
    batchBytes += ciphertext.length;
    if (batchBytes >= BATCH_BYTES) await flush();
  };
  try {
    for await (const plain of chunkStream(pieces(file))) {
      hasher.update(plain); // before the plaintext is handed to a worker
      const size = plain.length;
      const job = enc.encrypt(subkeys, plain).then((c) => ({ ...c, size }));
      job.catch(() => undefined); // awaited in order by take()
      encrypting.push(job);
      if (encrypting.length >= enc.parallel) await take();
    }
    while (encrypting.length > 0) await take();
    await flush();
    await sending;
  } catch (err) {
    if (err instanceof RequestError) throw err;
    throw new RequestError('browser', String(err));
  }
  const size = chunks.reduce((n, c) => n + c[1], 0);
  const manifest: Manifest = {
    v: 2, memberSeq: t.grant.memberSeq, fileId, versionId, parent: null, path, kind: 'file', size, mtimeMs: Math.max(0, Math.trunc(file.lastModified || Date.now())),
    chunks, hash: hasher.digest(), deleted: false,
  };
  const author = requestAuthor(t.keys);
  const sealed = toBase64Url(sealManifest(manifest, subkeys, author));
  const fileKeyWrap = wrapFileKey(fileKey, { spaceId: t.grant.spaceId, keyEpoch: t.grant.keyEpoch, fileId, recipient: t.grant.spacePublicKey }, author);
  let slot = nextSlot();
  for (let i = 0; ; i++) {
    const receipt = signUploadReceipt({ requestId: t.requestId, spaceId: t.grant.spaceId, fileId, versionId, slot }, t.keys);
    try {
      return await withRetry(() => commit(t.requestId, t.auth, { fileId, versionId, manifest: sealed, chunks: chunks.map((c) => c[0]), fileKeyWrap, receipt }));
    } catch (err) {
      // Someone else's upload took the slot: sign the receipt again for the next one.
      if (err instanceof RequestError && err.nextSlot > 0 && i < 5) {
        slot = err.nextSlot;
        continue;
      }
      throw err;
    }
  }
}
