// What the local file system may hold (docs/architecture.md §4: "paths that are unsafe on the local OS are refused with a clear
// message, never written"). Space paths are already checked by the protocol (`assertSpacePath` in @kluis/shared);
// this module adds the rules of the machine we write to, and the one function that turns a space path into an
// absolute path without leaving the synced folder.
//
// Decision (2026-05, portable mode): a folder is usually shared with colleagues on Windows, so the Windows naming
// rules are checked on every platform. On win32 they REFUSE (the name cannot exist there). On POSIX, by default
// (`portable: true`), they only WARN: the file is still synced from here, and the warning tells the user that a
// Windows colleague will see it refused. `portable: false` drops those warnings. Rules that make a path unsafe
// anywhere (absolute, `..`, empty segments, control characters, backslash, over-long names, our reserved names)
// always refuse.
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { MAX_PATH_BYTES, MAX_SEGMENT_BYTES } from '@kluis/shared/hashing';

/** Prefix of the engine's own temp files (atomic writes); the scan ignores them, `cleanTemp` removes leftovers. */
export const TEMP_PREFIX = '.kluis-tmp-';
/** Name reserved at the folder root for the engine's marker/state; never synced, never written from remote. */
export const MARKER_NAME = '.kluis';

/** Why a local file operation was refused. `changed` means: the file is not what the index says — a conflict. */
export type LocalFsErrorCode = 'unsafe_path' | 'changed' | 'exists' | 'not_found' | 'size_mismatch' | 'hash_mismatch' | 'root_missing';

/** Typed error of the local side of the engine (paths, scans, writes). Never carries file content. */
export class LocalFsError extends Error {
  override name = 'LocalFsError';
  constructor(
    readonly code: LocalFsErrorCode,
    message: string,
    readonly path?: string,
  ) {
    super(message);
  }
}

export interface LocalPathVerdict {
  /** Reason the path must not be written on this platform, or null. */
  refused: string | null;
  /** Reason the path works here but not for a Windows colleague (portable mode on POSIX), or null. */
  warning: string | null;
}

export interface LocalPathOptions {
  /** Apply the Windows rules on POSIX too, as warnings (default true). Ignored on win32, where they refuse. */
  portable?: boolean;
}

const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[1-9¹²³]|lpt[1-9¹²³])$/i;
const WINDOWS_BAD_CHARS = /[<>:"|?*]/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
/** The reason Windows cannot hold `segment` as a file or folder name, or null. */
export function windowsNameProblem(segment: string): string | null {
  if (WINDOWS_BAD_CHARS.test(segment)) return `"${segment}" contains a character Windows does not allow in names (< > : " | ? *)`;
  if (/[. ]$/.test(segment)) return `"${segment}" ends with a dot or a space, which Windows drops`;
  // Windows reserves device names with any extension too ("con.txt", "NUL .tar.gz"): the part before the first dot,
  // without trailing spaces, is what counts.
  const stem = segment.split('.')[0]!.replace(/ +$/, '');
  if (WINDOWS_RESERVED.test(stem)) return `"${segment}" is a reserved device name on Windows`;
  return null;
}

/** True for names the engine keeps for itself: its temp files anywhere, its marker at the root. */
export function isReservedName(segment: string, atRoot: boolean): boolean {
  return segment.startsWith(TEMP_PREFIX) || (atRoot && segment === MARKER_NAME);
}

/**
 * Checks one name (a path segment, already NFC) against the local OS and portability: what the scan calls per
 * directory entry, so a deep tree does not re-check its parents for every file.
 */
export function inspectLocalName(name: string, atRoot: boolean, platform: NodeJS.Platform = process.platform, options: LocalPathOptions = {}): LocalPathVerdict {
  const refuse = (why: string): LocalPathVerdict => ({ refused: why, warning: null });
  if (name === '') return refuse('empty segment (// or a trailing /)');
  if (name === '.' || name === '..') return refuse(`"${name}" segment`);
  if (CONTROL.test(name)) return refuse('control character (or NUL) in the name');
  // A backslash is a separator on Windows and not allowed in space paths: refusing it everywhere keeps one meaning.
  if (name.includes('\\')) return refuse('backslash in the name');
  if (name.includes('/')) return refuse('slash in a name');
  if (Buffer.byteLength(name, 'utf8') > MAX_SEGMENT_BYTES) return refuse(`a name longer than ${MAX_SEGMENT_BYTES} bytes`);
  if (isReservedName(name, atRoot)) return refuse(`"${name}" is reserved for Kluis itself`);
  const win = windowsNameProblem(name);
  if (win === null) return NO_PROBLEM;
  if (platform === 'win32') return refuse(win);
  return { refused: null, warning: options.portable === false ? null : `${win}; Windows colleagues will not get it` };
}

const NO_PROBLEM: LocalPathVerdict = Object.freeze({ refused: null, warning: null });

/**
 * Checks a relative POSIX path (a space path, or a scanned one) against the local OS and against portability.
 * `platform` defaults to the running one; tests pass 'win32' or 'linux' explicitly.
 */
export function inspectLocalPath(relPath: string, platform: NodeJS.Platform = process.platform, options: LocalPathOptions = {}): LocalPathVerdict {
  const refuse = (why: string): LocalPathVerdict => ({ refused: why, warning: null });
  if (typeof relPath !== 'string' || relPath.length === 0) return refuse('empty path');
  // A drive prefix ("C:x") is caught on win32 by the ':' rule; on POSIX "C:" is just a folder name.
  if (relPath.startsWith('/') || relPath.startsWith('\\')) return refuse('absolute path');
  if (CONTROL.test(relPath)) return refuse('control character (or NUL) in the name');
  if (relPath.includes('\\')) return refuse('backslash in the name');
  if (relPath !== relPath.normalize('NFC')) return refuse('name is not NFC-normalised');
  if (Buffer.byteLength(relPath, 'utf8') > MAX_PATH_BYTES) return refuse(`path longer than ${MAX_PATH_BYTES} bytes`);
  const segments = relPath.split('/');
  let warning: string | null = null;
  for (let i = 0; i < segments.length; i++) {
    const v = inspectLocalName(segments[i]!, i === 0, platform, options);
    if (v.refused !== null) return v;
    warning ??= v.warning;
  }
  return { refused: null, warning };
}

/** The reason this OS must not hold `relPath`, or null when it may be written here. */
export function checkLocalPath(relPath: string, platform: NodeJS.Platform = process.platform): string | null {
  return inspectLocalPath(relPath, platform).refused;
}

/** Whether names differing only in letter case are the same file (the default for win32 and darwin). */
export function isCaseInsensitivePlatform(platform: NodeJS.Platform = process.platform): boolean {
  return platform === 'win32' || platform === 'darwin';
}

/** The key under which a case-insensitive file system sees a path (NFC, then lower case). */
export function foldCase(relPath: string): string {
  return relPath.normalize('NFC').toLowerCase();
}

/**
 * The absolute path of `relPath` under `root`, only if it stays inside root: the path (in NFC) must pass checkLocalPath, and
 * no existing directory between root and the target may be a symlink (or anything but a directory). Throws
 * LocalFsError('unsafe_path') otherwise. The root itself may be a symlink (the user chose it); the target itself is
 * not checked here (writers replace it, removers lstat it). Check-then-use: a symlink planted between this check
 * and the write is not caught — acceptable for a folder owned by the same user.
 */
export async function resolveInside(root: string, relPath: string, platform: NodeJS.Platform = process.platform): Promise<string> {
  // `relPath` may be a name as stored on disk in another Unicode form (scan.diskPaths: an NFD name on Linux); the
  // rules apply to its NFC form, the path itself is what gets opened.
  const refused = checkLocalPath(relPath.normalize('NFC'), platform);
  if (refused !== null) throw new LocalFsError('unsafe_path', `refused ${JSON.stringify(relPath)}: ${refused}`, relPath);
  const absRoot = path.resolve(root);
  const segments = relPath.split('/');
  const target = path.resolve(absRoot, ...segments);
  const rel = path.relative(absRoot, target);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new LocalFsError('unsafe_path', `refused ${JSON.stringify(relPath)}: outside the folder`, relPath);
  }
  let current = absRoot;
  for (let i = 0; i < segments.length - 1; i++) {
    current = path.join(current, segments[i]!);
    let st;
    try {
      st = await lstat(current);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') break; // the rest does not exist yet: nothing to follow
      throw err;
    }
    if (st.isSymbolicLink()) throw new LocalFsError('unsafe_path', `refused ${JSON.stringify(relPath)}: ${segments.slice(0, i + 1).join('/')} is a symlink`, relPath);
    if (!st.isDirectory()) throw new LocalFsError('unsafe_path', `refused ${JSON.stringify(relPath)}: ${segments.slice(0, i + 1).join('/')} is not a folder`, relPath);
  }
  return target;
}
