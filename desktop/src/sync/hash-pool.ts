// The scan's second hasher (issue 22, W4: a first sync of 2,000 office files spent 1.3 s hashing them on one core
// before the first byte went out, with the server and the object store idle). Files above the synchronous size are
// hashed by the main thread (file-hash.ts hashFile) and by one worker thread (hash-worker.ts), each taking the next file
// when it has room. The worker starts only at the second such file of a scan (it costs about 50 ms and 15 MB to start:
// a scan of one large file, W1, does not pay for it) and ends with the scan. A worker that fails or is ended leaves its
// files to the main thread: every tryHash answer still comes, from one thread or the other.
import type { Worker } from 'node:worker_threads';
import { LocalFsError } from './local-paths.js';
import { startWorker } from './heap-growth.js';
import type { FileFacts, HashedFile } from './file-hash.js';
import type { HashAnswer, HashJob } from './hash-worker.js';
import { HASH_WORKER_URL } from './worker-urls.js';

/** workerData that marks the hash worker's thread (an engine thread is a worker too). */
export const HASH_WORKER = 'kluis-hash-worker';

/** Files the worker holds at once (one being hashed, one waiting so that it never idles between messages). */
const WORKER_QUEUE = 2;

interface Pending {
  job: HashJob;
  resolve: (h: HashedFile | null) => void;
  reject: (err: unknown) => void;
}

export class HashPool {
  private worker: Worker | null = null;
  private failed = false;
  private asked = 0;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();

  /**
   * `minSize`: files up to this size are not offered (the caller hashes them synchronously); `hashHere`: how the main
   * thread hashes a file (file-hash.ts hashFile), for those the worker was given and could not answer.
   */
  constructor(
    private readonly minSize: number,
    private readonly hashHere: (absPath: string, facts: FileFacts) => Promise<HashedFile | null>,
  ) {}

  /** Hashes the file on the worker if it has room; null: the caller hashes it itself (hashFile). */
  tryHash(absPath: string, facts: FileFacts): Promise<HashedFile | null> | null {
    if (this.failed || facts.size <= this.minSize) return null;
    if (++this.asked < 2 || this.pending.size >= WORKER_QUEUE) return null;
    const worker = this.worker ?? this.start();
    return worker ? this.post(worker, absPath, facts) : null;
  }

  /**
   * Hashes the file on the worker whatever its size and however many files wait (the upload of a file the scan left
   * to it, hash-later.ts), or on the main thread when no worker runs.
   */
  hashAside(absPath: string, facts: FileFacts): Promise<HashedFile | null> {
    const worker = this.failed ? null : this.worker ?? this.start();
    return worker ? this.post(worker, absPath, facts) : this.hashHere(absPath, facts);
  }

  private post(worker: Worker, absPath: string, facts: FileFacts): Promise<HashedFile | null> {
    const job: HashJob = { seq: ++this.seq, absPath, facts };
    return new Promise((resolve, reject) => {
      this.pending.set(job.seq, { job, resolve, reject });
      worker.postMessage(job);
    });
  }

  /** Ends the worker; files it still held are hashed by the main thread. */
  async close(): Promise<void> {
    this.failed = true;
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
    this.takeBack();
  }

  private start(): Worker | null {
    try {
      const w = startWorker(HASH_WORKER_URL, HASH_WORKER);
      w.unref();
      w.on('message', (a: HashAnswer) => this.answer(a));
      w.on('error', () => void this.close());
      w.on('exit', () => {
        this.failed = true;
        this.takeBack();
      });
      this.worker = w;
      return w;
    } catch {
      this.failed = true;
      return null;
    }
  }

  private answer(a: HashAnswer): void {
    const p = this.pending.get(a.seq);
    if (!p) return;
    this.pending.delete(a.seq);
    if ('hashed' in a) return p.resolve(a.hashed);
    const { message, code, changing } = a.error;
    p.reject(changing ? new LocalFsError('changed', message) : Object.assign(new Error(message), code ? { code } : {}));
  }

  /** Hashes on the main thread whatever the worker was given and did not answer. */
  private takeBack(): void {
    for (const [seq, p] of this.pending) {
      this.pending.delete(seq);
      this.hashHere(p.job.absPath, p.job.facts).then(p.resolve, p.reject);
    }
  }
}
