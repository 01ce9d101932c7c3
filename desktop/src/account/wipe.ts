// Remote wipe, client side (docs/api.md "Device administration and remote wipe", docs/crypto.md §14, docs/admin.md
// "Devices"). This installation holds a device key of its own (device.json 0600), registered with its session. When
// the server refuses the session (401) the client asks, with its own token, whether an administrator ordered a wipe;
// if so it deletes the files the sync engine manages in every bound folder (never anything outside them), its index,
// keys, session and other account state, and sends a report signed with the device key. Unsynced local edits are
// deleted too — the device is presumed lost — but named: in the local output, and sealed to the account's own key in
// the report (the server sees counts, never a file name). A report that cannot be sent stays in wipe-report.json
// (with the revoked token, good for nothing else) and goes out at the next run.
import { closeSync, lstatSync, openSync, readdirSync, readFileSync, realpathSync, rmdirSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import * as z from 'zod';
import {
  ErrorCode, Id, MAX_WIPE_FOLDERS, MAX_WIPE_PATHS_BYTES, WipeCheckResponse, WipeReport, WipeReportRecord, Sig, deviceKeysFromSeed, initCrypto, newDeviceSeed, openWipePaths, sealWipePaths,
  signWipeReport, verifyWipeReport, type WipeFolder,
} from '@kluis/shared';
import { ApiClient, ApiRequestError } from '../api/client.js';
import { clearAccount, loadEncPublicKey, loadSession, parseFile, readPrivate, writeAtomic, type Account, type Session } from './state.js';
import { IndexDb, INDEX_FILENAME } from '../sync/index-db.js';
import { scanFolder } from '../sync/scan.js';
import { MARKER_NAME } from '../sync/local-paths.js';
import { alive } from '../sync/engine.js';

const CLIENT = 'kluis-cli/0.1.0';
const DEVICE = 'device.json';
const PENDING = 'wipe-report.json';
const LOCK = 'wipe.lock';

const DeviceFile = z.object({ v: z.literal(1), deviceId: Id, seed: z.string().length(43), registered: z.boolean() }).strict();
type DeviceFile = z.infer<typeof DeviceFile>;
const PendingFile = z.object({ v: z.literal(1), server: z.string().url(), token: z.string(), report: WipeReport, signature: Sig }).strict();

function readDevice(home: string): DeviceFile | null {
  const file = path.join(home, DEVICE);
  const text = readPrivate(file, true);
  return text === null ? null : parseFile(DeviceFile, file, text);
}

/**
 * Makes this session's device key (once) and registers its public half with the server (once). Best effort: a
 * server that is away or refuses is asked again at the next run; without a registered key a wipe report cannot be
 * verified, though the wipe itself still happens.
 */
export async function ensureDeviceKey(account: Account): Promise<void> {
  await initCrypto({ wasm: 'lazy' });
  let device = readDevice(account.home);
  if (!device || device.deviceId !== account.session.deviceId) {
    device = { v: 1, deviceId: account.session.deviceId, seed: newDeviceSeed(), registered: false };
    writeAtomic(path.join(account.home, DEVICE), `${JSON.stringify(device)}\n`);
  }
  if (device.registered) return;
  const keys = deviceKeysFromSeed(device.seed);
  try {
    await client(account.session).json('PUT', '/api/v1/devices/current/key', { publicKey: keys.publicKey });
  } catch {
    return;
  } finally {
    keys.secretKey.fill(0);
  }
  writeAtomic(path.join(account.home, DEVICE), `${JSON.stringify({ ...device, registered: true })}\n`);
}

function client(session: Pick<Session, 'server' | 'token'>): ApiClient {
  return new ApiClient({ baseUrl: session.server, token: session.token, clientName: CLIENT });
}

/** What a wipe did, for the person at the keyboard (local paths included: they never leave this machine in clear). */
export interface WipeOutcome {
  orderId: string;
  folders: { root: string; spaceId: string; filesRemoved: number; bytesRemoved: number; unsynced: string[]; leftInPlace: string[]; failed: string[] }[];
  filesRemoved: number;
  bytesRemoved: number;
  /** Unsynced edits that were deleted, as "<folder>/<path>". */
  unsynced: string[];
  state: string[];
  /** Whether the server recorded the signed report (else it is kept and sent at the next run). */
  reported: boolean;
  reportError?: string;
}

/** True when `abs` lies inside `realRoot`, judged on the real path of its parent folder (no symlinked detour). */
function inside(realRoot: string, abs: string): boolean {
  try {
    const parent = realpathSync(path.dirname(abs));
    return parent === realRoot || parent.startsWith(realRoot + path.sep);
  } catch {
    return false;
  }
}

/** Deletes the engine-managed content of one bound folder; what it cannot or may not delete is listed, not touched. */
async function wipeFolder(db: IndexDb, folder: { id: number; spaceId: string; root: string }): Promise<WipeOutcome['folders'][number]> {
  const out = { root: folder.root, spaceId: folder.spaceId, filesRemoved: 0, bytesRemoved: 0, unsynced: [] as string[], leftInPlace: [] as string[], failed: [] as string[] };
  let realRoot: string;
  try {
    realRoot = realpathSync(folder.root);
  } catch {
    return out; // the folder is gone already
  }
  const base = await db.baseAll(folder.id);
  const scan = await scanFolder(realRoot, base, { settleMs: 0, portable: false });
  const disk = (rel: string) => path.join(realRoot, ...(scan.diskPaths.get(rel) ?? rel).split('/'));
  const remove = (rel: string, size: number, abs = disk(rel)): boolean => {
    if (!inside(realRoot, abs)) {
      out.leftInPlace.push(rel);
      return false;
    }
    try {
      unlinkSync(abs);
      out.filesRemoved++;
      out.bytesRemoved += size;
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') out.failed.push(rel);
      return false;
    }
  };
  const dirs: string[] = [];
  for (const e of scan.entries.values()) {
    if (e.kind === 'dir') {
      dirs.push(e.path);
      continue;
    }
    const b = base.get(e.path);
    if (!b || b.hash !== e.hash) out.unsynced.push(e.path);
    remove(e.path, e.size);
  }
  for (const s of scan.skipped) {
    // A file still being written is the engine's and unsynced by definition; symlinks, special files and unreadable
    // folders are not the engine's: they stay.
    if (s.reason === 'changing' || s.reason === 'settling') {
      let size = 0;
      try {
        size = lstatSync(disk(s.path)).size;
      } catch {
        // vanished meanwhile
      }
      if (remove(s.path, size)) out.unsynced.push(s.path);
    } else if (s.reason !== 'vanished') out.leftInPlace.push(s.path);
  }
  for (const r of scan.refused) out.leftInPlace.push(r.path);
  for (const t of scan.temps) remove(t, 0, path.join(realRoot, ...t.split('/')));
  // The engine's reserved marker at the root (scan.ts), when it is a plain file.
  try {
    if (lstatSync(path.join(realRoot, MARKER_NAME)).isFile()) unlinkSync(path.join(realRoot, MARKER_NAME));
  } catch {
    // none
  }
  // Deepest folders first; a folder still holding something left in place stays.
  dirs.sort((a, b) => b.split('/').length - a.split('/').length);
  for (const d of [...dirs, '']) {
    const abs = d === '' ? realRoot : disk(d);
    try {
      if (d === '' || inside(realRoot, abs)) rmdirSync(abs);
    } catch {
      // not empty (something left in place) or already gone
    }
  }
  return out;
}

/** The unsynced paths, as "<spaceId>/<path>", cut to what fits the report (the counts stay exact). */
function sealablePaths(folders: WipeOutcome['folders']): string[] {
  const paths: string[] = [];
  let bytes = 2;
  for (const f of folders) {
    for (const p of f.unsynced) {
      const item = `${f.spaceId}/${p}`;
      bytes += Buffer.byteLength(JSON.stringify(item)) + 1;
      if (bytes > MAX_WIPE_PATHS_BYTES) return paths;
      paths.push(item);
    }
  }
  return paths;
}

/** Removes every piece of account state in `home` but the device key and a pending report. */
function clearHome(home: string): string[] {
  const removed: string[] = [];
  const gone = (name: string): boolean => {
    try {
      lstatSync(path.join(home, name));
      return true;
    } catch {
      return false;
    }
  };
  if (gone('keys.json')) removed.push('keys');
  if (gone('session.json')) removed.push('session');
  clearAccount(home);
  for (const [name, label] of [['pins.json', 'pins'], ['membership.json', 'membership']] as const) {
    if (gone(name)) removed.push(label);
    rmSync(path.join(home, name), { force: true });
  }
  let index = false;
  for (const name of readdirSync(home)) {
    if (name.startsWith(INDEX_FILENAME)) index = true;
    if (name.startsWith(INDEX_FILENAME) || /^folder-\d+\.lock$/.test(name)) rmSync(path.join(home, name), { force: true });
  }
  if (index) removed.push('index');
  return removed;
}

/** Sends a report kept from an earlier wipe; true when the server has it (or refuses it for good). */
async function sendPending(home: string): Promise<{ sent: boolean; error?: string }> {
  const file = path.join(home, PENDING);
  const text = readPrivate(file, true);
  if (text === null) return { sent: true };
  const pending = parseFile(PendingFile, file, text);
  try {
    await client(pending).json('POST', '/api/v1/device-wipe/report', { report: pending.report, signature: pending.signature });
  } catch (err) {
    // A 4xx other than 401/429 will not change by asking again (already reported, no key registered): drop it.
    if (!(err instanceof ApiRequestError) || err.status >= 500 || err.status === 429) return { sent: false, error: (err as Error).message };
    rmSync(file, { force: true });
    rmSync(path.join(home, DEVICE), { force: true });
    return { sent: false, error: err.message };
  }
  rmSync(file, { force: true });
  rmSync(path.join(home, DEVICE), { force: true });
  return { sent: true };
}

/** Sends a report left by an interrupted wipe, if any (called before a command talks to the server). */
export async function flushPendingWipeReport(home: string): Promise<void> {
  if (readPrivate(path.join(home, PENDING), true) !== null) await sendPending(home);
}

/**
 * One wipe at a time per home: two `kluis` processes refused at once (two synced folders) would otherwise both wipe,
 * and the second, finding the index gone, report nothing. null when a live process holds the lock; a dead one's is taken.
 */
function takeWipeLock(home: string): (() => void) | null {
  const file = path.join(home, LOCK);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) return null;
      rmSync(file, { force: true });
    }
  }
  return null;
}

/**
 * Asks the server whether this device must wipe itself (after a 401: the session was ended) and, if so, wipes it and
 * reports. null when no wipe was ordered or this home holds no session.
 */
export async function wipeIfOrdered(home: string): Promise<WipeOutcome | null> {
  const session = loadSession(home, true);
  if (!session) return null;
  const answer = WipeCheckResponse.parse(await client(session).json('POST', '/api/v1/device-wipe/check'));
  if (!answer.wipe) return null;
  const unlock = takeWipeLock(home);
  if (!unlock) return null; // another process of this home is wiping it
  try {
    return await wipe(home, session, answer.orderId);
  } finally {
    unlock();
  }
}

async function wipe(home: string, session: Session, orderId: string): Promise<WipeOutcome> {
  await initCrypto({ wasm: 'lazy' });
  // What the report needs is read before anything is deleted: the account's public key (to seal the paths to) and
  // the device key (to sign). The public key only: the desktop app's secret keys are sealed by the OS keychain.
  let encPublicKey: string | null = null;
  try {
    encPublicKey = loadEncPublicKey(home);
  } catch {
    // keys missing or damaged: the paths are not sealed (the counts still go)
  }
  const device = readDevice(home);
  const folders: WipeOutcome['folders'] = [];
  const db = await IndexDb.open(home);
  try {
    for (const f of await db.folders()) folders.push(await wipeFolder(db, f));
  } finally {
    await db.close();
  }
  const state = clearHome(home);
  const sum = (pick: (f: WipeOutcome['folders'][number]) => number) => folders.reduce((n, f) => n + pick(f), 0);
  const unsynced = folders.flatMap((f) => f.unsynced.map((p) => `${f.root}${path.sep}${p.split('/').join(path.sep)}`));
  const outcome: WipeOutcome = { orderId: orderId, folders, filesRemoved: sum((f) => f.filesRemoved), bytesRemoved: sum((f) => f.bytesRemoved), unsynced, state, reported: false };
  if (!device || device.deviceId !== session.deviceId) {
    outcome.reportError = 'this device has no registered device key: the wipe cannot be reported (the server keeps the order as delivered)';
    rmSync(path.join(home, DEVICE), { force: true });
    return outcome;
  }
  const paths = sealablePaths(folders);
  const report: WipeReport = {
    v: 1, orderId: orderId, deviceId: session.deviceId, userId: session.userId, wipedAt: Date.now(),
    folders: folders.slice(0, MAX_WIPE_FOLDERS).map((f): WipeFolder => ({ spaceId: f.spaceId, filesRemoved: f.filesRemoved, bytesRemoved: f.bytesRemoved, unsynced: f.unsynced.length, leftInPlace: f.leftInPlace.length, failed: f.failed.length })),
    filesRemoved: outcome.filesRemoved, bytesRemoved: outcome.bytesRemoved, unsynced: sum((f) => f.unsynced.length), failed: sum((f) => f.failed.length),
    state: [...state, 'device-key'] as WipeReport['state'],
    sealedUnsyncedPaths: encPublicKey && paths.length ? sealWipePaths(paths, encPublicKey) : null,
  };
  const keys = deviceKeysFromSeed(device.seed);
  let signature: string;
  try {
    signature = signWipeReport(report, keys);
  } finally {
    keys.secretKey.fill(0);
  }
  writeAtomic(path.join(home, PENDING), `${JSON.stringify({ v: 1, server: session.server, token: session.token, report, signature })}\n`);
  const sent = await sendPending(home);
  outcome.reported = sent.sent;
  if (sent.error) outcome.reportError = sent.error;
  return outcome;
}

/**
 * The recorded wipe report of one of the account's devices, its device signature checked, and the unsynced paths it
 * sealed to this account opened ("<spaceId>/<path>"; null when it sealed none).
 */
export async function readWipeReport(account: Account, deviceId: string): Promise<WipeReportRecord & { unsyncedPaths: string[] | null }> {
  await initCrypto({ wasm: 'lazy' });
  const record = WipeReportRecord.parse(await client(account.session).json('GET', `/api/v1/devices/${encodeURIComponent(deviceId)}/wipe-report`));
  if (record.report.deviceId !== deviceId) throw new ApiRequestError(502, ErrorCode.BadSignature, 'the server answered with another device\'s report');
  verifyWipeReport(record.report, record.signature, record.devicePublicKey);
  const sealed = record.report.sealedUnsyncedPaths;
  return { ...record, unsyncedPaths: sealed ? openWipePaths(sealed, account.keys) : null };
}
