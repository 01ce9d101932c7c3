// A minimal Kluis API client for integration tests: it does the client-side crypto (keys are made here, as the
// desktop client would) and talks HTTP to a real server started by test/helpers/server.ts.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import * as k from '@kluis/shared';
import { repoRoot } from './server.js';

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

/** Runs kluis-admin against a server's data directory; returns its parsed --json output. */
export async function admin(dataDir: string, args: string[]): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const { stdout } = await run(process.execPath, [path.join(repoRoot, 'server/dist/admin/cli.js'), '--json', ...args], { env: { PATH: process.env.PATH ?? '', KLUIS_DATA_DIR: dataDir, KLUIS_ENV: 'test' } });
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
  return { orgId: created.orgId, admin: user };
}

/** Invites (as an org admin, over the API) and signs up a colleague. */
export async function newColleague(base: string, inviter: User, role = 'member'): Promise<User> {
  const email = `user-${Math.random().toString(36).slice(2)}@example.be`;
  const inv = await call(base, 'POST', `/api/v1/orgs/${inviter.orgId}/invites`, { token: inviter.token, json: { email, role } });
  if (inv.status !== 201) throw new Error(`invite failed: ${JSON.stringify(inv.body)}`);
  const user = await signup(base, inv.body.token, email);
  if (user.res.status !== 201) throw new Error(`signup failed: ${JSON.stringify(user.res.body)}`);
  return user;
}

/** Creates a space as `owner` with a fresh keypair; returns its id and keypair. */
export async function newSpace(base: string, owner: User, name = 'Dossiers', classification = 'internal'): Promise<{ spaceId: string; pair: k.SpaceKeyPair; res: Res }> {
  const spaceId = k.newId();
  const pair = k.generateSpaceKeyPair();
  const wrap = k.wrapSpaceKey(pair, { spaceId, keyEpoch: 1, recipient: owner.identity.encPublicKey }, owner.keys);
  const res = await call(base, 'POST', '/api/v1/spaces', { token: owner.token, json: { id: spaceId, name, classification, publicKey: k.toBase64Url(pair.publicKey), wrap } });
  return { spaceId, pair, res };
}
