// The server side of one synced folder as the engine sees it (docs/architecture.md §3–§4; docs/crypto.md §4-§8): the space's keys,
// the file keys, and the change log turned into RemoteEntry rows of the index.
//
// Trust comes from the space's membership log, verified from its first entry (account/membership.ts,
// docs/crypto.md §4.1): a space key is accepted only from a wrap signed by a manager of that epoch (or sealed to a
// later epoch we hold: the epoch chain); a file-key wrap only when signed by a writer while its epoch was current;
// a manifest only when signed by a writer at the log position it names (v1 manifests, which name none: by anyone
// who was a writer). A colleague who has left keeps the versions they wrote. Anything else is refused and reported,
// never written to disk. A refused version leaves the file's previous remote state in place.
import * as z from 'zod';
import {
  CryptoError, ErrorCode, FileKeyWrapSchema, deriveFileSubkeys, fromBase64Url, generateFileKey, newId, openFileKeyWrap, openManifest, toBase64Url,
  type FileKeyWrap, type FileSubkeys, type Manifest, type MembershipState, type SpaceKeyPair,
} from '@kluis/shared';
import { ApiRequestError, type ApiClient } from '../api/client.js';
import { api, type SpaceDetails } from '../api/endpoints.js';
import { ProtocolError } from '../api/endpoints.js';
import { fileKeyPolicy, manifestPolicy, openEpochKeys, verifiedMembership } from '../account/membership.js';
import type { Account } from '../account/state.js';
import type { RemoteEntry } from './types.js';
import { REQUEST_REFUSAL, RequestUploads } from './request-uploads.js';

/**
 * One file key: a file has one per key epoch it was written in (docs/crypto.md §4: after a rotation the next
 * version gets a fresh key sealed to the new epoch). `unwrapped` is set for a key made here and not yet
 * committed: every commit carries a wrap of it (made per commit batch, commit.ts) until one succeeds.
 */
export interface FileKeys {
  fileKey: Uint8Array;
  subkeys: FileSubkeys;
  epoch: number;
  unwrapped?: true;
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
  /** files created through a file request: their grant and receipt (checked by RequestUploads) */
  uploads: z.record(z.string(), z.unknown()).optional(),
});

const VersionsAnswer = z.object({ fileId: z.string(), versions: z.array(VersionView), fileKeyWraps: z.array(FileKeyWrapSchema), uploads: z.record(z.string(), z.unknown()).optional() });

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
  private readonly fileKeys = new Map<string, Map<number, FileKeys>>();
  /** files that came through a file request, with the grants they came under (docs/crypto.md §9.2) */
  private readonly uploads = new RequestUploads();

  /** signPublicKey -> e-mail of everyone who was ever a member (to name the authors of versions) */
  authors: Map<string, string>;

  private constructor(
    readonly account: Account,
    public details: SpaceDetails,
    private spaceKeys: Map<number, SpaceKeyPair>,
    /** the verified membership log */
    public membership: MembershipState,
  ) {
    this.authors = membership.everMembers();
  }

  static async load(c: ApiClient, account: Account, spaceId: string): Promise<SpaceCrypto> {
    const details = await api.space(c, spaceId);
    const membership = verifiedMembership(account, details);
    return new SpaceCrypto(account, details, openEpochKeys(account, details, membership), membership);
  }

  /** Who may have signed a manifest: a writer at the log position it names (a position beyond ours: nobody yet). */
  readonly trusted = (signer: string, memberSeq: number | null): boolean => manifestPolicy(this.membership)(signer, memberSeq);

  /** Fetches and verifies the space again (a newer log, maybe a new key epoch); file keys already opened stay. */
  async refresh(c: ApiClient): Promise<void> {
    const details = await api.space(c, this.spaceId);
    const membership = verifiedMembership(this.account, details);
    this.spaceKeys = openEpochKeys(this.account, details, membership);
    this.details = details;
    this.membership = membership;
    this.authors = membership.everMembers();
  }

  /** The log position new manifests name: the newest this client verified. */
  get memberSeq(): number {
    return this.membership.seq;
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

  /** The server takes no new versions in this space: its only manager left, so its key cannot be renewed (docs/admin.md). */
  get frozen(): boolean {
    return this.details.frozen === true;
  }

  /** The space public key of the current epoch (base64url): what new file keys are wrapped to. */
  currentPublicKey(): string {
    return toBase64Url(this.spaceKeys.get(this.keyEpoch)!.publicKey);
  }

  /** The key a version of `epoch` was written with, if its wrap was opened. */
  keyFor(fileId: string, epoch: number): FileKeys | undefined {
    return this.fileKeys.get(fileId)?.get(epoch);
  }

  /** Whether any key of the file is known. */
  knows(fileId: string): boolean {
    return (this.fileKeys.get(fileId)?.size ?? 0) > 0;
  }

  /**
   * Opens the file's wraps (every epoch we hold a space key for and have not opened yet). Throws CryptoError if
   * no key of the file opens at all.
   */
  open(fileId: string, wraps: readonly unknown[]): void {
    let keys = this.fileKeys.get(fileId);
    let lastError: unknown = new CryptoError(ErrorCode.BadKey, 'no key of this file is wrapped to a space key you hold');
    for (const w of wraps) {
      const r = FileKeyWrapSchema.safeParse(w);
      if (!r.success) continue;
      const wrap = r.data as FileKeyWrap;
      if (keys?.has(wrap.keyEpoch) && !keys.get(wrap.keyEpoch)!.unwrapped) continue;
      const pair = this.spaceKeys.get(wrap.keyEpoch);
      if (!pair) continue;
      try {
        const writer = fileKeyPolicy(this.membership, wrap.keyEpoch);
        const policy = (signer: string) => writer(signer) || this.uploads.wrapSigner(fileId, signer, wrap.keyEpoch);
        const fileKey = openFileKeyWrap(wrap, { spaceId: this.spaceId, keyEpoch: wrap.keyEpoch, fileId }, pair, policy);
        if (!keys) this.fileKeys.set(fileId, (keys = new Map()));
        keys.set(wrap.keyEpoch, { fileKey, subkeys: deriveFileSubkeys(fileKey), epoch: wrap.keyEpoch });
      } catch (err) {
        lastError = err;
      }
    }
    if (!keys || keys.size === 0) throw lastError;
  }

  private fresh(fileId: string): FileKeys {
    const fileKey = generateFileKey();
    const keys: FileKeys = { fileKey, subkeys: deriveFileSubkeys(fileKey), epoch: this.keyEpoch, unwrapped: true };
    let map = this.fileKeys.get(fileId);
    if (!map) this.fileKeys.set(fileId, (map = new Map()));
    map.set(this.keyEpoch, keys);
    return keys;
  }

  /** A new file: a fresh id and key; its wrap to the current space key is made with the commit batch that carries it. */
  newFile(): { fileId: string; keys: FileKeys } {
    const fileId = newId();
    return { fileId, keys: this.fresh(fileId) };
  }

  /**
   * The key a new version of a known file is written with: its key of the current epoch, or — the space key was
   * rotated since the file was last written — a fresh one (`fresh`: every chunk is new, none is on the server).
   */
  writeKeys(fileId: string): { keys: FileKeys; fresh: boolean } {
    const cur = this.keyFor(fileId, this.keyEpoch);
    if (cur) return { keys: cur, fresh: cur.unwrapped === true };
    return { keys: this.fresh(fileId), fresh: true };
  }

  /**
   * Drops a file's key of `epoch` once its wrap is committed and in the index: opened again from there (SyncContext
   * keysFor) by a later pass that touches the file. A first sync of 100,000 files otherwise kept 100,000 keys and
   * their subkeys (about 1.3 KB each, 130 MB of heap) for the life of the process (issue 22).
   */
  forget(fileId: string, epoch: number): void {
    const keys = this.fileKeys.get(fileId);
    if (!keys?.get(epoch) || keys.get(epoch)!.unwrapped) return;
    keys.delete(epoch);
    if (keys.size === 0) this.fileKeys.delete(fileId);
  }

  /** A commit carrying the file's pending wrap succeeded: the wrap is on the server now. */
  committed(fileId: string, epoch: number): void {
    const k = this.keyFor(fileId, epoch);
    if (k) delete k.unwrapped;
  }

  /** Notes the file-request grants and receipts a changes page or history names (checked by RequestUploads). */
  noteUploads(uploads: Record<string, unknown> | undefined): void {
    this.uploads.note(uploads, this.spaceId, this.membership, this.spaceKeys);
  }

  /** Whether `signer` is the file request key this file came through (the version is an upload, not a member's). */
  isUpload(fileId: string, signer: string): boolean {
    return this.uploads.isUploader(fileId, signer);
  }

  /** Learns from the server whether `fileId` came through a file request (its history names the grant). */
  async learnUploads(c: ApiClient, fileId: string): Promise<void> {
    const answer = parsed(VersionsAnswer, await c.json('GET', `/api/v1/spaces/${encodeURIComponent(this.spaceId)}/files/${encodeURIComponent(fileId)}/versions`), 'versions');
    this.noteUploads(answer.uploads);
  }

  /** Opens and checks one version's manifest. */
  openVersion(v: VersionView): { manifest: Manifest; signer: string } {
    const keys = this.keyFor(v.fileId, v.keyEpoch);
    if (!keys) throw new CryptoError(ErrorCode.BadKey, `no key of epoch ${v.keyEpoch} of this file opens for you`);
    const trusted = (signer: string, memberSeq: number | null) => this.trusted(signer, memberSeq) || this.uploads.manifestSigner(v.fileId, v.versionId, signer);
    const opened = openManifest(fromBase64Url(v.manifest), keys.subkeys, { fileId: v.fileId, versionId: v.versionId }, trusted);
    if (opened.manifest.deleted !== v.deleted) throw new CryptoError(ErrorCode.BadManifest, 'the server\'s deleted flag contradicts the signed manifest');
    if (this.uploads.isUploader(v.fileId, opened.signer)) this.uploads.judge(opened.manifest, v.createdAt);
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
  /** versionId -> the server's commit time, of the entries written through a file request (never over a file: see the engine) */
  uploads: Map<string, number>;
  wraps: { fileId: string; keyEpoch: number; wrap: unknown }[];
  refused: RefusedVersion[];
  next: number;
  head: number;
  /** the page's first change as the server numbers it (rollback.ts compares it with the index) */
  first: { seq: number; versionId: string } | null;
}

export function refusalReason(err: unknown): string {
  if (err instanceof CryptoError) {
    if (err.code === ErrorCode.UntrustedSigner && err.message.startsWith(REQUEST_REFUSAL)) return `${err.message}: refused`;
    if (err.code === ErrorCode.UntrustedSigner) return 'signed by someone who is not a writer of this space: refused (report this to your security officer)';
    if (err.code === ErrorCode.BadSignature) return 'its signature does not verify: refused (report this to your security officer)';
    return `it does not open (${err.code}): refused`;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * Reads the change log after `since`, page by page; for each page yields the newest version of each file it names,
 * opened and checked (except versions `known` says the index already holds: a page of only those opens no keys). The caller stores each page with its `next` position in one transaction.
 * `keys` gives the space's keys: asked for only when a page names a version (an unchanged space needs none of them).
 */
export async function* pullChanges(c: ApiClient, spaceId: string, keys: () => Promise<SpaceCrypto>, since: number, limit = 1000, known: (versionId: string, seq: number) => boolean = () => false): AsyncGenerator<PulledPage> {
  for await (const page of changePages(c, spaceId, since, limit)) {
    const opening = page.changes[0];
    const out: PulledPage = { entries: [], uploads: new Map(), wraps: [], refused: [], next: page.next, head: page.head, first: opening ? { seq: opening.seq, versionId: opening.versionId } : null };
    const newest = new Map<string, VersionView>();
    for (const v of page.changes) newest.set(v.fileId, v);
    // Our own commits and versions the index holds already: their remote rows and wraps are in the index.
    for (const v of [...newest.values()]) if (known(v.versionId, v.seq)) newest.delete(v.fileId);
    if (newest.size === 0) {
      yield out;
      continue;
    }
    const sc = await keys();
    sc.noteUploads(page.uploads);
    let refreshed = false;
    for (const v of newest.values()) {
      const wraps = page.fileKeyWraps[v.fileId] ?? [];
      for (const w of wraps) out.wraps.push({ fileId: v.fileId, keyEpoch: w.keyEpoch, wrap: w });
      const judge = () => {
        sc.open(v.fileId, wraps);
        const opened = sc.openVersion(v);
        if (sc.isUpload(v.fileId, opened.signer)) out.uploads.set(v.versionId, v.createdAt);
        return opened.manifest;
      };
      try {
        out.entries.push(entryOf(v, judge()));
      } catch (err) {
        // Perhaps written under a log position newer than ours (a member added since we looked, a new key epoch):
        // look at the space again, once per page, and judge again. Only then is the version refused.
        if (!refreshed) {
          refreshed = true;
          try {
            await sc.refresh(c);
            sc.noteUploads(page.uploads);
            out.entries.push(entryOf(v, judge()));
            continue;
          } catch (again) {
            out.refused.push({ fileId: v.fileId, versionId: v.versionId, reason: refusalReason(again) });
            continue;
          }
        }
        out.refused.push({ fileId: v.fileId, versionId: v.versionId, reason: refusalReason(err) });
      }
    }
    yield out;
  }
}

/** The change log after `since`, page by page as the server answers it (every version, its files' key wraps); the caller notes its file-request grants (SpaceCrypto.noteUploads). */
export async function* changePages(c: ApiClient, spaceId: string, since: number, limit = 1000): AsyncGenerator<z.infer<typeof ChangesPage>> {
  let at = since;
  for (;;) {
    const page = parsed(ChangesPage, await c.json('GET', `/api/v1/spaces/${encodeURIComponent(spaceId)}/changes?since=${at}&limit=${limit}`), 'changes');
    yield page;
    if (!page.more || page.next <= at) return;
    at = page.next;
  }
}

/** One file's history, opened: newest first. Versions that do not open are listed with their reason. */
export async function fileHistory(c: ApiClient, sc: SpaceCrypto, fileId: string): Promise<{ version: VersionView; manifest: Manifest | null; signer: string | null; refused?: string }[]> {
  const answer = parsed(VersionsAnswer, await c.json('GET', `/api/v1/spaces/${encodeURIComponent(sc.spaceId)}/files/${encodeURIComponent(fileId)}/versions`), 'versions');
  sc.noteUploads(answer.uploads);
  sc.open(fileId, answer.fileKeyWraps);
  return answer.versions.map((version) => {
    try {
      const { manifest, signer } = sc.openVersion(version);
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
  return name === 'NetworkError' || name === 'FrameTruncatedError' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT';
}
