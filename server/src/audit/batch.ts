// Group commit of read audit entries (issue 21 §1). Every read is audited, and the request answers only once its
// entry is committed, as before; but the entries of the reads that arrive while one batch waits for the database are
// written together: one multi-row INSERT into audit_log, one into audit_merkle and one read of the spaces' organisations
// (for the other organisation's copy, audit/org-sides.ts), inside one savepoint of the group committer
// (db/group-commit.ts), instead of a savepoint, two INSERTs and a read for each entry.
//
// Each entry is validated when it is recorded, so a bad one is refused alone; a batch that fails to commit fails every
// request in it (none of them answers as if audited).
import type { Tx } from '../db/db.js';
import type { AuditEntryInput } from './types.js';
import { normaliseAuditInput } from './input.js';

interface Waiting {
  entry: AuditEntryInput;
  resolve: (seq: number) => void;
  reject: (err: unknown) => void;
}

export class AuditBatcher {
  private pending: Waiting[] = [];

  constructor(
    /** Runs a transaction (the server's group committer). */
    private readonly transact: <T>(fn: (trx: Tx) => Promise<T>) => Promise<T>,
    private readonly appendBatch: (trx: Tx, entries: readonly AuditEntryInput[]) => Promise<number[]>,
  ) {}

  /** Appends `entry` with the entries recorded meanwhile; resolves with its seq once committed. */
  record(entry: AuditEntryInput): Promise<number> {
    try {
      normaliseAuditInput(entry);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<number>((resolve, reject) => {
      this.pending.push({ entry, resolve, reject });
      if (this.pending.length === 1) this.flush();
    });
  }

  private flush(): void {
    // The batch is taken when the transaction starts, so that every entry recorded while it queued rides along; a
    // group that breaks runs its members again (db/group-commit.ts), with the same batch.
    let batch: Waiting[] | undefined;
    const take = () => (batch ??= this.pending.splice(0));
    this.transact((trx) => this.appendBatch(trx, take().map((w) => w.entry))).then(
      (seqs) => batch!.forEach((w, i) => w.resolve(seqs[i]!)),
      (err: unknown) => take().forEach((w) => w.reject(err)),
    );
  }
}
