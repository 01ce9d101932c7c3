// Files that arrived through a file request (docs/crypto.md §9.2), as a member's client judges them. Their wrap,
// manifest and receipt are signed by the request's key, not by a member: they are accepted only under a grant that a
// writer of the space signed at the log position it names, and only as the grant allows (a new file directly in the
// granted folder, before its expiry, within its file count; requestUploadProblem in @kluis/shared). Anything else is
// refused like any untrusted signer, never written to disk.
import {
  CryptoError, ErrorCode, RequestUploadView, openGrantForMember, requestUploadProblem, verifyUploadReceipt,
  type Manifest, type MembershipState, type SpaceKeyPair, type UploadGrant, type UploadReceipt,
} from '@kluis/shared';

/** How a refused upload's reason begins (sync/remote.ts reports it as it is). */
export const REQUEST_REFUSAL = 'a file request upload refused';

interface Accepted {
  grant: UploadGrant;
  folder: string;
  receipt: UploadReceipt;
}

export class RequestUploads {
  /** fileId -> the verified grant and receipt it was created under */
  private readonly byFile = new Map<string, Accepted>();
  /** `${requestId}/${slot}` -> fileId: one file per slot, so at most maxFiles files per request on this device */
  private readonly slots = new Map<string, string>();

  /**
   * Verifies the grants and receipts a changes page or history names (server-given, so each is checked: the grant's
   * signature and signer at its position, its space key against the log, its folder opening with that key; the
   * receipt's signature by the grant's request key and its file). One that fails is left out: its versions are then
   * refused as signed by someone who is not a writer.
   */
  note(uploads: Record<string, unknown> | undefined, spaceId: string, membership: MembershipState, spaceKeys: Map<number, SpaceKeyPair>): void {
    for (const [fileId, raw] of Object.entries(uploads ?? {})) {
      if (this.byFile.has(fileId)) continue;
      const view = RequestUploadView.safeParse(raw);
      if (!view.success) continue;
      const { grant, receipt } = view.data;
      const pair = spaceKeys.get(grant.keyEpoch);
      if (!pair || membership.epochs.get(grant.keyEpoch) !== grant.spacePublicKey) continue;
      try {
        const opened = openGrantForMember(grant, spaceId, pair, (signer, seq) => membership.writerAt(signer, seq));
        verifyUploadReceipt(receipt, opened.grant.requestPublicKey);
        if (receipt.fileId !== fileId || receipt.requestId !== grant.requestId || receipt.slot > grant.maxFiles) continue;
        const slot = `${grant.requestId}/${receipt.slot}`;
        if ((this.slots.get(slot) ?? fileId) !== fileId) continue;
        this.slots.set(slot, fileId);
        this.byFile.set(fileId, { grant: opened.grant, folder: opened.folder, receipt });
      } catch {
        // not accepted: see above
      }
    }
  }

  /** Whether `signer` is the request key that may have sealed this file's key of `keyEpoch`. */
  wrapSigner(fileId: string, signer: string, keyEpoch: number): boolean {
    const a = this.byFile.get(fileId);
    return a !== undefined && a.grant.requestPublicKey === signer && a.grant.keyEpoch === keyEpoch;
  }

  /** Whether `signer` is the request key of this file and `versionId` the one its receipt names. */
  manifestSigner(fileId: string, versionId: string, signer: string): boolean {
    const a = this.byFile.get(fileId);
    return a !== undefined && a.grant.requestPublicKey === signer && a.receipt.versionId === versionId;
  }

  /** After the manifest opened with the request key as signer: throws unless the grant allows this version. */
  judge(manifest: Manifest, committedAt: number): void {
    const a = this.byFile.get(manifest.fileId)!;
    const problem = requestUploadProblem(a.grant, a.folder, a.receipt, manifest, committedAt);
    if (problem) throw new CryptoError(ErrorCode.UntrustedSigner, `${REQUEST_REFUSAL}: ${problem}`);
  }

  /** Whether the request key of this file is `signer` (the version was written by the uploader). */
  isUploader(fileId: string, signer: string): boolean {
    return this.byFile.get(fileId)?.grant.requestPublicKey === signer;
  }
}
