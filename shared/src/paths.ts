// The path of a file inside a space, as it is written in manifests: NFC, POSIX separators, relative.
// Checks here are the protocol's; the desktop client adds the local OS's own rules (reserved names, case).
import { CryptoError, ErrorCode } from './errors.js';
import { utf8 } from './encoding.js';

export const MAX_PATH_BYTES = 4096;
export const MAX_SEGMENT_BYTES = 255;

/** Throws CryptoError(unsafe_path) unless `path` is a canonical space path; returns it unchanged. */
export function assertSpacePath(path: string): string {
  const bad = (why: string): never => {
    throw new CryptoError(ErrorCode.UnsafePath, `unsafe path: ${why}`);
  };
  if (typeof path !== 'string' || path.length === 0) bad('empty');
  if (path !== path.normalize('NFC')) bad('not NFC-normalised');
  // A UTF-16 code unit is at most 3 UTF-8 bytes: shorter strings are not encoded to be measured (every manifest made
  // or read comes through here; encoding each name was most of this check's time).
  if (path.length * 3 > MAX_PATH_BYTES && utf8(path).length > MAX_PATH_BYTES) bad(`longer than ${MAX_PATH_BYTES} bytes`);
  if (path.startsWith('/')) bad('absolute');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(path)) bad('control character or backslash');
  for (const segment of path.split('/')) {
    if (segment === '') bad('empty segment');
    if (segment === '.' || segment === '..') bad(`"${segment}" segment`);
    if (segment.length * 3 > MAX_SEGMENT_BYTES && utf8(segment).length > MAX_SEGMENT_BYTES) bad(`a name longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  return path;
}
