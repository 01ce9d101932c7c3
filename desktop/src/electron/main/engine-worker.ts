// A folder's engine thread (worker_threads; docs/desktop.md "Main process"): opens the folder through the engine's
// front door (../../sync/door.ts) with the account main posted, runs it, and answers the proxy's calls
// (./engine-proxy.ts). Scanning, chokidar's watches, reading, sealing, signing and commits run here, so the main
// thread's event loop stays free for IPC and the tray however much a folder has to do.
import { parentPort, workerData } from 'node:worker_threads';
import { initCrypto } from '@kluis/shared';
import { openFolder, type SyncFolder, type SyncFolderEvents } from '../../sync/door.js';
import { toWire, type CallName, type FromWorker, type ToWorker, type WorkerStart } from './engine-messages.js';

if (!parentPort) throw new Error('engine-worker.ts runs as a worker thread');
const port = parentPort;
const post = (m: FromWorker): void => port.postMessage(m);

const EVENTS: (keyof SyncFolderEvents)[] = ['progress', 'synced', 'conflict', 'refused', 'warning', 'state', 'retry', 'failure'];

function serve(folder: SyncFolder): void {
  for (const event of EVENTS) {
    folder.on(event, (...args: unknown[]) => post({ type: 'event', event, args: event === 'failure' ? [toWire(args[0])] : args }));
  }
  const calls: Record<CallName, (...args: never[]) => unknown> = {
    start: (o: { pollMs?: number }) => {
      // answered at once; the watch's end is its own message
      folder.start(o).then(() => post({ type: 'ended' }), (err: unknown) => post({ type: 'ended', error: toWire(err) }));
    },
    pause: () => folder.pause(),
    resume: () => folder.resume(),
    setBandwidth: (n: number) => folder.setBandwidth(n),
    history: (rel: string) => folder.history(rel),
    restore: (rel: string, version: string) => folder.restore(rel, version),
    close: async () => {
      await folder.close();
      // nothing is left to answer: the thread ends once the answer is out (the proxy also waits for its exit)
      setImmediate(() => port.close());
    },
  };
  port.on('message', (m: ToWorker) => {
    void (async () => {
      try {
        const value = await (calls[m.method] as (...args: unknown[]) => unknown)(...m.args);
        post({ type: 'answer', id: m.id, value });
      } catch (err) {
        post({ type: 'answer', id: m.id, error: toWire(err) });
      }
    })();
  });
}

const start = workerData as WorkerStart;
try {
  await initCrypto({ wasm: 'lazy' });
  const folder = await openFolder(start.account, start.dir, start.open);
  serve(folder);
  post({ type: 'opened', folder: folder.folder });
} catch (err) {
  post({ type: 'open-failed', error: toWire(err) }); // the proxy ends the thread
}
