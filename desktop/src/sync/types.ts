// Shared vocabulary of the sync engine (docs/architecture.md §4). Paths are NFC-normalised POSIX paths relative to the folder
// root (the same form as a manifest's `path`); hashes are hex BLAKE2b-256 of the plaintext (docs/crypto.md §6).

export type EntryKind = 'file' | 'dir';

/** What the local index remembers of a path after the last successful sync of it (the "base" of 3-way merges). */
export interface BaseEntry {
  path: string;
  kind: EntryKind;
  fileId: string;
  /** the synced version this path corresponds to */
  versionId: string;
  hash: string;
  size: number;
  mtimeMs: number;
  /** local file facts at the time it was synced: size + mtime + inode unchanged means "not modified" */
  localSize: number;
  localMtimeMs: number;
  localIno: number;
  /**
   * The synced version's chunk list, set only on rows written for a large file (download.ts keepChunks): stored
   * apart (index-db.ts base_chunks) and never loaded by baseAll; the next version's download reuses these chunks.
   */
  chunks?: [string, number][];
}

/** A path as found on disk by a scan. */
export interface LocalEntry {
  path: string;
  kind: EntryKind;
  size: number;
  mtimeMs: number;
  ino: number;
  /**
   * hex BLAKE2b-256 of the content; reused from the index when size+mtime+inode are unchanged. HASH_LATER for a large
   * file the scan left to the upload to hash (hash-later.ts); the upload writes the real hash here once it has it.
   */
  hash: string;
}

/** LocalEntry.hash of a file hashed by its upload, not by the scan (hash-later.ts): equal to no real hash. */
export const HASH_LATER = 'later';

/**
 * Files up to this size are read by their upload in one synchronous call and hashed in that read (read-encrypt.ts
 * readSmall), so the scan leaves their hash to it too (hash-later.ts).
 */
export const READ_WHOLE_MAX = 256 * 1024;

/** The newest version of a file on the server, as known from the change log (opened manifest). */
export interface RemoteEntry {
  fileId: string;
  versionId: string;
  seq: number;
  path: string;
  kind: EntryKind;
  size: number;
  mtimeMs: number;
  hash: string;
  deleted: boolean;
  chunks: [string, number][];
  keyEpoch: number;
}

/** What reconciliation decides for one path (or one file id, for moves). */
export type SyncAction =
  | { type: 'none'; path: string }
  /** local content is new or changed: upload it as a new version (parent = base version, or null for a new file) */
  | { type: 'upload'; path: string; local: LocalEntry; base: BaseEntry | null; remote: RemoteEntry | null }
  /** the file was deleted locally: commit a deletion version */
  | { type: 'delete-remote'; path: string; base: BaseEntry; remote: RemoteEntry }
  /** remote content is new or changed: download it over the unchanged (or absent) local file */
  | { type: 'download'; path: string; remote: RemoteEntry; base: BaseEntry | null }
  /** remote deleted a file that is unchanged locally: delete the local file */
  | { type: 'delete-local'; path: string; base: BaseEntry; local: LocalEntry }
  /** both sides changed differently: keep both — the local content moves to a conflict copy (uploaded as a new
   *  file), then the remote version is downloaded under the original name */
  | { type: 'conflict'; path: string; local: LocalEntry; remote: RemoteEntry; base: BaseEntry | null; conflictPath: string }
  /** both sides reached the same content (or both deleted): only the index is updated */
  | { type: 'record'; path: string; remote: RemoteEntry | null; local: LocalEntry | null }
  /** a remote rename/move of a file unchanged locally: rename on disk, no transfer */
  | { type: 'move-local'; from: string; to: string; remote: RemoteEntry; base: BaseEntry }
  /** a local rename/move (same inode, same content, base path gone): commit a version with the new path, no upload */
  | { type: 'move-remote'; from: string; to: string; local: LocalEntry; base: BaseEntry; remote: RemoteEntry }
  /** a path that cannot exist on this OS (or unsafe): reported, never written */
  | { type: 'refuse'; path: string; reason: string };

export type EngineState = 'idle' | 'scanning' | 'uploading' | 'downloading' | 'paused' | 'error' | 'stopped';
