// The part of @kluis/shared that the sync client's worker threads need (desktop/src/sync/hash-worker.ts,
// chunk-id-worker.ts and the modules they import): sodium's start-up, whole-file and chunk-id hashing, the chunk and
// path limits, the buffer pool. A worker that imports the package's main entry also loads its API schemas (zod) and
// everything else: a live worker thread cost 25 MB of RSS that way, 11 MB with this entry (issue 22; the same
// modules, so a process that loads both shares one sodium and one of each).
export { initCrypto } from './crypto/sodium.js';
export { ContentHasher, contentHash, chunkId, prepareChunkIds } from './crypto/content.js';
export { BULK_HASH_MIN, loadFastBlake2b } from './crypto/fast-blake2b.js';
export type { FileSubkeys } from './crypto/keys.js';
export { CHUNK_MAX } from './chunking/fastcdc.js';
export { MAX_PATH_BYTES, MAX_SEGMENT_BYTES } from './paths.js';
export { SizeClassPool } from './buffer-pool.js';
