// Environments (issue 18 item 4): production refuses development shortcuts, one line per problem and all of them at
// once (exit 2), and starts when everything is set: its own TLS, or a trusted TLS-terminating proxy; the key seed from
// a configured secret file; /metrics behind its token. Real server processes on free ports, temp dirs.
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { runServerExpectingExit, startServer } from '../helpers/server.js';

const root = mkdtempSync(path.join(tmpdir(), 'kluis-env-'));
const secrets = path.join(root, 'secrets');
mkdirSync(secrets, { mode: 0o700 });
const keyFile = path.join(secrets, 'server.key');
const seed = new Uint8Array(32).map((_, i) => (i * 37 + 11) & 255);
writeFileSync(keyFile, seed, { mode: 0o600 });
const TOKEN = 'metrics-token-0123456789abcdefghijklmnop';
let dirs = 0;
const newDataDir = () => path.join(root, `data-${++dirs}`);

test.after.always(() => rmSync(root, { recursive: true, force: true }));

/** A production configuration that passes: loopback, the key seed as a secret file, the fs store allowed, a token. */
function production(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = {
    KLUIS_ENV: 'production',
    KLUIS_DATA_DIR: newDataDir(),
    KLUIS_HOST: '127.0.0.1',
    KLUIS_PUBLIC_URL: 'https://kluis.example.be',
    KLUIS_SERVER_KEY_FILE: keyFile,
    KLUIS_ALLOW_EMBEDDED_STORE: '1',
    KLUIS_METRICS_TOKEN: TOKEN,
    ...extra,
  };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** Starts production with `extra` and expects exactly these variables named, one line each, exit code 2. */
async function refuses(t: ExecutionContext, extra: Record<string, string | undefined>, names: string[], detail?: RegExp): Promise<string[]> {
  const { code, output } = await runServerExpectingExit(production(extra));
  t.is(code, 2, output);
  const lines = output.trim().split('\n');
  t.deepEqual(lines.map((l) => /^kluis-server: configuration error: (KLUIS_[A-Z0-9_]+):/.exec(l)?.[1]), names, output);
  if (detail) t.regex(output, detail);
  return lines;
}

test.serial('production refuses weak KDF limits (below Argon2id MODERATE), naming each', async (t) => {
  await refuses(t, { KLUIS_KDF_OPS_LIMIT: '2' }, ['KLUIS_KDF_OPS_LIMIT'], /at least 3 Argon2id passes .*got 2/);
  await refuses(t, { KLUIS_KDF_OPS_LIMIT: '1', KLUIS_KDF_MEM_LIMIT: '67108864' }, ['KLUIS_KDF_OPS_LIMIT', 'KLUIS_KDF_MEM_LIMIT'], /at least 268435456 bytes .*got 67108864/);
});

test.serial('production refuses plain HTTP off loopback, and an http:// public URL', async (t) => {
  await refuses(t, { KLUIS_HOST: '0.0.0.0' }, ['KLUIS_HOST'], /plain HTTP on 0\.0\.0\.0 .*KLUIS_TLS_CERT and KLUIS_TLS_KEY.*KLUIS_TRUSTED_PROXIES/);
  // A proxy named but the public address not https: still plain HTTP all the way.
  await refuses(t, { KLUIS_HOST: '0.0.0.0', KLUIS_TRUSTED_PROXIES: '10.0.4.10', KLUIS_PUBLIC_URL: 'http://kluis.example.be' }, ['KLUIS_PUBLIC_URL', 'KLUIS_HOST']);
});

test.serial('production refuses a key seed it would generate beside the database, or one inside the data directory', async (t) => {
  await refuses(t, { KLUIS_SERVER_KEY_FILE: undefined }, ['KLUIS_SERVER_KEY_FILE'], /never generates one beside the database/);
  const dataDir = newDataDir();
  await refuses(t, { KLUIS_DATA_DIR: dataDir, KLUIS_SERVER_KEY_FILE: path.join(dataDir, 'audit-signing.key') }, ['KLUIS_SERVER_KEY_FILE'], /inside the data directory/);
  await refuses(t, { KLUIS_SERVER_KEY_FILE: path.join(secrets, 'missing.key') }, ['KLUIS_SERVER_KEY_FILE'], /does not exist; production never generates/);
});

test.serial("production refuses the object store's default credentials", async (t) => {
  await refuses(t, { KLUIS_STORAGE: 'minio', KLUIS_S3_ENDPOINT: 'http://127.0.0.1:9', KLUIS_S3_ACCESS_KEY: 'kluis-prod', KLUIS_S3_SECRET_KEY: 'minioadmin' }, ['KLUIS_S3_SECRET_KEY'], /default credentials/);
});

test.serial('production refuses the embedded blob store unless allowed', async (t) => {
  await refuses(t, { KLUIS_ALLOW_EMBEDDED_STORE: undefined }, ['KLUIS_STORAGE'], /KLUIS_ALLOW_EMBEDDED_STORE=1/);
});

test.serial('production refuses an open /metrics, and a short token (without printing it)', async (t) => {
  await refuses(t, { KLUIS_METRICS_TOKEN: undefined }, ['KLUIS_METRICS_TOKEN'], /open \/metrics/);
  const lines = await refuses(t, { KLUIS_METRICS_TOKEN: 'short-secret' }, ['KLUIS_METRICS_TOKEN'], /at least 32 characters, got 12/);
  t.false(lines.join('\n').includes('short-secret'));
});

test.serial('production lists every problem at once, one line each', async (t) => {
  const { code, output } = await runServerExpectingExit({ KLUIS_ENV: 'production', KLUIS_DATA_DIR: newDataDir(), KLUIS_HOST: '0.0.0.0', KLUIS_KDF_OPS_LIMIT: '1' });
  t.is(code, 2);
  const names = output.trim().split('\n').map((l) => /^kluis-server: configuration error: (KLUIS_[A-Z0-9_]+):/.exec(l)?.[1]);
  t.deepEqual(names, ['KLUIS_KDF_OPS_LIMIT', 'KLUIS_PUBLIC_URL', 'KLUIS_HOST', 'KLUIS_SERVER_KEY_FILE', 'KLUIS_STORAGE', 'KLUIS_METRICS_TOKEN'], output);
});

test.serial('production starts with everything set: the configured key seed, nothing generated, /metrics behind its token', async (t) => {
  await k.initCrypto();
  const env = production();
  const srv = await startServer(env);
  try {
    t.regex(srv.output(), /listening on http:\/\/127\.0\.0\.1:\d+ \(env production/);
    const info = (await (await fetch(`${srv.url}/api/v1/info`)).json()) as { env: string; kdf: k.KdfParams; auditPublicKey: string };
    t.is(info.env, 'production');
    t.deepEqual(info.kdf, { opsLimit: k.KDF_MODERATE.opsLimit, memLimit: k.KDF_MODERATE.memLimit });
    t.is(info.auditPublicKey, k.serverSigningKeyFromSeed(seed).publicKey, 'checkpoints are signed with the configured seed');
    t.false(existsSync(path.join(env.KLUIS_DATA_DIR!, 'audit-signing.key')), 'no seed generated beside the database');
    const open = await fetch(`${srv.url}/metrics`);
    t.is(open.status, 401);
    t.is(((await open.json()) as { error: { code: string } }).error.code, 'unauthenticated');
    t.is((await fetch(`${srv.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}x` } })).status, 401);
    t.is((await fetch(`${srv.url}/metrics`, { headers: { authorization: TOKEN } })).status, 401, 'the token alone, without Bearer');
    const scraped = await fetch(`${srv.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    t.is(scraped.status, 200);
    t.regex(await scraped.text(), /kluis_http_requests_total/);
  } finally {
    t.is(await srv.stop(), 0);
  }
});

test.serial('production starts off loopback behind a trusted TLS-terminating proxy (https public URL)', async (t) => {
  const srv = await startServer(production({ KLUIS_HOST: '0.0.0.0', KLUIS_TRUSTED_PROXIES: 'loopback' }));
  try {
    const port = new URL(srv.url).port;
    t.is((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  } finally {
    t.is(await srv.stop(), 0);
  }
});

test.serial('production starts off loopback with its own TLS (KLUIS_TLS_CERT, KLUIS_TLS_KEY) and answers over HTTPS', async (t) => {
  const cert = path.join(secrets, 'tls.crt');
  const key = path.join(secrets, 'tls.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const srv = await startServer(production({ KLUIS_HOST: '0.0.0.0', KLUIS_TLS_CERT: cert, KLUIS_TLS_KEY: key }));
  try {
    t.regex(srv.url, /^https:\/\/0\.0\.0\.0:\d+$/);
    const port = Number(new URL(srv.url).port);
    const body = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/healthz', ca: readFileSync(cert) }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d));
        res.on('end', () => resolve(`${res.statusCode} ${res.headers['strict-transport-security'] ? 'hsts ' : ''}${text}`));
      });
      req.on('error', reject);
      req.end();
    });
    t.is(body, '200 hsts {"status":"ok"}');
    const plain = await fetch(`http://127.0.0.1:${port}/healthz`).then(() => 'answered', () => 'refused');
    t.is(plain, 'refused', 'no plain HTTP on the TLS port');
  } finally {
    t.is(await srv.stop(), 0);
  }
});

test.serial('TLS and key settings are checked in every environment: a lone certificate, an unreadable file', async (t) => {
  for (const [env, name] of [
    [{ KLUIS_TLS_CERT: keyFile }, 'KLUIS_TLS_KEY'],
    [{ KLUIS_TLS_CERT: path.join(secrets, 'none.crt'), KLUIS_TLS_KEY: keyFile }, 'KLUIS_TLS_CERT'],
    [{ KLUIS_KDF_MEM_LIMIT: '4096' }, 'KLUIS_KDF_MEM_LIMIT'],
  ] as const) {
    const { code, output } = await runServerExpectingExit({ KLUIS_DATA_DIR: newDataDir(), ...env });
    t.is(code, 2, output);
    t.regex(output.trim(), new RegExp(`^kluis-server: configuration error: ${name}:[^\\n]+$`));
  }
});

test.serial('outside production: /metrics stays open unless a token is set; KLUIS_KDF_* set the floor the server prescribes', async (t) => {
  const open = await startServer({ KLUIS_KDF_OPS_LIMIT: '4', KLUIS_KDF_MEM_LIMIT: '134217728' });
  try {
    t.is((await fetch(`${open.url}/metrics`)).status, 200);
    const info = (await (await fetch(`${open.url}/api/v1/info`)).json()) as { kdf: k.KdfParams };
    t.deepEqual(info.kdf, { opsLimit: 4, memLimit: 134_217_728 });
    t.true(existsSync(path.join(open.dataDir, 'audit-signing.key')), 'development and test generate the seed in the data directory');
  } finally {
    await open.stop();
  }
  const guarded = await startServer({ KLUIS_ENV: 'acceptance', KLUIS_METRICS_TOKEN: 'short' });
  try {
    t.is((await fetch(`${guarded.url}/metrics`)).status, 401);
    t.is((await fetch(`${guarded.url}/metrics`, { headers: { authorization: 'Bearer short' } })).status, 200);
  } finally {
    await guarded.stop();
  }
});
