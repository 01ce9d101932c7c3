// Wire types of share links (docs/api.md "Share links", docs/crypto.md §9). One contract for the server, the `kluis`
// CLI and the link page in the browser: the page imports these schemas too, so it parses every answer it gets.
//
// A link is a snapshot of one version of one file: https://<host>/s/<linkId>#<linkSecret>. The fragment never
// reaches the server. The server stores the link's limits, `wrapped` (the file key under linkKey) and
// BLAKE2b-256(linkAuth); the page proves the secret (and password) by sending linkAuth, gets `wrapped`, the
// sealed manifest and a short-lived download token, then fetches the version's chunks with that token.
import * as z from 'zod';
import { nameSchema } from './names.js';

const B64U = /^[A-Za-z0-9_-]*$/;
const b64 = (bytes: number) => z.string().regex(B64U, 'must be base64url').length(Math.ceil((bytes * 4) / 3));
const LinkId = b64(16);
const Id = b64(16);
const Hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');

/** Longest life of a link (days), whatever a client asks; a space's class may allow less (issue 17 policy). */
export const LINK_MAX_DAYS = 90;
/** Highest download count a link may allow. */
export const LINK_MAX_DOWNLOADS = 10_000;
/** Wrong passwords per link before it is locked for LINK_LOCK_MS (also counted per IP address). */
export const LINK_MAX_FAILURES = 10;
export const LINK_LOCK_MS = 15 * 60_000;
/** Life of the download token an access gives (ms). */
export const LINK_TOKEN_MS = 15 * 60_000;

/** The Argon2id parameters of a password link (docs/crypto.md §9); null without a password. */
export const LinkKdf = z.object({
  salt: b64(16),
  opsLimit: z.number().int().min(1).max(16),
  memLimit: z.number().int().min(8192).max(1_073_741_824),
}).strict();
export type LinkKdf = z.infer<typeof LinkKdf>;

/** POST /api/v1/spaces/:spaceId/links (a member with the editor or manager role). */
export const CreateLinkRequest = z.object({
  /** Made by the client: it is bound into `wrapped` (docs/crypto.md §9). */
  linkId: LinkId,
  fileId: Id,
  /** The version the link shows (a snapshot): a current, non-deleted version of the file. */
  versionId: Id,
  kdf: LinkKdf.nullable(),
  /** hex(BLAKE2b-256(linkAuth)) */
  authHash: Hex64,
  /** b64u of Env(linkKey, fileKey, "kluis/link-wrap/v1" || linkId): 41 + 32 bytes. */
  wrapped: b64(73),
  /** ms since 1970; at most LINK_MAX_DAYS ahead; null is refused (every link expires). */
  expiresAt: z.number().int().positive(),
  maxDownloads: z.number().int().min(1).max(LINK_MAX_DOWNLOADS).nullable(),
  /** Why the link is given (the finality the social-security rules ask for); shown in the audit trail. */
  purpose: nameSchema(),
}).strict();
export type CreateLinkRequest = z.infer<typeof CreateLinkRequest>;

/** A link as its creator (or a manager of its space) sees it. */
export const LinkInfo = z.object({
  linkId: LinkId,
  spaceId: Id,
  fileId: Id,
  versionId: Id,
  url: z.string(),
  createdAt: z.number().int(),
  createdBy: Id,
  expiresAt: z.number().int(),
  maxDownloads: z.number().int().nullable(),
  downloads: z.number().int(),
  password: z.boolean(),
  purpose: z.string(),
  revokedAt: z.number().int().nullable(),
  /** "active", or why it no longer opens */
  state: z.enum(['active', 'expired', 'revoked', 'exhausted']),
  /** "folder": a folder link (./folder-links.ts); `fileId` and `versionId` are then the folder's own entry */
  kind: z.enum(['file', 'folder']).optional(),
});
export type LinkInfo = z.infer<typeof LinkInfo>;

/** GET /api/v1/public/links/:linkId: what the page needs before asking for a password. No secret needed. */
export const PublicLinkInfo = z.object({
  linkId: LinkId,
  kdf: LinkKdf.nullable(),
  expiresAt: z.number().int(),
  /** null: no download limit */
  downloadsLeft: z.number().int().nullable(),
  /** "folder" for a folder link (absent for a file), so the page says what it is about to open */
  kind: z.literal('folder').optional(),
});
export type PublicLinkInfo = z.infer<typeof PublicLinkInfo>;

/** POST /api/v1/public/links/:linkId/access {auth}: linkAuth proves the secret (and password). */
export const LinkAccessRequest = z.object({ auth: b64(32) }).strict();

/** The answer of a successful access: everything to open the file, and a token for its chunks. */
export const LinkAccess = z.object({
  /** Bearer token for the chunk requests of this access (LINK_TOKEN_MS). */
  token: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  tokenExpiresAt: z.number().int(),
  wrapped: b64(73),
  fileId: Id,
  versionId: Id,
  /** b64u of the sealed manifest (docs/crypto.md §8): name, size, chunk list, hash. */
  manifest: z.string().regex(B64U),
  expiresAt: z.number().int(),
  downloadsLeft: z.number().int().nullable(),
  /** "folder": `manifest` is the folder's own, and `listing` (b64u, docs/crypto.md §9.1) lists its files */
  kind: z.enum(['file', 'folder']).optional(),
  listing: z.string().regex(B64U).optional(),
});
export type LinkAccess = z.infer<typeof LinkAccess>;

/** POST /api/v1/public/links/:linkId/chunks {ids} with `Authorization: Bearer <token>`: frames, as chunks/download. */
export const LinkChunksRequest = z.object({ ids: z.array(Hex64).min(1).max(1000) }).strict();

/** Why a link no longer opens (410 `link_gone`, in the error body as `reason`). */
export type LinkGoneReason = 'expired' | 'revoked' | 'exhausted';
