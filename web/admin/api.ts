// The console's HTTP client: same origin, JSON, the session token in a module variable only (never in a URL, never
// in storage: a reload or a closed tab ends the session; see docs/admin.md "The admin console"). Every answer is
// parsed with the shared schemas where one exists; every failure becomes an ApiProblem the views can explain.
import * as z from 'zod';
import { KDF_MIN, assertKdfParams, derivePasswordKeys, initCrypto, toBase64Url, type KdfParams } from '@kluis/shared';

export class ApiProblem extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly reason?: string, readonly retryAfter = 0) {
    super(message);
  }
}

let token: string | null = null;

export function signedIn(): boolean {
  return token !== null;
}

async function send(method: string, url: string, json?: unknown): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json', 'x-kluis-client': 'kluis-admin-console/0.1.0' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body: json === undefined ? null : JSON.stringify(json), credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' });
  } catch {
    throw new ApiProblem(0, 'network', 'the server could not be reached');
  }
  if (res.ok) return res;
  let body: { error?: { code?: string; message?: string }; reason?: string } = {};
  try {
    body = await res.json();
  } catch {
    // not JSON: the status says enough
  }
  const after = Number(res.headers.get('retry-after'));
  throw new ApiProblem(res.status, body.error?.code ?? 'http', body.error?.message ?? `HTTP ${res.status}`, body.reason, Number.isFinite(after) ? after : 0);
}

/** A JSON call; with a schema the answer is parsed (a server answering something else is an error, not trusted). */
export async function api<T = unknown>(method: string, url: string, json?: unknown, schema?: z.ZodType<T>): Promise<T> {
  const res = await send(method, url, json);
  if (res.status === 204) return undefined as T;
  const body: unknown = await res.json();
  if (!schema) return body as T;
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new ApiProblem(res.status, 'bad_answer', 'unexpected answer from the server');
  return parsed.data;
}

/** A file answer (audit export) as a Blob, with the name the server suggests. */
export async function fetchFile(url: string, fallbackName: string): Promise<{ blob: Blob; name: string }> {
  const res = await send('GET', url);
  const m = /filename="?([^";]+)"?/.exec(res.headers.get('content-disposition') ?? '');
  return { blob: await res.blob(), name: m ? m[1]! : fallbackName };
}

const Prelogin = z.object({ kdf: z.object({ salt: z.string(), opsLimit: z.number().int(), memLimit: z.number().int() }) });
const Info = z.object({ kdf: z.object({ opsLimit: z.number().int(), memLimit: z.number().int() }) });
const LoginAnswer = z.object({ token: z.string().regex(/^[A-Za-z0-9_-]{43}$/), userId: z.string(), orgId: z.string(), role: z.string() });

/**
 * Signs in as the kluis client does (docs/crypto.md §2): prelogin gives the account's salt and limits, Argon2id runs
 * here (libsodium in WASM), and only authKey, the second half of its output, is sent. The password and masterKey
 * never leave this function; the bytes are wiped after use. Limits below the server's floor or above KDF_MAX are
 * refused, as the kluis client refuses them.
 */
export async function signIn(email: string, password: string): Promise<void> {
  await initCrypto();
  const normalised = email.normalize('NFC').trim().toLowerCase();
  const [pre, info] = await Promise.all([
    api('POST', '/api/v1/auth/prelogin', { email: normalised }, Prelogin),
    api('GET', '/api/v1/info', undefined, Info),
  ]);
  const floor: KdfParams = { opsLimit: Math.max(KDF_MIN.opsLimit, info.kdf.opsLimit), memLimit: Math.max(KDF_MIN.memLimit, info.kdf.memLimit) };
  const limits = { opsLimit: pre.kdf.opsLimit, memLimit: pre.kdf.memLimit };
  assertKdfParams(limits, floor);
  const { masterKey, authKey } = derivePasswordKeys(password, pre.kdf.salt, limits, floor);
  const proof = toBase64Url(authKey);
  masterKey.fill(0);
  authKey.fill(0);
  const answer = await api('POST', '/api/v1/auth/login', { email: normalised, authKey: proof, deviceName: 'Admin console (browser)' }, LoginAnswer);
  token = answer.token;
}

/** Ends the session on the server (best effort) and forgets the token. `keepalive` lets it run while the page unloads. */
export function signOut(keepalive = false): Promise<void> {
  const held = token;
  token = null;
  if (!held) return Promise.resolve();
  return fetch('/api/v1/auth/logout', { method: 'POST', headers: { authorization: `Bearer ${held}` }, keepalive, credentials: 'omit' }).then(() => undefined, () => undefined);
}
