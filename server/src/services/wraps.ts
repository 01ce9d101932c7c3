// The part of checking a key wrap that every route shares (docs/crypto.md §4, §5): sealed to the key it should be,
// signed by the caller, and the signature verifies. The server refuses forged wraps early; clients check them again.
import { ErrorCode, verifyWrapSignature, type KeyWrap } from '@kluis/shared';
import { DomainError } from '../domain-error.js';

/** Throws 400 unless `wrap` is sealed to `recipient`, signed by `signer`, with a valid signature. `who` names it. */
export function checkWrapAuthor(wrap: KeyWrap, expect: { recipient: string; signer: string; recipientIs: string }, who: string): void {
  if (wrap.recipient !== expect.recipient) throw new DomainError(ErrorCode.ValidationFailed, `${who}: the wrap is sealed to another key than the ${expect.recipientIs}'s`);
  if (wrap.signer !== expect.signer) throw new DomainError(ErrorCode.ValidationFailed, `${who}: the wrap must be signed by you`);
  try {
    verifyWrapSignature(wrap);
  } catch {
    throw new DomainError(ErrorCode.BadSignature, `${who}: the wrap signature does not verify`);
  }
}
