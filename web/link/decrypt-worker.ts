// The link page's decryption worker (/s/assets/decrypt.js, a dedicated worker started by decrypt-pool.ts): it opens
// chunks with libsodium off the page's thread, so fetching, parsing and saving on the page run beside it. Input and
// output buffers are transferred, never copied: the plaintext comes back in the ciphertext's own buffer
// (openChunkInPlace), so no buffer is made per chunk here. It sees one chunk's keys and ciphertext per message; it
// fetches nothing and keeps nothing between messages but libsodium's working area (no key stays in it).
import { initCrypto, openChunkInPlace, type FileSubkeys } from '@kluis/shared';
import { serveJobs } from '../common/worker-serve.js';

interface Job {
  id: string;
  chunkKey: Uint8Array;
  chunkIdKey: Uint8Array;
  ciphertext: Uint8Array;
}

serveJobs<Job>(initCrypto, ({ id, chunkKey, chunkIdKey, ciphertext }) => {
  // Only the two subkeys a chunk needs travel here; the manifest key stays on the page.
  const plain = openChunkInPlace({ chunkKey, chunkIdKey } as FileSubkeys, id, ciphertext);
  return [{ plain }, [plain.buffer]];
});
