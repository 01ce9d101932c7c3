// Server configuration from KLUIS_* environment variables (docs/architecture.md §10), validated once at start.
// A wrong value stops the server with one clear line naming the variable.
import { accessSync, constants as fsc } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import proxyaddr from 'proxy-addr';
import * as z from 'zod';
import { KDF_MAX, KDF_MIN, KDF_MODERATE, type KdfParams } from '@kluis/shared';
import { productionProblems } from './config-production.js';

const Env = z.enum(['development', 'test', 'acceptance', 'production']);

const schema = z.object({
  KLUIS_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  KLUIS_HOST: z.string().min(1).default('127.0.0.1'),
  KLUIS_DATA_DIR: z.string().min(1).default('./data'),
  KLUIS_ENV: Env.default('development'),
  KLUIS_STORAGE: z.enum(['fs', 'minio']).default('fs'),
  KLUIS_S3_ENDPOINT: z.string().url().optional(),
  KLUIS_S3_ACCESS_KEY: z.string().min(1).optional(),
  KLUIS_S3_SECRET_KEY: z.string().min(1).optional(),
  KLUIS_S3_REGION: z.string().min(1).default('us-east-1'),
  // `signed`: PUT bodies hashed as the minio client does (MD5 + SHA-256), for an S3 server refusing UNSIGNED-PAYLOAD.
  KLUIS_S3_PAYLOAD_SIGNING: z.enum(['unsigned', 'signed']).default('unsigned'),
  KLUIS_PUBLIC_URL: z.string().url().optional(),
  KLUIS_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  KLUIS_ALLOW_EMBEDDED_STORE: z.enum(['0', '1']).default('0'),
  KLUIS_TRUSTED_PROXIES: z.string().default(''),
  // Chunk ciphertexts of an upload batch shorter than this are packed (docs/architecture.md §3.1); the default packs all.
  KLUIS_PACK_THRESHOLD: z.coerce.number().int().min(1).max(64 * 1024 * 1024).optional(),
  // How long audit entries are kept: at least the 10 years of the social-security minimum norms, configurable upward
  // only. Nothing in Kluis deletes an entry (the database refuses it); the value is what the operator promises.
  KLUIS_AUDIT_RETENTION_YEARS: z.coerce.number().int().min(10, 'at least 10 (years): the minimum norms keep access records 10 years').max(1000).default(10),
  // The KDF floor new accounts must meet (prescribed in /api/v1/info, enforced at sign-up); defaults per environment.
  KLUIS_KDF_OPS_LIMIT: z.coerce.number().int().min(KDF_MIN.opsLimit).max(KDF_MAX.opsLimit).optional(),
  KLUIS_KDF_MEM_LIMIT: z.coerce.number().int().min(KDF_MIN.memLimit).max(KDF_MAX.memLimit).optional(),
  KLUIS_TLS_CERT: z.string().min(1).optional(),
  KLUIS_TLS_KEY: z.string().min(1).optional(),
  // Secrets: checked by hand below, never by zod (its messages quote the value).
  KLUIS_SERVER_KEY_FILE: z.string().optional(),
  KLUIS_METRICS_TOKEN: z.string().optional(),
  // Checked by parseDatabaseUrl, never by zod: zod's message would quote the value, and it holds a password.
  KLUIS_DATABASE_URL: z.string().optional(),
});

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  env: z.infer<typeof Env>;
  storage: 'fs' | 'minio';
  s3?: { endpoint: string; accessKey: string; secretKey: string; region: string; signPayloads?: boolean };
  publicUrl: string;
  logLevel: z.infer<typeof schema>['KLUIS_LOG_LEVEL'];
  /**
   * Addresses or CIDR ranges of reverse proxies whose X-Forwarded-For is believed (empty: none, the TCP peer is the
   * client). Checked here; compiled with proxy-addr in client-address.ts.
   */
  trustedProxies: string[];
  /** Chunk ciphertexts of an upload batch shorter than this are packed (absent: the store's default, PACK_THRESHOLD_BYTES). */
  packThresholdBytes?: number;
  /** PostgreSQL connection URL (KLUIS_DATABASE_URL); absent: the embedded sqlite file in dataDir. Never log it: use redactDatabaseUrl. */
  databaseUrl?: string;
  /** The weakest KDF limits a new account may have (absent: kdfFloor's default for the environment). */
  kdf?: KdfParams;
  /** PEM certificate chain and private key files: the server speaks HTTPS itself. */
  tls?: { certFile: string; keyFile: string };
  /** The server's key seed (32 bytes) as a configured secret; absent: generated in dataDir (not in production). */
  serverKeyFile?: string;
  /** Bearer token /metrics demands; absent: /metrics is open (not in production). Never log it. */
  metricsToken?: string;
  /** Years audit entries are kept (KLUIS_AUDIT_RETENTION_YEARS, at least 10): nothing deletes one before. */
  auditRetentionYears: number;
}

/**
 * Thrown when the environment does not describe a valid configuration: one line per problem in `problems` (the
 * message joins them with newlines).
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly problems: string[];
  constructor(problems: string | string[]) {
    const list = typeof problems === 'string' ? [problems] : problems;
    super(list.join('\n'));
    this.problems = list;
  }
}

/** The KDF floor of an environment when KLUIS_KDF_* do not set it: MODERATE where real accounts live. */
export function defaultKdfFloor(env: z.infer<typeof Env>): KdfParams {
  return env === 'production' || env === 'acceptance' ? KDF_MODERATE : KDF_MIN;
}

function readable(name: string, file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    accessSync(file, fsc.R_OK);
  } catch {
    throw new ConfigError(`${name}: cannot read ${file}`);
  }
  return path.resolve(file);
}

/** proxy-addr's names for the loopback, link-local and private ranges. */
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** KLUIS_TRUSTED_PROXIES: comma-separated IP addresses, CIDR ranges (`10.0.0.0/8`, `fd00::/8`) or range names. */
function parseTrustedProxies(value: string): string[] {
  const items = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const item of items) {
    if (PROXY_RANGE_NAMES.has(item)) continue;
    // Strict form first (node:net): proxy-addr alone would also take shorthands such as `127.1` or octal parts.
    const slash = item.indexOf('/');
    const address = slash === -1 ? item : item.slice(0, slash);
    const bits = slash === -1 ? null : item.slice(slash + 1);
    const max = isIP(address) === 4 ? 32 : isIP(address) === 6 ? 128 : 0;
    if (!max || (bits !== null && (!/^\d{1,3}$/.test(bits) || Number(bits) < 1 || Number(bits) > max))) {
      throw new ConfigError(`KLUIS_TRUSTED_PROXIES: "${item}" is not an IP address or a CIDR range such as 10.0.0.0/8 (got ${JSON.stringify(value)})`);
    }
  }
  try {
    proxyaddr.compile(items);
  } catch (err) {
    throw new ConfigError(`KLUIS_TRUSTED_PROXIES: ${(err as Error).message} (got ${JSON.stringify(value)})`);
  }
  return items;
}

/** The URL with its password (and any password parameter) replaced by `***`: for messages and logs. */
export function redactDatabaseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return '(not shown)'; // unparseable text may hold the password anywhere
  }
  if (url.password) url.password = '***';
  for (const key of [...url.searchParams.keys()]) if (/pass|key|secret/i.test(key)) url.searchParams.set(key, '***');
  return url.toString();
}

/**
 * `message` with the database password cut out, however it is written (as in the URL, or decoded). The driver's
 * messages never hold it, but a message that quotes a setting might: every message about the database passes here.
 */
export function withoutDatabasePassword(message: string, url: string | undefined): string {
  let password = '';
  try {
    password = url ? new URL(url).password : '';
  } catch {
    return url ? message.replaceAll(url, '(not shown)') : message;
  }
  let decoded = password;
  try {
    decoded = decodeURIComponent(password);
  } catch {
    // not percent-encoded text: cut it out as written
  }
  for (const p of new Set([password, decoded])) if (p) message = message.replaceAll(p, '***');
  return message;
}

/**
 * KLUIS_DATABASE_URL: postgres://USER:PASSWORD@HOST:PORT/DATABASE (or postgresql://; `?host=/run/postgresql` for a
 * socket directory; the `pg` driver's other parameters such as sslmode pass through). Messages never quote the value:
 * they show it redacted.
 */
function parseDatabaseUrl(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined; // empty: the embedded sqlite database
  const form = 'expected postgres://USER:PASSWORD@HOST:PORT/DATABASE';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`KLUIS_DATABASE_URL: not a URL; ${form} (value not shown: it may hold a password)`);
  }
  const shown = redactDatabaseUrl(value);
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError(`KLUIS_DATABASE_URL: only PostgreSQL is supported; ${form} (got ${shown})`);
  }
  if (!url.hostname && !url.searchParams.get('host')) throw new ConfigError(`KLUIS_DATABASE_URL: no host; ${form} (got ${shown})`);
  let database: string;
  try {
    database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  } catch {
    throw new ConfigError(`KLUIS_DATABASE_URL: malformed database name; ${form} (got ${shown})`);
  }
  if (!database || database.includes('/')) throw new ConfigError(`KLUIS_DATABASE_URL: no database name; ${form} (got ${shown})`);
  return value;
}

/** Reads and checks the configuration; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? 'environment');
    throw new ConfigError(`${name}: ${issue.message} (got ${JSON.stringify(env[name] ?? null)})`);
  }
  const e = parsed.data;
  const trustedProxies = parseTrustedProxies(e.KLUIS_TRUSTED_PROXIES);
  const databaseUrl = parseDatabaseUrl(e.KLUIS_DATABASE_URL);
  const publicUrl = e.KLUIS_PUBLIC_URL ?? `http://${e.KLUIS_HOST.includes(':') ? `[${e.KLUIS_HOST}]` : e.KLUIS_HOST}:${e.KLUIS_PORT}`;
  let s3: Config['s3'];
  if (e.KLUIS_STORAGE === 'minio') {
    for (const name of ['KLUIS_S3_ENDPOINT', 'KLUIS_S3_ACCESS_KEY', 'KLUIS_S3_SECRET_KEY'] as const) {
      if (!e[name]) throw new ConfigError(`${name}: required when KLUIS_STORAGE=minio`);
    }
    s3 = { endpoint: e.KLUIS_S3_ENDPOINT!, accessKey: e.KLUIS_S3_ACCESS_KEY!, secretKey: e.KLUIS_S3_SECRET_KEY!, region: e.KLUIS_S3_REGION };
    if (e.KLUIS_S3_PAYLOAD_SIGNING === 'signed') s3.signPayloads = true;
  }
  const floor = defaultKdfFloor(e.KLUIS_ENV);
  const kdf = { opsLimit: e.KLUIS_KDF_OPS_LIMIT ?? floor.opsLimit, memLimit: e.KLUIS_KDF_MEM_LIMIT ?? floor.memLimit };
  if ((e.KLUIS_TLS_CERT === undefined) !== (e.KLUIS_TLS_KEY === undefined)) {
    throw new ConfigError(`${e.KLUIS_TLS_CERT === undefined ? 'KLUIS_TLS_CERT' : 'KLUIS_TLS_KEY'}: KLUIS_TLS_CERT and KLUIS_TLS_KEY go together`);
  }
  const certFile = readable('KLUIS_TLS_CERT', e.KLUIS_TLS_CERT);
  const keyFile = readable('KLUIS_TLS_KEY', e.KLUIS_TLS_KEY);
  const serverKeyFile = e.KLUIS_SERVER_KEY_FILE ? path.resolve(e.KLUIS_SERVER_KEY_FILE) : undefined;
  const metricsToken = e.KLUIS_METRICS_TOKEN || undefined;
  if (metricsToken !== undefined && !/^[\x21-\x7e]+$/.test(metricsToken)) {
    throw new ConfigError('KLUIS_METRICS_TOKEN: printable ASCII without spaces only (value not shown)');
  }
  const dataDir = path.resolve(e.KLUIS_DATA_DIR);
  if (e.KLUIS_ENV === 'production') {
    // Production refuses development shortcuts (docs/architecture.md §6), all listed at once.
    const problems = productionProblems({
      host: e.KLUIS_HOST, publicUrl, dataDir, kdf, tls: certFile !== undefined, trustedProxies, serverKeyFile, storage: e.KLUIS_STORAGE,
      allowEmbeddedStore: e.KLUIS_ALLOW_EMBEDDED_STORE === '1', s3, metricsToken,
    });
    if (problems.length > 0) throw new ConfigError(problems);
  }
  return {
    port: e.KLUIS_PORT,
    host: e.KLUIS_HOST,
    dataDir,
    env: e.KLUIS_ENV,
    storage: e.KLUIS_STORAGE,
    ...(s3 ? { s3 } : {}),
    publicUrl: publicUrl.replace(/\/$/, ''),
    logLevel: e.KLUIS_LOG_LEVEL,
    trustedProxies,
    ...(e.KLUIS_PACK_THRESHOLD !== undefined ? { packThresholdBytes: e.KLUIS_PACK_THRESHOLD } : {}),
    ...(databaseUrl ? { databaseUrl } : {}),
    kdf,
    ...(certFile && keyFile ? { tls: { certFile, keyFile } } : {}),
    ...(serverKeyFile ? { serverKeyFile } : {}),
    ...(metricsToken ? { metricsToken } : {}),
    auditRetentionYears: e.KLUIS_AUDIT_RETENTION_YEARS,
  };
}
