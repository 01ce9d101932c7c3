// Builds the server's services from its configuration (used by main.ts, the admin CLI and tests).
import path from 'node:path';
import type { Logger } from 'pino';
import { initCrypto, serverSubkey } from '@kluis/shared';
import type { Config } from './config.js';
import type { Services } from './context.js';
import { openDatabase, openReadDatabase } from './db/db.js';
import { prepareDataDir } from './data-dir.js';
import { GroupCommitter } from './db/group-commit.js';
import { openFsBlobStore } from './blobstore/fs.js';
import { MinioBlobStore } from './blobstore/minio.js';
import type { BlobStore } from './blobstore/index.js';
import { SqlAuditLog, loadOrCreateServerSigningKey } from './audit/log.js';
import { EventBus } from './events.js';
import { ChunkStore } from './storage/chunks.js';

export interface OpenedServices extends Services {
  audit: SqlAuditLog;
  committer: GroupCommitter;
  /** 32-byte secret for prelogin's fake salts. */
  serverSecret: Uint8Array;
  /** `checkpoint: false` closes without signing the newest entries (kluis-admin after a failed verification). */
  close(options?: { checkpoint?: boolean }): Promise<void>;
}

export async function openBlobStore(config: Config): Promise<BlobStore> {
  if (config.storage === 'minio') {
    const s3 = config.s3!;
    return new MinioBlobStore({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region });
  }
  return openFsBlobStore({ root: path.join(config.dataDir, 'blobs') });
}

/** Opens the database (migrating it), the blob store and the audit log. */
export async function openServices(config: Config, log: Logger): Promise<OpenedServices> {
  await initCrypto();
  prepareDataDir(config.dataDir, log);
  const db = await openDatabase({ dataDir: config.dataDir });
  const read = openReadDatabase({ dataDir: config.dataDir });
  const key = await loadOrCreateServerSigningKey(config.dataDir);
  const committer = new GroupCommitter(db);
  const audit = new SqlAuditLog(db, key, { onError: (err) => log.error({ err }, 'audit checkpoint or summary failed'), transact: (fn) => committer.run(fn) });
  const blobs = await openBlobStore(config);
  const events = new EventBus();
  const chunks = new ChunkStore(db, blobs);
  return {
    config, log, db, read, tx: (fn) => committer.run(fn), blobs, audit, events, chunks, committer,
    serverSecret: serverSubkey(key, 1),
    async close(options: { checkpoint?: boolean } = {}) {
      // Queued group commits (audit entries of the last requests) finish before the database closes.
      await committer.close();
      await audit.stop();
      // The newest entries get a signed checkpoint before the database closes.
      if (options.checkpoint !== false) await audit.checkpoint();
      await blobs.close();
      await read.destroy();
      await db.destroy();
    },
  };
}
