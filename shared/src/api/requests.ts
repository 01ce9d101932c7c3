// Wire types of file requests, upload-only links (docs/api.md "File requests", docs/crypto.md §9.2). One contract for
// the server, the `kluis` CLI and the request page: the page parses every answer with these schemas too.
//
// A request is https://<host>/r/<requestId>#<requestSecret>. The fragment never reaches the server. The server stores
// the request's limits, the creator's signed grant and hex(BLAKE2b-256(requestAuth)); the page proves the secret with
// requestAuth (as a bearer token), uploads chunk frames and commits one new file at a time.
import * as z from 'zod';
import { nameSchema } from './names.js';
import { ChunkId, FileKeyWrapSchema, Id, Key32, Sig, b64u } from './schemas.js';

/** Most files one request may allow. */
export const REQUEST_MAX_FILES = 1000;
/** Most ciphertext bytes one request may receive in all (chunks stored through it). */
export const REQUEST_MAX_BYTES = 20 * 1024 ** 3;
/** Largest framed chunk upload through a request (one call). */
export const REQUEST_MAX_UPLOAD_BYTES = 16 * 1024 ** 2;
/** Calls of the public request endpoints per request, and per IP address, in REQUEST_RATE_WINDOW_MS. */
export const REQUEST_RATE_PER_REQUEST = 3000;
export const REQUEST_RATE_PER_IP = 6000;
export const REQUEST_RATE_WINDOW_MS = 10 * 60_000;

const Positive = z.number().int().min(1);
const Hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');

/** The creator's signed grant (docs/crypto.md §9.2); checked field by field, then by signature. */
export const UploadGrantSchema = z.object({
  v: z.literal(1),
  kind: z.literal('upload-grant'),
  requestId: Id,
  spaceId: Id,
  keyEpoch: Positive,
  spacePublicKey: Key32,
  memberSeq: Positive,
  expiresAt: Positive,
  maxFiles: Positive.max(REQUEST_MAX_FILES),
  requestPublicKey: Key32,
  /** Seal of the folder's path: 48 bytes of overhead, at most 4096 bytes of path. */
  folderSealed: b64u().min(64).max(5600),
  folderForUploader: b64u().min(55).max(5600),
  signer: Key32,
  sig: Sig,
}).strict();

export const UploadReceiptSchema = z.object({
  v: z.literal(1),
  kind: z.literal('request-upload'),
  requestId: Id,
  spaceId: Id,
  fileId: Id,
  versionId: Id,
  slot: Positive.max(REQUEST_MAX_FILES),
  sig: Sig,
}).strict();

/** POST /api/v1/spaces/:spaceId/requests (an editor or manager of the space). */
export const CreateFileRequest = z.object({
  requestId: Id,
  /** hex(BLAKE2b-256(requestAuth)) */
  authHash: Hex64,
  /** ms since 1970; within the class's maxLinkDays. */
  expiresAt: Positive,
  maxFiles: Positive.max(REQUEST_MAX_FILES),
  purpose: nameSchema(),
  grant: UploadGrantSchema,
}).strict();
export type CreateFileRequest = z.infer<typeof CreateFileRequest>;

/** A request as its creator (or a manager of its space) sees it. */
export const FileRequestInfo = z.object({
  requestId: Id,
  spaceId: Id,
  url: z.string(),
  createdAt: z.number().int(),
  createdBy: Id,
  expiresAt: z.number().int(),
  maxFiles: z.number().int(),
  files: z.number().int(),
  bytes: z.number().int(),
  purpose: z.string(),
  revokedAt: z.number().int().nullable(),
  state: z.enum(['active', 'expired', 'revoked', 'full']),
});
export type FileRequestInfo = z.infer<typeof FileRequestInfo>;

/** GET /api/v1/public/requests/:requestId: what the page needs (no secret needed). */
export const PublicRequestInfo = z.object({
  requestId: Id,
  expiresAt: z.number().int(),
  maxFiles: z.number().int(),
  filesLeft: z.number().int(),
  /** Largest file the page may send (bytes of plaintext; the server counts ciphertext). */
  maxFileBytes: z.number().int(),
  /** Carries the space's public key (sealed to) and the folder, sealed for the uploader. */
  grant: UploadGrantSchema,
});
export type PublicRequestInfo = z.infer<typeof PublicRequestInfo>;

/** POST /api/v1/public/requests/:requestId/commit with `Authorization: Bearer <requestAuth>`: one new file. */
export const RequestCommit = z.object({
  fileId: Id,
  versionId: Id,
  manifest: b64u().min(1).max(4 * 1024 * 1024),
  chunks: z.array(ChunkId).max(100_000),
  fileKeyWrap: FileKeyWrapSchema,
  receipt: UploadReceiptSchema,
}).strict();
export type RequestCommit = z.infer<typeof RequestCommit>;

export const RequestCommitAnswer = z.object({ seq: z.number().int(), slot: z.number().int(), filesLeft: z.number().int() });

/** Why a request no longer takes files (410 `request_gone`, in the error body as `reason`). */
export type RequestGoneReason = 'expired' | 'revoked' | 'full';

/** In changes pages: the grant and receipt of each file that was created through a request. */
export const RequestUploadView = z.object({ grant: UploadGrantSchema, receipt: UploadReceiptSchema });
export type RequestUploadView = z.infer<typeof RequestUploadView>;
