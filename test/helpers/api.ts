// A minimal Kluis API client for integration tests: it does the client-side crypto (keys are made here, as the
// desktop client would) and talks HTTP to a real server started by test/helpers/server.ts.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import * as k from '@kluis/shared';
import { Secret, TOTP } from 'otpauth';
import { databaseEnv, repoRoot } from './server.js';

const run = promisify(execFile);

export interface Res<T = any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  status: number;
  body: T;
  headers: Headers;
}

/** Calls the API; JSON in and out. `raw` sends the string as is (for malformed-input tests). */
export async function call(base: string, method: string, url: string, options: { token?: string | null; json?: unknown; raw?: string | Uint8Array; contentType?: string } = {}): Promise<Res> {
  const headers: Record<string, string> = { 'x-kluis-client': 'kluis-test/0.1.0' };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | Uint8Array | undefined;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.raw !== undefined) {
    headers['content-type'] = options.contentType ?? 'application/json';
    body = options.raw;
  }
  const res = await fetch(base + url, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON (event streams, metrics)
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Runs kluis-admin against a server's data directory (and its database); returns its parsed --json output. */
export async function admin(dataDir: string, args: string[]): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const env = { PATH: process.env.PATH ?? '', KLUIS_DATA_DIR: dataDir, KLUIS_ENV: 'test', ...(await databaseEnv(dataDir)) };
  // A kluis-admin that does not exit fails its own test with what it printed, instead of stalling the run until
  // ava's inactivity timeout (which names no test).
  const { stdout } = await run(process.execPath, [path.join(repoRoot, 'server/dist/admin/cli.js'), '--json', ...args], { env, timeout: 90_000, killSignal: 'SIGKILL' }).catch((err) => {
    if (err.killed) err.message = `kluis-admin ${args.slice(0, 2).join(' ')} did not exit within 90 s; it printed: ${err.stdout}${err.stderr}`;
    throw err;
  });
  return JSON.parse(stdout);
}

/** A fresh valid enterprise number (10 digits, first 0 or 1, mod-97 check). */
export function enterpriseNumber(): string {
  const first8 = Math.floor(Math.random() * 20_000_000);
  return String(first8).padStart(8, '0') + String(97 - (first8 % 97)).padStart(2, '0');
}

export interface User {
  email: string;
  password: string;
  userId: string;
  orgId: string;
  deviceId: string;
  token: string;
  keys: k.AccountKeys;
  identity: k.PublicIdentity;
  /** base32 TOTP secret, for users whose role needs 2-step verification (enrolTotp) */
  totpSecret?: string;
  /** when the code that confirmed the enrolment was computed (enrolTotp) */
  totpConfirmedAt?: number;
}

/** Signs up with an invite the way the desktop client does. */
export async function signup(base: string, inviteToken: string, email: string, password = 'correct horse battery staple', deviceName = 'test laptop'): Promise<User & { res: Res }> {
  await k.initCrypto();
  const salt = k.newSalt();
  const { masterKey, authKey } = k.derivePasswordKeys(password, salt, k.KDF_MIN);
  const keys = k.generateAccountKeys();
  const bundle = k.sealKeyBundle(keys, masterKey, k.generateRecoveryKey());
  const identity = k.publicIdentity(keys);
  const res = await call(base, 'POST', '/api/v1/auth/signup', {
    json: {
      inviteToken, email, kdf: { salt, ...k.KDF_MIN }, authKey: k.toBase64Url(authKey), ...identity,
      identitySig: k.signIdentity(keys, email), keyBundle: bundle, deviceName,
    },
  });
  const b = res.body ?? {};
  return { email, password, userId: b.userId, orgId: b.orgId, deviceId: b.deviceId, token: b.token, keys, identity, res };
}

/** prelogin + login; returns the session and the opened key bundle. */
export async function login(base: string, email: string, password: string, deviceName = 'second device'): Promise<Res & { keys?: k.AccountKeys }> {
  await k.initCrypto();
  const pre = await call(base, 'POST', '/api/v1/auth/prelogin', { json: { email } });
  const { authKey, masterKey } = k.derivePasswordKeys(password, pre.body.kdf.salt, { opsLimit: pre.body.kdf.opsLimit, memLimit: pre.body.kdf.memLimit });
  const res = await call(base, 'POST', '/api/v1/auth/login', { json: { email, authKey: k.toBase64Url(authKey), deviceName } });
  return res.status === 200 ? { ...res, keys: k.openKeyBundle(res.body.keyBundle, masterKey) } : res;
}

/** Creates an organisation with kluis-admin and signs up its main admin. */
export async function newOrg(base: string, dataDir: string, name = 'OCMW Test'): Promise<{ orgId: string; admin: User }> {
  const email = `admin-${Math.random().toString(36).slice(2)}@example.be`;
  const created = await admin(dataDir, ['org', 'create', '--name', name, '--enterprise-number', enterpriseNumber(), '--admin-email', email]);
  const user = await signup(base, created.inviteToken, email);
  if (user.res.status !== 201) throw new Error(`signup failed: ${JSON.stringify(user.res.body)}`);
  // The organisation's policy asks admins for 2-step verification (on by default): the session passes it here.
  await enrolTotp(base, user);
  return { orgId: created.orgId, admin: user };
}

/** The current RFC 6238 code for a base32 secret, computed with the library the server uses. */
export function totpCode(secret: string, timestamp = Date.now()): string {
  return new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 }).generate({ timestamp });
}

/**
 * Enrols an authenticator for the session's account and confirms it with a code, which also verifies that session
 * (an admin's, so it may act under the default 2-step policy). Remembers the secret on `user`.
 */
export async function enrolTotp(base: string, user: { token: string; totpSecret?: string; totpConfirmedAt?: number }): Promise<string> {
  const started = await call(base, 'POST', '/api/v1/auth/totp/enrol', { token: user.token, json: {} });
  if (started.status !== 201) throw new Error(`TOTP enrolment failed: ${JSON.stringify(started.body)}`);
  const at = Date.now();
  const confirmed = await call(base, 'POST', '/api/v1/auth/totp/confirm', { token: user.token, json: { code: totpCode(started.body.secret, at) } });
  if (confirmed.status !== 200) throw new Error(`TOTP confirmation failed: ${JSON.stringify(confirmed.body)}`);
  user.totpSecret = started.body.secret;
  // The time whose code confirmed it (a test that replays that code must not take the next step's, which is fresh).
  user.totpConfirmedAt = at;
  return started.body.secret;
}

/** Invites (as an org admin, over the API) and signs up a colleague. */
export async function newColleague(base: string, inviter: User, role = 'member'): Promise<User> {
  const email = `user-${Math.random().toString(36).slice(2)}@example.be`;
  const inv = await call(base, 'POST', `/api/v1/orgs/${inviter.orgId}/invites`, { token: inviter.token, json: { email, role } });
  if (inv.status !== 201) throw new Error(`invite failed: ${JSON.stringify(inv.body)}`);
  const user = await signup(base, inv.body.token, email);
  if (user.res.status !== 201) throw new Error(`signup failed: ${JSON.stringify(user.res.body)}`);
  if ((k.TOTP_ROLES as string[]).includes(role)) await enrolTotp(base, user);
  return user;
}

/** Creates a space as `owner` with a fresh keypair; returns its id and keypair. */
export async function newSpace(base: string, owner: User, name = 'Dossiers', classification = 'internal'): Promise<{ spaceId: string; pair: k.SpaceKeyPair; res: Res }> {
  // Like the kluis client, never an id starting with '-' (1 in 64): tests pass ids to the CLI as arguments, where it
  // would read as an option.
  let spaceId = k.newId();
  while (spaceId.startsWith('-')) spaceId = k.newId();
  const pair = k.generateSpaceKeyPair();
  const res = await call(base, 'POST', '/api/v1/spaces', { token: owner.token, json: spaceBody(owner, spaceId, pair, { name, classification }) });
  return { spaceId, pair, res };
}

/** The body of POST /api/v1/spaces as a client makes it: the owner's wrap and the log's signed `create` entry. */
export function spaceBody(owner: User, spaceId: string, pair: k.SpaceKeyPair, fields: { name: string; classification?: string; retentionDays?: number }) {
  const wrap = k.wrapSpaceKey(pair, { spaceId, keyEpoch: 1, recipient: owner.identity.encPublicKey }, owner.keys);
  const publicKey = k.toBase64Url(pair.publicKey);
  const entry = k.signMembershipEntry({ spaceId, seq: 1, prev: k.MEMBERSHIP_GENESIS, op: 'create', ts: Date.now(), user: memberIdentity(owner), role: 'manager', keyEpoch: 1, spacePublicKey: publicKey }, owner.keys);
  return { id: spaceId, publicKey, wrap, entry, ...fields };
}

/** A user as the membership log names members (docs/crypto.md §4.1). */
export function memberIdentity(user: User): k.MemberIdentity {
  return { userId: user.userId, email: user.email, ...user.identity, identitySig: k.signIdentity(user.keys, user.email) };
}

/** The space's membership log as `viewer` gets it, verified. */
export async function spaceLog(base: string, viewer: User, spaceId: string): Promise<k.MembershipState> {
  const res = await call(base, 'GET', `/api/v1/spaces/${spaceId}`, { token: viewer.token });
  if (res.status !== 200) throw new Error(`space read failed: ${JSON.stringify(res.body)}`);
  return k.verifyMembershipLog(res.body.log, spaceId);
}

/** The body of POST …/members as a client makes it: the wrap and the signed log entry. */
export async function addMemberBody(base: string, manager: User, spaceId: string, pair: k.SpaceKeyPair, member: User, role: string): Promise<{ userId: string; role: string; wrap: k.SpaceKeyWrap; entry: k.MembershipEntry }> {
  const state = await spaceLog(base, manager, spaceId);
  const wrap = k.wrapSpaceKey(pair, { spaceId, keyEpoch: state.keyEpoch, recipient: member.identity.encPublicKey }, manager.keys);
  const entry = k.signMembershipEntry(k.nextMembershipFields(state, 'add', { user: memberIdentity(member), role: role as k.MemberRole }), manager.keys);
  return { userId: member.userId, role, wrap, entry };
}

/** The body of PATCH …/members/:userId. */
export async function roleBody(base: string, manager: User, spaceId: string, member: User, role: string): Promise<{ role: string; entry: k.MembershipEntry }> {
  const state = await spaceLog(base, manager, spaceId);
  return { role, entry: k.signMembershipEntry(k.nextMembershipFields(state, 'role', { user: memberIdentity(member), role: role as k.MemberRole }), manager.keys) };
}

/** The body of DELETE …/members/:userId: a new epoch wrapped to `remaining`, chained to `current`, and the entry. */
export async function removeBody(base: string, manager: User, spaceId: string, current: k.SpaceKeyPair, leaving: User, remaining: User[], next = k.generateSpaceKeyPair()) {
  const state = await spaceLog(base, manager, spaceId);
  const keyEpoch = state.keyEpoch + 1;
  const publicKey = k.toBase64Url(next.publicKey);
  const wraps = remaining.map((m) => ({ userId: m.userId, wrap: k.wrapSpaceKey(next, { spaceId, keyEpoch, recipient: m.identity.encPublicKey }, manager.keys) }));
  const entry = k.signMembershipEntry(k.nextMembershipFields(state, 'remove', { user: memberIdentity(leaving), spacePublicKey: publicKey }), manager.keys);
  return { next, body: { newEpoch: { keyEpoch, publicKey, prevSealed: k.sealPreviousEpoch(current, next), wraps }, entry } };
}
