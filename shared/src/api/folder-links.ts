// Wire types of folder links (docs/api.md "Folder links", docs/crypto.md §9.1): a link to a folder as it is now, every
// file under it at its current version. The server stores which versions the snapshot holds (to let the link's token
// read exactly their chunks) and the listing sealed under linkKey (names, sizes, file keys: never readable to it).
// Limits, password, expiry, access and chunks work as for file links (./links.ts).
import * as z from 'zod';
import { LINK_MAX_DOWNLOADS, LinkKdf } from './links.js';
import { nameSchema } from './names.js';

const B64U = /^[A-Za-z0-9_-]*$/;
const Id = z.string().regex(B64U, 'must be base64url').length(22);

/** Most files in one folder link (the same number as shared/src/crypto/link-folder.ts LINK_MAX_FILES). */
export const FOLDER_LINK_MAX_FILES = 10_000;
/** Largest sealed listing (b64u characters): 16 MiB, about 100,000 chunk entries. */
export const FOLDER_LISTING_MAX_CHARS = 16 * 1024 * 1024;

/** POST /api/v1/spaces/:spaceId/folder-links (a member with the editor or manager role). */
export const CreateFolderLinkRequest = z.object({
  linkId: Id,
  /** The folder's own entry (kind "dir") and its current version: `wrapped` holds its file key, as for a file link. */
  fileId: Id,
  versionId: Id,
  /** Every file of the snapshot: each a current, non-deleted version of a file of this space, no file twice. */
  files: z.array(z.object({ fileId: Id, versionId: Id }).strict()).min(1).max(FOLDER_LINK_MAX_FILES),
  /** b64u of Env(linkKey, canonical listing, "kluis/link-listing/v1" || linkId) (docs/crypto.md §9.1). */
  listing: z.string().regex(B64U, 'must be base64url').min(58).max(FOLDER_LISTING_MAX_CHARS),
  kdf: LinkKdf.nullable(),
  authHash: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits'),
  wrapped: z.string().regex(B64U, 'must be base64url').length(98),
  expiresAt: z.number().int().positive(),
  maxDownloads: z.number().int().min(1).max(LINK_MAX_DOWNLOADS).nullable(),
  purpose: nameSchema(),
}).strict();
export type CreateFolderLinkRequest = z.infer<typeof CreateFolderLinkRequest>;
