// The link page's decryption worker (/s/assets/decrypt.js, a dedicated worker started by decrypt-pool.ts): it opens
// chunks with libsodium off the page's thread, so fetching, parsing and saving on the page run beside it. Input and
// output buffers are transferred, never copied. It sees one chunk's keys and ciphertext per message; it fetches
// nothing and keeps nothing between messages.
import { decryptChunk, initCrypto, type FileSubkeys } from '@kluis/shared';
import { serveJobs } from '../common/worker-serve.js';

interface Job {
  id: string;
  chunkKey: Uint8Array;
  chunkIdKey: Uint8Array;
  ciphertext: Uint8Array;
}

serveJobs<Job>(initCrypto, ({ id, chunkKey, chunkIdKey, ciphertext }) => {
  // Only the two subkeys a chunk needs travel here; the manifest key stays on the page.
  const plain = decryptChunk({ chunkKey, chunkIdKey } as FileSubkeys, id, ciphertext);
  return [{ plain }, [plain.buffer]];
});
