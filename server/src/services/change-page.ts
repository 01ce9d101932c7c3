// A page of a space's change log, read in two statements (the page with the space's head; the file keys and request
// uploads of its files) and answered as JSON text built here: the key wraps, grants and receipts are stored as the JSON
// the server wrote after validating them (routes/commits.ts, services/requests.ts), so they are copied into the answer
// as they are instead of being parsed and serialised again for every reader (issue 21 §1: that was 4 % of the server's
// time on `GET changes`).
import type { HotReads } from '../db/hot-reads.js';
import type { AccessCache } from '../auth/access-cache.js';
import { inList } from '../db/hot-reads.js';

/** A version as the API shows it (docs/api.md "Changes"). */
export function versionView(r: Record<string, unknown>) {
  return {
    seq: Number(r.seq), fileId: r.file_id as string, versionId: r.id, parent: r.parent_id, keyEpoch: Number(r.key_epoch), deleted: Boolean(r.deleted),
    // Node's base64url (unpadded, as toBase64Url): native, where the portable one costs ~0.7 ms a page of 100.
    manifest: (r.manifest as Buffer).toString('base64url'), storedBytes: Number(r.stored_bytes), authorUserId: r.author_user_id, authorDeviceId: r.author_device_id,
    createdAt: Number(r.created_at), expired: r.expired_at !== null,
  };
}
export type VersionView = ReturnType<typeof versionView>;

// The space's head rides on every row (and on the one row of an empty page: the LEFT JOIN), read in the same snapshot
// as the page, so `more` is exact.
const PAGE_SQL = 'SELECT v.id, v.file_id, v.seq, v.parent_id, v.key_epoch, v.manifest, v.deleted, v.stored_bytes, v.author_user_id, v.author_device_id, '
  + 'v.created_at, v.expired_at, s.seq AS space_head FROM spaces s LEFT JOIN versions v ON v.space_id = s.id AND v.seq > ? WHERE s.id = ? ORDER BY v.seq LIMIT ?';

/** The cache of spaces' heads and the heads counter the request read (auth/access-cache.ts, migration 019). */
export interface HeadCache {
  access: AccessCache;
  heads: number | undefined;
}

/**
 * Versions of the space after `since` (at most `limit`), and the space's seq. With `cache`, a client that is up to date
 * (`since` at or past the head cached under the request's heads counter) is answered without a read: no commit can have
 * moved the head since the counter was read, or the counter would be another. A head read here is kept under that
 * counter (it was read after the counter, so it is at least as new).
 */
export async function readChangePage(hot: HotReads, spaceId: string, since: number, limit: number, cache?: HeadCache): Promise<{ head: number; changes: VersionView[] }> {
  const heads = cache?.heads;
  const known = heads === undefined ? undefined : cache!.access.head(spaceId, heads);
  if (known !== undefined && since >= known) return { head: known, changes: [] };
  const rows = await hot.all<Record<string, unknown>>(PAGE_SQL, [since, spaceId, limit]);
  const head = rows.length ? Number(rows[0]!.space_head) : 0;
  if (heads !== undefined && rows.length) cache!.access.putHead(spaceId, heads, head);
  return { head, changes: rows.filter((r) => r.id !== null).map(versionView) };
}

/** Stored JSON texts of the files' key wraps (oldest epoch first) and of their file-request uploads. */
export interface FileKeysJson {
  wraps: Map<string, string[]>;
  uploads: Map<string, { grant: string; receipt: string }>;
}

/** The key wraps and request uploads of `fileIds`, one statement per 512 files. */
export async function fileKeysJson(hot: HotReads, fileIds: readonly string[]): Promise<FileKeysJson> {
  const out: FileKeysJson = { wraps: new Map(), uploads: new Map() };
  for (let i = 0; i < fileIds.length; i += 512) {
    const { marks, bindings } = inList(fileIds.slice(i, i + 512));
    const rows = await hot.all<{ kind: number | string; file_id: string; a: string; b: string | null }>(
      `SELECT 0 AS kind, file_id, key_epoch AS ord, wrap AS a, NULL AS b FROM file_key_wraps WHERE file_id IN (${marks}) `
      + `UNION ALL SELECT 1 AS kind, u.file_id, 0 AS ord, u.receipt AS a, r."grant" AS b FROM request_uploads u JOIN file_requests r ON r.id = u.request_id WHERE u.file_id IN (${marks}) `
      + 'ORDER BY 1, 3', [...bindings, ...bindings]);
    for (const r of rows) {
      if (Number(r.kind) === 0) {
        const list = out.wraps.get(r.file_id);
        if (list) list.push(r.a);
        else out.wraps.set(r.file_id, [r.a]);
      } else out.uploads.set(r.file_id, { receipt: r.a, grant: r.b! });
    }
  }
  return out;
}

/** The JSON text of a changes answer (docs/api.md "Changes"). */
export function changePageJson(spaceId: string, head: number, since: number, changes: readonly VersionView[], keys: FileKeysJson): string {
  const next = changes.length ? changes[changes.length - 1]!.seq : since;
  const wraps = [...keys.wraps].map(([id, list]) => `${JSON.stringify(id)}:[${list.join(',')}]`).join(',');
  const uploads = [...keys.uploads].map(([id, u]) => `${JSON.stringify(id)}:{"grant":${u.grant},"receipt":${u.receipt}}`).join(',');
  return `{"spaceId":${JSON.stringify(spaceId)},"head":${head},"next":${next},"more":${next < head},"changes":${JSON.stringify(changes)},"fileKeyWraps":{${wraps}},"uploads":{${uploads}}}`;
}
