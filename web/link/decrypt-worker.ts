// The link page's decryption worker (/s/assets/decrypt.js, a dedicated worker started by decrypt-pool.ts): it opens
// chunks with libsodium off the page's thread, so fetching, parsing and saving on the page run beside it. Input and
// output buffers are transferred, never copied. It sees one chunk's keys and ciphertext per message; it fetches
// nothing and keeps nothing between messages.
import { decryptChunk, initCrypto, type FileSubkeys } from '@kluis/shared';

const scope = globalThis as unknown as DedicatedWorkerGlobalScope;
const ready = initCrypto();

interface Job {
  n: number;
  id: string;
  chunkKey: Uint8Array;
  chunkIdKey: Uint8Array;
  ciphertext: Uint8Array;
}

scope.onmessage = async (e: MessageEvent<Job | { n: number; ping: true }>) => {
  try {
    await ready;
  } catch {
    scope.postMessage({ n: e.data.n, error: 'init' });
    return;
  }
  if ('ping' in e.data) {
    scope.postMessage({ n: e.data.n, pong: true });
    return;
  }
  const { n, id, chunkKey, chunkIdKey, ciphertext } = e.data;
  try {
    // Only the two subkeys a chunk needs travel here; the manifest key stays on the page.
    const plain = decryptChunk({ chunkKey, chunkIdKey } as FileSubkeys, id, ciphertext);
    scope.postMessage({ n, plain }, [plain.buffer]);
  } catch {
    scope.postMessage({ n, error: 'verify' });
  }
};
