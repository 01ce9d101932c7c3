// What request handlers can reach: the services (built once in main.ts or a test) and the per-request state.
import type { Logger } from 'pino';
import type { Db, Tx } from './db/db.js';
import type { BlobStore } from './blobstore/index.js';
import type { AuditLog } from './audit/types.js';
import type { Config } from './config.js';
import type { EventBus } from './events.js';
import type { ChunkStore } from './storage/chunks.js';
import type { OrgRole } from '@kluis/shared';
import type { HotReads } from './db/hot-reads.js';
import type { StatementCounts } from './db/statement-count.js';
import type { AccessCache } from './auth/access-cache.js';
import type { AuditBatcher } from './audit/batch.js';

export interface Services {
  config: Config;
  log: Logger;
  db: Db;
  /**
   * For plain reads outside transactions on hot routes (session, membership, pages): on sqlite, read-only WAL
   * connections that do not queue behind the writer's transactions (db/db.ts openReadDatabase). Sees every
   * write whose promise has resolved. Reads that must be consistent with a write go through its `trx`.
   */
  read: Db;
  /** The reads every request makes (session, membership, a page of changes) as prepared statements (db/hot-reads.ts). */
  hot: HotReads;
  /**
   * Runs `fn` in a transaction shared with concurrent requests (group commit, db/group-commit.ts): each caller
   * in its own savepoint, one COMMIT for all; settles after that COMMIT. For the short, database-only
   * transactions of hot routes (audit entries of reads, commits). `fn` may run again if its group breaks.
   */
  tx<T>(fn: (trx: Tx) => Promise<T>): Promise<T>;
  blobs: BlobStore;
  audit: AuditLog;
  events: EventBus;
  chunks: ChunkStore;
  /** Audit entries of reads, committed in batches before each read answers (audit/batch.ts). */
  auditReads: AuditBatcher;
  /** Sessions and memberships cached under the cache generation (auth/access-cache.ts). */
  access: AccessCache;
  /** SQL statements sent so far, per pool (db/statement-count.ts; absent in tests that build services by hand). */
  statements?: StatementCounts;
}

/** The authenticated caller of a request. */
export interface Caller {
  userId: string;
  orgId: string;
  role: OrgRole;
  deviceId: string;
  email: string;
  /** The user's signing key (wraps they sign must name it), where authenticate read it. */
  signPublicKey?: string;
  /** The cache generation this request read (auth/access-cache.ts): cached memberships are trusted under it only. */
  generation?: number;
  /** The heads counter this request read (migration 019): cached heads of spaces are trusted under it only. */
  heads?: number;
}

/** Per-request facts for the audit trail. */
export interface RequestMeta {
  ip: string;
  userAgent: string | null;
  client: string | null;
}

export interface KluisState {
  caller?: Caller;
  meta: RequestMeta;
  /** The audited action of the route being served, so that failures and denials are logged under it. */
  action?: string;
  target?: { type: string; id: string | null };
  orgId?: string | null;
}
