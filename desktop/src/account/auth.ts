// Sign-up, login, logout and password reset with the recovery key, client side (docs/crypto.md §2, §3, §13).
// Keys are made and opened here; the server sees the authKey (never the masterKey), public keys and sealed bundles.
import { hostname } from 'node:os';
import {
  CryptoError, Email, ErrorCode, KDF_INTERACTIVE, KDF_MIN, KDF_MODERATE, KluisError, assertKdfParams, authKeyVerifier, derivePasswordKeys, fingerprint, nameProblem,
  formatRecoveryKey, generateAccountKeys, generateRecoveryKey, initCrypto, newSalt, openKeyBundle, openKeyBundleWithRecovery, parseRecoveryKey,
  publicIdentity, sealKeyBundle, signIdentity, signRecoveryReset, toBase64Url, verifyIdentity, wipeBytes,
  type AccountKeys, type KdfParams, type SessionResponse,
} from '@kluis/shared';
import { ApiClient, ApiRequestError } from '../api/client.js';
import { api } from '../api/endpoints.js';
import { clearAccount, hasState, kluisHome, loadSession, saveAccount, StateError, type KeySealer, type Session } from './state.js';

export const CLI_CLIENT_NAME = 'kluis-cli/0.1.0';

/** A request the user must change (bad e-mail, weak password, insecure URL, already logged in ...): exit 2. */
export class UsageError extends KluisError {
  override name = 'UsageError';
  constructor(message: string, code: ErrorCode = ErrorCode.ValidationFailed) {
    super(code, message);
  }
}

// ---------------------------------------------------------------------------------------------------------
// KDF limits: what we choose at sign-up, what we accept from a server at login

const LEVELS = { min: KDF_MIN, interactive: KDF_INTERACTIVE, moderate: KDF_MODERATE } as const;
export type KdfLevel = keyof typeof LEVELS;

/** KLUIS_KDF (min | interactive | moderate), or undefined when unset. */
export function kdfLevelFromEnv(env: NodeJS.ProcessEnv = process.env): KdfLevel | undefined {
  const v = env.KLUIS_KDF;
  if (v === undefined || v === '') return undefined;
  if (!(v in LEVELS)) throw new UsageError(`KLUIS_KDF must be one of ${Object.keys(LEVELS).join(', ')} (got "${v}")`);
  return v as KdfLevel;
}

/**
 * The weakest limits this client accepts from a server at login: INTERACTIVE, or lower only when KLUIS_KDF says
 * so (tests). A hostile server answering prelogin with weak limits would otherwise get a cheaply guessable authKey.
 */
export function acceptedKdfFloor(env: NodeJS.ProcessEnv = process.env): KdfParams {
  const level = kdfLevelFromEnv(env);
  return level === 'min' ? KDF_MIN : KDF_INTERACTIVE;
}

/** Limits for a new password: max(server's floor, KLUIS_KDF or MODERATE), component-wise. */
export function chooseKdf(serverFloor: KdfParams, env: NodeJS.ProcessEnv = process.env): KdfParams {
  const wanted = LEVELS[kdfLevelFromEnv(env) ?? 'moderate'];
  const chosen = { opsLimit: Math.max(serverFloor.opsLimit, wanted.opsLimit), memLimit: Math.max(serverFloor.memLimit, wanted.memLimit) };
  assertKdfParams(chosen, acceptedKdfFloor(env));
  return chosen;
}

// ---------------------------------------------------------------------------------------------------------
// Inputs

/** Normalises and checks an e-mail address (trimmed, NFC, lower case). */
export function normaliseEmail(email: string): string {
  const r = Email.safeParse(email.normalize('NFC'));
  if (!r.success) throw new UsageError(`not an e-mail address: "${email}"`);
  return r.data;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** Checks the server URL: http(s) only, and https for anything but this machine (the authKey is sent to it). */
export function normaliseServerUrl(url: string, env: NodeJS.ProcessEnv = process.env): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`not a URL: "${url}" (e.g. https://kluis.example.be)`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new UsageError(`the server URL must start with https:// (got ${u.protocol})`);
  if (u.username || u.password || u.search || u.hash) throw new UsageError('the server URL must not contain credentials, a query or a fragment');
  if (u.protocol === 'http:' && !LOOPBACK.has(u.hostname) && env.KLUIS_ALLOW_INSECURE_HTTP !== '1') {
    throw new UsageError(`refusing plain http:// to ${u.hostname}: your password proof would travel unencrypted (use https://)`);
  }
  return u.origin + u.pathname.replace(/\/+$/, '');
}

/** Passwords for new accounts and resets: at least 8 characters (the KDF slows guessing; it cannot fix "1234"). */
export function checkNewPassword(password: string): void {
  if ([...password].length < 8) throw new UsageError('the password is too short: use at least 8 characters (a few random words are best)');
}

export function defaultDeviceName(): string {
  return `${hostname() || 'computer'} (kluis CLI)`.slice(0, 200);
}

/** --device-name or the default, checked with the server's name rules before any key is derived. */
function deviceNameOf(o: { deviceName?: string }): string {
  if (o.deviceName === undefined) return defaultDeviceName();
  const problem = nameProblem(o.deviceName);
  if (problem) throw new UsageError(`device name: ${problem}`);
  return o.deviceName.trim();
}

function refuseIfLoggedIn(home: string): void {
  if (!hasState(home)) return;
  const s = loadSession(home);
  throw new UsageError(s ? `already logged in as ${s.email} on ${s.server}: run kluis logout first (or use another KLUIS_HOME)` : `${home} holds account state: run kluis logout first`);
}

export function clientFor(server: string, token: string | null = null): ApiClient {
  return new ApiClient({ baseUrl: server, token, clientName: CLI_CLIENT_NAME });
}

function sessionFrom(server: string, email: string, res: SessionResponse): Session {
  return { v: 1, server, email, userId: res.userId, orgId: res.orgId, role: res.role, deviceId: res.deviceId, token: res.token, expiresAt: res.expiresAt };
}

/**
 * Checks that the directory's entry of this account carries exactly the keys we hold, with a valid identity
 * signature: what colleagues will seal space keys to is really ours.
 */
async function verifySelfInDirectory(c: ApiClient, userId: string, email: string, keys: AccountKeys): Promise<void> {
  const entry = await api.directoryById(c, userId);
  const mine = publicIdentity(keys);
  if (entry.email !== email || entry.encPublicKey !== mine.encPublicKey || entry.signPublicKey !== mine.signPublicKey) {
    throw new CryptoError(ErrorCode.BadKey, 'the server\'s directory lists other keys for this account than the ones in its key bundle: refusing to log in');
  }
  try {
    verifyIdentity(entry, email, entry.identitySig);
  } catch {
    throw new CryptoError(ErrorCode.BadSignature, 'the identity signature of this account in the server\'s directory does not verify: refusing to log in');
  }
}

/** After a login whose result we refuse, end the fresh server session too (best effort). */
async function abandon(c: ApiClient): Promise<void> {
  try {
    await api.logout(c);
  } catch {
    // the server may be the problem; the token is not stored anywhere
  }
}

// ---------------------------------------------------------------------------------------------------------
// Flows

export interface AccountResult {
  session: Session;
  /** Own fingerprint (docs/crypto.md §3), to compare out of band. */
  fingerprint: string;
}

export interface SignupOptions {
  /** seals the secret keys at rest (the desktop app's OS keychain); default: a 0600 file */
  sealer?: KeySealer;
  server: string;
  email: string;
  invite: string;
  password: string;
  deviceName?: string;
  home?: string;
  env?: NodeJS.ProcessEnv;
}

/** Creates the account's keys here, signs up with the invite and saves the state. Returns the recovery key (show once). */
export async function signup(o: SignupOptions): Promise<AccountResult & { recoveryKey: string; kdf: KdfParams }> {
  const env = o.env ?? process.env;
  const home = o.home ?? kluisHome(env);
  const server = normaliseServerUrl(o.server, env);
  const email = normaliseEmail(o.email);
  if (!/^[A-Za-z0-9_-]{43}$/.test(o.invite.trim())) throw new UsageError('the invite token has 43 characters (as printed by kluis-admin or sent by your administrator)');
  const deviceName = deviceNameOf(o);
  checkNewPassword(o.password);
  acceptedKdfFloor(env);
  refuseIfLoggedIn(home);
  await initCrypto({ wasm: 'lazy' });
  const c = clientFor(server);
  const info = await api.info(c);
  const kdf = chooseKdf(info.kdf, env);
  const salt = newSalt();
  const { masterKey, authKey } = derivePasswordKeys(o.password, salt, kdf, acceptedKdfFloor(env));
  const keys = generateAccountKeys();
  const recovery = generateRecoveryKey();
  try {
    const keyBundle = sealKeyBundle(keys, masterKey, recovery);
    const res = await api.signup(c, {
      inviteToken: o.invite.trim(), email, kdf: { salt, ...kdf }, authKey: toBase64Url(authKey), ...publicIdentity(keys),
      identitySig: signIdentity(keys, email), keyBundle, deviceName,
    });
    const session = sessionFrom(server, email, res);
    saveAccount(session, keys, home, o.sealer);
    return { session, recoveryKey: formatRecoveryKey(recovery), fingerprint: fingerprint(publicIdentity(keys)), kdf };
  } finally {
    wipeBytes(masterKey, authKey, recovery, keys.encSecretKey, keys.signSecretKey);
  }
}

export interface LoginOptions {
  /** seals the secret keys at rest (the desktop app's OS keychain); default: a 0600 file */
  sealer?: KeySealer;
  server: string;
  email: string;
  password: string;
  deviceName?: string;
  home?: string;
  env?: NodeJS.ProcessEnv;
}

/** prelogin -> derive -> login -> open the bundle -> check the directory entry of self -> save. */
export async function login(o: LoginOptions): Promise<AccountResult> {
  const env = o.env ?? process.env;
  const home = o.home ?? kluisHome(env);
  const server = normaliseServerUrl(o.server, env);
  const email = normaliseEmail(o.email);
  if (o.password.length === 0) throw new UsageError('empty password');
  const deviceName = deviceNameOf(o);
  const floor = acceptedKdfFloor(env);
  refuseIfLoggedIn(home);
  await initCrypto({ wasm: 'lazy' });
  const c = clientFor(server);
  const { kdf } = await api.prelogin(c, email);
  const limits = { opsLimit: kdf.opsLimit, memLimit: kdf.memLimit };
  try {
    assertKdfParams(limits, floor);
  } catch (err) {
    throw new CryptoError(ErrorCode.WeakKdfParams, `the server asks for password-hash limits this client refuses (ops ${limits.opsLimit}, mem ${limits.memLimit}): ${(err as Error).message}`);
  }
  const { masterKey, authKey } = derivePasswordKeys(o.password, kdf.salt, limits, floor);
  let keys: AccountKeys | undefined;
  try {
    const res = await api.login(c, { email, authKey: toBase64Url(authKey), deviceName });
    c.token = res.token;
    try {
      keys = openKeyBundle(res.keyBundle, masterKey);
      await verifySelfInDirectory(c, res.userId, email, keys);
    } catch (err) {
      await abandon(c);
      if (err instanceof CryptoError && err.code === ErrorCode.DecryptFailed) {
        throw new CryptoError(ErrorCode.DecryptFailed, 'the key bundle from the server does not open with this password (it was altered or replaced): refusing to log in');
      }
      throw err;
    }
    const session = sessionFrom(server, email, res);
    saveAccount(session, keys, home, o.sealer);
    return { session, fingerprint: fingerprint(publicIdentity(keys)) };
  } finally {
    wipeBytes(masterKey, authKey, keys?.encSecretKey, keys?.signSecretKey);
  }
}

/** Ends the server session (when it can) and deletes the local state, wiping keys.json. */
export async function logout(o: { home?: string; env?: NodeJS.ProcessEnv; whenEnded?: (err: ApiRequestError) => Promise<void> } = {}): Promise<{ email: string | null; server: 'logged_out' | 'already_ended' | 'unreachable'; error?: Error }> {
  const home = o.home ?? kluisHome(o.env ?? process.env);
  let session: Session | null = null;
  try {
    // A session file others could read is still ended on the server (its token may have been seen) and removed.
    session = loadSession(home, true);
  } catch (err) {
    // A damaged session file is exactly what logout should remove.
    if (!(err instanceof StateError)) throw err;
  }
  if (!session) {
    if (!hasState(home)) throw new StateError(`not logged in (no session in ${home})`, 'not_logged_in');
    clearAccount(home);
    return { email: null, server: 'already_ended' };
  }
  let server: 'logged_out' | 'already_ended' | 'unreachable' = 'logged_out';
  let error: Error | undefined;
  try {
    await api.logout(clientFor(session.server, session.token));
  } catch (err) {
    if (err instanceof ApiRequestError && err.status === 401) {
      server = 'already_ended';
      // The server ended this session itself: an administrator may have ordered a wipe (account/wipe.ts), which
      // must happen before the state that names the synced folders is gone.
      await o.whenEnded?.(err);
    } else {
      server = 'unreachable';
      error = err as Error;
    }
  }
  clearAccount(home);
  return { email: session.email, server, ...(error ? { error } : {}) };
}

export interface RecoverOptions {
  sealer?: KeySealer;
  server: string;
  email: string;
  /** As typed: groups, dashes, case and 0/1/8 look-alikes are tolerated; the check digits must match. */
  recoveryKey: string;
  newPassword: string;
  deviceName?: string;
  home?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Forgotten password: recovery/start -> open the recovery-sealed bundle -> keys for the new password -> the same
 * identity sealed by the new masterKey and the same recovery key -> signed recovery/finish -> save. Every other
 * session of the account is ended by the server.
 */
export async function recover(o: RecoverOptions): Promise<AccountResult> {
  const env = o.env ?? process.env;
  const home = o.home ?? kluisHome(env);
  const server = normaliseServerUrl(o.server, env);
  const email = normaliseEmail(o.email);
  await initCrypto({ wasm: 'lazy' });
  // A typo is reported here, before anything goes to the server.
  const recovery = parseRecoveryKey(o.recoveryKey);
  checkNewPassword(o.newPassword);
  const deviceName = deviceNameOf(o);
  acceptedKdfFloor(env);
  refuseIfLoggedIn(home);
  const c = clientFor(server);
  const info = await api.info(c);
  const kdf = chooseKdf(info.kdf, env);
  const start = await api.recoveryStart(c, email);
  let keys: AccountKeys | undefined;
  let masterKey: Uint8Array | undefined;
  let authKey: Uint8Array | undefined;
  try {
    try {
      keys = openKeyBundleWithRecovery({ v: 1, encPublicKey: start.encPublicKey, signPublicKey: start.signPublicKey, sealedByPassword: '', sealedByRecovery: start.sealedByRecovery }, recovery);
    } catch {
      // Same words for "no such account" and "another account's key": the server's answer does not tell them apart.
      throw new CryptoError(ErrorCode.BadRecoveryKey, `this recovery key does not open the account ${email} (a different account's key, or no such account)`);
    }
    const salt = newSalt();
    ({ masterKey, authKey } = derivePasswordKeys(o.newPassword, salt, kdf, acceptedKdfFloor(env)));
    const keyBundle = sealKeyBundle(keys, masterKey, recovery);
    const authVerifier = authKeyVerifier(authKey);
    const kdfFields = { salt, ...kdf };
    const signature = signRecoveryReset({ email, challenge: start.challenge, kdf: kdfFields, authVerifier, keyBundle }, keys);
    const res = await api.recoveryFinish(c, { email, challenge: start.challenge, kdf: kdfFields, authKey: toBase64Url(authKey), keyBundle, signature, deviceName });
    c.token = res.token;
    try {
      await verifySelfInDirectory(c, res.userId, email, keys);
    } catch (err) {
      await abandon(c);
      throw err;
    }
    const session = sessionFrom(server, email, res);
    saveAccount(session, keys, home, o.sealer);
    return { session, fingerprint: fingerprint(publicIdentity(keys)) };
  } finally {
    wipeBytes(recovery, masterKey, authKey, keys?.encSecretKey, keys?.signSecretKey);
  }
}
