// Audit export (docs/architecture.md §7): CSV for spreadsheets, JSON for machines and for checking the chain.
// Both stream: entries are read page by page through AuditLog.query and written with backpressure, so an
// export of millions of entries needs the memory of one page.
//
// CSV (RFC 4180): a header row, CRLF line ends, a field is quoted when it holds `"`, `,`, CR or LF, with `"`
// doubled. Null is an empty field; an empty string is `""`. To stop a spreadsheet from running a cell as a
// formula, a cell that starts with = + - @ TAB CR, or with ' itself, gets one ' in front: strip exactly one
// leading ' from such a cell to recover the value. `details` is its canonical JSON text.
//
// JSON: {"format":"kluis-audit-export/v1","serverPublicKey":…,"exportedAt":…,"filter":…,"entries":[…],
// "checkpoints":[…],"count":N}. Each entry carries prevHash and hash: hash = BLAKE2b(prevHash || canonical
// of its chained fields) can be checked for every entry alone, runs of consecutive seqs link, and the
// checkpoints in the exported seq range are signed by serverPublicKey (docs/crypto.md §12).
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { AUDIT_GENESIS, auditChainHash, canonicalJson, verifyAuditCheckpoint, type SignedTreeHead } from '@kluis/shared';
import { checkExportMerkle } from './export-merkle.js';
import type { AuditCheckpointRecord, AuditEntry, AuditFilter, AuditLog } from './types.js';
import { auditChainEntry } from './rows.js';

export type AuditExportFormat = 'csv' | 'json';

export interface AuditExportOptions {
  /** End `out` when done (default true). */
  end?: boolean;
  /** Entries per page read from the log (default 1000). */
  pageSize?: number;
  /** Clock for `exportedAt` (default Date.now). */
  now?: () => number;
  /**
   * JSON only: add the newest signed tree head and each entry's inclusion proof in it (`treeHead`, `inclusion`), so that
   * an export with gaps (one organisation's entries) can be checked against the Merkle tree log offline.
   */
  proofs?: boolean;
}

export const AUDIT_CSV_COLUMNS = [
  'seq',
  'ts',
  'time',
  'orgId',
  'actorUserId',
  'actorDeviceId',
  'action',
  'targetType',
  'targetId',
  'outcome',
  'ip',
  'userAgent',
  'client',
  'details',
  'prevHash',
  'hash',
] as const;

const NEEDS_QUOTES = /[",\r\n]/;
const FORMULA_START = /^[=+\-@\t\r']/;

/** One CSV field: formula-neutralised, then quoted if needed. */
export function csvField(value: string | number | null): string {
  if (value === null) return '';
  let s = typeof value === 'number' ? String(value) : value;
  if (s === '') return '""';
  if (FORMULA_START.test(s)) s = `'${s}`;
  return NEEDS_QUOTES.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function csvRow(e: AuditEntry): string {
  const cells: (string | number | null)[] = [
    e.seq,
    e.ts,
    new Date(e.ts).toISOString(),
    e.orgId,
    e.actorUserId,
    e.actorDeviceId,
    e.action,
    e.targetType,
    e.targetId,
    e.outcome,
    e.ip,
    e.userAgent,
    e.client,
    e.details === null ? null : canonicalJson(e.details),
    e.prevHash,
    e.hash,
  ];
  return cells.map(csvField).join(',') + '\r\n';
}

function jsonEntry(e: AuditEntry): string {
  return JSON.stringify({ ...auditChainEntry(e), prevHash: e.prevHash, hash: e.hash });
}

/** Writes with backpressure; rejects if the destination errors or closes first. */
function write(out: Writable, text: string): Promise<void> {
  if (out.destroyed || out.writableEnded) return Promise.reject(new Error('audit export: the destination is closed'));
  if (out.write(text)) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      out.off('drain', onDrain);
      out.off('error', onError);
      out.off('close', onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('audit export: the destination closed'));
    };
    out.on('drain', onDrain);
    out.on('error', onError);
    out.on('close', onClose);
  });
}

/** The filter as written into a JSON export (only the criteria that were given). */
function filterEcho(filter: AuditFilter): Record<string, unknown> {
  const echo: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(filter)) if (v !== undefined) echo[k] = v;
  return echo;
}

/**
 * Streams every entry matching `filter` (its `limit`, if given, caps the total) to `out`, in the filter's
 * order (oldest first by default). Entries appended after the export started are not included. Resolves with
 * the number of entries written, after `out` finished (unless `end: false`).
 */
export async function exportAudit(log: AuditLog, filter: AuditFilter, format: AuditExportFormat, out: Writable, options: AuditExportOptions = {}): Promise<{ entries: number }> {
  // A destination that fails between two writes must not crash the process with an unhandled 'error'.
  let failure: unknown;
  const onError = (err: unknown): void => {
    failure ??= err;
  };
  out.on('error', onError);
  try {
    const result = await exportTo(log, filter, format, out, options, () => failure);
    if (failure) throw failure;
    return result;
  } finally {
    out.off('error', onError);
  }
}

async function exportTo(log: AuditLog, filter: AuditFilter, format: AuditExportFormat, out: Writable, options: AuditExportOptions, failed: () => unknown): Promise<{ entries: number }> {
  if (format !== 'csv' && format !== 'json') throw new TypeError(`audit export: unknown format ${String(format)}`);
  const pageSize = Math.max(1, Math.min(options.pageSize ?? 1000, 10_000));
  const cap = filter.limit;
  if (cap !== undefined && (!Number.isSafeInteger(cap) || cap < 1)) throw new TypeError('audit export: limit must be a positive integer');
  const order = filter.order ?? 'asc';
  const { limit: _limit, ...criteria } = filter;

  // Fix the newest seq now, so an export under load ends.
  const newest = await log.query({ ...criteria, order: 'desc', limit: 1 });
  const last = newest[0]?.seq ?? 0;
  const upper = last + 1;

  let count = 0;
  let minSeq = Infinity;
  let maxSeq = -Infinity;
  let cursor = order === 'asc' ? criteria.afterSeq : upper;
  const seqs: number[] = [];

  if (format === 'csv') {
    await write(out, AUDIT_CSV_COLUMNS.join(',') + '\r\n');
  } else {
    const head = {
      format: 'kluis-audit-export/v1',
      serverPublicKey: log.publicKey,
      exportedAt: (options.now ?? Date.now)(),
      filter: filterEcho(filter),
    };
    await write(out, JSON.stringify(head).slice(0, -1) + ',"entries":[');
  }

  while (last > 0 && (cap === undefined || count < cap)) {
    const want = cap === undefined ? pageSize : Math.min(pageSize, cap - count);
    const page =
      order === 'asc'
        ? await log.query({ ...criteria, order, limit: want, afterSeq: cursor, beforeSeq: upper })
        : await log.query({ ...criteria, order, limit: want, afterSeq: criteria.afterSeq, beforeSeq: cursor });
    if (page.length === 0) break;
    if (failed()) throw failed();
    let text = '';
    for (const e of page) {
      if (format === 'csv') text += csvRow(e);
      else text += (count === 0 ? '\n' : ',\n') + jsonEntry(e);
      count++;
      if (e.seq < minSeq) minSeq = e.seq;
      if (e.seq > maxSeq) maxSeq = e.seq;
      if (options.proofs) seqs.push(e.seq);
    }
    await write(out, text);
    cursor = page[page.length - 1]!.seq;
    if (page.length < want) break;
  }

  if (format === 'json') {
    await write(out, (count > 0 ? '\n' : '') + '],"checkpoints":[');
    let written = 0;
    if (count > 0 && log.listCheckpoints) {
      let from = minSeq;
      for (;;) {
        const cps = await log.listCheckpoints({ fromSeq: from, toSeq: maxSeq, limit: pageSize });
        if (cps.length === 0) break;
        let text = '';
        for (const cp of cps) {
          text += (written === 0 ? '\n' : ',\n') + JSON.stringify({ seq: cp.seq, hash: cp.hash, ts: cp.ts, signer: cp.signer, signature: cp.signature });
          written++;
        }
        await write(out, text);
        if (cps.length < pageSize) break;
        from = cps[cps.length - 1]!.seq + 1;
      }
    }
    await write(out, `${written > 0 ? '\n' : ''}]`);
    if (count > 0) await writeTreeHeads(log, out, minSeq, maxSeq, options.proofs ? seqs : null);
    await write(out, `,"count":${count}}\n`);
  }

  if (options.end !== false) {
    out.end();
    await finished(out);
  }
  return { entries: count };
}

/**
 * `"treeHeads"`: the signed tree heads with sizes in [minSeq, maxSeq]; with `seqs`, also `"treeHead"` (the newest head,
 * which covers every exported entry) and `"inclusion"`: [{seq, path}] of each exported entry in it.
 */
async function writeTreeHeads(log: AuditLog, out: Writable, minSeq: number, maxSeq: number, seqs: number[] | null): Promise<void> {
  const heads: SignedTreeHead[] = [];
  for (let after = minSeq - 1; ;) {
    const page = (await log.treeHeads(after, 1000)).filter((h) => h.size <= maxSeq);
    heads.push(...page);
    if (page.length < 1000) break;
    after = page[page.length - 1]!.size;
  }
  await write(out, `,"treeHeads":[${heads.map((h) => '\n' + JSON.stringify(h)).join(',')}${heads.length ? '\n' : ''}]`);
  if (!seqs) return;
  let newest = await log.treeHead();
  // Entries appended since the last signed head (the server's timers, another request) get a head now: an export with
  // proofs proves every entry it holds. CI saw the head older than the export's last entry, and no proof at all.
  if (!newest || newest.size < maxSeq) {
    await log.checkpoint();
    newest = await log.treeHead();
  }
  if (!newest || newest.size < maxSeq) {
    await write(out, ',"treeHead":null,"inclusion":[]');
    return;
  }
  await write(out, `,"treeHead":${JSON.stringify(newest)},"inclusion":[`);
  for (let i = 0; i < seqs.length; i++) {
    await write(out, `${i ? ',' : ''}\n${JSON.stringify({ seq: seqs[i], path: await log.inclusionProof(seqs[i]!, newest.size) })}`);
  }
  await write(out, ']');
}

// ------------------------------------------------------------------------------------------ checking an export

export interface AuditExportCheck {
  ok: boolean;
  entries: number;
  /** checkpoints whose signature verified and whose hash matched an exported entry */
  checkpoints: number;
  /** true when the entries are the whole chain from seq 1 without gaps */
  complete: boolean;
  /** tree heads whose signature verified and whose root was recomputed (complete exports) or proven (inclusion) */
  treeHeads: number;
  /** entries proven included in the export's newest tree head */
  included: number;
  problem?: string;
}

/**
 * Checks a parsed JSON export offline: every entry's hash from its own content and prevHash, links between
 * consecutive seqs, and each checkpoint's signature and hash. Pass the server key as published at /api/v1/info
 * in `trustedPublicKeys`: without it the export's own `serverPublicKey` is trusted, which proves consistency,
 * not origin. Needs `await initCrypto()` first.
 */
export function checkAuditExport(doc: unknown, trustedPublicKeys?: readonly string[]): AuditExportCheck {
  const d = doc as { serverPublicKey?: unknown; entries?: unknown; checkpoints?: unknown };
  const fail = (problem: string, entries = 0, checkpoints = 0): AuditExportCheck => ({ ok: false, entries, checkpoints, complete: false, treeHeads: 0, included: 0, problem });
  if (!d || typeof d !== 'object' || !Array.isArray(d.entries) || !Array.isArray(d.checkpoints) || typeof d.serverPublicKey !== 'string') {
    return fail('not a kluis audit export');
  }
  const trusted = new Set<string>(trustedPublicKeys ?? [d.serverPublicKey]);
  const entries = [...(d.entries as AuditEntry[])].sort((a, b) => a.seq - b.seq);
  const bySeq = new Map<number, string>();
  let complete = entries.length > 0 && entries[0]!.seq === 1;
  let prev: AuditEntry | undefined;
  let n = 0;
  for (const e of entries) {
    let hash: string;
    try {
      hash = auditChainHash(e.prevHash, auditChainEntry(e));
    } catch {
      return fail(`entry ${e.seq}: cannot be hashed`, n);
    }
    if (hash !== e.hash) return fail(`entry ${e.seq}: hash does not match its content`, n);
    if (e.seq === 1 && e.prevHash !== AUDIT_GENESIS) return fail('entry 1: prev_hash is not the genesis hash', n);
    if (prev && prev.seq === e.seq) return fail(`entry ${e.seq}: appears twice`, n);
    if (prev && prev.seq + 1 === e.seq && e.prevHash !== prev.hash) return fail(`entry ${e.seq}: prev_hash does not match the hash of entry ${prev.seq}`, n);
    if (prev && prev.seq + 1 !== e.seq) complete = false;
    bySeq.set(e.seq, e.hash);
    prev = e;
    n++;
  }
  let c = 0;
  for (const cp of d.checkpoints as AuditCheckpointRecord[]) {
    if (!trusted.has(cp.signer)) return fail(`checkpoint at ${cp.seq}: signed by an untrusted key ${cp.signer}`, n, c);
    try {
      verifyAuditCheckpoint({ seq: cp.seq, hash: cp.hash, ts: cp.ts }, cp.signature, cp.signer);
    } catch {
      return fail(`checkpoint at ${cp.seq}: signature invalid`, n, c);
    }
    const h = bySeq.get(cp.seq);
    if (h !== undefined && h !== cp.hash) return fail(`checkpoint at ${cp.seq}: hash does not match entry ${cp.seq}`, n, c);
    if (h !== undefined) c++;
  }
  const merkle = checkExportMerkle(doc, entries, complete, trusted);
  if (merkle.problem) return fail(merkle.problem, n, c);
  return { ok: true, entries: n, checkpoints: c, complete, treeHeads: merkle.treeHeads, included: merkle.included };
}
