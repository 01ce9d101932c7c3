// Chunk encryption for the request page: dedicated workers (encrypt-worker.ts, through web/common/worker-pool.ts)
// when the browser runs them, else the page's own thread. Plaintexts go over by transfer and ciphertexts come back
// the same way; upload.ts keeps at most `parallel` chunks in flight, so memory does not grow with the file.
import { encryptChunk, type FileSubkeys } from '@kluis/shared';
import { oncePerPage, owned, type WorkerPool } from '../common/worker-pool.js';

const WORKER_URL = '/r/assets/encrypt.js';

export interface Encryptor {
  /** The chunk's id and ciphertext (§6). `plain` is handed over: the caller must not use it afterwards. */
  encrypt(sub: FileSubkeys, plain: Uint8Array): Promise<{ id: string; ciphertext: Uint8Array }>;
  /** How many encryptions may usefully be in flight at once. */
  readonly parallel: number;
}

const onPage: Encryptor = {
  parallel: 1,
  encrypt: async (sub, plain) => encryptChunk(sub, plain),
};

function inWorkers(pool: WorkerPool): Encryptor {
  return {
    parallel: pool.parallel,
    encrypt: async (sub, plain) => {
      const own = owned(plain);
      const r = await pool.send({ chunkKey: sub.chunkKey, chunkIdKey: sub.chunkIdKey, plain: own }, [own.buffer]);
      if (typeof r.id !== 'string' || !(r.ciphertext instanceof Uint8Array)) throw new Error(`encryption: ${r.error ?? 'no answer'}`);
      return { id: r.id, ciphertext: r.ciphertext };
    },
  };
}

/** The encryptor for this page, made once: workers as the link page has them, or the page's thread (data-encrypt). */
export const encryptor: () => Promise<Encryptor> = oncePerPage(WORKER_URL, 'kluis-encrypt', 'encrypt', inWorkers, onPage);
