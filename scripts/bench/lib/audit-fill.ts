// Fills a server's audit trail (sqlite) with a synthetic year of entries for scripts/bench/audit-queries.ts: a valid
// chain (the same hashing, the same chain trigger, a signed checkpoint every 1,000 entries), many entries per
// transaction, timestamps spread evenly over the `days` before now. Deterministic (a seeded generator), so two runs
// over the same count hold the same data. One organisation (the benched one) gets `share` of the entries, the rest go
// to `otherOrgs` others.
import { AUDIT_GENESIS, auditChainHash, canonicalJson, initCrypto, signAuditCheckpoint } from '@kluis/shared';
import type { Db } from '../../../server/dist/db/db.js';
import { loadOrCreateServerSigningKey } from '../../../server/dist/audit/log.js';
import { prng } from '../../../test/helpers/crash-store.js';
import { auditChainEntry, type AuditChainEntry } from '../../../server/dist/audit/rows.js';
import type { AuditOutcome } from '../../../server/dist/audit/types.js';

/** The seeded generator (mulberry32) of the test helpers: the data set is the same on every run. */
export const seeded = prng;

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** A 22-character id (the shape of newId) made from `n`: the same n gives the same id. */
export function fakeId(prefix: string, n: number): string {
  const rnd = seeded(n * 7919 + prefix.charCodeAt(0) * 104729 + prefix.length);
  let s = '';
  for (let i = 0; i < 22; i++) s += B64[Math.floor(rnd() * 64)];
  return s;
}

/** Actions with their share of the traffic: a few very common ones, some rare ones an auditor looks for. */
export const ACTIONS: readonly (readonly [string, number])[] = [
  ['chunks.download', 0.3], ['chunks.upload', 0.2], ['commits.create', 0.15], ['changes.read', 0.15], ['spaces.read', 0.08],
  ['auth.login', 0.05], ['links.access', 0.03], ['auth.prelogin', 0.02], ['links.create', 0.01], ['spaces.members.add', 0.005],
  ['auth.logout', 0.004], ['spaces.members.remove', 0.0008], ['devices.revoke', 0.0001], ['audit.export', 0.0001],
];
const OUTCOMES: readonly (readonly [AuditOutcome, number])[] = [['success', 0.95], ['denied', 0.04], ['failed', 0.01]];

function pick<T>(table: readonly (readonly [T, number])[], r: number): T {
  let acc = 0;
  for (const [value, share] of table) {
    acc += share;
    if (r < acc) return value;
  }
  return table[table.length - 1]![0];
}

export interface FillShape {
  entries: number;
  /** The benched organisation (a real one, made through the API, so its admin can search). */
  orgId: string;
  share: number;
  otherOrgs: number;
  usersPerOrg: number;
  spacesPerOrg: number;
  days: number;
}

/** The i-th user / space of an organisation (index 0 of the benched org: the users and spaces the bench filters on). */
export const userOf = (org: number, i: number): string => fakeId('u', org * 100_000 + i);
export const spaceOf = (org: number, i: number): string => fakeId('s', org * 100_000 + i);

interface Sqlite3Db {
  run(sql: string, params: unknown[], cb: (err: Error | null) => void): void;
  all(sql: string, params: unknown[], cb: (err: Error | null, rows: unknown[]) => void): void;
  prepare(sql: string, cb: (err: Error | null) => void): Sqlite3Stmt;
}
interface Sqlite3Stmt {
  run(params: unknown[], cb: (err: Error | null) => void): void;
  finalize(cb: (err: Error | null) => void): void;
}
const promised = <T>(fn: (cb: (err: Error | null, value?: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));

const COLUMNS = ['seq', 'ts', 'org_id', 'actor_user_id', 'actor_device_id', 'action', 'target_type', 'target_id', 'outcome', 'ip', 'user_agent', 'client', 'details', 'prev_hash', 'hash'];
const ROWS_PER_INSERT = 500; // 7,500 parameters: below sqlite's 32,766

/** One transaction's worth of rows (in COLUMNS order) and the signed checkpoints over them. */
interface Batch { rows: unknown[][]; checkpoints: unknown[][] }

/**
 * The synthetic entries after (seq, prevHash), made `n` at a time: the same chain as SqlAuditLog (auditChainEntry,
 * auditChainHash, a signed checkpoint every 1,000 entries), deterministic (seeded).
 */
async function entryMaker(dataDir: string, shape: FillShape, head: { seq: number; hash: string } | undefined): Promise<(done: number, n: number) => Batch> {
  await initCrypto();
  const key = await loadOrCreateServerSigningKey(dataDir);
  const end = Date.now() - 60_000;
  const step = (shape.days * 86_400_000) / shape.entries;
  const start = end - shape.days * 86_400_000;
  const rnd = seeded(42);
  const orgIds = [shape.orgId, ...Array.from({ length: shape.otherOrgs }, (_, i) => fakeId('o', i + 1))];
  // Ids repeat a lot: made once per organisation, not per entry.
  const users = orgIds.map((_, org) => Array.from({ length: shape.usersPerOrg }, (_u, i) => userOf(org, i)));
  const devices = orgIds.map((_, org) => Array.from({ length: shape.usersPerOrg }, (_u, i) => fakeId('d', org * 100_000 + i)));
  const spaces = orgIds.map((_, org) => Array.from({ length: shape.spacesPerOrg }, (_s, i) => spaceOf(org, i)));
  let seq = head ? Number(head.seq) : 0;
  let prevHash = head?.hash ?? AUDIT_GENESIS;
  return (done, n) => {
    const rows: unknown[][] = [];
    const checkpoints: unknown[][] = [];
    for (let i = 0; i < n; i++) {
      seq++;
      const ts = Math.round(start + (done + i) * step);
      const org = rnd() < shape.share ? 0 : 1 + Math.floor(rnd() * shape.otherOrgs);
      const action = pick(ACTIONS, rnd());
      const user = Math.floor(rnd() * shape.usersPerOrg);
      const space = Math.floor(rnd() * shape.spacesPerOrg);
      const outcome = pick(OUTCOMES, rnd());
      const details = action.startsWith('chunks.') ? { bytes: 524_288 * (1 + (space % 8)), chunks: 1 + (user % 64) } : null;
      const e: AuditChainEntry = {
        seq, ts, orgId: orgIds[org]!, actorUserId: users[org]![user]!, actorDeviceId: devices[org]![user]!, action, targetType: 'space',
        targetId: spaces[org]![space]!, outcome, ip: `10.${org}.${user >> 8}.${user & 255}`, userAgent: 'kluis-desktop/0.1.0 (Linux x86_64)',
        client: 'kluis-desktop/0.1.0', details,
      };
      const hash = auditChainHash(prevHash, auditChainEntry(e));
      rows.push([seq, ts, e.orgId, e.actorUserId, e.actorDeviceId, action, e.targetType, e.targetId, outcome, e.ip, e.userAgent, e.client, details && canonicalJson(details), prevHash, hash]);
      prevHash = hash;
      if (seq % 1000 === 0) checkpoints.push([seq, hash, ts, key.publicKey, signAuditCheckpoint({ seq, hash, ts }, key)]);
    }
    return { rows, checkpoints };
  };
}

const PER_TX = 50_000;

/**
 * Appends shape.entries entries after the current head and returns entries per second (index rebuild included).
 * Written fast: on the sqlite connection itself, one prepared 500-row INSERT, 50,000 entries per transaction, and the
 * table's secondary indexes dropped for the fill and built again after (a sort instead of 10 million random inserts).
 * The chain trigger stays: the database checks every row as the server's would be checked.
 */
export async function fillAudit(db: Db, dataDir: string, shape: FillShape, progress: (done: number, perSecond: number) => void): Promise<{ perSecond: number; indexSeconds: number }> {
  const conn = (await db.client.acquireConnection()) as Sqlite3Db;
  const q = <T = unknown[]>(sql: string, params: unknown[] = []) => promised<T>((cb) => conn.all(sql, params, cb as (err: Error | null, rows: unknown[]) => void));
  const t0 = performance.now();
  try {
    await q('PRAGMA cache_size = -1000000');
    const indexes = (await q<{ name: string; sql: string }[]>("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_log' AND sql IS NOT NULL"));
    for (const ix of indexes) await q(`DROP INDEX ${ix.name}`);
    const make = await entryMaker(dataDir, shape, (await q<{ seq: number; hash: string }[]>('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1'))[0]);
    const placeholders = `(${COLUMNS.map(() => '?').join(',')})`;
    const insertSql = `INSERT INTO audit_log (${COLUMNS.join(',')}) VALUES ${Array.from({ length: ROWS_PER_INSERT }, () => placeholders).join(',')}`;
    const insert = await new Promise<Sqlite3Stmt>((resolve, reject) => {
      const stmt = conn.prepare(insertSql, (err) => (err ? reject(err) : resolve(stmt)));
    });
    let done = 0;
    while (done < shape.entries) {
      const n = Math.min(PER_TX, shape.entries - done);
      const batch = make(done, n);
      await q('BEGIN IMMEDIATE');
      let at = 0;
      for (; at + ROWS_PER_INSERT <= batch.rows.length; at += ROWS_PER_INSERT) await promised((cb) => insert.run(batch.rows.slice(at, at + ROWS_PER_INSERT).flat(), cb));
      // The tail of a batch that is not a multiple of 500 (only the last batch of an odd count).
      for (; at < batch.rows.length; at++) await q(`INSERT INTO audit_log (${COLUMNS.join(',')}) VALUES ${placeholders}`, batch.rows[at]);
      for (const cp of batch.checkpoints) await q('INSERT INTO audit_checkpoints (seq, hash, ts, signer, signature) VALUES (?, ?, ?, ?, ?)', cp);
      await q('COMMIT');
      done += n;
      progress(done, done / ((performance.now() - t0) / 1000));
    }
    await promised((cb) => insert.finalize(cb));
    const i0 = performance.now();
    for (const ix of indexes) await q(ix.sql);
    const indexSeconds = (performance.now() - i0) / 1000;
    return { perSecond: shape.entries / ((performance.now() - t0) / 1000), indexSeconds };
  } finally {
    await db.client.releaseConnection(conn);
  }
}

interface PgClient { query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }> }

/**
 * The same on PostgreSQL (the server's database, KLUIS_DATABASE_URL): 500-row INSERTs, 50,000 entries per
 * transaction, the secondary indexes dropped and built again after, the chain trigger kept; then VACUUM ANALYZE, as
 * an operator runs after a bulk load (statistics for the planner, the visibility map for index-only scans).
 */
export async function fillAuditPostgres(db: Db, dataDir: string, shape: FillShape, progress: (done: number, perSecond: number) => void): Promise<{ perSecond: number; indexSeconds: number }> {
  const conn = (await db.client.acquireConnection()) as PgClient;
  const t0 = performance.now();
  try {
    const indexes = (await conn.query("SELECT indexname AS name, indexdef AS sql FROM pg_indexes WHERE tablename = 'audit_log' AND indexname <> 'audit_log_pkey'")).rows as { name: string; sql: string }[];
    for (const ix of indexes) await conn.query(`DROP INDEX ${ix.name}`);
    const make = await entryMaker(dataDir, shape, (await conn.query('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1')).rows[0] as { seq: number; hash: string } | undefined);
    const values = (rows: number) => Array.from({ length: rows }, (_, r) => `(${COLUMNS.map((_c, c) => `$${r * COLUMNS.length + c + 1}`).join(',')})`).join(',');
    const insertSql = `INSERT INTO audit_log (${COLUMNS.join(',')}) VALUES ${values(ROWS_PER_INSERT)}`;
    let done = 0;
    while (done < shape.entries) {
      const n = Math.min(PER_TX, shape.entries - done);
      const batch = make(done, n);
      await conn.query('BEGIN');
      for (let at = 0; at < batch.rows.length; at += ROWS_PER_INSERT) {
        const part = batch.rows.slice(at, at + ROWS_PER_INSERT);
        await conn.query(part.length === ROWS_PER_INSERT ? insertSql : `INSERT INTO audit_log (${COLUMNS.join(',')}) VALUES ${values(part.length)}`, part.flat());
      }
      for (const cp of batch.checkpoints) await conn.query('INSERT INTO audit_checkpoints (seq, hash, ts, signer, signature) VALUES ($1, $2, $3, $4, $5)', cp);
      await conn.query('COMMIT');
      done += n;
      progress(done, done / ((performance.now() - t0) / 1000));
    }
    const i0 = performance.now();
    for (const ix of indexes) await conn.query(ix.sql);
    await conn.query('VACUUM ANALYZE audit_log');
    const indexSeconds = (performance.now() - i0) / 1000;
    return { perSecond: shape.entries / ((performance.now() - t0) / 1000), indexSeconds };
  } finally {
    await db.client.releaseConnection(conn);
  }
}
