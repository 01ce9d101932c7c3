// Wire types of device administration and remote wipe (docs/api.md "Device administration and remote wipe",
// docs/crypto.md §14): an organisation's admins list and revoke its devices, optionally ordering a wipe; the device
// learns of the order at its next contact (with its own, possibly revoked, token), wipes itself and sends a report
// signed with its device key.
import * as z from 'zod';
import { Id, Key32, Sig, b64u } from './schemas.js';

/** Where a device stands, as an admin sees it. */
export const DeviceStatus = z.enum(['active', 'expired', 'revoked', 'wipe-ordered', 'wiped']);
export type DeviceStatus = z.infer<typeof DeviceStatus>;

/** PUT /api/v1/devices/current/key: the device's own Ed25519 public key (set once per session). */
export const DeviceKeyRequest = z.object({ publicKey: Key32 }).strict();
export type DeviceKeyRequest = z.infer<typeof DeviceKeyRequest>;

/** POST /api/v1/orgs/:orgId/devices/:deviceId/revoke. */
export const DeviceRevokeRequest = z.object({ wipe: z.boolean() }).strict();
export type DeviceRevokeRequest = z.infer<typeof DeviceRevokeRequest>;

/** Most bound folders one report describes (the totals stay exact beyond). */
export const MAX_WIPE_FOLDERS = 200;
/** Ceiling of the sealed path list (base64url characters): the report must fit the API's 256 kB JSON limit. */
export const MAX_SEALED_PATHS = 140_000;
/** UTF-8 bytes of the JSON path list a client seals at most (sealed and base64url it stays under MAX_SEALED_PATHS). */
export const MAX_WIPE_PATHS_BYTES = 100_000;

const Count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** What a wipe removed from one synced folder (no local path or file name: the server sees none). */
export const WipeFolder = z.object({
  spaceId: Id,
  filesRemoved: Count,
  bytesRemoved: Count,
  /** Files whose local content differed from the last synced version (or was never synced). */
  unsynced: Count,
  /** Files and folders inside the folder the engine does not manage (symlinks, refused names): left in place. */
  leftInPlace: Count,
  /** Files the wipe tried and failed to remove. */
  failed: Count,
}).strict();
export type WipeFolder = z.infer<typeof WipeFolder>;

/** Local state the client removes besides the folders' files. */
export const WipedState = z.enum(['keys', 'session', 'index', 'pins', 'membership', 'device-key']);

/** The report a device signs with its device key after it wiped itself (docs/crypto.md §14). */
export const WipeReport = z.object({
  v: z.literal(1),
  orderId: Id,
  deviceId: Id,
  userId: Id,
  wipedAt: z.number().int().min(0),
  folders: z.array(WipeFolder).max(MAX_WIPE_FOLDERS),
  filesRemoved: Count,
  bytesRemoved: Count,
  unsynced: Count,
  failed: Count,
  state: z.array(WipedState).max(10),
  /** crypto_box_seal of the JSON list of unsynced paths ("<spaceId>/<path>") to the account's encPublicKey. */
  sealedUnsyncedPaths: b64u().max(MAX_SEALED_PATHS).nullable(),
}).strict();
export type WipeReport = z.infer<typeof WipeReport>;

/** POST /api/v1/device-wipe/report (bearer: the device's own token, revoked or not). */
export const WipeReportRequest = z.object({ report: WipeReport, signature: Sig }).strict();
export type WipeReportRequest = z.infer<typeof WipeReportRequest>;

/** POST /api/v1/device-wipe/check (bearer: the device's own token, revoked or not). */
export const WipeCheckResponse = z.discriminatedUnion('wipe', [
  z.object({ wipe: z.literal(false) }).strict(),
  z.object({ wipe: z.literal(true), orderId: Id, orderedAt: z.number().int() }).strict(),
]);
export type WipeCheckResponse = z.infer<typeof WipeCheckResponse>;

/** The summary of a recorded wipe report. */
export const WipeSummary = z.object({
  orderedAt: z.number().int(),
  orderedByEmail: z.string().nullable(),
  deliveredAt: z.number().int().nullable(),
  reportedAt: z.number().int().nullable(),
  folders: Count.nullable(),
  filesRemoved: Count.nullable(),
  bytesRemoved: Count.nullable(),
  unsynced: Count.nullable(),
  failed: Count.nullable(),
}).strict();
export type WipeSummary = z.infer<typeof WipeSummary>;

/** One device of the organisation, as GET /api/v1/orgs/:orgId/devices lists it. */
export const OrgDevice = z.object({
  deviceId: Id,
  name: z.string(),
  userId: Id,
  ownerEmail: z.string(),
  client: z.string().nullable(),
  createdAt: z.number().int(),
  lastSeenAt: z.number().int(),
  expiresAt: z.number().int(),
  revokedAt: z.number().int().nullable(),
  status: DeviceStatus,
  wipe: WipeSummary.nullable(),
}).strict();
export type OrgDevice = z.infer<typeof OrgDevice>;

export const OrgDeviceList = z.object({ devices: z.array(OrgDevice) }).strict();
export type OrgDeviceList = z.infer<typeof OrgDeviceList>;

/** GET /api/v1/devices/:deviceId/wipe-report (the device's owner, or an admin who may see the device). */
export const WipeReportRecord = z.object({
  report: WipeReport,
  signature: Sig,
  devicePublicKey: Key32,
  reportedAt: z.number().int(),
}).strict();
export type WipeReportRecord = z.infer<typeof WipeReportRecord>;
