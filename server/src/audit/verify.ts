// Verifying the audit trail (docs/crypto.md §12, "Verification rules"). Recomputing the chain and checking the
// signatures of the checkpoints that are present is not enough: someone with the database file can delete the
// newest entries together with the checkpoints over them, or rewrite an entry, re-hash everything after it and
// delete the checkpoints it invalidated. So the verifier also demands the checkpoints the server is bound to have
// written, and (given an anchor kept outside the database) the entries it has seen before:
//
//   V1 chain       entries are 1..L without gaps; each prev_hash is the previous hash (genesis for entry 1) and
//                  each hash is recomputed from the entry's content;
//   V2 checkpoint  every checkpoint names an entry of the log, carries that entry's hash and is signed by a
//                  trusted key; a checkpoint beyond the end of the log means the tail was cut;
//   V3 boundary    for every multiple k·N of checkpointEvery with k·N <= L there is a checkpoint at exactly k·N
//                  (the server writes it in the transaction that appends entry k·N, so it can never be missing);
//   V4 age         no entry after the newest checkpoint is older than the timer interval plus a grace (the timer
//                  signs the newest entry at every interval, and shutdown signs it too);
//   V5 anchor      the log reaches the anchor's seq, and the entry there has the anchor's hash;
//   V6 tree heads  every signed tree head of size n is signed by a trusted key and its root is the Merkle root of
//                  entries 1..n as recomputed here (a tree head beyond the end of the log means the tail was cut).
//
// The first rule broken is reported (by seq) and verification stops there. Streams the tables in pages by seq
// and keeps O(page) memory.
import { AUDIT_GENESIS, auditChainHash, canonicalBytes, canonicalJson, merkleLeafHash, MerkleFrontier, toHex, verifyAuditCheckpoint, verifyAuditTreeHead, type CanonicalValue, type SignedTreeHead } from '@kluis/shared';
import { listTreeHeads } from './merkle-store.js';
import type { Db } from '../db/db.js';
import { auditChainEntry, HASH_RE, rowChainFields, type AuditRow, type CheckpointRow } from './rows.js';
import type { AuditAnchor, AuditCheckpointRecord, AuditVerifyResult } from './types.js';

export interface AuditVerifyParams {
  /** Public keys whose checkpoints are accepted. */
  trusted: ReadonlySet<string>;
  /** N of rule V3 (0: no boundary checkpoints are demanded). */
  checkpointEvery: number;
  /** Rule V4: an entry this much older than `now` (ms) must be covered by a checkpoint. */
  maxUncoveredAgeMs: number;
  /** Verification time, ms since 1970 UTC. */
  now: number;
  /** Rows per page. */
  pageSize: number;
  /** Rule V5: the highest entry verified before. */
  anchor?: AuditAnchor | null;
}

const CP_PAGE = 1000;

function iso(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

/** Why a checkpoint does not verify against the recomputed hash of its entry, or null. */
function checkCheckpoint(cp: AuditCheckpointRecord, entryHash: string, trusted: ReadonlySet<string>): string | null {
  if (!Number.isSafeInteger(cp.ts)) return `checkpoint at ${cp.seq}: ts is not an integer`;
  if (!trusted.has(cp.signer)) return `checkpoint at ${cp.seq}: signed by an untrusted key ${cp.signer}`;
  if (!HASH_RE.test(cp.hash)) return `checkpoint at ${cp.seq}: malformed hash`;
  try {
    verifyAuditCheckpoint({ seq: cp.seq, hash: cp.hash, ts: cp.ts }, cp.signature, cp.signer);
  } catch {
    return `checkpoint at ${cp.seq}: signature invalid`;
  }
  if (cp.hash !== entryHash) return `checkpoint at ${cp.seq}: hash does not match entry ${cp.seq}`;
  return null;
}

/** Why a tree head does not verify against the recomputed root of its size (rule V6), or null. */
function checkTreeHead(head: SignedTreeHead, root: string, trusted: ReadonlySet<string>): string | null {
  if (!trusted.has(head.signer)) return `tree head of size ${head.size}: signed by an untrusted key ${head.signer}`;
  try {
    verifyAuditTreeHead(head, head.signature, head.signer);
  } catch {
    return `tree head of size ${head.size}: signature invalid`;
  }
  if (head.root !== root) return `tree head of size ${head.size}: root does not match entries 1..${head.size}`;
  return null;
}

/** The chained entry of a stored row (lenient: checkAuditRow has refused a row this cannot read). */
function rowEntry(row: AuditRow, seq: number): Parameters<typeof auditChainEntry>[0] {
  const details = row.details === null ? null : (JSON.parse(row.details) as { [key: string]: CanonicalValue });
  return auditChainEntry({ seq, ts: Number(row.ts), ...rowChainFields(row), details });
}

/** Why a row does not verify as entry `seq` after `prevHash` (rule V1), or null. */
export function checkAuditRow(row: AuditRow, seq: number, prevHash: string): string | null {
  if (row.prev_hash !== prevHash) {
    return seq === 1 ? 'entry 1: prev_hash is not the genesis hash' : `entry ${seq}: prev_hash does not match the hash of entry ${seq - 1}`;
  }
  const ts = Number(row.ts);
  if (!Number.isSafeInteger(ts)) return `entry ${seq}: ts is not an integer`;
  let details: { [key: string]: CanonicalValue } | null = null;
  if (row.details !== null) {
    try {
      details = JSON.parse(row.details) as { [key: string]: CanonicalValue };
      if (canonicalJson(details) !== row.details) return `entry ${seq}: details are not canonical JSON`;
    } catch {
      return `entry ${seq}: details are not canonical JSON`;
    }
  }
  let hash: string;
  try {
    hash = auditChainHash(
      prevHash,
      auditChainEntry({ seq, ts, ...rowChainFields(row), details }),
    );
  } catch {
    return `entry ${seq}: content cannot be hashed`;
  }
  if (hash !== row.hash) return `entry ${seq}: hash does not match its content`;
  return null;
}

/** Applies rules V1–V5 to the audit tables of `db`. */
export async function verifyAuditTrail(db: Db, p: AuditVerifyParams): Promise<AuditVerifyResult> {
  const cutoff = p.now - p.maxUncoveredAgeMs;
  // The end of the log is fixed first. A boundary checkpoint commits with its entry, and a timer checkpoint names an
  // entry committed before it, so every checkpoint a legitimate server owes for entries 1..endSeq is visible to the
  // reads below; entries appended meanwhile are simply not looked at.
  const head = (await db('audit_log').select('seq').orderBy('seq', 'desc').first()) as Pick<AuditRow, 'seq'> | undefined;
  const endSeq = head ? Number(head.seq) : 0;
  if (!Number.isSafeInteger(endSeq)) return { ok: false, entries: 0, checkpoints: 0, firstBroken: { seq: 0, reason: 'the newest seq is not an integer' }, lastSeq: 0, lastHash: AUDIT_GENESIS, lastCheckpointSeq: 0 };

  let entries = 0;
  let checkpoints = 0;
  let expected = 1;
  let prevHash = AUDIT_GENESIS;
  let lastCheckpoint = 0;
  /** The first entry after the newest checkpoint seen so far that is older than the cutoff (rule V4). */
  let oldUncovered: { seq: number; ts: number } | null = null;
  const result = (firstBroken?: { seq: number; reason: string }): AuditVerifyResult => ({
    ok: !firstBroken,
    entries,
    checkpoints,
    ...(firstBroken ? { firstBroken } : {}),
    lastSeq: expected - 1,
    lastHash: prevHash,
    lastCheckpointSeq: lastCheckpoint,
  });

  // Checkpoints up to endSeq, streamed alongside the entries.
  let cpPage: CheckpointRow[] = [];
  let cpIndex = 0;
  let cpAfter = Number.MIN_SAFE_INTEGER;
  let cpDone = false;
  const nextCheckpoint = async (): Promise<AuditCheckpointRecord | null> => {
    if (cpIndex >= cpPage.length) {
      if (cpDone) return null;
      cpPage = (await db('audit_checkpoints')
        .select('seq', 'hash', 'ts', 'signer', 'signature')
        .where('seq', '>', cpAfter)
        .andWhere('seq', '<=', endSeq)
        .orderBy('seq', 'asc')
        .limit(CP_PAGE)) as CheckpointRow[];
      cpIndex = 0;
      if (cpPage.length < CP_PAGE) cpDone = true;
      if (cpPage.length === 0) return null;
      cpAfter = Number(cpPage[cpPage.length - 1]!.seq);
      if (!Number.isSafeInteger(cpAfter)) cpDone = true; // reported when that row is reached
    }
    const row = cpPage[cpIndex++]!;
    // Leniently: a malformed row is reported by checkCheckpoint, not thrown.
    return { seq: Number(row.seq), hash: row.hash, ts: Number(row.ts), signer: row.signer, signature: row.signature };
  };

  // Tree heads up to endSeq (rule V6), checked against a Merkle tree recomputed from the entries as they stream by.
  const tree = new MerkleFrontier();
  let heads: SignedTreeHead[] = [];
  let headAfter = 0;
  const nextHead = async (): Promise<SignedTreeHead | null> => {
    if (heads.length === 0) heads = (await listTreeHeads(db, headAfter, CP_PAGE)).filter((h) => h.size <= endSeq);
    const h = heads.shift() ?? null;
    if (h) headAfter = h.size;
    return h;
  };
  let treeHead = await nextHead();

  let cp = await nextCheckpoint();
  if (cp && !(cp.seq >= 1)) return result({ seq: cp.seq, reason: `checkpoint at ${cp.seq}: refers to no entry` });

  // Pages by seq; the next page is read while this one is hashed.
  const fetchPage = (after: number): Promise<AuditRow[]> => {
    const page = db('audit_log')
      .select('*')
      .where('seq', '>', after)
      .andWhere('seq', '<=', endSeq)
      .orderBy('seq', 'asc')
      .limit(p.pageSize)
      .then((rows) => rows as AuditRow[]);
    page.catch(() => undefined); // awaited below unless verification stops early
    return page;
  };
  let next: Promise<AuditRow[]> | null = endSeq > 0 ? fetchPage(0) : null;
  while (next) {
    const rows = await next;
    if (rows.length === 0) break;
    const pageEnd = Number(rows[rows.length - 1]!.seq);
    next = rows.length === p.pageSize && pageEnd < endSeq ? fetchPage(pageEnd) : null;
    for (const row of rows) {
      const seq = Number(row.seq);
      if (!Number.isSafeInteger(seq)) return result({ seq: expected, reason: `entry ${expected}: seq is not an integer` });
      if (seq !== expected) {
        const reason = expected === 1 ? `entry 1 missing (the log starts at ${seq})` : `entry ${expected} missing (gap after ${expected - 1})`;
        return result({ seq: expected, reason });
      }
      const broken = checkAuditRow(row, seq, prevHash);
      if (broken) return result({ seq, reason: broken });
      prevHash = row.hash;
      expected = seq + 1;
      entries++;
      while (cp && cp.seq <= seq) {
        if (cp.seq !== seq) return result({ seq: cp.seq, reason: `checkpoint at ${cp.seq}: refers to no entry` });
        const bad = checkCheckpoint(cp, prevHash, p.trusted);
        if (bad) return result({ seq: cp.seq, reason: bad });
        checkpoints++;
        lastCheckpoint = seq;
        oldUncovered = null; // a checkpoint covers every entry up to its own
        cp = await nextCheckpoint();
      }
      // V3: the checkpoint of a boundary commits with its entry; without it the entries up to here may be rewritten.
      if (p.checkpointEvery > 0 && seq % p.checkpointEvery === 0 && lastCheckpoint !== seq) {
        return result({ seq, reason: `checkpoint at ${seq} missing (one is signed at every multiple of ${p.checkpointEvery} entries)` });
      }
      if (lastCheckpoint !== seq && oldUncovered === null && Number(row.ts) <= cutoff) oldUncovered = { seq, ts: Number(row.ts) };
      if (p.anchor && seq === p.anchor.seq && row.hash !== p.anchor.hash) {
        return result({ seq, reason: `entry ${seq}: differs from the entry verified ${p.anchor.verifiedAt !== undefined ? `at ${iso(p.anchor.verifiedAt)}` : 'before'} (state file): the log was rewritten` });
      }
      // V6 after the older rules, which name what they catch more precisely.
      tree.push(merkleLeafHash(canonicalBytes(rowEntry(row, seq))));
      if (treeHead && treeHead.size === seq) {
        const bad = checkTreeHead(treeHead, toHex(tree.root()), p.trusted);
        if (bad) return result({ seq, reason: bad });
        treeHead = await nextHead();
      }
    }
  }
  if (cp) {
    return result({ seq: cp.seq, reason: `checkpoint at ${cp.seq}: entry ${cp.seq} is missing (the log ends at ${expected - 1})` });
  }
  // V2: a checkpoint beyond the end of the log whose entry does not exist (one that does was appended meanwhile).
  const beyond = (await db('audit_checkpoints').select('seq').where('seq', '>', endSeq).orderBy('seq', 'asc').first()) as Pick<CheckpointRow, 'seq'> | undefined;
  if (beyond && !(await db('audit_log').select('seq').where('seq', beyond.seq).first())) {
    const seq = Number(beyond.seq);
    return result({ seq, reason: `checkpoint at ${seq}: entry ${seq} is missing (the log ends at ${endSeq})` });
  }
  // V5: a log shorter than one verified before lost its tail.
  if (p.anchor && p.anchor.seq > endSeq) {
    const when = p.anchor.verifiedAt !== undefined ? ` at ${iso(p.anchor.verifiedAt)}` : '';
    return result({ seq: p.anchor.seq, reason: `entry ${p.anchor.seq} missing: the log ends at ${endSeq}, but ${p.anchor.seq} entries were verified${when} (state file): entries were removed` });
  }
  // V4: the newest entries stay unsigned only until the next timer tick.
  if (oldUncovered) {
    return result({
      seq: oldUncovered.seq,
      reason: `entry ${oldUncovered.seq}: not covered by a signed checkpoint ${seconds(p.now - oldUncovered.ts)} after it was written (the newest checkpoint is at ${lastCheckpoint}; one is due within ${seconds(p.maxUncoveredAgeMs)}): entries after it may have been removed, or the server stopped without signing its last entries`,
    });
  }
  // V6: a tree head beyond the end of the log whose entries do not exist.
  const [headBeyond] = await listTreeHeads(db, endSeq, 1);
  if (headBeyond && !(await db('audit_log').select('seq').where('seq', headBeyond.size).first())) {
    return result({ seq: headBeyond.size, reason: `tree head of size ${headBeyond.size}: entry ${headBeyond.size} is missing (the log ends at ${endSeq})` });
  }
  return result();
}
