// The CLI's account state under KLUIS_HOME (default ~/.kluis; several clients on one machine use different homes):
//
//   KLUIS_HOME/            0700
//     session.json         0600  server URL, e-mail, user/org/device ids, role, bearer token, expiry
//     keys.json            0600  the account's secret keys (encSecretKey, signSeed; base64url) and public keys
//
// Why secret keys sit in a file: the headless client syncs in the background (`kluis sync DIR` keeps watching,
// services restart it after a reboot) and must open space and file keys without anyone typing the password again.
// Keeping only the password-derived masterKey would be no better (it opens the bundle, so it is as secret) and
// keeping nothing would mean a prompt at every start. So the secrets are protected the way ssh and gpg protect
// theirs: a 0600 file in a 0700 directory, written atomically, refused when others can read it. Anyone who can
// read this file (root, a backup of the home directory, malware running as the user) holds the account's
// identity, exactly as with ~/.ssh/id_ed25519: encrypt the disk, and `kluis logout` on machines you leave.
// The Electron app keeps the same secrets in the OS keychain (Keychain, DPAPI, libsecret) instead.
import { closeSync, constants, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync, chmodSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as z from 'zod';
import {
  Id, Key32, OrgRole, accountKeysFromSecrets, accountSecrets, fromBase64Url, toBase64Url, wipeBytes, type AccountKeys,
} from '@kluis/shared';

/** A local-state problem the user must fix (permissions, corruption, not logged in). */
export class StateError extends Error {
  override name = 'StateError';
  constructor(
    message: string,
    /** 'not_logged_in' | 'insecure' | 'corrupt' */
    readonly kind: 'not_logged_in' | 'insecure' | 'corrupt',
  ) {
    super(message);
  }
}

export const SessionFile = z.object({
  v: z.literal(1),
  server: z.string().url(),
  email: z.string().min(3).max(320),
  userId: Id,
  orgId: Id,
  role: OrgRole,
  deviceId: Id,
  token: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  expiresAt: z.number().int(),
}).strict();
export type Session = z.infer<typeof SessionFile>;

const KeysFile = z.object({
  v: z.literal(1),
  userId: Id,
  encPublicKey: Key32,
  signPublicKey: Key32,
  encSecretKey: Key32,
  signSeed: Key32,
}).strict();
/** keys.json as the desktop app writes it: the public keys in clear, the secret ones sealed by a KeySealer. */
const SealedKeysFile = z.object({
  v: z.literal(1),
  userId: Id,
  encPublicKey: Key32,
  signPublicKey: Key32,
  sealed: z.string().min(1),
}).strict();
const SecretsJson = z.object({ encSecretKey: Key32, signSeed: Key32 }).strict();

/**
 * Seals the secret keys at rest (the desktop app: Electron's safeStorage, i.e. the OS keychain; docs/desktop.md
 * "Keys at rest"). `open` throws when the keychain cannot open what it sealed.
 */
export interface KeySealer {
  seal(plain: string): Buffer;
  open(sealed: Buffer): string;
}

/** The home directory of this client's state: $KLUIS_HOME, else ~/.kluis. */
export function kluisHome(env: NodeJS.ProcessEnv = process.env): string {
  const home = env.KLUIS_HOME;
  return path.resolve(home && home.length > 0 ? home : path.join(homedir(), '.kluis'));
}

const SESSION = 'session.json';
const KEYS = 'keys.json';
// POSIX permission checks mean nothing on Windows (ACLs); there the per-user profile directory is the fence.
const POSIX = process.platform !== 'win32';

function describeMode(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, '0');
}

/** Creates the home (0700) or tightens it; refuses a home that is not a directory or is writable by others we cannot fix. */
function ensureHome(home: string): void {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const st = lstatSync(home);
  if (!st.isDirectory()) throw new StateError(`${home} is not a directory`, 'insecure');
  if (POSIX && (st.mode & 0o077) !== 0) {
    if (process.getuid && st.uid !== process.getuid()) throw new StateError(`${home} belongs to another user and is open to others (mode ${describeMode(st.mode)})`, 'insecure');
    chmodSync(home, 0o700);
  }
}

/** Writes `data` to `file` atomically: a 0600 temp file beside it, fsynced, renamed over, directory fsynced. */
export function writeAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0), 0o600);
  try {
    const bytes = Buffer.from(data, 'utf8');
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    bytes.fill(0);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
  if (POSIX) {
    const dirFd = openSync(path.dirname(file), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }
}

/**
 * Reads a state file, refusing symlinks, other owners and any group/world access. null when it does not exist.
 * `allowOpen` skips the permission check (logout reads an exposed session to end it on the server).
 */
export function readPrivate(file: string, allowOpen = false): string | null {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw new StateError(`${file} is a symbolic link: refusing to use it`, 'insecure');
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new StateError(`${file} is not a regular file`, 'insecure');
    if (POSIX && !allowOpen) {
      if (process.getuid && st.uid !== process.getuid()) throw new StateError(`${file} belongs to another user: refusing to use it`, 'insecure');
      if ((st.mode & 0o077) !== 0) {
        throw new StateError(`${file} is readable or writable by other users (mode ${describeMode(st.mode)}): refusing to use it; if nobody else could have read it, run: chmod 600 '${file}'`, 'insecure');
      }
    }
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

export function parseFile<T extends z.ZodTypeAny>(schema: T, file: string, text: string): z.infer<T> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new StateError(`${file} is not valid JSON: log in again (kluis logout; kluis login ...)`, 'corrupt');
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new StateError(`${file} is damaged (${issue.path.join('.') || 'top level'}: ${issue.message}): log in again`, 'corrupt');
  }
  return r.data;
}

/** An open account: the session and the identity keys. */
export interface Account {
  home: string;
  session: Session;
  keys: AccountKeys;
}

/** The saved session, or null when this home is not logged in. `allowOpen`: see readPrivate (logout only). */
export function loadSession(home = kluisHome(), allowOpen = false): Session | null {
  const file = path.join(home, SESSION);
  const text = readPrivate(file, allowOpen);
  return text === null ? null : parseFile(SessionFile, file, text);
}

/** The saved session and keys; throws StateError (not_logged_in) when there are none. `sealer`: see saveAccount. */
export function loadAccount(home = kluisHome(), sealer?: KeySealer): Account {
  const session = loadSession(home);
  if (!session) throw new StateError(`not logged in (no session in ${home}): run kluis login or kluis signup`, 'not_logged_in');
  const file = path.join(home, KEYS);
  const text = readPrivate(file);
  if (text === null) throw new StateError(`${file} is missing: log in again (kluis logout; kluis login ...)`, 'corrupt');
  const sealed = /"sealed"\s*:/.test(text);
  if (sealed && !sealer) throw new StateError(`${file} is sealed by the desktop app's system keychain: only the Kluis app opens this home`, 'corrupt');
  const stored = sealed && sealer ? unseal(file, parseFile(SealedKeysFile, file, text), sealer) : parseFile(KeysFile, file, text);
  if (stored.userId !== session.userId) throw new StateError(`${file} belongs to another account than ${SESSION}: log in again`, 'corrupt');
  const secrets = { encSecretKey: fromBase64Url(stored.encSecretKey), signSeed: fromBase64Url(stored.signSeed) };
  try {
    return { home, session, keys: accountKeysFromSecrets(secrets, stored) };
  } catch {
    throw new StateError(`${file} does not hold the keys of its account: log in again`, 'corrupt');
  } finally {
    wipeBytes(secrets.encSecretKey, secrets.signSeed);
  }
}

function unseal(file: string, stored: z.infer<typeof SealedKeysFile>, sealer: KeySealer): z.infer<typeof KeysFile> {
  let text: string;
  try {
    text = sealer.open(Buffer.from(stored.sealed, 'base64'));
  } catch {
    throw new StateError(`${file} is sealed by the system keychain, which does not open it now (another user, or a reset keychain): log in again`, 'corrupt');
  }
  return { v: 1, userId: stored.userId, encPublicKey: stored.encPublicKey, signPublicKey: stored.signPublicKey, ...parseFile(SecretsJson, file, text) };
}

/** The account's public encryption key from keys.json (either form), without opening the secret keys; null when absent. */
export function loadEncPublicKey(home: string): string | null {
  const file = path.join(home, KEYS);
  const text = readPrivate(file);
  return text === null ? null : parseFile(z.object({ encPublicKey: Key32 }), file, text).encPublicKey;
}

/**
 * Saves a fresh login: keys first, then the session (whose presence means "logged in"). With a `sealer` the secret
 * keys are written sealed by it (never in clear, not even for a moment); loadAccount then needs the same sealer.
 */
export function saveAccount(session: Session, keys: AccountKeys, home = kluisHome(), sealer?: KeySealer): void {
  SessionFile.parse(session);
  ensureHome(home);
  const secrets = accountSecrets(keys);
  try {
    const pub = { v: 1, userId: session.userId, encPublicKey: toBase64Url(keys.encPublicKey), signPublicKey: toBase64Url(keys.signPublicKey) };
    const secret = { encSecretKey: toBase64Url(secrets.encSecretKey), signSeed: toBase64Url(secrets.signSeed) };
    const body = sealer ? { ...pub, sealed: sealer.seal(JSON.stringify(secret)).toString('base64') } : { ...pub, ...secret };
    writeAtomic(path.join(home, KEYS), `${JSON.stringify(body)}\n`);
  } finally {
    wipeBytes(secrets.encSecretKey, secrets.signSeed);
  }
  writeAtomic(path.join(home, SESSION), `${JSON.stringify(session, null, 2)}\n`);
}

/**
 * Deletes the local state. keys.json is overwritten with zeros and fsynced before it is unlinked (best effort: a
 * copy-on-write file system or an SSD may keep the old blocks; full-disk encryption is the real protection).
 */
export function clearAccount(home = kluisHome()): void {
  const keys = path.join(home, KEYS);
  try {
    const st = lstatSync(keys);
    if (st.isFile()) {
      const fd = openSync(keys, constants.O_WRONLY | (constants.O_NOFOLLOW ?? 0));
      try {
        writeSync(fd, Buffer.alloc(st.size), 0, st.size, 0);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    unlinkSync(keys);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  rmSync(path.join(home, SESSION), { force: true });
}

/** Whether this home holds any state (a session or keys), without validating it. */
export function hasState(home = kluisHome()): boolean {
  for (const f of [SESSION, KEYS]) {
    try {
      statSync(path.join(home, f));
      return true;
    } catch {
      // absent
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// membership.json 0600: per space, the newest membership-log position this client verified (docs/crypto.md §4.1).
// A later log must still contain it unchanged; otherwise the server rolled the log back or rewrote it.

const MEMBERSHIP = 'membership.json';
const AnchorSchema = z.object({ seq: z.number().int().min(1), hash: z.string().regex(/^[0-9a-f]{64}$/) }).strict();
const MembershipFile = z.object({ v: z.literal(1), userId: Id, anchors: z.record(z.string(), AnchorSchema) }).strict();
export type MembershipAnchorRecord = z.infer<typeof AnchorSchema>;

function readAnchors(account: Account): Record<string, MembershipAnchorRecord> {
  const file = path.join(account.home, MEMBERSHIP);
  const text = readPrivate(file);
  if (text === null) return {};
  const parsed = parseFile(MembershipFile, file, text);
  // Another account's positions say nothing about what this one saw.
  return parsed.userId === account.session.userId ? parsed.anchors : {};
}

/** The newest verified position of a space's membership log, or null if this client never verified it. */
export function loadMembershipAnchor(account: Account, spaceId: string): MembershipAnchorRecord | null {
  return readAnchors(account)[spaceId] ?? null;
}

/** Records a newer verified position (never an older one: the anchor only moves forward). */
export function saveMembershipAnchor(account: Account, spaceId: string, anchor: MembershipAnchorRecord): void {
  const anchors = readAnchors(account);
  const known = anchors[spaceId];
  if (known && known.seq >= anchor.seq) return;
  anchors[spaceId] = anchor;
  ensureHome(account.home);
  writeAtomic(path.join(account.home, MEMBERSHIP), `${JSON.stringify({ v: 1, userId: account.session.userId, anchors })}\n`);
}

// ---------------------------------------------------------------------------------------------------------
// pins.json 0600: colleagues' public keys as first seen (trust on first use). A colleague whose keys differ later is
// refused until the user compares the new fingerprint out of band and accepts it (kluis fingerprint --accept).

const PINS = 'pins.json';
const PinKeys = z.object({ userId: Id, signPublicKey: z.string(), encPublicKey: z.string() }).strict();
/** The keys now trusted for an address, and the ones accepted before (history signed with them stays valid). */
const PinSchema = PinKeys.extend({ pinnedAt: z.number().int(), earlier: z.array(PinKeys).max(100) }).strict();
const PinsFile = z.object({ v: z.literal(1), userId: Id, pins: z.record(z.string(), PinSchema) }).strict();
export type PinRecord = z.infer<typeof PinSchema>;

/** Pinned keys by e-mail address (of this account; another account's pins are not ours). */
export function loadPins(account: Account): Record<string, PinRecord> {
  const file = path.join(account.home, PINS);
  const text = readPrivate(file);
  if (text === null) return {};
  const parsed = parseFile(PinsFile, file, text);
  return parsed.userId === account.session.userId ? parsed.pins : {};
}

/** Records (or, on acceptance, replaces) the pins of these addresses. */
export function savePins(account: Account, pins: Record<string, PinRecord>): void {
  const all = { ...loadPins(account), ...pins };
  ensureHome(account.home);
  writeAtomic(path.join(account.home, PINS), `${JSON.stringify({ v: 1, userId: account.session.userId, pins: all })}\n`);
}
