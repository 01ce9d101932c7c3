// The commit combiner (issue 21): the POST /commits requests that arrive while the single writer is busy are written as
// ONE member of the group committer (db/group-commit.ts) instead of one savepoint each. What they all need is read with
// batched statements (the spaces with epoch key and frozen flag, the files and versions, the chunks); each request is
// checked in arrival order against overlays of that (a space's seq, a file's head and key epoch, the version ids taken),
// so that a later request may build on an earlier one's version; the refused ones get exactly the refusal commitBatch
// gives; the accepted ones are written with one multi-row INSERT per table, one UPDATE for the known files' heads, one
// per space for its seq, and their audit entries in one batch (audit/batch.ts's pattern). Every request answers after
// the COMMIT. A request that the combined checks cannot judge (its space not found), or every request of a group whose
// combined writes fail, runs alone through commitBatch instead.
import type { CommitVersion, FileKeyWrap } from '@kluis/shared';
import type { AuditEntryInput } from '../audit/types.js';
import type { Services } from '../context.js';
import type { Tx } from '../db/db.js';
import { isPostgres } from '../db/postgres.js';
import { DomainError } from '../domain-error.js';
import { whereInValues } from '../db/in-values.js';
import { chunked, commitBatch, insertCommitRows, readFilesAndVersions, type CommitAuthor } from './commit-batch.js';
import { frozenRefusal, frozenWitness } from './access.js';
import { checkChunks, checkVersions, commitRows, type CommitSpace, type VersionRow } from './commit-check.js';

export interface CommitJob {
  author: CommitAuthor;
  spaceId: string;
  signer: string;
  versions: CommitVersion[];
  /** The wraps whose signatures verified (verifiedWraps, before the transaction). */
  checkedWraps: ReadonlySet<FileKeyWrap>;
  /** The audit entry of the commit, without its details (added here: versions, firstSeq, lastSeq, deletions). */
  audit: Omit<AuditEntryInput, 'details'>;
}

export interface CommitResult {
  firstSeq: number;
  lastSeq: number;
  versions: { fileId: string; versionId: string; seq: number }[];
}

interface Waiting {
  job: CommitJob;
  resolve: (r: CommitResult) => void;
  reject: (err: unknown) => void;
}

type Outcome = { ok: true; value: CommitResult } | { ok: false; error: unknown } | { alone: true };

function auditEntry(job: CommitJob, r: CommitResult): AuditEntryInput {
  return { ...job.audit, details: { versions: r.versions.length, firstSeq: r.firstSeq, lastSeq: r.lastSeq, deletions: job.versions.filter((v) => v.deleted).length } };
}

/** One commit through commitBatch, in its own transaction or savepoint (the path of a request alone). */
async function commitOne(trx: Tx, services: Services, job: CommitJob): Promise<CommitResult> {
  // Frozen or not is read inside the transaction: an offboarding that freezes the space commits before or after
  // this, never between.
  const r = await commitBatch(trx, services, job.author, job.spaceId, job.signer, job.versions, { refuseFrozen: true, checkedWraps: job.checkedWraps });
  await services.audit.append(trx, auditEntry(job, r));
  return r;
}

export class CommitCombiner {
  private pending: Waiting[] = [];

  constructor(private readonly services: Services) {}

  /** Commits `job` with the jobs submitted meanwhile; settles after the COMMIT. */
  commit(job: CommitJob): Promise<CommitResult> {
    return new Promise<CommitResult>((resolve, reject) => {
      this.pending.push({ job, resolve, reject });
      if (this.pending.length === 1) this.flush();
    });
  }

  private alone(w: Waiting): void {
    this.services.tx((trx) => commitOne(trx, this.services, w.job)).then(w.resolve, w.reject);
  }

  private flush(): void {
    // The batch is taken when the transaction starts, so that every job submitted while it queued rides along; a group
    // that breaks runs its members again (db/group-commit.ts), with the same batch.
    let batch: Waiting[] | undefined;
    const take = () => (batch ??= this.pending.splice(0));
    let single = false;
    let own = false;
    this.services.tx(async (trx) => {
      const jobs = take().map((w) => w.job);
      single = jobs.length === 1;
      if (single) return [{ ok: true, value: await commitOne(trx, this.services, jobs[0]!) }] as Outcome[];
      try {
        return await combine(trx, this.services, jobs);
      } catch (err) {
        own = true;
        throw err;
      }
    }).then(
      (outcomes) => outcomes.forEach((o, i) => {
        const w = batch![i]!;
        if ('alone' in o) this.alone(w);
        else if (o.ok) w.resolve(o.value);
        else w.reject(o.error);
      }),
      (err: unknown) => {
        const waiting = take();
        // The combined writes failed (they should not after the checks): each runs alone, with its own outcome. Any
        // other failure (BEGIN, COMMIT, shutdown) is every job's: after a failed COMMIT the writes might be durable.
        if (own && !single) waiting.forEach((w) => this.alone(w));
        else waiting.forEach((w) => w.reject(err));
      },
    );
  }
}

interface SpaceState {
  facts: Omit<CommitSpace, 'signer'>;
  orgId: string;
  seq: number;
  frozen: boolean;
  changed: boolean;
  /** Chunks to mark live again (named by an accepted job while some were dead). */
  revive: Set<string>;
}

/** Checks `jobs` in order and writes the accepted ones together; returns each job's outcome. */
async function combine(trx: Tx, services: Services, jobs: CommitJob[]): Promise<Outcome[]> {
  const now = Date.now();
  const spaceIds = [...new Set(jobs.map((j) => j.spaceId))];
  // The spaces' epochs, keys, seqs and frozen flags in one read; PostgreSQL locks their rows to COMMIT (as commitBatch).
  const read = trx('spaces as s').join('space_epochs as e', function () {
    this.on('e.space_id', '=', 's.id').andOn('e.key_epoch', '=', 's.key_epoch');
  }).whereIn('s.id', spaceIds).orderBy('s.id');
  const spaceRows = await (isPostgres(trx) ? read.forUpdate('s') : read)
    .select('s.id', 's.key_epoch', 's.seq', 's.org_id', 'e.public_key', trx.raw('EXISTS ? AS frozen', [frozenWitness(trx).whereRaw('p.space_id = s.id')]));
  const spaces = new Map<string, SpaceState>();
  for (const r of spaceRows) {
    spaces.set(r.id, {
      facts: { spaceId: r.id, keyEpoch: Number(r.key_epoch), epochPublicKey: r.public_key }, orgId: r.org_id, seq: Number(r.seq), frozen: Boolean(Number(r.frozen)), changed: false, revive: new Set(),
    });
    services.audit.noteSpaceOrg?.(trx, r.id, r.org_id);
  }

  // Files and versions of every job, then the chunks: the overlays below start from these.
  const fileIds = [...new Set(jobs.flatMap((j) => j.versions.map((v) => v.fileId)))];
  const versionIds = [...new Set(jobs.flatMap((j) => j.versions.map((v) => v.versionId)))];
  const files = new Map<string, { space_id: string; head_version_id: string | null; wrapEpoch: number }>();
  const stored = new Set<string>();
  const taken = new Map<string, { space: string; seq: number }>();
  for (let i = 0; i < Math.max(fileIds.length, versionIds.length); i += 500) {
    for (const r of await readFilesAndVersions(trx, fileIds.slice(i, i + 500), versionIds.slice(i, i + 500))) {
      if (Number(r.kind) === 0) {
        files.set(r.id, { space_id: r.space_id, head_version_id: r.head, wrapEpoch: Number(r.n ?? 0) });
        stored.add(r.id);
      } else taken.set(r.id, { space: r.space_id, seq: Number(r.n) });
    }
  }
  const lengths = new Map<string, Map<string, number>>(spaceIds.map((id) => [id, new Map()]));
  const dead = new Set<string>();
  for (const part of chunked([...new Set(jobs.flatMap((j) => j.versions.flatMap((v) => v.chunks)))])) {
    for (const r of await whereInValues(trx, trx('chunks').whereIn('space_id', spaceIds), 'id', part).select('space_id', 'id', 'length', 'live')) {
      lengths.get(r.space_id)!.set(r.id, Number(r.length));
      if (!Number(r.live)) dead.add(`${r.space_id}/${r.id}`);
    }
  }

  const outcomes: Outcome[] = [];
  const newFiles = new Map<string, { id: string; space_id: string; head_version_id: string | null; created_at: number }>();
  const headUpdates = new Map<string, string | null>();
  const rows = { versionRows: [] as VersionRow[], chunkRows: [] as object[], wrapRows: [] as object[] };
  const entries: AuditEntryInput[] = [];
  for (const job of jobs) {
    const space = spaces.get(job.spaceId);
    if (!space) {
      outcomes.push({ alone: true });
      continue;
    }
    if (space.frozen) {
      outcomes.push({ ok: false, error: frozenRefusal() });
      continue;
    }
    const facts = { ...space.facts, signer: job.signer };
    const spaceLengths = lengths.get(job.spaceId)!;
    let checked: { heads: Map<string, string | null>; wanted: string[] };
    try {
      const view = {
        file: (id: string) => files.get(id),
        version: (id: string) => {
          const t = taken.get(id);
          return t === undefined ? undefined : t.space === job.spaceId ? t.seq : ('elsewhere' as const);
        },
      };
      const { heads } = checkVersions(facts, job.versions, view, job.checkedWraps);
      checked = { heads, wanted: checkChunks(job.versions, spaceLengths) };
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      outcomes.push({ ok: false, error: err });
      continue;
    }
    const r = commitRows(facts, job.author, job.versions, space.seq, spaceLengths, now);
    space.seq = r.lastSeq;
    space.changed = true;
    if (checked.wanted.some((id) => dead.has(`${job.spaceId}/${id}`))) checked.wanted.forEach((id) => space.revive.add(id));
    for (const [fileId, head] of checked.heads) {
      const known = files.get(fileId);
      if (known) known.head_version_id = head;
      else files.set(fileId, { space_id: job.spaceId, head_version_id: head, wrapEpoch: 0 });
      if (stored.has(fileId)) headUpdates.set(fileId, head);
      else {
        const row = newFiles.get(fileId);
        if (row) row.head_version_id = head;
        else newFiles.set(fileId, { id: fileId, space_id: job.spaceId, head_version_id: head, created_at: now });
      }
    }
    for (const w of r.wrapRows) files.get(w.file_id)!.wrapEpoch = w.key_epoch;
    for (const a of r.assigned) taken.set(a.versionId, { space: job.spaceId, seq: a.seq });
    rows.versionRows.push(...r.versionRows);
    rows.chunkRows.push(...r.chunkRows);
    rows.wrapRows.push(...r.wrapRows);
    const value = { firstSeq: r.assigned[0]!.seq, lastSeq: r.lastSeq, versions: r.assigned };
    entries.push(auditEntry(job, value));
    outcomes.push({ ok: true, value });
  }

  await insertCommitRows(trx, { newFiles: [...newFiles.values()], ...rows });
  // The known files' new heads: one UPDATE per 200 files.
  for (const part of chunked([...headUpdates], 200)) {
    await trx.raw(`UPDATE files SET head_version_id = CASE id ${part.map(() => 'WHEN ? THEN ?').join(' ')} END WHERE id IN (${part.map(() => '?').join(', ')})`,
      [...part.flat(), ...part.map(([id]) => id)]);
  }
  for (const space of spaces.values()) {
    if (!space.changed) continue;
    // Chunks named again by a new version are live again (they may have been counted dead by retention).
    if (space.revive.size) await services.chunks.markLive(space.orgId, space.facts.spaceId, [...space.revive], trx);
    await trx('spaces').where({ id: space.facts.spaceId }).update({ seq: space.seq });
  }
  if (entries.length) {
    if (services.audit.appendBatch) await services.audit.appendBatch(trx, entries);
    else for (const e of entries) await services.audit.append(trx, e);
  }
  return outcomes;
}
