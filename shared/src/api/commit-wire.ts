// A commit request's wraps in their compact form (docs/api.md "A batch of wraps sent whole"): the version-2 wraps of a
// batch that the request carries whole go as one statement in `wrapBatches` and, per version, a reference with the
// wrap's index and sealed key. Their statement fields and Merkle proofs, about 40 % of a first sync's commit bodies,
// are sent once instead of with every wrap; the server rebuilds the very same wraps (server/src/services/commit-wire.ts).
import { wrapBatchStatement, type BatchFileKeyWrap, type WrapBatchStatement } from '../crypto/batch-wrap.js';
import type { CommitRequest, CommitVersion } from './schemas.js';

const sameStatement = (a: WrapBatchStatement, b: BatchFileKeyWrap): boolean =>
  a.sig === b.sig && a.root === b.root && a.size === b.size && a.spaceId === b.spaceId && a.keyEpoch === b.keyEpoch
  && a.recipient === b.recipient && a.ephemeral === b.ephemeral && a.signer === b.signer;

/**
 * The request that commits `versions`, each complete batch of version-2 wraps among them (every index of the batch
 * once, one statement) sent as a statement and references. Other wraps (version 1, a batch of which only some wraps
 * are here, as in a retry of part of a batch) go whole. `versions` are not changed.
 */
export function compactCommit(versions: readonly CommitVersion[]): CommitRequest {
  const groups = new Map<string, { statement: WrapBatchStatement; at: number[]; ok: boolean }>();
  versions.forEach((v, at) => {
    const w = v.fileKeyWrap;
    if (w?.v !== 2) return;
    const g = groups.get(w.sig);
    if (!g) groups.set(w.sig, { statement: wrapBatchStatement(w), at: [at], ok: true });
    else {
      g.at.push(at);
      if (!sameStatement(g.statement, w)) g.ok = false;
    }
    if (w.fileId !== v.fileId) groups.get(w.sig)!.ok = false; // the reference takes the version's fileId
  });
  const out: CommitVersion[] = versions.slice();
  const wrapBatches: WrapBatchStatement[] = [];
  for (const g of groups.values()) {
    const seen = new Set<number>();
    for (const at of g.at) seen.add((versions[at]!.fileKeyWrap as BatchFileKeyWrap).index);
    if (!g.ok || g.at.length !== g.statement.size || seen.size !== g.statement.size) continue;
    const batch = wrapBatches.push(g.statement) - 1;
    for (const at of g.at) {
      const { fileKeyWrap, ...rest } = versions[at]!;
      const w = fileKeyWrap as BatchFileKeyWrap;
      out[at] = { ...rest, batchWrap: { batch, index: w.index, sealed: w.sealed } };
    }
  }
  return wrapBatches.length ? { versions: out, wrapBatches } : { versions: out };
}
