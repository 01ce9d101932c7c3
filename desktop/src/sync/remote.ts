// The server side of one synced folder as the engine sees it (DESIGN §3-4; docs/crypto.md §4-§8): the space's keys,
// the file keys, and the change log turned into RemoteEntry rows of the index.
//
// Trust: a space key is accepted only from a manager's (or the epoch creator's) signed wrap (account/spaces.ts); a
// file-key wrap and a manifest only when signed by a current member with the editor or manager role whose identity
// signature verifies. Anything else is refused and reported, never written to disk. A refused version leaves the
// file's previous remote state in place.
import { z } from 'zod';
import {
  CryptoError, ErrorCode, FileKeyWrapSchema, deriveFileSubkeys, fromBase64Url, generateFileKey, newId, openFileKeyWrap, openManifest, toBase64Url, wrapFileKey,
  type FileKeyWrap, type FileSubkeys, type Manifest, type SpaceKeyPair,
} from '@kluis/shared';
import { ApiRequestError, type ApiClient } from '../api/client.js';
import { api, type SpaceDetails } from '../api/endpoints.js';
import { ProtocolError } from '../api/endpoints.js';
import { openSpaceKeys, writerSigners } from '../account/spaces.js';
import type { Account } from '../account/state.js';
import type { RemoteEntry } from './types.js';

/** A file's key, its subkeys, and the wraps the server (or we) hold of it. */
export interface FileKeys {
  fileKey: Uint8Array;
  subkeys: FileSubkeys;
  /** highest key epoch the file key is wrapped to */
  wrapEpoch: number;
}

export const VersionView = z.object({
  seq: z.number().int(),
  fileId: z.string(),
  versionId: z.string(),
  parent: z.string().nullable(),
  keyEpoch: z.number().int(),
  deleted: z.boolean(),
  manifest: z.string(),
  storedBytes: z.number(),
  authorUserId: z.string().nullable(),
  authorDeviceId: z.string().nullable(),
  createdAt: z.number(),
  expired: z.boolean(),
});
export type VersionView = z.infer<typeof VersionView>;

const ChangesPage = z.object({
  spaceId: z.string(),
  head: z.number().int(),
  next: z.number().int(),
  more: z.boolean(),
  changes: z.array(VersionView),
  fileKeyWraps: z.record(z.string(), z.array(FileKeyWrapSchema)),
});

const VersionsAnswer = z.object({ fileId: z.string(), versions: z.array(VersionView), fileKeyWraps: z.array(FileKeyWrapSchema) });

/** A version the engine will not use, and why (shown to the user; the reason names no file content). */
export interface RefusedVersion {
  fileId: string;
  versionId: string;
  reason: string;
}

function parsed<T extends z.ZodTypeAny>(schema: T, value: unknown, what: string): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ProtocolError(`unexpected answer from the server (${what}: ${r.error.issues[0]!.path.join('.')}: ${r.error.issues[0]!.message})`);
  return r.data;
}

/** Keys of one space for this account: space key pairs by epoch, trusted writers, and a cache of file keys. */
export class SpaceCrypto {
  private readonly fileKeys = new Map<string, FileKeys>();

  private constructor(
    readonly account: Account,
    readonly details: SpaceDetails,
    private readonly spaceKeys: Map<number, SpaceKeyPair>,
    /** signPublicKey -> e-mail of members who may write */
    readonly writers: Map<string, string>,
  ) {}

  static async load(c: ApiClient, account: Account, spaceId: string): Promise<SpaceCrypto> {
    const details = await api.space(c, spaceId);
    return new SpaceCrypto(account, details, openSpaceKeys(account, details), writerSigners(details));
  }

  get spaceId(): string {
    return this.details.spaceId;
  }

  get keyEpoch(): number {
    return this.details.keyEpoch;
  }

  get canWrite(): boolean {
    return this.details.role === 'editor' || this.details.role === 'manager';
  }

  readonly trusted = (signer: string): boolean => this.writers.has(signer);

  private currentPublicKey(): string {
    return toBase64Url(this.spaceKeys.get(this.keyEpoch)!.publicKey);
  }

  /** The cached keys of a file, if it was opened before. */
  cached(fileId: string): FileKeys | undefined {
    return this.fileKeys.get(fileId);
  }

  /** Opens a file key from its wraps (newest epoch we hold first). Throws CryptoError if none opens. */
  open(fileId: string, wraps: readonly unknown[]): FileKeys {
    const have = this.fileKeys.get(fileId);
    const parsedWraps = wraps.map((w) => FileKeyWrapSchema.safeParse(w)).filter((r) => r.success).map((r) => r.data as FileKeyWrap);
    const maxEpoch = Math.max(0, ...parsedWraps.map((w) => w.keyEpoch));
    if (have && have.wrapEpoch >= maxEpoch) return have;
    let lastError: unknown = new CryptoError(ErrorCode.BadKey, 'no key of this file is wrapped to a space key you hold');
    for (const wrap of [...parsedWraps].sort((a, b) => b.keyEpoch - a.keyEpoch)) {
      const pair = this.spaceKeys.get(wrap.keyEpoch);
      if (!pair) continue;
      try {
        const fileKey = openFileKeyWrap(wrap, { spaceId: this.spaceId, keyEpoch: wrap.keyEpoch, fileId }, pair, this.trusted);
        const keys = { fileKey, subkeys: deriveFileSubkeys(fileKey), wrapEpoch: maxEpoch };
        this.fileKeys.set(fileId, keys);
        return keys;
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  }

  /** A new file: fresh id and key, wrapped to the current space key and signed by us. */
  newFile(): { fileId: string; keys: FileKeys; wrap: FileKeyWrap } {
    const fileId = newId();
    const fileKey = generateFileKey();
    const wrap = wrapFileKey(fileKey, { spaceId: this.spaceId, keyEpoch: this.keyEpoch, fileId, recipient: this.currentPublicKey() }, this.account.keys);
    const keys = { fileKey, subkeys: deriveFileSubkeys(fileKey), wrapEpoch: this.keyEpoch };
    this.fileKeys.set(fileId, keys);
    return { fileId, keys, wrap };
  }

  /** The wrap a commit must carry for a known file: one for the current epoch if the file has none yet. */
  wrapIfNeeded(fileId: string, keys: FileKeys): FileKeyWrap | undefined {
    if (keys.wrapEpoch >= this.keyEpoch) return undefined;
    return wrapFileKey(keys.fileKey, { spaceId: this.spaceId, keyEpoch: this.keyEpoch, fileId, recipient: this.currentPublicKey() }, this.account.keys);
  }

  /** Marks a file's key as wrapped to the current epoch (after a commit that carried the wrap). */
  wrapped(fileId: string): void {
    const k = this.fileKeys.get(fileId);
    if (k) k.wrapEpoch = Math.max(k.wrapEpoch, this.keyEpoch);
  }

  /** Opens and checks one version's manifest. */
  openVersion(v: VersionView, keys: FileKeys): { manifest: Manifest; signer: string } {
    const opened = openManifest(fromBase64Url(v.manifest), keys.subkeys, { fileId: v.fileId, versionId: v.versionId }, this.trusted);
    if (opened.manifest.deleted !== v.deleted) throw new CryptoError(ErrorCode.BadManifest, 'the server\'s deleted flag contradicts the signed manifest');
    return opened;
  }
}

export function entryOf(v: VersionView, m: Manifest): RemoteEntry {
  return {
    fileId: v.fileId, versionId: v.versionId, seq: v.seq, path: m.path, kind: m.kind, size: m.size, mtimeMs: m.mtimeMs, hash: m.hash,
    deleted: m.deleted, chunks: m.chunks, keyEpoch: v.keyEpoch,
  };
}

export interface PulledPage {
  entries: RemoteEntry[];
  wraps: { fileId: string; keyEpoch: number; wrap: unknown }[];
  refused: RefusedVersion[];
  next: number;
  head: number;
}

function refusalReason(err: unknown): string {
  if (err instanceof CryptoError) {
    if (err.code === ErrorCode.UntrustedSigner) return 'signed by someone who is not a writer of this space: refused (report this to your security officer)';
    if (err.code === ErrorCode.BadSignature) return 'its signature does not verify: refused (report this to your security officer)';
    return `it does not open (${err.code}): refused`;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * Reads the change log after `since`, page by page; for each page yields the newest version of each file it names,
 * opened and checked (except versions `known` says the index already holds). The caller stores each page with its `next` position in one transaction.
 */
export async function* pullChanges(c: ApiClient, sc: SpaceCrypto, since: number, limit = 1000, known: (versionId: string) => boolean = () => false): AsyncGenerator<PulledPage> {
  let at = since;
  for (;;) {
    const page = parsed(ChangesPage, await c.json('GET', `/api/v1/spaces/${encodeURIComponent(sc.spaceId)}/changes?since=${at}&limit=${limit}`), 'changes');
    const newest = new Map<string, VersionView>();
    for (const v of page.changes) newest.set(v.fileId, v);
    const out: PulledPage = { entries: [], wraps: [], refused: [], next: page.next, head: page.head };
    for (const v of newest.values()) {
      if (known(v.versionId)) continue; // our own commit: its remote row and wraps are in the index already
      const wraps = page.fileKeyWraps[v.fileId] ?? [];
      for (const w of wraps) out.wraps.push({ fileId: v.fileId, keyEpoch: w.keyEpoch, wrap: w });
      try {
        const keys = sc.open(v.fileId, wraps);
        const { manifest } = sc.openVersion(v, keys);
        out.entries.push(entryOf(v, manifest));
      } catch (err) {
        out.refused.push({ fileId: v.fileId, versionId: v.versionId, reason: refusalReason(err) });
      }
    }
    yield out;
    if (!page.more || page.next <= at) return;
    at = page.next;
  }
}

/** One file's history, opened: newest first. Versions that do not open are listed with their reason. */
export async function fileHistory(c: ApiClient, sc: SpaceCrypto, fileId: string): Promise<{ version: VersionView; manifest: Manifest | null; signer: string | null; refused?: string }[]> {
  const answer = parsed(VersionsAnswer, await c.json('GET', `/api/v1/spaces/${encodeURIComponent(sc.spaceId)}/files/${encodeURIComponent(fileId)}/versions`), 'versions');
  const keys = sc.open(fileId, answer.fileKeyWraps);
  return answer.versions.map((version) => {
    try {
      const { manifest, signer } = sc.openVersion(version, keys);
      return { version, manifest, signer };
    } catch (err) {
      return { version, manifest: null, signer: null, refused: refusalReason(err) };
    }
  });
}

/** Whether an error means "try again later" (server, store or network away) rather than "this will never work". */
export function isTransient(err: unknown): boolean {
  if (err instanceof ApiRequestError) return err.status >= 500 || err.status === 429 || err.status === 408;
  const name = (err as Error | undefined)?.name;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return name === 'NetworkError' || name === 'FrameTruncatedError' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET';
}
