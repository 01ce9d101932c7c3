// One list of error codes for the whole system. The server answers `{ error: { code, message } }` with one of
// these; clients map them back to typed errors. Codes are part of the protocol: add, never rename.

export const ErrorCode = {
  // crypto and formats
  BadEnvelope: 'bad_envelope',
  UnsupportedVersion: 'unsupported_version',
  DecryptFailed: 'decrypt_failed',
  BadSignature: 'bad_signature',
  UntrustedSigner: 'untrusted_signer',
  WrongRecipient: 'wrong_recipient',
  /** A colleague's keys differ from the ones this client pinned on first use (accept them after comparing). */
  KeyChanged: 'key_changed',
  BadKey: 'bad_key',
  BadRecoveryKey: 'bad_recovery_key',
  BadManifest: 'bad_manifest',
  ChunkIdMismatch: 'chunk_id_mismatch',
  WeakKdfParams: 'weak_kdf_params',
  UnsafePath: 'unsafe_path',
  BadCanonicalJson: 'bad_canonical_json',
  /** A membership log entry breaks a rule of docs/crypto.md §4.1 (order, chain, role, epoch, shape). */
  BadMembership: 'bad_membership',
  /** The server's membership log is shorter than, or differs from, one this client verified before. */
  MembershipRollback: 'membership_rollback',
  // HTTP API
  BadRequest: 'bad_request',
  ValidationFailed: 'validation_failed',
  PayloadTooLarge: 'payload_too_large',
  /** 415: a Content-Type or Content-Encoding the endpoint does not take. */
  UnsupportedMediaType: 'unsupported_media_type',
  /** 405: the path exists but not with this method (the answer's Allow header lists the methods). */
  MethodNotAllowed: 'method_not_allowed',
  /** 501: a method the server implements on no path. */
  NotImplemented: 'not_implemented',
  /** Never sent (the client is gone): the audit trail's and the metrics' word for an upload the client cut off. */
  ClientAborted: 'client_aborted',
  Unauthenticated: 'unauthenticated',
  Forbidden: 'forbidden',
  NotFound: 'not_found',
  Conflict: 'conflict',
  MissingChunks: 'missing_chunks',
  /** 410: a share link that expired, was revoked or has no downloads left (the body's `reason` says which). */
  LinkGone: 'link_gone',
  /** 401: the link's secret or password is wrong (counted; the link locks after too many). */
  BadLinkAuth: 'bad_link_auth',
  /** 410: a file request that expired, was revoked or received all its files (the body's `reason` says which). */
  RequestGone: 'request_gone',
  /** 403: the sharing policy of the space's class does not allow this (docs/api.md "Policy"); the message says why. */
  PolicyRefused: 'policy_refused',
  RateLimited: 'rate_limited',
  /** 403: this act needs a session that passed 2-step verification (TOTP); `reason` says enrol or verify (docs/admin.md). */
  TotpRequired: 'totp_required',
  /**
   * 409: the space has a pending removal that no remaining manager can complete (its only manager was offboarded), so
   * its key is never rotated and it takes no new versions, shares or links; reading goes on (docs/admin.md).
   */
  SpaceFrozen: 'space_frozen',
  Internal: 'internal',
  Unavailable: 'unavailable',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base of every typed Kluis error: a stable `code` and a one-line message for people. */
export class KluisError extends Error {
  override name = 'KluisError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A ciphertext, signature, key or format failed verification. Never carries secret material. */
export class CryptoError extends KluisError {
  override name = 'CryptoError';
}
