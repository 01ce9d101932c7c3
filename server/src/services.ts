// Builds the server's services from its configuration (used by main.ts, the admin CLI and tests).
import path from 'node:path';
import type { Logger } from 'pino';
import { initCrypto, serverSubkey } from '@kluis/shared';
import { redactDatabaseUrl, withoutDatabasePassword, type Config } from './config.js';
import type { Services } from './context.js';
import { openDatabase, openReadDatabase, type Db, type Tx } from './db/db.js';
import { openHotReads } from './db/hot-reads.js';
import { countStatements } from './db/statement-count.js';
import { AccessCache } from './auth/access-cache.js';
import { AuditBatcher } from './audit/batch.js';
import { AUDIT_LOCK, LOCK_NAMESPACE } from './db/postgres.js';
import { DB_FILE, prepareDataDir } from './data-dir.js';
import { GroupCommitter } from './db/group-commit.js';
import { openFsBlobStore } from './blobstore/fs.js';
import { MinioBlobStore } from './blobstore/minio.js';
import type { BlobStore } from './blobstore/index.js';
import type { SqlAuditLog } from './audit/log.js';
import { loadOrCreateServerSigningKey, loadServerSigningKeyFile } from './audit/signing-key.js';
import { OrgSidedAuditLog } from './audit/org-sides.js';
import { catchUpMerkle } from './audit/merkle-store.js';
import { EventBus } from './events.js';
import { startEventRelay } from './events-pg.js';
import { ChunkStore } from './storage/chunks.js';

export interface OpenedServices extends Services {
  audit: SqlAuditLog;
  committer: GroupCommitter;
  /** 32-byte secret for prelogin's fake salts. */
  serverSecret: Uint8Array;
  /** 32-byte key sealing TOTP secrets (services/totp.ts). */
  totpKey: Uint8Array;
  /** `checkpoint: false` closes without signing the newest entries (kluis-admin after a failed verification). */
  close(options?: { checkpoint?: boolean }): Promise<void>;
}

export async function openBlobStore(config: Config): Promise<BlobStore> {
  if (config.storage === 'minio') {
    const s3 = config.s3!;
    return new MinioBlobStore({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region, signPayloads: s3.signPayloads });
  }
  return openFsBlobStore({ root: path.join(config.dataDir, 'blobs') });
}

/** The database could not be opened or migrated; the message names it without its password. */
export class DatabaseOpenError extends Error {
  override name = 'DatabaseOpenError';
}

/** What openServices has opened so far, closed again when a later step fails. */
interface Opened {
  relay?: { close(): Promise<void> };
  blobs?: BlobStore;
  hot?: { close(): Promise<void> };
}

/** Opens the database (migrating it), the blob store and the audit log. */
export async function openServices(config: Config, log: Logger): Promise<OpenedServices> {
  await initCrypto();
  prepareDataDir(config.dataDir, log);
  const url = config.databaseUrl;
  const db = await openDatabase({ dataDir: config.dataDir, ...(url ? { url } : {}) }).catch((err: unknown) => {
    const what = url ? redactDatabaseUrl(url) : path.join(config.dataDir, DB_FILE);
    throw new DatabaseOpenError(`cannot open the database ${what}: ${withoutDatabasePassword(String((err as Error)?.message ?? err).split('\n')[0]!, url)}`);
  });
  const read = openReadDatabase({ dataDir: config.dataDir, ...(url ? { url } : {}) });
  // Whatever fails from here on (an unreadable signing key, the Merkle catch-up, the object store) closes the pools:
  // their timers would keep kluis-admin alive after it printed its error.
  const opened: Opened = {};
  try {
    return await assemble(config, log, db, read, opened);
  } catch (err) {
    await opened.relay?.close().catch(() => undefined);
    await opened.blobs?.close().catch(() => undefined);
    await opened.hot?.close().catch(() => undefined);
    await read.destroy().catch(() => undefined);
    await db.destroy().catch(() => undefined);
    throw err;
  }
}

async function assemble(config: Config, log: Logger, db: Db, read: Db, opened: Opened): Promise<OpenedServices> {
  const url = config.databaseUrl;
  const statements = countStatements(db, read);
  const hot = await openHotReads({ dataDir: config.dataDir, read, counts: statements, ...(url ? { url } : {}) });
  opened.hot = hot;
  // A configured secret (production) or, in other environments, a seed generated in the data directory.
  const key = config.serverKeyFile ? await loadServerSigningKeyFile(config.serverKeyFile) : await loadOrCreateServerSigningKey(config.dataDir);
  const committer = new GroupCommitter(db);
  // Entries written by a tool that knows only the chain (a restore, a benchmark fill) get their Merkle subtrees now.
  await catchUpMerkle(db);
  // Entries about another organisation's space are copied to that organisation's trail (audit/org-sides.ts).
  const audit = new OrgSidedAuditLog(db, key, {
    onError: (err) => log.error({ err }, 'audit checkpoint or summary failed'),
    transact: (fn) => committer.run(fn),
    // PostgreSQL: concurrent transactions (other nodes, kluis-admin) would read the same head; the second would be
    // refused by the chain trigger. This lock makes it wait for the first one's COMMIT instead. The writer lock every
    // write transaction takes first (db/postgres.ts) already orders them; this one keeps the chain correct on its own.
    ...(url ? { beforeAppend: async (trx: Tx) => void (await trx.raw('SELECT pg_advisory_xact_lock(?, ?)', [LOCK_NAMESPACE, AUDIT_LOCK])) } : {}),
  });
  const blobs = await openBlobStore(config);
  opened.blobs = blobs;
  const events = new EventBus();
  // PostgreSQL: events reach the streams held by other nodes too (LISTEN/NOTIFY).
  const relay = url ? await startEventRelay(url, db, events, log) : undefined;
  if (relay) opened.relay = relay;
  const chunks = new ChunkStore(db, blobs, config.packThresholdBytes !== undefined ? { packThresholdBytes: config.packThresholdBytes } : {});
  return {
    config, log, db, read, hot, tx: (fn) => committer.run(fn), blobs, audit, events, chunks, committer, statements, access: new AccessCache(hot),
    auditReads: new AuditBatcher((fn) => committer.run(fn), (trx, entries) => audit.appendBatch(trx, entries)),
    serverSecret: serverSubkey(key, 1),
    totpKey: serverSubkey(key, 2),
    async close(options: { checkpoint?: boolean } = {}) {
      try {
        // Queued group commits (audit entries of the last requests) finish before the database closes.
        await committer.close();
        await audit.stop();
        // The newest entries get a signed checkpoint before the database closes.
        if (options.checkpoint !== false) await audit.checkpoint();
      } finally {
        // Even when that failed: open pools would keep a kluis-admin process alive after it printed its error.
        await relay?.close();
        await blobs.close();
        await hot.close();
        await read.destroy();
        await db.destroy();
      }
    },
  };
}
