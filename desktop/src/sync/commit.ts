// Making and committing versions (docs/architecture.md §4): a version is a signed, sealed manifest; commits go in
// batches, journalled first (journal.ts), and what the server answers becomes the index's base and remote rows.
import { compactCommit, ErrorCode, newId, sealManifests, toBase64Url, wrapFileKeysBatch, type CommitVersion, type FileKeyWrap, type FileSubkeys, type Manifest } from '@kluis/shared';
import { ApiRequestError } from '../api/client.js';
import type { LocalFacts } from './atomic-write.js';
import { FROZEN, type SyncContext } from './context.js';
import { baseOf } from './download.js';
import { journalCommit } from './journal.js';
import type { FileKeys, SpaceCrypto } from './remote.js';
import { shareFreshKeys } from './share-wraps.js';
import type { BaseEntry, LocalEntry, RemoteEntry } from './types.js';

/** A version ready to commit, with the index changes it makes once committed. */
export interface PendingCommit {
  version: CommitVersion;
  /** index changes once committed (the remote entry's seq is filled in from the answer) */
  putBase?: BaseEntry;
  deleteBase?: string;
  remote: RemoteEntry;
  /** The file key of the version's epoch while no commit has carried its wrap yet (the wrap is made per batch). */
  unwrapped?: Uint8Array;
  wrap?: FileKeyWrap;
  /** The manifest until its batch is signed and sealed (commitBatch); `version.manifest` is empty until then. */
  unsealed?: { manifest: Manifest; keys: FileSubkeys };
  kind: 'upload' | 'delete' | 'move';
}

/** A version ready to commit; its manifest is signed and sealed with its batch's (sealNew, docs/crypto.md §8.1). */
export function makeVersion(
  ctx: SyncContext, sc: SpaceCrypto, keys: FileKeys, m: Omit<Manifest, 'v' | 'versionId'>, kind: PendingCommit['kind'],
  after: { local?: LocalEntry | LocalFacts; deleteBase?: string },
): PendingCommit {
  const versionId = newId();
  const manifest: Manifest = { v: 2, ...m, memberSeq: sc.memberSeq, versionId };
  const remote: RemoteEntry = {
    fileId: m.fileId, versionId, seq: 0, path: m.path, kind: m.kind, size: m.size, mtimeMs: m.mtimeMs, hash: m.hash, deleted: m.deleted, chunks: m.chunks, keyEpoch: sc.keyEpoch,
  };
  const pc: PendingCommit = {
    version: { fileId: m.fileId, versionId, parent: m.parent, keyEpoch: sc.keyEpoch, manifest: '', chunks: m.chunks.map(([id]) => id), deleted: m.deleted },
    remote,
    kind,
    unsealed: { manifest, keys: keys.subkeys },
    ...(keys.unwrapped ? { unwrapped: keys.fileKey } : {}),
    ...(after.deleteBase !== undefined ? { deleteBase: after.deleteBase } : {}),
  };
  if (!m.deleted && after.local) pc.putBase = baseOf(remote, after.local);
  return pc;
}

/**
 * Signs the batch's manifests with one signature and seals each (docs/crypto.md §8.1), where a per-manifest signature
 * was about a tenth of a first sync's client CPU for small files (issue 22, W2).
 */
function sealNew(ctx: SyncContext, batch: PendingCommit[]): void {
  const need = batch.filter((p) => p.unsealed);
  if (!need.length) return;
  const sealed = sealManifests(need.map((p) => p.unsealed!), ctx.account.keys);
  need.forEach((p, i) => {
    p.version.manifest = toBase64Url(sealed[i]!);
    delete p.unsealed;
  });
}

/**
 * Wraps the new file keys of a batch at once (docs/crypto.md §5.2: one ephemeral X25519 key and one signature per
 * batch, instead of a sealed box and a signature per file). Only the first version of a file in the batch carries it.
 */
function wrapNewKeys(ctx: SyncContext, sc: SpaceCrypto, batch: PendingCommit[]): void {
  const seen = new Set<string>();
  const need = batch.filter((p) => p.unwrapped && !p.wrap && !seen.has(p.version.fileId) && seen.add(p.version.fileId));
  if (!need.length) return;
  const wraps = wrapFileKeysBatch(need.map((p) => ({ fileId: p.version.fileId, fileKey: p.unwrapped! })), { spaceId: sc.spaceId, keyEpoch: sc.keyEpoch, recipient: sc.currentPublicKey() }, ctx.account.keys);
  need.forEach((p, i) => {
    p.wrap = wraps[i]!;
    p.version.fileKeyWrap = wraps[i]!;
  });
}

/**
 * The change-log position the index may move to after committing versions at `seqs`: from `lastSeq`, as far as the
 * next seqs are all among them. Every version in that run is this device's, its remote row written with its seq by
 * the same transaction, so the pull would only skip them (pull.ts). A seq of another device's version (or a gap)
 * ends the run: the pull fetches from there as before.
 */
export function ownRunEnd(lastSeq: number, seqs: Iterable<number>): number {
  const own = seqs instanceof Set ? (seqs as Set<number>) : new Set(seqs);
  let at = lastSeq;
  while (own.has(at + 1)) at++;
  return at;
}

/**
 * Commits one batch (journalled); drops versions the server refuses as stale (the next pass reconciles them).
 * `after`: the commit started before this one (upload.ts); this batch's index writes wait for it. Returns how many of
 * the batch's versions are committed (a refused one is left to the next pass).
 */
export async function commitBatch(ctx: SyncContext, batch: PendingCommit[], after?: Promise<unknown>): Promise<number> {
  const sc = await ctx.crypto();
  sealNew(ctx, batch);
  wrapNewKeys(ctx, sc, batch);
  const journalId = await journalCommit(ctx, batch.map((p) => ({
    fileId: p.version.fileId, versionId: p.version.versionId, ...(p.putBase ? { putBase: p.putBase } : {}), ...(p.deleteBase !== undefined ? { deleteBase: p.deleteBase } : {}),
  })));
  let pending = batch;
  const done: { p: PendingCommit; seq: number }[] = [];
  for (let attempt = 0; pending.length && attempt < 5; attempt++) {
    try {
      // A batch of wraps whole in the request goes as one statement (docs/api.md "A batch of wraps sent whole").
      const answer = await ctx.client.json<{ seq: number; versions: { fileId: string; versionId: string; seq: number }[] }>('POST', `/api/v1/spaces/${encodeURIComponent(sc.spaceId)}/commits`, compactCommit(pending.map((p) => p.version)));
      const seqOf = new Map(answer.versions.map((v) => [v.versionId, v.seq]));
      for (const p of pending) done.push({ p, seq: seqOf.get(p.version.versionId) ?? 0 });
      pending = [];
    } catch (err) {
      if (!(err instanceof ApiRequestError) || err.status !== 409) throw err;
      if (err.code === ErrorCode.SpaceFrozen) {
        // Frozen since this engine read the space: nothing is committed, the local files stay as they are and are
        // reported; the space is read again at the next pass (then its local changes are refused before any upload).
        for (const p of pending) ctx.refuse(p.remote.path, FROZEN);
        ctx.forgetCrypto();
        break;
      }
      const body = err.body as { conflicts?: { versionId: string; reason: string; seq?: number }[]; missing?: string[] };
      if (body.conflicts) {
        const byVersion = new Map(body.conflicts.map((c) => [c.versionId, c]));
        const keep: PendingCommit[] = [];
        for (const p of pending) {
          const c = byVersion.get(p.version.versionId);
          if (!c) keep.push(p);
          else if (c.reason === 'already_committed') done.push({ p, seq: c.seq ?? 0 }); // a replay after a lost answer
          // parent_not_head: someone committed first; the next pass pulls it and reconciles (conflict copy if needed)
        }
        pending = keep;
      } else if (body.missing) {
        const missing = new Set(body.missing);
        for (const p of pending) if (p.version.chunks.some((id) => missing.has(id))) ctx.chunksMissing.add(p.version.fileId);
        pending = pending.filter((p) => !p.version.chunks.some((id) => missing.has(id)));
      } else {
        // e.g. the key epoch changed under us: reload the space's keys and let the next pass redo it
        ctx.forgetCrypto();
        break;
      }
    }
  }
  const putBase: BaseEntry[] = [];
  const deleteBase: string[] = [];
  const putRemote: RemoteEntry[] = [];
  const putWraps: { fileId: string; keyEpoch: number; wrap: unknown }[] = [];
  const report = ctx.report;
  for (const { p, seq } of done) {
    if (p.deleteBase !== undefined) deleteBase.push(p.deleteBase);
    if (p.putBase) putBase.push(p.putBase);
    putRemote.push({ ...p.remote, seq });
    ctx.ownCommits.add(p.version.versionId);
    if (p.wrap) {
      putWraps.push({ fileId: p.version.fileId, keyEpoch: p.wrap.keyEpoch, wrap: p.wrap });
      sc.committed(p.version.fileId, p.wrap.keyEpoch);
    }
    if (p.kind === 'upload') report.uploaded++;
    else if (p.kind === 'delete') report.deletedRemote++;
    else report.moved++;
  }
  // The change log's next entries are this engine's versions: the index moves past them now, so the next pull does not
  // fetch them back (a first sync of 10,000 files pulled its own 10,000 versions again: 0.75 s of its 6 s, issue 22).
  // Batches may complete in any order: their seqs wait in ownSeqs until the run from the position reaches them. The
  // run is computed and handed to the index's queue of transactions (run one at a time, in order) in one synchronous
  // step, so the positions written only grow; the engine's copy follows once the transaction is done.
  await after; // the index writes of the batch committed before this one, first (upload.ts)
  for (const { seq } of done) if (seq > ctx.folder.lastSeq) ctx.ownSeqs.add(seq);
  const past = ownRunEnd(ctx.folder.lastSeq, ctx.ownSeqs);
  await ctx.db.apply(ctx.folder.id, { deleteBase, putBase, putRemote, putWraps, journalDone: [journalId], ...(past > ctx.folder.lastSeq ? { lastSeq: past } : {}) });
  if (past > ctx.folder.lastSeq) {
    for (let s = ctx.folder.lastSeq + 1; s <= past; s++) ctx.ownSeqs.delete(s);
    ctx.folder.lastSeq = past;
  }
  // A fresh key after a rotation: the colleagues a file is shared with get it too (sync/share-wraps.ts).
  await shareFreshKeys(ctx, sc, putWraps);
  // The keys of new files committed here are needed by no other step of this pass (a file is uploaded once a pass, and
  // a new file has no other action): dropped, to be opened from the index's wraps by a later pass that needs them.
  for (const { p } of done) if (p.wrap && p.version.parent === null) sc.forget(p.version.fileId, p.wrap.keyEpoch);
  return done.length;
}
