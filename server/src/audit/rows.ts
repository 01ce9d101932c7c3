// The stored shape of audit entries and checkpoints, and the object that is hashed into the chain
// (docs/crypto.md §12). Shared by the log (appending, querying), the verifier and the export.
import type { CanonicalValue } from '@kluis/shared';
import type { AuditCheckpointRecord, AuditEntry, AuditOutcome } from './types.js';
import { toInt } from './input.js';

export interface AuditRow {
  seq: number | string;
  ts: number | string;
  org_id: string | null;
  actor_user_id: string | null;
  actor_device_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: string;
  ip: string | null;
  user_agent: string | null;
  client: string | null;
  details: string | null;
  prev_hash: string;
  hash: string;
}

export interface CheckpointRow {
  seq: number | string;
  hash: string;
  ts: number | string;
  signer: string;
  signature: string;
}

/** The object that is hashed into the chain (docs/crypto.md §12): exactly these keys, absent values null. */
export interface AuditChainEntry {
  seq: number;
  ts: number;
  orgId: string | null;
  actorUserId: string | null;
  actorDeviceId: string | null;
  action: string;
  targetType: string | null;
  targetId: string | null;
  outcome: string;
  ip: string | null;
  userAgent: string | null;
  client: string | null;
  details: { [key: string]: CanonicalValue } | null;
}

/** The chained fields of a stored or exported entry. */
export function auditChainEntry(e: AuditChainEntry): AuditChainEntry {
  return {
    seq: e.seq,
    ts: e.ts,
    orgId: e.orgId,
    actorUserId: e.actorUserId,
    actorDeviceId: e.actorDeviceId,
    action: e.action,
    targetType: e.targetType,
    targetId: e.targetId,
    outcome: e.outcome,
    ip: e.ip,
    userAgent: e.userAgent,
    client: e.client,
    details: e.details,
  };
}

export const HASH_RE = /^[0-9a-f]{64}$/;

/** The chained fields of a stored row other than seq, ts and details (which callers check or parse their own way). */
export function rowChainFields(row: AuditRow): Omit<AuditChainEntry, 'seq' | 'ts' | 'details'> {
  return {
    orgId: row.org_id,
    actorUserId: row.actor_user_id,
    actorDeviceId: row.actor_device_id,
    action: row.action,
    targetType: row.target_type,
    targetId: row.target_id,
    outcome: row.outcome,
    ip: row.ip,
    userAgent: row.user_agent,
    client: row.client,
  };
}

/** A stored row as the log answers it. */
export function rowToEntry(row: AuditRow): AuditEntry {
  return {
    seq: toInt(row.seq, 'seq'),
    ts: toInt(row.ts, 'ts'),
    ...rowChainFields(row),
    outcome: row.outcome as AuditOutcome,
    details: row.details === null ? null : (JSON.parse(row.details) as { [key: string]: CanonicalValue }),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/** A stored checkpoint as the log answers it. */
export function rowToCheckpoint(row: CheckpointRow): AuditCheckpointRecord {
  return { seq: toInt(row.seq, 'checkpoint seq'), hash: row.hash, ts: toInt(row.ts, 'checkpoint ts'), signer: row.signer, signature: row.signature };
}
