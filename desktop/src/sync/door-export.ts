// `kluis export` behind the front door (./door.ts; docs/cli.md "Export", issue 20 §4 "No lock-in"): the current tree of
// a space, downloaded and decrypted into an empty folder, with every file's versions described in a metadata file.
// It is a read-only client of the space: the same trust as a sync (membership log, signed wraps and manifests, each
// chunk checked against its keyed id, each file against its hash), the same path rules (./local-paths.ts: nothing is
// written outside DIR, unsafe names are reported, never written), and nothing is committed.
//
// Decisions (2026-11):
// - DIR must be new or an empty folder: an export never replaces or mixes with anything.
// - The metadata file is DIR/.kluis-export.json, written LAST: a DIR without it is an export that did not finish.
//   Older versions (--all-versions) go under DIR/.kluis-versions/<versionId>/<path>. A space entry with either name at
//   its top level is skipped with that reason (the names are the export's).
// - Which versions: the tree holds each file's current version; the metadata lists every version the server keeps
//   (expired ones too, without content), of deleted files as well.
import { readdirSync, statSync, mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode, KluisError } from '@kluis/shared';
import type { Account } from '../account/state.js';
import { accountClient } from '../account/spaces.js';
import { writeFileAtomic, mkdirInside } from './atomic-write.js';
import { LocalFsError, foldCase, inspectLocalPath, isCaseInsensitivePlatform } from './local-paths.js';
import { SpaceCrypto, entryOf } from './remote.js';
import { conflictStamp, taggedName } from './tagged-names.js';
import { spaceHistory } from './export-history.js';
import { each, fileContent } from './transfer.js';
import type { RemoteEntry } from './types.js';

export const EXPORT_METADATA = '.kluis-export.json';
export const EXPORT_VERSIONS = '.kluis-versions';
export const EXPORT_FORMAT = 'kluis-export/v1';

export interface ExportedVersion {
  versionId: string;
  seq: number;
  parent: string | null;
  /** the server's commit time (ISO 8601, UTC) */
  createdAt: string;
  /** from the signed manifest; null when the version was refused */
  path: string | null;
  kind: 'file' | 'dir' | null;
  size: number | null;
  mtimeMs: number | null;
  /** hex BLAKE2b-256 of the plaintext (docs/crypto.md §6) */
  hash: string | null;
  deleted: boolean;
  keyEpoch: number;
  /** the author's e-mail by the verified membership log, and the ids the server recorded */
  author: string | null;
  authorUserId: string | null;
  deviceId: string | null;
  expired: boolean;
  current: boolean;
  /** where its content is in DIR (the tree, or .kluis-versions/…); absent when not written */
  content?: string;
  refused?: string;
}

export interface ExportedFile {
  fileId: string;
  /** the current path, or the last one of a deleted file; null when no version of it opens for you */
  path: string | null;
  kind: 'file' | 'dir' | null;
  /** in the tree: false for a deleted file, or one skipped (then `skipped` says why) */
  inTree: boolean;
  skipped?: string;
  versions: ExportedVersion[];
}

export interface ExportMetadata {
  format: typeof EXPORT_FORMAT;
  spaceId: string;
  spaceName: string;
  /** the change-log position the export reflects */
  seq: number;
  exportedAt: string;
  allVersions: boolean;
  files: ExportedFile[];
}

export interface ExportReport {
  dir: string;
  metadata: string;
  spaceId: string;
  seq: number;
  files: number;
  folders: number;
  bytes: number;
  olderVersions: number;
  skipped: { path: string; reason: string }[];
  refused: { fileId: string; versionId: string; reason: string }[];
}

/** Creates DIR, or accepts it when it is an empty folder; refuses anything else before a byte is written. */
function prepareDir(dir: string): string {
  const abs = path.resolve(dir);
  let st;
  try {
    st = statSync(abs);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(abs, { recursive: true });
    return abs;
  }
  if (!st.isDirectory()) throw new KluisError(ErrorCode.Conflict, `${dir} exists and is not a folder: export writes into a new or empty folder`);
  if (readdirSync(abs).length > 0) throw new KluisError(ErrorCode.Conflict, `${dir} is not empty: export writes into a new or empty folder, and changes nothing in one that holds files`);
  return abs;
}

/** Why `rel` cannot be written at the top of an export (its own names, the OS's rules), or null. */
function treeProblem(rel: string): string | null {
  const top = rel.split('/')[0]!;
  if (top === EXPORT_METADATA || top === EXPORT_VERSIONS) return `"${top}" is the export's own name: not written`;
  return inspectLocalPath(rel).refused;
}

/**
 * Why a write was not made, for the report: a name the disk refuses (unsafe, taken). Content that fails its checks
 * (size, hash against the signed manifest) fails the whole export; so does any other error.
 */
function writeProblem(err: unknown): string {
  if (err instanceof LocalFsError && ['unsafe_path', 'exists', 'changed'].includes(err.code)) return err.message;
  if (err instanceof LocalFsError && (err.code === 'hash_mismatch' || err.code === 'size_mismatch')) {
    throw new KluisError(ErrorCode.BadManifest, `${err.path ?? 'a file'}: the content the server sent does not match its signed manifest (${err.message})`);
  }
  throw err;
}

/** Writes the space's current tree and (optionally) its older versions into DIR, then the metadata file. */
export async function exportSpace(account: Account, spaceId: string, dir: string, o: { allVersions?: boolean } = {}): Promise<ExportReport> {
  const c = accountClient(account);
  const sc = await SpaceCrypto.load(c, account, spaceId);
  const root = prepareDir(dir);
  const { seq, files: history } = await spaceHistory(c, sc);
  // A file's current state is its newest version that opens; one that is refused leaves the one before in place, as
  // in a sync (./remote.ts). A file none of whose versions opens is only described.
  const entries = new Map<string, RemoteEntry>();
  for (const [fileId, list] of history) {
    const newest = list.find((h) => h.manifest);
    if (newest) entries.set(fileId, entryOf(newest.version, newest.manifest!));
  }
  const refused = [...history.values()].flat().filter((h) => h.refused).map((h) => ({ fileId: h.version.fileId, versionId: h.version.versionId, reason: h.refused! }));
  const report: ExportReport = { dir: root, metadata: path.join(root, EXPORT_METADATA), spaceId, seq, files: 0, folders: 0, bytes: 0, olderVersions: 0, skipped: [], refused };
  const files = new Map<string, ExportedFile>();
  // A file that came through a file request never takes another's path (docs/crypto.md §9.2): as in a sync
  // (./pull.ts), it is placed after the others and, when its path is taken, named `name (upload <date>).ext`.
  const uploadedAt = (e: RemoteEntry): number | undefined => {
    const h = history.get(e.fileId)!.find((x) => x.version.versionId === e.versionId)!;
    return h.signer !== null && sc.isUpload(e.fileId, h.signer) ? h.version.createdAt : undefined;
  };
  const byPath = (a: RemoteEntry, b: RemoteEntry) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.seq - b.seq);
  const all = [...entries.values()].filter((e) => !e.deleted);
  const live = [...all.filter((e) => uploadedAt(e) === undefined).sort(byPath), ...all.filter((e) => uploadedAt(e) !== undefined).sort(byPath)];
  const taken = new Set<string>();
  const takenFiles = new Set<string>();
  const fold = isCaseInsensitivePlatform() ? foldCase : (p: string) => p;
  /** a folder on the way to `rel` that is a file of the space (sorted by path, so it was seen first) */
  const fileAbove = (rel: string) => rel.split('/').slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join('/')).find((p) => takenFiles.has(fold(p)));
  const inTree: RemoteEntry[] = [];
  const skip = (e: RemoteEntry, reason: string) => {
    report.skipped.push({ path: e.path, reason });
    files.get(e.fileId)!.skipped = reason;
  };
  for (const fileId of history.keys()) {
    const e = entries.get(fileId);
    files.set(fileId, { fileId, path: e?.path ?? null, kind: e?.kind ?? null, inTree: false, versions: [] });
  }
  for (const e of live) {
    const at = uploadedAt(e);
    if (at !== undefined && taken.has(fold(e.path))) {
      e.path = taggedName(e.path, `upload ${conflictStamp(new Date(at))}`, (p) => taken.has(fold(p)));
      files.get(e.fileId)!.path = e.path;
    }
    const above = fileAbove(e.path);
    const problem = treeProblem(e.path) ?? (taken.has(fold(e.path)) ? 'another file of the space has this path: not written'
      : above !== undefined ? `${above} is a file of the space, not a folder: not written` : null);
    if (problem) skip(e, problem);
    else {
      taken.add(fold(e.path));
      if (e.kind === 'file') takenFiles.add(fold(e.path));
      inTree.push(e);
    }
  }
  // Folders first (shallow to deep), then files; a path whose parent is a file is reported, not forced.
  for (const e of inTree.filter((x) => x.kind === 'dir')) {
    try {
      await mkdirInside(root, e.path);
      files.get(e.fileId)!.inTree = true;
      report.folders++;
    } catch (err) {
      if (!(err instanceof LocalFsError)) throw err;
      skip(e, err.message);
    }
  }
  await each(inTree.filter((x) => x.kind === 'file'), 4, async (e) => {
    const keys = sc.keyFor(e.fileId, e.keyEpoch);
    if (!keys) return skip(e, `no key of epoch ${e.keyEpoch} of this file opens for you`);
    try {
      await writeFileAtomic(root, e.path, fileContent(c, spaceId, e.chunks, keys.subkeys), { size: e.size, hash: e.hash, mtimeMs: e.mtimeMs }, { current: null });
    } catch (err) {
      return skip(e, writeProblem(err));
    }
    files.get(e.fileId)!.inTree = true;
    report.files++;
    report.bytes += e.size;
  });

  // Every version of every file, and with --all-versions the content of those that are neither current nor gone.
  await each([...files.values()], 4, async (f) => {
    const current = entries.get(f.fileId);
    for (const h of history.get(f.fileId)!) {
      const v = h.version;
      const m = h.manifest;
      const out: ExportedVersion = {
        versionId: v.versionId, seq: v.seq, parent: v.parent, createdAt: new Date(v.createdAt).toISOString(), path: m?.path ?? null, kind: m?.kind ?? null,
        size: m?.size ?? null, mtimeMs: m?.mtimeMs ?? null, hash: m?.hash ?? null, deleted: v.deleted, keyEpoch: v.keyEpoch,
        author: h.signer ? (sc.authors.get(h.signer) ?? null) : null, authorUserId: v.authorUserId, deviceId: v.authorDeviceId, expired: v.expired,
        current: v.versionId === current?.versionId, ...(h.refused ? { refused: h.refused } : {}),
      };
      if (out.current && f.inTree) out.content = current!.path;
      else if (o.allVersions && m && m.kind === 'file' && !m.deleted && !v.expired && !out.current) {
        const rel = `${EXPORT_VERSIONS}/${v.versionId}/${m.path}`;
        const keys = sc.keyFor(f.fileId, v.keyEpoch);
        if (keys && inspectLocalPath(rel).refused === null) {
          let problem: string | null = null;
          try {
            await writeFileAtomic(root, rel, fileContent(c, spaceId, m.chunks, keys.subkeys), { size: m.size, hash: m.hash, mtimeMs: m.mtimeMs }, { current: null });
          } catch (err) {
            problem = writeProblem(err);
          }
          if (problem === null) {
            out.content = rel;
            report.olderVersions++;
          }
        }
      }
      f.versions.push(out);
    }
  });

  const metadata: ExportMetadata = {
    format: EXPORT_FORMAT, spaceId, spaceName: sc.details.name, seq, exportedAt: new Date().toISOString(), allVersions: o.allVersions === true,
    files: [...files.values()].sort((a, b) => ((a.path ?? '') < (b.path ?? '') ? -1 : (a.path ?? '') > (b.path ?? '') ? 1 : 0)),
  };
  await writeFile(report.metadata, `${JSON.stringify(metadata, null, 2)}\n`, { flag: 'wx', mode: 0o644 });
  return report;
}
