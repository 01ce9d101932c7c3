// Direct shares survive key rotations (docs/crypto.md §5 "Direct shares"): when the engine commits a fresh file key
// (the first version of a file under a new key epoch), it seals that key to the recipient of each active share of
// the file, so the colleague keeps reading new versions. Best effort, after the commit: a failure is reported as a
// warning and leaves the share on its older epochs until this runs again or someone re-runs `kluis share file`.
import type { ApiClient } from '../api/client.js';
import { addShareWraps } from '../account/file-shares.js';
import type { Account } from '../account/state.js';
import type { SpaceCrypto } from './remote.js';

/**
 * `fresh`: the files whose commit just carried a new key, with its epoch. A file's key of epoch 1 is its first
 * key: no share can exist before it, so those are skipped without asking the server.
 */
export async function shareFreshKeys(engine: { client: ApiClient; account: Account; emit(event: string, ...args: unknown[]): void }, sc: SpaceCrypto, fresh: { fileId: string; keyEpoch: number }[]): Promise<void> {
  const keys = fresh.filter((f) => f.keyEpoch > 1).flatMap((f) => {
    const k = sc.keyFor(f.fileId, f.keyEpoch);
    return k ? [{ fileId: f.fileId, keyEpoch: f.keyEpoch, fileKey: k.fileKey }] : [];
  });
  if (keys.length === 0) return;
  try {
    const r = await addShareWraps(engine.client, engine.account, sc.spaceId, keys);
    for (const p of r.problems) engine.emit('warning', `direct share not extended to the new key: ${p}`);
  } catch (err) {
    engine.emit('warning', `direct shares of newly keyed files were not extended (run kluis share file again): ${err instanceof Error ? err.message : String(err)}`);
  }
}
