// Client-side helpers to make committed versions the way the sync engine does (manifest sealed and signed,
// file key wrapped to the space), for server tests.
import * as k from '@kluis/shared';
import type { User } from './api.js';

export interface FileHandle {
  fileId: string;
  fileKey: Uint8Array;
  sub: k.FileSubkeys;
}

export function newFile(): FileHandle {
  const fileKey = k.generateFileKey();
  return { fileId: k.newId(), fileKey, sub: k.deriveFileSubkeys(fileKey) };
}

/** One commit entry for `file` (content given as already-uploaded chunk ids and sizes, or none). */
export function version(author: User, spaceId: string, space: k.SpaceKeyPair, keyEpoch: number, file: FileHandle, opts: {
  parent: string | null; path?: string; chunks?: [string, number][]; deleted?: boolean; withWrap?: boolean; hash?: string;
  /** A v2 manifest naming this membership-log position (docs/crypto.md §4.1); without it a v1 manifest. */
  memberSeq?: number;
  /** "dir": a folder entry (no content) */
  kind?: k.ManifestKind;
}) {
  const versionId = k.newId();
  const chunks = opts.chunks ?? [];
  const size = chunks.reduce((n, [, s]) => n + s, 0);
  const manifest: k.Manifest = {
    ...(opts.memberSeq === undefined ? { v: 1 as const } : { v: 2 as const, memberSeq: opts.memberSeq }), fileId: file.fileId, versionId, parent: opts.parent, path: opts.path ?? 'Map/verslag.txt', kind: opts.kind ?? 'file', size, mtimeMs: 1_795_000_000_000,
    chunks, hash: opts.hash ?? k.contentHash(new Uint8Array()), deleted: opts.deleted ?? false,
  };
  const sealed = k.sealManifest(manifest, file.sub, author.keys);
  return {
    versionId,
    manifest,
    entry: {
      fileId: file.fileId, versionId, parent: opts.parent, keyEpoch, manifest: k.toBase64Url(sealed), chunks: chunks.map(([id]) => id), deleted: opts.deleted ?? false,
      ...(opts.withWrap ?? opts.parent === null
        ? { fileKeyWrap: k.wrapFileKey(file.fileKey, { spaceId, keyEpoch, fileId: file.fileId, recipient: k.toBase64Url(space.publicKey) }, author.keys) }
        : {}),
    },
  };
}
