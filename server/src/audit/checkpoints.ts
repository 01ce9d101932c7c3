// Signed checkpoints over the audit chain and signed tree heads over its Merkle tree log (docs/crypto.md §12): the
// append that reaches a multiple of checkpointEvery inserts both in its own transaction, and the timer of the log signs
// the newest entry when nothing covers it yet. A checkpoint and a tree head are always written together, at one seq.
import { signAuditCheckpoint, type ServerSigningKey } from '@kluis/shared';
import type { Db, Tx } from '../db/db.js';
import type { AuditCheckpointRecord } from './types.js';
import { insertTreeHead, rootAt } from './merkle-store.js';
import { rowToCheckpoint, type AuditRow, type CheckpointRow } from './rows.js';
import { toInt } from './input.js';

export class AuditCheckpointer {
  constructor(
    private readonly db: Db,
    private readonly key: ServerSigningKey,
    private readonly now: () => number,
    /** Sign tree heads too (false: the chain alone, for a benchmark). */
    private readonly merkle = true,
  ) {}

  /**
   * Signs and inserts, inside `trx`, a checkpoint over entry `seq` (whose hash is `hash`) and the tree head of the
   * first `seq` entries (whose Merkle root is `root`).
   */
  async insert(trx: Tx, seq: number, hash: string, root: string | null, ignoreExisting = false): Promise<AuditCheckpointRecord> {
    const ts = this.now();
    const signature = signAuditCheckpoint({ seq, hash, ts }, this.key);
    const record = { seq, hash, ts, signer: this.key.publicKey, signature };
    const insert = trx('audit_checkpoints').insert(record);
    await (ignoreExisting ? insert.onConflict('seq').ignore() : insert);
    if (root !== null) await insertTreeHead(trx, this.key, seq, root, ts);
    return record;
  }

  /** Signs the newest entry unless a checkpoint already covers it; returns the new checkpoint (null: nothing new). */
  writeLatest(): Promise<AuditCheckpointRecord | null> {
    return this.db.transaction(async (trx) => {
      const head = (await trx('audit_log').select('seq', 'hash').orderBy('seq', 'desc').first()) as Pick<AuditRow, 'seq' | 'hash'> | undefined;
      if (!head) return null;
      const seq = toInt(head.seq, 'seq');
      const last = (await trx('audit_checkpoints').select('seq').orderBy('seq', 'desc').first()) as Pick<CheckpointRow, 'seq'> | undefined;
      // After the upgrade to migration 015 the newest entry may have a checkpoint but no tree head yet.
      const lastHead = (await trx('audit_tree_heads').select('size').orderBy('size', 'desc').first()) as { size: number | string } | undefined;
      const headDone = !this.merkle || (lastHead !== undefined && toInt(lastHead.size, 'tree head size') >= seq);
      if (last && toInt(last.seq, 'checkpoint seq') >= seq && headDone) return null;
      return this.insert(trx, seq, head.hash, this.merkle ? await rootAt(trx, seq) : null, true);
    });
  }

  /** Checkpoints with fromSeq <= seq <= toSeq, oldest first, at most `limit`. */
  async list(fromSeq: number, toSeq: number, limit: number): Promise<AuditCheckpointRecord[]> {
    const rows = (await this.db('audit_checkpoints')
      .select('seq', 'hash', 'ts', 'signer', 'signature')
      .where('seq', '>=', fromSeq)
      .andWhere('seq', '<=', toSeq)
      .orderBy('seq', 'asc')
      .limit(limit)) as CheckpointRow[];
    return rows.map(rowToCheckpoint);
  }
}
