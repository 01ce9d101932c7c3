// Dedicated workers for a page's chunk crypto (the link page decrypts in them, the request page encrypts): started
// from this origin (worker-src 'self'), each answers a ping once libsodium is loaded, messages are numbered and
// answered in any order, and buffers travel by transfer. Callers keep at most a few chunks in flight. The workers'
// side: worker-serve.ts.

export type Reply = { n: number; pong?: true; error?: string; [field: string]: unknown };

export class WorkerPool {
  private readonly pending = new Map<number, (r: Reply) => void>();
  private n = 0;
  private turn = 0;

  constructor(private readonly workers: Worker[]) {
    for (const w of workers) {
      w.onmessage = (e: MessageEvent<Reply>) => this.pending.get(e.data.n)?.(e.data);
      // A worker that fails answers every open request with an error (the transfer stops; nothing hangs).
      w.onerror = () => {
        for (const [n, resolve] of [...this.pending]) resolve({ n, error: 'worker failed' });
      };
    }
  }

  /** How many jobs may usefully be in flight at once (two per worker: one running, one waiting). */
  get parallel(): number {
    return this.workers.length * 2;
  }

  private post(worker: Worker, message: Record<string, unknown>, transfer: Transferable[]): Promise<Reply> {
    const n = ++this.n;
    return new Promise<Reply>((resolve) => {
      this.pending.set(n, (r) => (this.pending.delete(n), resolve(r)));
      worker.postMessage({ ...message, n }, transfer);
    });
  }

  /** One job for the next worker in turn. */
  send(message: Record<string, unknown>, transfer: Transferable[] = []): Promise<Reply> {
    return this.post(this.workers[this.turn++ % this.workers.length]!, message, transfer);
  }

  /** Every worker answered after loading libsodium. */
  async ready(): Promise<boolean> {
    const answers = await Promise.all(this.workers.map((w) => this.post(w, { ping: true }, [])));
    return answers.every((a) => a.pong);
  }

  close(): void {
    for (const w of this.workers) w.terminate();
  }
}

/** `bytes` over a buffer of its own (to transfer): itself when it is the whole buffer, else a copy. */
export function owned(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}

/**
 * A pool of workers from `url`: one per spare core, at least 2 and at most 4, or null when workers cannot start
 * or do not answer within 10 s (the page then does the work on its own thread).
 */
export async function startPool(url: string, name: string): Promise<WorkerPool | null> {
  if (typeof Worker !== 'function') return null;
  const count = Math.max(2, Math.min(4, (navigator.hardwareConcurrency || 2) - 1));
  let pool: WorkerPool | null = null;
  try {
    pool = new WorkerPool(Array.from({ length: count }, () => new Worker(url, { name })));
    const ok = await Promise.race([pool.ready(), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000))]);
    if (ok) return pool;
  } catch {
    // not allowed or not supported
  }
  pool?.close();
  return null;
}

/**
 * Made once per page, on first call: `inWorkers(pool)` over a pool of workers from `url`, or `onPage` when workers
 * cannot start. Sets `document.body.dataset[attribute]` to "workers" or "page" (for tests and the benchmarks).
 */
export function oncePerPage<T>(url: string, name: string, attribute: string, inWorkers: (pool: WorkerPool) => T, onPage: T): () => Promise<T> {
  let chosen: Promise<T> | null = null;
  return () => {
    chosen ??= startPool(url, name).then((pool) => {
      document.body.dataset[attribute] = pool ? 'workers' : 'page';
      return pool ? inWorkers(pool) : onPage;
    });
    return chosen;
  };
}
