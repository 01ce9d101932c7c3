// Direct shares, the recipient's side (docs/crypto.md §5 "Direct shares"): what colleagues shared with this account,
// verified and opened here, and the download of a shared file through a verified temp file.
//
// The recipient is not a member of the space and cannot see its membership log, so it cannot check that the sharer
// or the author was a writer of the space. What it checks: every person the server names has a valid identity
// signature and the keys pinned on this device (first use pins them); a wrap is signed by the account the server
// says added it, sealed to our own encPublicKey, about this space, file and epoch; the manifest opens with that key,
// is signed by the version's author and names this file and version; the content matches the manifest's hash.
import path from 'node:path';
import type * as z from 'zod';
import {
  CryptoError, ErrorCode, KluisError, SharedResponse, decryptChunk, deriveFileSubkeys, fromBase64Url, openFileKeyWrap, openManifest, parseFrames, verifyIdentity,
  type DirectoryEntry, type FileKeyWrap, type FileSubkeys, type Manifest, type SharedItem,
} from '@kluis/shared';
import type { ApiClient } from '../api/client.js';
import { ProtocolError } from '../api/endpoints.js';
import { writeFileAtomic } from '../sync/atomic-write.js';
import { chunkWindows } from '../sync/transfer.js';
import { LocalFsError } from '../sync/local-paths.js';
import type { Account } from './state.js';
import { checkPins } from './pins.js';

/** One share made to us, as shown by `kluis shared`: either opened, or refused with the reason. */
export interface SharedFile {
  shareId: string;
  sharedBy: string;
  sharedAt: number;
  /** The file's name (the last segment of its path in the sharer's space); null when refused or never readable. */
  name: string | null;
  size: number | null;
  versionId: string | null;
  modifiedAt: number | null;
  deleted: boolean;
  /** A newer version exists that the share does not cover yet (written after a key rotation). */
  newerNotShared: boolean;
  refused: string | null;
}

interface Opened {
  item: SharedItem;
  manifest: Manifest;
  subkeys: FileSubkeys;
}

function parsed<T extends z.ZodTypeAny>(schema: T, value: unknown, what: string): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ProtocolError(`unexpected answer from the server (${what}: ${r.error.issues[0]!.path.join('.')}: ${r.error.issues[0]!.message})`);
  return r.data;
}

/** The people the server names, by userId: those whose identity verifies and whose keys match the pins; else why not. */
function verifyPeople(account: Account, people: DirectoryEntry[]): Map<string, DirectoryEntry | string> {
  const out = new Map<string, DirectoryEntry | string>();
  for (const p of people) {
    try {
      verifyIdentity(p, p.email, p.identitySig);
      checkPins(account, [p]);
      out.set(p.userId, p);
    } catch (err) {
      out.set(p.userId, err instanceof CryptoError && err.code === ErrorCode.KeyChanged ? err.message : `the keys the server lists for ${p.email} are not signed by that account`);
    }
  }
  return out;
}

function open(account: Account, item: SharedItem, people: Map<string, DirectoryEntry | string>): Opened {
  const person = (userId: string): DirectoryEntry => {
    const p = people.get(userId);
    if (p === undefined) throw new CryptoError(ErrorCode.UntrustedSigner, 'the server names someone it does not list');
    if (typeof p === 'string') throw new CryptoError(ErrorCode.UntrustedSigner, p);
    return p;
  };
  const v = item.version;
  if (!v) throw new CryptoError(ErrorCode.BadKey, 'no version of the file is readable with the keys shared with you');
  const w = item.wraps.find((x) => x.wrap.keyEpoch === v.keyEpoch);
  if (!w) throw new CryptoError(ErrorCode.BadKey, `no key of epoch ${v.keyEpoch} was shared with you`);
  const signer = person(w.signerUserId).signPublicKey;
  const fileKey = openFileKeyWrap(w.wrap as FileKeyWrap, { spaceId: item.spaceId, keyEpoch: v.keyEpoch, fileId: item.fileId }, account.keys, (s) => s === signer);
  const subkeys = deriveFileSubkeys(fileKey);
  const author = person(v.authorUserId).signPublicKey;
  const { manifest } = openManifest(fromBase64Url(v.manifest), subkeys, { fileId: item.fileId, versionId: v.versionId }, (s: string) => s === author);
  if (manifest.deleted !== v.deleted) throw new CryptoError(ErrorCode.BadManifest, 'the server\'s deleted flag contradicts the signed manifest');
  return { item, manifest, subkeys };
}

function reason(err: unknown): string {
  if (err instanceof CryptoError) {
    if (err.code === ErrorCode.BadSignature) return 'a signature does not verify: refused (report this to your security officer)';
    if (err.code === ErrorCode.UntrustedSigner) return `not signed by the colleague the server names: refused (${err.message})`;
    return `it does not open (${err.code}: ${err.message}): refused`;
  }
  return err instanceof Error ? err.message : String(err);
}

async function fetchShared(c: ApiClient, account: Account) {
  const answer = parsed(SharedResponse, await c.json('GET', '/api/v1/shared'), 'shared');
  return { shares: answer.shares, people: verifyPeople(account, answer.people), emails: new Map(answer.people.map((p) => [p.userId, p.email])) };
}

/** Everything shared with this account, each verified and opened (or refused with the reason). */
export async function listShared(c: ApiClient, account: Account): Promise<SharedFile[]> {
  const { shares, people, emails } = await fetchShared(c, account);
  return shares.map((item) => {
    const base: SharedFile = {
      shareId: item.shareId, sharedBy: emails.get(item.sharedBy) ?? item.sharedBy, sharedAt: item.createdAt, name: null, size: null, versionId: item.version?.versionId ?? null,
      modifiedAt: null, deleted: item.version?.deleted ?? false, newerNotShared: item.newerNotShared, refused: null,
    };
    try {
      const { manifest } = open(account, item, people);
      return { ...base, name: path.posix.basename(manifest.path), size: manifest.size, modifiedAt: manifest.mtimeMs };
    } catch (err) {
      return { ...base, refused: reason(err) };
    }
  });
}

/** The plaintext of the shared version, in file order, fetched in windows of at most ~16 MiB or 1,000 chunks. */
async function* content(c: ApiClient, shareId: string, chunks: readonly [string, number][], subkeys: FileSubkeys): AsyncGenerator<Uint8Array> {
  for (const w of chunkWindows(chunks, 16 * 1024 * 1024, 1000)) {
    const ids = [...new Set(w.map(([id]) => id))];
    const res = await c.raw('POST', `/api/v1/shared/${encodeURIComponent(shareId)}/chunks/download`, { json: { ids } });
    const got = new Map<string, Uint8Array>();
    try {
      for await (const frame of parseFrames(res.body)) {
        if (ids.includes(frame.id)) got.set(frame.id, decryptChunk(subkeys, frame.id, frame.ciphertext));
      }
    } finally {
      res.close();
    }
    for (const [id] of w) {
      const plain = got.get(id);
      if (!plain) throw new KluisError(ErrorCode.BadRequest, `the server did not send chunk ${id.slice(0, 12)}…`);
      yield plain;
    }
  }
}

/**
 * Writes the newest shared version of `shareId` into `dir` under its own name, through a verified temp file (size and
 * hash checked before the rename). An existing file of that name is never overwritten.
 */
export async function downloadShared(c: ApiClient, account: Account, shareId: string, dir: string): Promise<SharedFile & { path: string }> {
  const { shares, people, emails } = await fetchShared(c, account);
  const item = shares.find((s) => s.shareId === shareId);
  if (!item) throw new KluisError(ErrorCode.NotFound, `nothing is shared with you under ${shareId} (kluis shared lists what is)`);
  let opened: Opened;
  try {
    opened = open(account, item, people);
  } catch (err) {
    throw new KluisError(err instanceof CryptoError ? err.code : ErrorCode.BadRequest, `share ${shareId}: ${reason(err)}`);
  }
  const { manifest, subkeys } = opened;
  if (manifest.deleted) throw new KluisError(ErrorCode.NotFound, `the shared file ${path.posix.basename(manifest.path)} was deleted`);
  if (manifest.kind !== 'file') throw new KluisError(ErrorCode.ValidationFailed, 'a shared folder cannot be downloaded');
  const name = path.posix.basename(manifest.path);
  try {
    await writeFileAtomic(dir, name, content(c, shareId, manifest.chunks, subkeys), { size: manifest.size, hash: manifest.hash, mtimeMs: manifest.mtimeMs }, { current: null });
  } catch (err) {
    if (err instanceof LocalFsError && err.code === 'changed') throw new KluisError(ErrorCode.Conflict, `${path.join(dir, name)} exists: move it away or choose another folder`);
    throw err;
  }
  return {
    shareId, sharedBy: emails.get(item.sharedBy) ?? item.sharedBy, sharedAt: item.createdAt, name, size: manifest.size, versionId: item.version!.versionId,
    modifiedAt: manifest.mtimeMs, deleted: false, newerNotShared: item.newerNotShared, refused: null, path: path.join(dir, name),
  };
}
