// Searching the audit trail (GET …/audit, kluis-admin audit search): filters by organisation, actor, action, target,
// outcome, time and seq range, a page in seq order, read through the indexes of migrations 013 and 014.
import type { Db } from '../db/db.js';
import type { AuditEntry, AuditFilter } from './types.js';
import { rowToEntry, type AuditRow } from './rows.js';
import { AuditInputError, OUTCOMES, toInt } from './input.js';

export const AUDIT_QUERY_DEFAULT_LIMIT = 1000;
export const AUDIT_QUERY_MAX_LIMIT = 10_000;

function optionalInt(value: number | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value)) throw new AuditInputError(`audit filter ${name}: must be an integer`);
  return value;
}

/** One page of the entries that match `filter` (limit: default 1000, at most 10,000). */
export async function queryAuditLog(db: Db, filter: AuditFilter = {}): Promise<AuditEntry[]> {
  const limitIn = optionalInt(filter.limit, 'limit') ?? AUDIT_QUERY_DEFAULT_LIMIT;
  if (limitIn < 1) throw new AuditInputError('audit filter limit: at least 1');
  const limit = Math.min(limitIn, AUDIT_QUERY_MAX_LIMIT);
  const order = filter.order ?? 'asc';
  if (order !== 'asc' && order !== 'desc') throw new AuditInputError("audit filter order: 'asc' or 'desc'");
  const since = optionalInt(filter.since, 'since');
  const until = optionalInt(filter.until, 'until');
  const afterSeq = optionalInt(filter.afterSeq, 'afterSeq');
  const beforeSeq = optionalInt(filter.beforeSeq, 'beforeSeq');
  if (filter.outcome !== undefined && !OUTCOMES.has(filter.outcome)) throw new AuditInputError('audit filter outcome: success, denied or failed');

  const q = db('audit_log').select('*');
  if (filter.orgId === null) q.whereNull('org_id');
  else if (filter.orgId !== undefined) q.where('org_id', filter.orgId);
  if (filter.actorUserId !== undefined) q.where('actor_user_id', filter.actorUserId);
  if (filter.actorDeviceId !== undefined) q.where('actor_device_id', filter.actorDeviceId);
  if (filter.action !== undefined) q.where('action', filter.action);
  if (filter.targetType !== undefined) q.where('target_type', filter.targetType);
  if (filter.targetId !== undefined) q.where('target_id', filter.targetId);
  if (filter.outcome !== undefined) q.where('outcome', filter.outcome);
  if (since !== undefined) q.where('ts', '>=', since);
  if (until !== undefined) q.where('ts', '<', until);
  // The seqs a page may hold, as one closed range [lo, hi] (afterSeq/beforeSeq and the time range's bounds folded in).
  let lo = afterSeq === undefined ? undefined : afterSeq + 1;
  let hi = beforeSeq === undefined ? undefined : beforeSeq - 1;
  if ((since !== undefined || until !== undefined) && typeof filter.orgId === 'string') {
    // A time range is first turned into the seqs it spans (read from the (org_id, ts[, seq]) index alone), so that the page
    // is read in seq order: otherwise the engine reads the range through (org_id, ts) and sorts all of it by seq for
    // one page (a month of a large organisation: 1.2-3 s over 10 million entries; with the bounds about 50 ms,
    // scripts/bench/audit-queries.ts). Exact: every entry in the range has its seq within [lo, hi].
    const b = db('audit_log').where('org_id', filter.orgId);
    if (since !== undefined) b.where('ts', '>=', since);
    if (until !== undefined) b.where('ts', '<', until);
    // `seq + 0`: min(seq)/max(seq) would let PostgreSQL walk the primary key from either end, filtering every entry
    // until one falls in the range (hundreds of ms); over the expression it reads the range from (org_id, ts, seq).
    const bounds = (await b.select(db.raw('min(seq + 0) AS lo, max(seq + 0) AS hi')).first()) as { lo: number | string | null; hi: number | string | null } | undefined;
    if (!bounds || bounds.lo === null || bounds.hi === null) return [];
    lo = Math.max(lo ?? 0, toInt(bounds.lo, 'seq'));
    hi = Math.min(hi ?? Number.MAX_SAFE_INTEGER, toInt(bounds.hi, 'seq'));
  }
  // Both ends as one BETWEEN, not `seq >= lo AND seq <= hi`: without statistics sqlite's planner costs two separate
  // bounds on seq so low that it walks (org_id, seq) over the whole range checking the action or target of each
  // entry, instead of reading (org_id, action, seq) or (org_id, target_id, seq) within it (a rare action in a month:
  // p95 2 s over 10 million entries). With BETWEEN it takes the index of the equality filter.
  if (lo !== undefined && hi !== undefined) {
    if (lo > hi) return [];
    q.whereBetween('seq', [lo, hi]);
  } else if (lo !== undefined) q.where('seq', '>=', lo);
  else if (hi !== undefined) q.where('seq', '<=', hi);
  const rows = (await q.orderBy('seq', order).limit(limit)) as AuditRow[];
  return rows.map(rowToEntry);
}
