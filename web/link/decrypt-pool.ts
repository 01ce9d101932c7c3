// Chunk decryption for the link page: dedicated workers (decrypt-worker.ts) when the browser runs them, else the
// page's own thread. Ciphertexts are handed over by transfer (a copy only when the buffer holds other bytes too) and
// plaintexts come back the same way. Callers keep at most a few chunks in flight (download.ts), so memory stays flat.
import { decryptChunk, type FileSubkeys } from '@kluis/shared';

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

type Reply = { n: number; plain?: Uint8Array; pong?: true; error?: string };

class WorkerPool implements Decryptor {
  private readonly pending = new Map<number, { resolve: (r: Reply) => void }>();
  private n = 0;
  private turn = 0;

  constructor(private readonly workers: Worker[]) {
    for (const w of workers) {
      w.onmessage = (e: MessageEvent<Reply>) => this.pending.get(e.data.n)?.resolve(e.data);
      // A worker that fails answers every open request with an error (the download stops; nothing hangs).
      w.onerror = () => {
        for (const [n, p] of [...this.pending]) p.resolve({ n, error: 'worker failed' });
      };
    }
  }

  get parallel(): number {
    return this.workers.length * 2;
  }

  private send(worker: Worker, message: Record<string, unknown>, transfer: Transferable[] = []): Promise<Reply> {
    const n = ++this.n;
    return new Promise<Reply>((resolve) => {
      this.pending.set(n, { resolve: (r) => (this.pending.delete(n), resolve(r)) });
      worker.postMessage({ ...message, n }, transfer);
    });
  }

  /** Every worker answered after loading libsodium. */
  async ready(): Promise<boolean> {
    const answers = await Promise.all(this.workers.map((w) => this.send(w, { ping: true })));
    return answers.every((a) => a.pong);
  }

  async decrypt(sub: FileSubkeys, id: string, ciphertext: Uint8Array): Promise<Uint8Array> {
    const own = ciphertext.byteOffset === 0 && ciphertext.byteLength === ciphertext.buffer.byteLength ? ciphertext : ciphertext.slice();
    const worker = this.workers[this.turn++ % this.workers.length]!;
    const r = await this.send(worker, { id, chunkKey: sub.chunkKey, chunkIdKey: sub.chunkIdKey, ciphertext: own }, [own.buffer]);
    if (!r.plain) throw new Error(`chunk ${id}: ${r.error ?? 'no answer'}`);
    return r.plain;
  }

  close(): void {
    for (const w of this.workers) w.terminate();
  }
}

let chosen: Promise<Decryptor> | null = null;

/**
 * The decryptor for this page, made once: one worker per spare core, at least 2 and at most 4 (the page's thread
 * mostly waits once decryption is off it: measured 64 % idle on 2 cores), or the page's thread when workers cannot
 * start (10 s to load).
 */
export function decryptor(): Promise<Decryptor> {
  chosen ??= choose().then((d) => {
    // For tests and the benchmark: where this page decrypts ("workers" or "page").
    document.body.dataset.decrypt = d === onPage ? 'page' : 'workers';
    return d;
  });
  return chosen;
}

async function choose(): Promise<Decryptor> {
  if (typeof Worker !== 'function') return onPage;
  const count = Math.max(2, Math.min(4, (navigator.hardwareConcurrency || 2) - 1));
  let pool: WorkerPool | null = null;
  try {
    pool = new WorkerPool(Array.from({ length: count }, () => new Worker(WORKER_URL, { name: 'kluis-decrypt' })));
    const ok = await Promise.race([pool.ready(), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000))]);
    if (ok) return pool;
  } catch {
    // not allowed or not supported: decrypt on the page
  }
  pool?.close();
  return onPage;
}
