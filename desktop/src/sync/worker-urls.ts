// The entry files of the sync engine's worker threads. Written '../sync/…' relative to this module, so they resolve
// to desktop/dist/sync/ both from the engine's own modules (desktop/dist/sync/) and from the CLI bundle
// (desktop/dist/cli/kluis.mjs, scripts/build-cli.mjs), which holds this module's code but not the workers' (each
// worker loads its own lean imports, @kluis/shared/hashing).

/** The content-hash worker (hash-worker.ts), started by hash-pool.ts. */
export const HASH_WORKER_URL = new URL('../sync/hash-worker.js', import.meta.url);
/** The chunk-id worker (chunk-id-worker.ts), started by confirm-ahead.ts. */
export const CHUNK_ID_WORKER_URL = new URL('../sync/chunk-id-worker.js', import.meta.url);
