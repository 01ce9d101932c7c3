// Chunk decryption for the link page: dedicated workers (decrypt-worker.ts, through web/common/worker-pool.ts) when
// the browser runs them, else the page's own thread. Ciphertexts are handed over by transfer (a copy only when the
// buffer holds other bytes too) and plaintexts come back the same way. Callers keep at most a few chunks in flight
// (download.ts), so memory stays flat.
import { decryptChunk, type FileSubkeys } from '@kluis/shared';
import { oncePerPage, owned, type WorkerPool } from '../common/worker-pool.js';

const WORKER_URL = '/s/assets/decrypt.js';

export interface Decryptor {
  /** The plaintext of one chunk, verified against its id; rejects when it does not open or verify. */
  decrypt(sub: FileSubkeys, id: string, ciphertext: Uint8Array): Promise<Uint8Array>;
  /** How many decryptions may usefully run at once. */
  readonly parallel: number;
}

const onPage: Decryptor = {
  parallel: 1,
  decrypt: async (sub, id, ciphertext) => decryptChunk(sub, id, ciphertext),
};

function inWorkers(pool: WorkerPool): Decryptor {
  return {
    parallel: pool.parallel,
    decrypt: async (sub, id, ciphertext) => {
      const own = owned(ciphertext);
      const r = await pool.send({ id, chunkKey: sub.chunkKey, chunkIdKey: sub.chunkIdKey, ciphertext: own }, [own.buffer]);
      if (!(r.plain instanceof Uint8Array)) throw new Error(`chunk ${id}: ${r.error ?? 'no answer'}`);
      return r.plain;
    },
  };
}

/**
 * The decryptor for this page, made once: one worker per spare core, at least 2 and at most 4 (the page's thread
 * mostly waits once decryption is off it: measured 64 % idle on 2 cores), or the page's thread when workers cannot
 * start (10 s to load). Where it decrypts is in the body's data-decrypt ("workers" or "page").
 */
export const decryptor: () => Promise<Decryptor> = oncePerPage(WORKER_URL, 'kluis-decrypt', 'decrypt', inWorkers, onPage);
