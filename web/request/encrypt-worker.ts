// The request page's encryption worker (/r/assets/encrypt.js, a dedicated worker started by encrypt-pool.ts): it
// seals chunks with libsodium off the page's thread (docs/crypto.md §6, unchanged), so reading, cutting and sending
// on the page run beside it. The plaintext comes in and the ciphertext goes back by transfer, never copied. It sees
// one chunk's two subkeys and plaintext per message; it fetches nothing and keeps nothing between messages.
import { encryptChunk, initCrypto, type FileSubkeys } from '@kluis/shared';
import { serveJobs } from '../common/worker-serve.js';

interface Job {
  chunkKey: Uint8Array;
  chunkIdKey: Uint8Array;
  plain: Uint8Array;
}

serveJobs<Job>(initCrypto, ({ chunkKey, chunkIdKey, plain }) => {
  const { id, ciphertext } = encryptChunk({ chunkKey, chunkIdKey } as FileSubkeys, plain);
  return [{ id, ciphertext }, [ciphertext.buffer]];
});
