// The index's batched writes (index-db.ts apply): each kind of row goes in as one JSON array bound to one statement
// that reads it with sqlite's json_each (issue 22). A multi-row VALUES statement built by Knex cost the sync's main
// thread about 80 µs per committed file (Knex compiling 500-row inserts, then node-sqlite3 converting each of their
// 5,500 parameters); one JSON parameter leaves the parsing to sqlite on libuv's thread.
// Every value is still a bound parameter: the SQL text below is fixed. Numbers keep their exact value (sqlite reads
// JSON numbers as 64-bit integers or doubles, as it binds them), booleans become 1 and 0 as node-sqlite3 bound them.
// The JSON goes as UTF-8 bytes, read back as text by the statement (jsonParam): node-sqlite3 copies a string parameter
// out of V8 at about 4.7 ns per character on the main thread (2.2 ms for a 470 KB batch of file-key wraps), bytes at
// memcpy's speed; Buffer.from encodes the string at about 0.4 ns per byte. A first sync of 10,000 small files binds
// about 18 MB of such JSON.
import type { BaseEntry, RemoteEntry } from './types.js';

/** Index changes applied together in one transaction (e.g. a finished download: base row + journal step done). */
export interface IndexChanges {
  /** applied first, so a move is `deleteBase: [from], putBase: [to]` (their base_chunks rows go too) */
  deleteBase?: readonly string[];
  /** an entry with `chunks` also stores them in base_chunks; one without leaves that row alone */
  putBase?: readonly BaseEntry[];
  putRemote?: readonly RemoteEntry[];
  deleteRemote?: readonly string[];
  lastSeq?: number;
  journalDone?: readonly number[];
  /** file-key wraps to keep (by file and epoch) */
  putWraps?: readonly { fileId: string; keyEpoch: number; wrap: unknown }[];
}

/** Runs one statement on the index's connection; resolves with the rows it changed. */
export type RunStatement = (sql: string, params: readonly unknown[]) => Promise<number>;

/** Rows per statement: keeps each JSON parameter to a few hundred KB. */
export const BATCH_ROWS = 500;
/** base_chunks rows per statement: a row of a 1 GiB file holds about 150 KB of JSON. */
const CHUNK_LIST_ROWS = 20;

/**
 * A JSON parameter: `value` as JSON text in UTF-8 bytes, which its statement reads with `CAST(? AS TEXT)` (above; sqlite
 * would take a bare BLOB for its binary JSONB format).
 */
export function jsonParam(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** The rows of a JSON array parameter (jsonParam). */
const JSON_ROWS = 'json_each(CAST(? AS TEXT))';

/** `INSERT … SELECT ?, value->>0, … FROM json_each(…)`, replacing the row with the same key. */
function upsert(table: string, columns: readonly string[], key: readonly string[], json: ReadonlySet<string> = new Set()): string {
  const fields = columns.map((c, i) => `value ${json.has(c) ? '->' : '->>'} ${i}`);
  const update = columns.filter((c) => !key.includes(c)).map((c) => `${c} = excluded.${c}`);
  // WHERE true: without it sqlite would read ON CONFLICT as part of the SELECT's join (its documented parsing ambiguity).
  return `INSERT INTO ${table} (folder_id, ${columns.join(', ')}) SELECT ?, ${fields.join(', ')} FROM ${JSON_ROWS} WHERE true `
    + `ON CONFLICT (${['folder_id', ...key].join(', ')}) DO UPDATE SET ${update.join(', ')}`;
}

const PUT_BASE = upsert('base', ['path', 'kind', 'file_id', 'version_id', 'hash', 'size', 'mtime_ms', 'local_size', 'local_mtime_ms', 'local_ino'], ['path']);
const PUT_BASE_CHUNKS = upsert('base_chunks', ['path', 'version_id', 'chunks'], ['path'], new Set(['chunks']));
const PUT_REMOTE = upsert('remote', ['file_id', 'version_id', 'seq', 'path', 'kind', 'size', 'mtime_ms', 'hash', 'deleted', 'chunks', 'key_epoch'], ['file_id'], new Set(['chunks']));
const PUT_WRAPS = upsert('file_wraps', ['file_id', 'key_epoch', 'wrap'], ['file_id', 'key_epoch'], new Set(['wrap']));

/** `items` in consecutive slices of at most `size` (the index's reads use it too). */
export function* chunked<T>(items: readonly T[], size = BATCH_ROWS): Generator<readonly T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/** Applies `changes` statement by statement; the caller holds the transaction. */
export async function writeChanges(run: RunStatement, folderId: number, changes: IndexChanges): Promise<void> {
  const each = async <T>(sql: string, items: readonly T[] | undefined, row: (item: T) => unknown, size = BATCH_ROWS) => {
    for (const batch of chunked(items ?? [], size)) await run(sql, [folderId, jsonParam(batch.map(row))]);
  };
  for (const paths of chunked(changes.deleteBase ?? [])) {
    const list = jsonParam(paths);
    await run(`DELETE FROM base WHERE folder_id = ? AND path IN (SELECT value FROM ${JSON_ROWS})`, [folderId, list]);
    await run(`DELETE FROM base_chunks WHERE folder_id = ? AND path IN (SELECT value FROM ${JSON_ROWS})`, [folderId, list]);
  }
  await each(PUT_BASE, changes.putBase, (e: BaseEntry) => [e.path, e.kind, e.fileId, e.versionId, e.hash, e.size, e.mtimeMs, e.localSize, e.localMtimeMs, e.localIno]);
  const lists = (changes.putBase ?? []).filter((e) => e.chunks !== undefined);
  await each(PUT_BASE_CHUNKS, lists, (e) => [e.path, e.versionId, e.chunks], CHUNK_LIST_ROWS);
  await each(PUT_REMOTE, changes.putRemote, (e: RemoteEntry) => [e.fileId, e.versionId, e.seq, e.path, e.kind, e.size, e.mtimeMs, e.hash, e.deleted, e.chunks, e.keyEpoch]);
  await each(`DELETE FROM remote WHERE folder_id = ? AND file_id IN (SELECT value FROM ${JSON_ROWS})`, changes.deleteRemote, (id: string) => id);
  if (changes.lastSeq !== undefined) {
    if (!Number.isSafeInteger(changes.lastSeq) || changes.lastSeq < 0) throw new RangeError(`bad change-log seq ${changes.lastSeq}`);
    if ((await run('UPDATE folders SET last_seq = ? WHERE id = ?', [changes.lastSeq, folderId])) !== 1) throw new Error(`no folder ${folderId} in the index`);
  }
  await each(PUT_WRAPS, changes.putWraps, (w) => [w.fileId, w.keyEpoch, w.wrap]);
  for (const ids of chunked(changes.journalDone ?? [])) {
    await run(`UPDATE journal SET state = 'done', done_at = ? WHERE id IN (SELECT value FROM ${JSON_ROWS})`, [Date.now(), jsonParam(ids)]);
  }
}
