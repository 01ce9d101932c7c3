// Worker thread of hash-pool.ts: hashes whole files for the scan (hashFileSync, file-hash.ts) while the main thread hashes
// others, so that a first sync of many large files reads and hashes on both cores. Nothing but paths, facts and
// hashes crosses between the threads.
import { parentPort, workerData } from 'node:worker_threads';
import { initCrypto, loadFastBlake2b } from '@kluis/shared/hashing';
import { HASH_WORKER } from './hash-pool.js';
import { LocalFsError } from './local-paths.js';
import { hashFileSync, type FileFacts, type HashedFile } from './file-hash.js';

export interface HashJob {
  seq: number;
  absPath: string;
  facts: FileFacts;
}

export type HashAnswer = { seq: number; hashed: HashedFile | null } | { seq: number; error: { message: string; code?: string; changing: boolean } };

if (parentPort && workerData === HASH_WORKER) {
  const port = parentPort;
  await initCrypto({ wasm: 'lazy' });
  await loadFastBlake2b(); // this thread hashes large files (fast-blake2b.ts)
  port.on('message', (job: HashJob) => {
    let answer: HashAnswer;
    try {
      answer = { seq: job.seq, hashed: hashFileSync(job.absPath, job.facts) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      answer = { seq: job.seq, error: { message: err instanceof Error ? err.message : String(err), ...(typeof code === 'string' ? { code } : {}), changing: err instanceof LocalFsError } };
    }
    port.postMessage(answer);
  });
}
