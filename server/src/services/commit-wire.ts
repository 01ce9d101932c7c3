// A commit request's compact wraps made whole again (docs/api.md "A batch of wraps sent whole"): each statement of
// `wrapBatches` with the versions that refer to it gives back the batch's complete version-2 wraps, proofs included,
// verified on the way (the tree rebuilt, its root the statement's, the signature checked). Everything after this step
// sees the versions as if the wraps had been sent whole, and stores the same records.
import { CryptoError, ErrorCode, expandWrapBatch, type CommitRequest, type CommitVersion, type FileKeyWrap, type WrapBatchMember } from '@kluis/shared';
import { DomainError } from '../domain-error.js';

export interface ExpandedCommit {
  versions: CommitVersion[];
  /** The wraps rebuilt here: their signatures are verified already (verifiedWraps need not look at them again). */
  verified: Set<FileKeyWrap>;
}

/** The request's versions with every `batchWrap` replaced by its complete `fileKeyWrap`. */
export function expandCommit(req: CommitRequest): ExpandedCommit {
  const batches = req.wrapBatches ?? [];
  const members = batches.map((): { at: number; member: WrapBatchMember }[] => []);
  req.versions.forEach((v, at) => {
    const ref = v.batchWrap;
    if (!ref) return;
    if (v.fileKeyWrap) throw new DomainError(ErrorCode.ValidationFailed, `versions[${at}]: fileKeyWrap or batchWrap, not both`);
    if (ref.batch >= batches.length) throw new DomainError(ErrorCode.ValidationFailed, `versions[${at}].batchWrap: the request has no wrapBatches[${ref.batch}]`);
    members[ref.batch]!.push({ at, member: { fileId: v.fileId, index: ref.index, sealed: ref.sealed } });
  });
  const versions = req.versions.slice();
  const verified = new Set<FileKeyWrap>();
  batches.forEach((statement, b) => {
    const of = members[b]!;
    if (of.length !== statement.size) {
      throw new DomainError(ErrorCode.ValidationFailed, `wrapBatches[${b}]: a batch of ${statement.size} wraps is sent whole, ${of.length} versions refer to it`);
    }
    let wraps;
    try {
      wraps = expandWrapBatch(statement, of.map((m) => m.member));
    } catch (err) {
      if (err instanceof CryptoError) throw new DomainError(ErrorCode.BadSignature, `wrapBatches[${b}]: ${err.message}`);
      throw err;
    }
    of.forEach(({ at }, i) => {
      const { batchWrap: _ref, ...rest } = versions[at]!;
      versions[at] = { ...rest, fileKeyWrap: wraps[i]! };
      verified.add(wraps[i]!);
    });
  });
  return { versions, verified };
}
