// The client's local index (docs/architecture.md §4): one sqlite3 file `<KLUIS_HOME>/index.sqlite3`, migrated by Knex
// like the server's metadata database (numbered in-code migrations, WAL, one connection, BEGIN IMMEDIATE).
//   folders  one row per synced folder: which space, where on disk, how far the change log has been applied
//   base     per path, the last synced version and the local size/mtime/inode it had then (3-way merge base)
//   remote   per file, the newest server version known from the change log (opened manifest)
//   journal  the operation journal: a step is written 'pending' before it touches disk or server, 'done' after
//   base_chunks  per path, the chunk list of the synced version of a large file: a delta download of the next
//            version reuses the chunks it names (download.ts); a row is used only while its version_id is the base's
// Every write is batched (≤ 500 rows per statement, as one JSON parameter: index-writes.ts) inside one transaction,
// so 100,000 paths cost a few hundred statements, not 100,000. Writes (transactions and journal steps) are queued and
// run one at a time on the one connection (`exclusive`); reads and status updates are single statements beside them.
// synchronous = NORMAL (not FULL as on the server): in WAL mode a power cut may lose the last transactions but
// never corrupts the file, and everything in the index can be rebuilt from the disk and the server — the journal
// makes the lost steps run again.
// The connection (direct sqlite3; Knex loaded on it only to migrate) is index-connection.ts; the schema,
// index-migrations.ts.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type { Database } from 'sqlite3';
import type { BaseEntry, EntryKind, RemoteEntry } from './types.js';
import { PRAGMAS, knexOn, openConnection } from './index-connection.js';
import { migrations, upToDate } from './index-migrations.js';
import { BATCH_ROWS, type IndexChanges, chunked, jsonParam, writeChanges } from './index-writes.js';

export { BATCH_ROWS, type IndexChanges };

/** Rows per page when a folder's base or remote rows are read (index-db folderRows). */
const READ_PAGE = 5000;
export const INDEX_FILENAME = 'index.sqlite3';


export interface FolderRecord {
  id: number;
  spaceId: string;
  /** absolute path of the folder on disk */
  root: string;
  /** the last change-log seq whose versions are in `remote` */
  lastSeq: number;
  createdAt: number;
}

export type JournalState = 'pending' | 'done';

export interface JournalEntry {
  id: number;
  folderId: number;
  op: string;
  payload: unknown;
  state: JournalState;
  createdAt: number;
}

/** What `kluis status` shows of a folder's engine. */
export interface FolderStatus {
  state: string;
  lastError: string | null;
  lastSyncAt: number | null;
  pid: number | null;
}

interface BaseRow {
  folder_id: number;
  path: string;
  kind: string;
  file_id: string;
  version_id: string;
  hash: string;
  size: number;
  mtime_ms: number;
  local_size: number;
  local_mtime_ms: number;
  local_ino: number;
}

interface RemoteRow {
  folder_id: number;
  file_id: string;
  version_id: string;
  seq: number;
  path: string;
  kind: string;
  size: number;
  mtime_ms: number;
  hash: string;
  deleted: number | boolean;
  chunks: string;
  key_epoch: number;
}

interface FolderRow {
  id: number;
  space_id: string;
  root: string;
  last_seq: number;
  created_at: number;
}

function folderOf(row: FolderRow): FolderRecord {
  return { id: row.id, spaceId: row.space_id, root: row.root, lastSeq: Number(row.last_seq), createdAt: Number(row.created_at) };
}

const BASE_COLUMNS = ['path', 'kind', 'file_id', 'version_id', 'hash', 'size', 'mtime_ms', 'local_size', 'local_mtime_ms', 'local_ino'];
const REMOTE_COLUMNS = ['file_id', 'version_id', 'seq', 'path', 'kind', 'size', 'mtime_ms', 'hash', 'deleted', 'chunks', 'key_epoch'];

/** The local sqlite3 index of one client (one KLUIS_HOME). */
export class IndexDb {
  private knexInstance: Knex | null = null;
  /** The last queued write (exclusive): writes run one after another, in the order they were asked for. */
  private writes: Promise<void> = Promise.resolve();

  private constructor(private readonly conn: Database, private readonly filename: string) {}

  /** Knex on the index's connection, loaded on first use (see the top). */
  get knex(): Knex {
    return (this.knexInstance ??= knexOn(this.conn, this.filename));
  }

  /** Opens (creating and migrating if needed) `<home>/index.sqlite3`. */
  static async open(home: string): Promise<IndexDb> {
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const filename = path.join(home, INDEX_FILENAME);
    const db = new IndexDb(await openConnection(filename), filename);
    try {
      for (const pragma of PRAGMAS) await db.run(pragma);
      // One read instead of Knex's migrator (which takes its lock table in a write transaction on every open).
      // Anything else (a new index, a pending migration, an index a newer client migrated further) goes through the
      // migrator as before.
      const done = await db.all<{ name: string }>('SELECT name FROM schema_migrations').catch(() => null); // null: no table yet
      if (done === null || !upToDate(done.map((r) => r.name))) await db.knex.migrate.latest({ migrationSource: migrations, tableName: 'schema_migrations' });
    } catch (err) {
      await db.close();
      throw err;
    }
    return db;
  }

  private all<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return new Promise((resolve, reject) => this.conn.all(sql, params, (err, rows) => (err ? reject(err) : resolve(rows as T[]))));
  }

  private first<T>(sql: string, params: readonly unknown[] = []): Promise<T | undefined> {
    return new Promise((resolve, reject) => this.conn.get(sql, params, (err, row) => (err ? reject(err) : resolve(row as T | undefined))));
  }

  /** Runs one statement; resolves with the rows it changed. */
  private run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return new Promise((resolve, reject) => this.conn.run(sql, params, function done(this: { changes: number }, err: Error | null) {
      if (err) reject(err);
      else resolve(this.changes);
    }));
  }

  /** Runs one INSERT; resolves with the new row's id. */
  private insert(sql: string, params: readonly unknown[]): Promise<number> {
    return new Promise((resolve, reject) => this.conn.run(sql, params, function done(this: { lastID: number }, err: Error | null) {
      if (err) reject(err);
      else resolve(this.lastID);
    }));
  }

  /**
   * Runs `fn` after every write queued before it has finished (see the top): one connection carries every statement,
   * so a journal step written while a transaction is open would otherwise become part of it, and vanish if it rolled back.
   */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.writes.then(fn);
    this.writes = result.then(() => undefined, () => undefined);
    return result;
  }

  /** `fn`'s statements in one transaction (BEGIN IMMEDIATE: another process's write lock is waited for). */
  private transaction(fn: () => Promise<void>): Promise<void> {
    return this.exclusive(async () => {
      await this.run('BEGIN IMMEDIATE');
      try {
        await fn();
        await this.run('COMMIT');
      } catch (err) {
        // A failed COMMIT leaves the transaction open: roll it back too, or the next BEGIN would fail inside it.
        await this.run('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  async close(): Promise<void> {
    await this.writes; // queued writes finish first (none fails here: the chain keeps no errors)
    if (this.knexInstance) await this.knexInstance.destroy();
    this.knexInstance = null;
    await new Promise<void>((resolve, reject) => this.conn.close((err) => (err ? reject(err) : resolve())));
  }

  /** The folder record for (space, root), created with lastSeq 0 on first use. */
  async folder(spaceId: string, root: string): Promise<FolderRecord> {
    const absRoot = path.resolve(root);
    const find = () => this.first<FolderRow>('SELECT * FROM folders WHERE space_id = ? AND root = ?', [spaceId, absRoot]);
    const found = await find();
    if (found) return folderOf(found);
    // (space_id, root) is unique: of two processes binding the folder at once, one inserts, both read the same row.
    await this.run('INSERT OR IGNORE INTO folders (space_id, root, last_seq, created_at) VALUES (?, ?, 0, ?)', [spaceId, absRoot, Date.now()]);
    return folderOf((await find())!);
  }

  async folders(): Promise<FolderRecord[]> {
    return (await this.all<FolderRow>('SELECT * FROM folders ORDER BY id')).map(folderOf);
  }

  async folderById(folderId: number): Promise<FolderRecord | null> {
    const row = await this.first<FolderRow>('SELECT * FROM folders WHERE id = ?', [folderId]);
    return row ? folderOf(row) : null;
  }

  /**
   * The rows of one folder in `table`, READ_PAGE at a time in primary-key order (issue 22): sqlite3's all() holds a
   * whole answer in native memory before it becomes objects, which for 100,000 rows was a peak of its own. Each page
   * is one statement: a row written between two pages is seen in its old or its new state, as by one statement read
   * before or after that write.
   */
  private async *folderRows<T extends { path: string } | { file_id: string }>(table: 'base' | 'remote', columns: readonly string[], key: 'path' | 'file_id', folderId: number): AsyncGenerator<T[]> {
    const select = `SELECT ${columns.join(', ')} FROM ${table} WHERE folder_id = ?`;
    let after: unknown = null;
    for (;;) {
      const rows = after === null
        ? await this.all<T>(`${select} ORDER BY ${key} LIMIT ${READ_PAGE}`, [folderId])
        : await this.all<T>(`${select} AND ${key} > ? ORDER BY ${key} LIMIT ${READ_PAGE}`, [folderId, after]);
      yield rows;
      if (rows.length < READ_PAGE) return;
      after = (rows[rows.length - 1] as Record<typeof key, unknown>)[key];
    }
  }

  /** Every base entry of the folder, by path. */
  async baseAll(folderId: number): Promise<Map<string, BaseEntry>> {
    const out = new Map<string, BaseEntry>();
    for await (const page of this.folderRows<BaseRow>('base', BASE_COLUMNS, 'path', folderId)) for (const r of page) {
      out.set(r.path, {
        path: r.path,
        kind: r.kind as EntryKind,
        fileId: r.file_id,
        versionId: r.version_id,
        hash: r.hash,
        size: Number(r.size),
        mtimeMs: r.mtime_ms,
        localSize: Number(r.local_size),
        localMtimeMs: r.local_mtime_ms,
        localIno: r.local_ino,
      });
    }
    return out;
  }

  /** Every known remote file of the folder, by fileId. */
  async remoteAll(folderId: number): Promise<Map<string, RemoteEntry>> {
    const out = new Map<string, RemoteEntry>();
    for await (const page of this.folderRows<RemoteRow>('remote', REMOTE_COLUMNS, 'file_id', folderId)) for (const r of page) {
      out.set(r.file_id, {
        fileId: r.file_id,
        versionId: r.version_id,
        seq: Number(r.seq),
        path: r.path,
        kind: r.kind as EntryKind,
        size: Number(r.size),
        mtimeMs: r.mtime_ms,
        hash: r.hash,
        deleted: Boolean(r.deleted),
        chunks: JSON.parse(r.chunks) as [string, number][],
        keyEpoch: r.key_epoch,
      });
    }
    return out;
  }

  /** The remote row with the highest seq up to `seq` (where a pull starts: rollback.ts probeStart). */
  async newestRemoteUpTo(folderId: number, seq: number): Promise<{ versionId: string; seq: number } | null> {
    const row = await this.first<{ version_id: string; seq: number }>('SELECT version_id, seq FROM remote WHERE folder_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1', [folderId, seq]);
    return row ? { versionId: row.version_id, seq: Number(row.seq) } : null;
  }

  /**
   * The chunk list of version `versionId` as synced at `relPath` (kept for large files only), or null when the index
   * has none for that version (a small file, an index from before base_chunks, or a stale row).
   */
  async baseChunks(folderId: number, relPath: string, versionId: string): Promise<[string, number][] | null> {
    const row = await this.first<{ version_id: string; chunks: string }>('SELECT version_id, chunks FROM base_chunks WHERE folder_id = ? AND path = ?', [folderId, relPath]);
    if (!row || row.version_id !== versionId) return null;
    return JSON.parse(row.chunks) as [string, number][];
  }

  async putBase(folderId: number, entries: readonly BaseEntry[]): Promise<void> {
    await this.apply(folderId, { putBase: entries });
  }

  async deleteBase(folderId: number, paths: readonly string[]): Promise<void> {
    await this.apply(folderId, { deleteBase: paths });
  }

  /** Stores remote entries; with `lastSeq`, moves the folder's change-log position in the same transaction. */
  async putRemote(folderId: number, entries: readonly RemoteEntry[], lastSeq?: number): Promise<void> {
    await this.apply(folderId, lastSeq === undefined ? { putRemote: entries } : { putRemote: entries, lastSeq });
  }

  async deleteRemote(folderId: number, fileIds: readonly string[]): Promise<void> {
    await this.apply(folderId, { deleteRemote: fileIds });
  }

  async setLastSeq(folderId: number, seq: number): Promise<void> {
    await this.apply(folderId, { lastSeq: seq });
  }

  /** Applies all `changes` in one transaction, batched (index-writes.ts). */
  async apply(folderId: number, changes: IndexChanges): Promise<void> {
    await this.transaction(() => writeChanges((sql, params) => this.run(sql, params), folderId, changes));
  }

  /** Forgets everything the index knows of the server for a folder (rollback.ts rebind), in one transaction. */
  async forgetServer(folderId: number): Promise<void> {
    await this.transaction(async () => {
      for (const table of ['base', 'base_chunks', 'remote', 'file_wraps', 'journal']) await this.run(`DELETE FROM ${table} WHERE folder_id = ?`, [folderId]);
      await this.run('UPDATE folders SET last_seq = 0 WHERE id = ?', [folderId]);
    });
  }

  /** Records a step before it is carried out; returns its id for journalDone. */
  async journalAdd(folderId: number, op: string, payload: unknown): Promise<number> {
    const row = [folderId, op, jsonParam(payload ?? null), Date.now()];
    return this.exclusive(() => this.insert("INSERT INTO journal (folder_id, op, payload, state, created_at) VALUES (?, ?, CAST(? AS TEXT), 'pending', ?)", row));
  }

  async journalDone(id: number): Promise<void> {
    await this.exclusive(() => this.run("UPDATE journal SET state = 'done', done_at = ? WHERE id = ?", [Date.now(), id]));
  }

  /** Steps written but not finished (a crash or kill in between), oldest first: run or undo them at start. */
  async journalPending(folderId: number): Promise<JournalEntry[]> {
    const rows = await this.all<{ id: number; folder_id: number; op: string; payload: string; state: JournalState; created_at: number }>(
      "SELECT id, folder_id, op, payload, state, created_at FROM journal WHERE folder_id = ? AND state = 'pending' ORDER BY id", [folderId]);
    return rows.map((r) => ({ id: r.id, folderId: r.folder_id, op: r.op, payload: JSON.parse(r.payload) as unknown, state: r.state, createdAt: Number(r.created_at) }));
  }

  /** Deletes finished steps of the folder; returns how many. */
  async journalPrune(folderId: number): Promise<number> {
    return this.exclusive(() => this.run("DELETE FROM journal WHERE folder_id = ? AND state = 'done'", [folderId]));
  }

  /** The stored file-key wraps of some files (all epochs), by fileId. */
  async wraps(folderId: number, fileIds: readonly string[]): Promise<Map<string, unknown[]>> {
    const out = new Map<string, unknown[]>();
    for (const ids of chunked(fileIds)) {
      const rows = await this.all<{ file_id: string; wrap: string }>(`SELECT file_id, wrap FROM file_wraps WHERE folder_id = ? AND file_id IN (${ids.map(() => '?').join(', ')}) ORDER BY key_epoch`, [folderId, ...ids]);
      for (const r of rows) {
        const list = out.get(r.file_id);
        if (list) list.push(JSON.parse(r.wrap));
        else out.set(r.file_id, [JSON.parse(r.wrap)]);
      }
    }
    return out;
  }

  /** Records the engine's state for `kluis status` (no transaction of its own beyond the one statement). */
  async setStatus(folderId: number, status: Partial<FolderStatus>): Promise<void> {
    const row: Record<string, unknown> = {};
    if (status.state !== undefined) row.state = status.state;
    if (status.lastError !== undefined) row.last_error = status.lastError;
    if (status.lastSyncAt !== undefined) row.last_sync_at = status.lastSyncAt;
    if (status.pid !== undefined) row.pid = status.pid;
    const columns = Object.keys(row); // from the fixed names above, never from input
    if (columns.length) await this.run(`UPDATE folders SET ${columns.map((c) => `${c} = ?`).join(', ')} WHERE id = ?`, [...Object.values(row), folderId]);
  }

  async status(folderId: number): Promise<FolderStatus & { pendingJournal: number }> {
    const row = await this.first<{ state: string; last_error: string | null; last_sync_at: number | null; pid: number | null }>('SELECT state, last_error, last_sync_at, pid FROM folders WHERE id = ?', [folderId]);
    const pending = await this.first<{ n: number }>("SELECT COUNT(*) AS n FROM journal WHERE folder_id = ? AND state = 'pending'", [folderId]);
    return {
      state: row?.state ?? 'idle',
      lastError: row?.last_error ?? null,
      lastSyncAt: row?.last_sync_at === null || row?.last_sync_at === undefined ? null : Number(row.last_sync_at),
      pid: row?.pid ?? null,
      pendingJournal: Number(pending?.n ?? 0),
    };
  }
}
