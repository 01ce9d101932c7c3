// A batch of versions committed to a space's change log inside the caller's transaction: the space's epoch and seq,
// parent and id checks (commit-check.ts), chunk presence, and the rows. Used by POST commits (through the commit
// combiner), by file-request uploads (requests.ts) and by the combiner's groups (commit-combiner.ts).
import { verifyBatchWrapSignatures, verifyWrapSignature, type BatchFileKeyWrap, type CommitVersion, type FileKeyWrap } from '@kluis/shared';
import { checkChunks, checkVersions, commitRows, type CommitAuthor, type CommitSpace } from './commit-check.js';
import type { Services } from '../context.js';
import { frozenRefusal, frozenWitness } from './access.js';
import type { Tx } from '../db/db.js';
import { isPostgres } from '../db/postgres.js';
import { insertRows } from '../db/bulk-insert.js';
import { whereInValues } from '../db/in-values.js';

export type { CommitAuthor } from './commit-check.js';

const IN_BATCH = 500;

export function chunked<T>(items: T[], size = IN_BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * The wraps of `versions` whose signatures verify. A signature needs no database, so a caller checks them before its
 * transaction (checkedWraps option of commitBatch): inside it the single writer would wait for every other commit's
 * public-key work too. Version-2 wraps are checked together (one signature per batch, the tree rebuilt once); when that
 * fails each is checked alone, so that the refusal names the wrap. `known`: wraps verified already (rebuilt from a
 * batch sent whole, services/commit-wire.ts).
 */
export function verifiedWraps(versions: CommitVersion[], known: ReadonlySet<FileKeyWrap> = new Set()): ReadonlySet<FileKeyWrap> {
  const ok = new Set<FileKeyWrap>(known);
  const batch = versions.flatMap((v) => (v.fileKeyWrap?.v === 2 && !known.has(v.fileKeyWrap) ? [v.fileKeyWrap as BatchFileKeyWrap] : []));
  let batchOk = false;
  try {
    verifyBatchWrapSignatures(batch);
    batchOk = true;
  } catch {
    // each alone below
  }
  for (const v of versions) {
    const w = v.fileKeyWrap;
    if (!w || known.has(w)) continue;
    if (batchOk && w.v === 2) ok.add(w);
    else {
      try {
        verifyWrapSignature(w);
        ok.add(w);
      } catch {
        // refused where it is needed (commitBatch), with the wrap's file named
      }
    }
  }
  return ok;
}

/** Validates and stores one batch; returns the assigned seqs, or throws 409 with every conflict found. */
export async function commitBatch(trx: Tx, services: Services, author: CommitAuthor, spaceId: string, signer: string, versions: CommitVersion[], options: { refuseFrozen?: boolean; checkedWraps?: ReadonlySet<FileKeyWrap> } = {}) {
  // The space's epoch, its public key and its seq in one read (inside the transaction: the seq is ours to bump).
  const read = trx('spaces as s').join('space_epochs as e', function () {
    this.on('e.space_id', '=', 's.id').andOn('e.key_epoch', '=', 's.key_epoch');
  }).where('s.id', spaceId);
  // PostgreSQL: the space's row stays locked to COMMIT, so a commit racing in another transaction (another node) waits
  // here and then reads the heads and the seq this one leaves: its parent check never passes on a stale head. The
  // writer lock (db/postgres.ts) orders write transactions already; this keeps commits right without it. sqlite has
  // one writer and no row locks (Knex would only warn).
  // refuseFrozen: whether the space is frozen (services/access.ts refuseIfFrozen) is read in the same statement.
  const frozen = options.refuseFrozen ? [trx.raw('EXISTS ? AS frozen', [frozenWitness(trx).whereRaw('p.space_id = s.id')])] : [];
  const space = await (isPostgres(trx) ? read.forUpdate('s') : read).first('s.key_epoch', 's.seq', 's.org_id', 'e.public_key', ...frozen);
  if (options.refuseFrozen && Number(space.frozen)) throw frozenRefusal();
  // The audit entry of this commit names the space: its organisation is known now (audit/org-sides.ts).
  services.audit.noteSpaceOrg?.(trx, spaceId, space.org_id as string);
  const keyEpoch = Number(space.key_epoch);
  const epochPublicKey = space.public_key as string;
  const now = Date.now();
  const fileIds = [...new Set(versions.map((v) => v.fileId))];
  const versionIds = versions.map((v) => v.versionId);
  const facts: CommitSpace = { spaceId, keyEpoch, epochPublicKey, signer };

  // The files (with the newest epoch they have a key for) and the versions with these ids in one statement per 500 of
  // each: versions in this space are replays (their seq is the caller's to know); ids taken elsewhere are refused.
  const files = new Map<string, { space_id: string; head_version_id: string | null; wrapEpoch: number }>();
  const taken = new Map<string, number | 'elsewhere'>();
  for (let i = 0; i < Math.max(fileIds.length, versionIds.length); i += IN_BATCH) {
    for (const r of await readFilesAndVersions(trx, fileIds.slice(i, i + IN_BATCH), versionIds.slice(i, i + IN_BATCH))) {
      if (Number(r.kind) === 0) files.set(r.id, { space_id: r.space_id, head_version_id: r.head, wrapEpoch: Number(r.n ?? 0) });
      else taken.set(r.id, r.space_id === spaceId ? Number(r.n) : 'elsewhere');
    }
  }

  // Signatures (docs/crypto.md §5, §5.2), unless the caller checked them before its transaction.
  const { heads } = checkVersions(facts, versions, { file: (id) => files.get(id), version: (id) => taken.get(id) }, options.checkedWraps ?? verifiedWraps(versions));

  // Every chunk must be stored in this space before a version may name it.
  const lengths = new Map<string, number>();
  let dead = false;
  for (const part of chunked([...new Set(versions.flatMap((v) => v.chunks))])) {
    for (const r of await whereInValues(trx, trx('chunks').where({ space_id: spaceId }), 'id', part).select('id', 'length', 'live')) {
      lengths.set(r.id, Number(r.length));
      if (!Number(r.live)) dead = true;
    }
  }
  const wanted = checkChunks(versions, lengths);

  const { versionRows, chunkRows, wrapRows, assigned, lastSeq: seq } = commitRows(facts, author, versions, Number(space.seq), lengths, now);
  // New files are inserted with their head (no foreign key on it); only known files need an UPDATE.
  const newFiles = fileIds.filter((id) => !files.has(id)).map((id) => ({ id, space_id: spaceId, head_version_id: heads.get(id)!, created_at: now }));
  await insertCommitRows(trx, { newFiles, versionRows, chunkRows, wrapRows });
  for (const [fileId, head] of heads) if (files.has(fileId)) await trx('files').where({ id: fileId }).update({ head_version_id: head });
  // Chunks named again by a new version are live again (they may have been counted dead by retention). Read above in
  // this transaction: when all are live, as nearly always, that is two statements fewer.
  if (dead) await services.chunks.markLive(space.org_id as string, spaceId, wanted, trx);
  await trx('spaces').where({ id: spaceId }).update({ seq });
  return { firstSeq: assigned[0]!.seq, lastSeq: seq, versions: assigned };
}

/** Files (kind 0: space, head, newest wrap epoch as n) and versions (kind 1: space, seq as n) with these ids, in one statement. */
export async function readFilesAndVersions(trx: Tx, fileIds: string[], versionIds: string[]) {
  return await whereInValues(trx, trx('files as f'), 'f.id', fileIds)
    .select(trx.raw('0 AS kind'), 'f.id', 'f.space_id', 'f.head_version_id as head', trx('file_key_wraps as w').max('w.key_epoch').whereRaw('w.file_id = f.id').as('n'))
    .unionAll(whereInValues(trx, trx('versions as v'), 'v.id', versionIds).select(trx.raw('1 AS kind'), 'v.id', 'v.space_id', trx.raw('NULL AS head'), 'v.seq as n')) as
    { kind: number | string; id: string; space_id: string; head: string | null; n: number | string | null }[];
}

/**
 * Multi-row INSERTs of a commit's rows (or a group's): db/bulk-insert.ts, on PostgreSQL in parts that stay below its
 * limit on bound parameters.
 */
export async function insertCommitRows(trx: Tx, rows: { newFiles: object[]; versionRows: object[]; chunkRows: object[]; wrapRows: object[] }): Promise<void> {
  await insertRows(trx, 'files', rows.newFiles as Record<string, unknown>[], 200);
  await insertRows(trx, 'versions', rows.versionRows as Record<string, unknown>[], 50);
  await insertRows(trx, 'version_chunks', rows.chunkRows as Record<string, unknown>[], 300);
  await insertRows(trx, 'file_key_wraps', rows.wrapRows as Record<string, unknown>[], 200);
}
