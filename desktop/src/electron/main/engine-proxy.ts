// The main thread's side of a folder's engine thread (./engine-worker.ts): a thin typed proxy with the SyncFolder
// methods main uses (docs/desktop.md "Main process"). A call is a message answered by a promise; the door's events
// come back as messages and are emitted here with the same names and arguments; errors keep their code, message and
// HTTP status (./engine-messages.ts). A thread that dies (an engine crash, out of memory) ends as the folder's
// `error` state and a `failure` event: every call waiting on it is refused, none hangs.
import { Worker } from 'node:worker_threads';
import { ErrorCode, KluisError } from '@kluis/shared';
import type { Account } from '../../account/state.js';
import { FolderEvents, type FileHistory, type OpenOptions, type Restored, type SyncFolderEvents } from '../../sync/door.js';
import type { FolderRecord } from '../../sync/index-db.js';
import { fromWire, type CallName, type Calls, type FromWorker, type ToWorker, type WorkerStart } from './engine-messages.js';

/** How long close() waits for the thread to end by itself before it is terminated. */
const EXIT_GRACE_MS = 5000;

/** A synced folder whose engine runs in its own thread; what FolderHost (./folders.ts) holds per folder. */
export class FolderThread extends FolderEvents {
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private watch: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private dead: Error | null = null;
  private closing = false;
  private readonly exited: Promise<void>;

  private constructor(readonly worker: Worker, readonly folder: FolderRecord) {
    super();
    worker.on('message', (m: FromWorker) => this.received(m));
    worker.on('error', (err) => this.died(new KluisError(ErrorCode.Internal, `the folder's sync engine stopped: ${err.message}`)));
    this.exited = new Promise((resolve) => worker.once('exit', (code) => {
      this.died(new KluisError(ErrorCode.Internal, `the folder's sync engine ended (exit code ${code})`));
      resolve();
    }));
  }

  /** Starts a thread that opens DIR for the space through the door (bind + lock); refused as the door refuses. */
  static open(account: Account, dir: string, open: OpenOptions): Promise<FolderThread> {
    const start: WorkerStart = { account, dir, open };
    const worker = new Worker(new URL('./engine-worker.js', import.meta.url), { workerData: start });
    return new Promise((resolve, reject) => {
      const first = (m: FromWorker): void => {
        worker.off('exit', early);
        worker.off('error', failed);
        if (m.type === 'opened') return resolve(new FolderThread(worker, m.folder));
        reject(m.type === 'open-failed' ? fromWire(m.error) : new Error(`unexpected ${m.type} before the folder opened`));
        void worker.terminate(); // nothing was opened: the thread has nothing left to do
      };
      const failed = (err: Error): void => reject(new KluisError(ErrorCode.Internal, `the folder's sync engine did not start: ${err.message}`));
      const early = (code: number): void => reject(new KluisError(ErrorCode.Internal, `the folder's sync engine ended before it opened (exit code ${code})`));
      worker.once('message', first);
      worker.once('error', failed);
      worker.once('exit', early);
    });
  }

  private received(m: FromWorker): void {
    if (m.type === 'answer') {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error) w?.reject(fromWire(m.error));
      else w?.resolve(m.value);
    } else if (m.type === 'event') {
      const args = m.event === 'failure' ? [fromWire(m.args[0] as Parameters<typeof fromWire>[0])] : m.args;
      this.emit(m.event, ...(args as SyncFolderEvents[typeof m.event]));
    } else if (m.type === 'ended') {
      const w = this.watch;
      this.watch = null;
      if (m.error) w?.reject(fromWire(m.error));
      else w?.resolve();
    }
  }

  /** The thread is gone: the folder shows it as an error, and nothing waits on it any more. */
  private died(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    if (this.watch && !this.closing) {
      this.emit('state', 'error', err.message);
      this.emit('failure', err);
      this.watch.reject(err);
      this.watch = null;
    }
  }

  private call<M extends CallName>(method: M, ...args: Calls[M]): Promise<unknown> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'call', id, method, args } satisfies ToWorker);
    });
  }

  /** Keeps the folder in step until close(); the promise ends with the watch (rejected when the thread dies). */
  start(o: { pollMs?: number } = {}): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.watch = { resolve, reject };
    });
    this.call('start', o).catch((err: Error) => this.watch?.reject(err));
    return done;
  }

  /** Answered once the engine has taken it (its `state` event is in before the answer). */
  async pause(): Promise<void> {
    await this.call('pause');
  }

  async resume(): Promise<void> {
    await this.call('resume');
  }

  async setBandwidth(bytesPerSecond: number): Promise<void> {
    await this.call('setBandwidth', bytesPerSecond);
  }

  history(rel: string): Promise<FileHistory> {
    return this.call('history', rel) as Promise<FileHistory>;
  }

  restore(rel: string, version: string): Promise<Restored & { written: boolean }> {
    return this.call('restore', rel, version) as Promise<Restored & { written: boolean }>;
  }

  /** Stops the engine, unlocks the folder and ends the thread (terminated if it does not end by itself). */
  async close(): Promise<void> {
    this.closing = true;
    if (!this.dead) await this.call('close').catch(() => undefined);
    const timer = setTimeout(() => void this.worker.terminate(), EXIT_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }
}
