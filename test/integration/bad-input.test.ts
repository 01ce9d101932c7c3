// Bad input gets a 4xx with {error:{code,message}}, never a 5xx, and changes nothing.
import test, { type ExecutionContext } from 'ava';
import http from 'node:http';
import zlib from 'node:zlib';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { admin, call, enterpriseNumber, login, newOrg, newSpace, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';

let srv: RunningServer;
let a: User;
let spaceId: string;
let pair: k.SpaceKeyPair;
test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
  a = (await newOrg(srv.url, srv.dataDir)).admin;
  ({ spaceId, pair } = await newSpace(srv.url, a));
  const r = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, json: { versions: [version(a, spaceId, pair, 1, newFile(), { parent: null }).entry] } });
  if (r.status !== 201) throw new Error('setup commit failed');
});
test.after.always(async () => {
  await srv?.stop();
});

function isError(t: ExecutionContext, res: { status: number; body: any }, status: number, code?: string) { // eslint-disable-line @typescript-eslint/no-explicit-any
  t.is(res.status, status, JSON.stringify(res.body));
  t.is(typeof res.body?.error?.code, 'string');
  t.is(typeof res.body?.error?.message, 'string');
  if (code) t.is(res.body.error.code, code);
}

const head = async () => (await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=0`, { token: a.token })).body.head as number;

test('malformed JSON answers 400 bad_request', async (t) => {
  for (const raw of ['{', '{"email": }', 'null x', '\u0000']) {
    isError(t, await call(srv.url, 'POST', '/api/v1/auth/prelogin', { raw }), 400, 'bad_request');
  }
  isError(t, await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, raw: '{"versions": [' }), 400, 'bad_request');
  t.is(await head(), 1);
});

test('wrong types, missing and unknown fields answer 400 validation_failed naming the field', async (t) => {
  const cases: [string, string, unknown][] = [
    ['POST', '/api/v1/auth/prelogin', { email: 42 }],
    ['POST', '/api/v1/auth/prelogin', { email: 'not-an-address' }],
    ['POST', '/api/v1/auth/prelogin', { email: 'a@b.be', extra: true }],
    ['POST', '/api/v1/auth/login', { email: 'a@b.be', authKey: 'short', deviceName: 'x' }],
    ['POST', '/api/v1/auth/signup', {}],
    ['POST', '/api/v1/auth/prelogin', []],
  ];
  for (const [method, url, json] of cases) {
    const res = await call(srv.url, method, url, { json });
    isError(t, res, 400, 'validation_failed');
  }
  const res = await call(srv.url, 'POST', '/api/v1/auth/prelogin', { json: { email: 42 } });
  t.regex(res.body.error.message, /^email:/);
  const commits: unknown[] = [
    { versions: [] },
    { versions: 'x' },
    { versions: [{ fileId: 'x' }] },
    { versions: [{ ...version(a, spaceId, pair, 1, newFile(), { parent: null }).entry, chunks: ['NOT-HEX'] }] },
    { versions: [{ ...version(a, spaceId, pair, 1, newFile(), { parent: null }).entry, keyEpoch: 1.5 }] },
    { versions: [{ ...version(a, spaceId, pair, 1, newFile(), { parent: null }).entry, manifest: 'not base64!' }] },
  ];
  for (const json of commits) isError(t, await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, json }), 400, 'validation_failed');
  t.is(await head(), 1, 'nothing was committed');
});

test('oversized bodies answer 413 payload_too_large', async (t) => {
  isError(t, await call(srv.url, 'POST', '/api/v1/auth/prelogin', { raw: JSON.stringify({ email: 'a@b.be', pad: 'x'.repeat(300_000) }) }), 413, 'payload_too_large');
  isError(t, await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, raw: JSON.stringify({ versions: [], pad: 'x'.repeat(33 * 1024 * 1024) }) }), 413, 'payload_too_large');
  t.is(await head(), 1);
});

test('bad ids in paths and queries are not found or refused, never a 500', async (t) => {
  isError(t, await call(srv.url, 'GET', '/api/v1/spaces/..%2F..%2Fetc', { token: a.token }), 404);
  isError(t, await call(srv.url, 'GET', `/api/v1/spaces/${'x'.repeat(5000)}`, { token: a.token }), 404);
  isError(t, await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=abc`, { token: a.token }), 400, 'validation_failed');
  isError(t, await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes?limit=99999999`, { token: a.token }), 400, 'validation_failed');
  isError(t, await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/files/nope/versions`, { token: a.token }), 404);
  isError(t, await call(srv.url, 'GET', '/api/v1/me', { token: 'x'.repeat(43) }), 401, 'unauthenticated');
  const malformed = await fetch(`${srv.url}/api/v1/me`, { headers: { authorization: 'Basic abc' } });
  t.is(malformed.status, 401);
});

test('a JSON body sent as another content type is not parsed and fails validation', async (t) => {
  isError(t, await call(srv.url, 'POST', '/api/v1/auth/prelogin', { raw: '{"email":"a@b.be"}', contentType: 'text/plain' }), 400, 'validation_failed');
});

/** A request with exactly these headers and bytes (fetch would not send a lying Content-Encoding or PROPFIND). */
function send(method: string, url: string, headers: Record<string, string>, body?: Uint8Array): Promise<{ status: number; body: any; headers: http.IncomingHttpHeaders }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return new Promise((resolve, reject) => {
    const req = http.request(srv.url + url, { method, headers: { ...headers, 'content-length': String(body?.length ?? 0) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON: the assertions on the shape fail
        }
        resolve({ status: res.statusCode!, body: parsed, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const chunkIds = (n: number, from = 1) => Array.from({ length: n }, (_, i) => (from + i).toString(16).padStart(64, '0'));

test('a body that does not decode as its Content-Encoding says answers 400, an unknown encoding 415', async (t) => {
  const json = (o: unknown) => Buffer.from(JSON.stringify(o));
  const endpoints: [string, unknown][] = [
    ['/api/v1/auth/prelogin', { email: 'a@b.be' }],
    [`/api/v1/spaces/${spaceId}/commits`, { versions: [] }],
    [`/api/v1/spaces/${spaceId}/chunks/missing`, { ids: chunkIds(1) }],
  ];
  for (const [url, payload] of endpoints) {
    const headers = (encoding: string) => ({ 'content-type': 'application/json', 'content-encoding': encoding, authorization: `Bearer ${a.token}` });
    const corrupt: [string, Uint8Array][] = [
      ['gzip', json(payload)],
      ['gzip', zlib.gzipSync(json(payload)).subarray(0, 12)],
      ['deflate', Buffer.from('not deflate data')],
      ['deflate', zlib.deflateSync(json(payload)).subarray(0, 4)],
      ['br', Buffer.from('not brotli data at all')],
      ['br', zlib.brotliCompressSync(json({ pad: 'x'.repeat(5000) })).subarray(0, 8)],
    ];
    for (const [encoding, bytes] of corrupt) {
      const res = await send('POST', url, headers(encoding), bytes);
      isError(t, res, 400, 'bad_request');
      t.regex(res.body.error.message, /Content-Encoding/, `${url} ${encoding}`);
    }
    for (const encoding of ['zstd', 'compress', 'gzip, br', 'x'.repeat(100)]) {
      const res = await send('POST', url, headers(encoding), zlib.gzipSync(json(payload)));
      isError(t, res, 415, 'unsupported_media_type');
    }
  }
  // Encodings we support still work.
  const ok = await send('POST', '/api/v1/auth/prelogin', { 'content-type': 'application/json', 'content-encoding': 'br' }, zlib.brotliCompressSync(json({ email: 'a@b.be' })));
  t.is(ok.status, 200, JSON.stringify(ok.body));
  t.is(await head(), 1);
});

test('chunk bodies sent as JSON or content-encoded answer 415 and store nothing', async (t) => {
  const [id] = chunkIds(1, 0x5151);
  const auth = { authorization: `Bearer ${a.token}` };
  const cases: [string, string, Record<string, string>, Uint8Array][] = [
    ['PUT', `/api/v1/spaces/${spaceId}/chunks/${id}`, { 'content-type': 'application/json' }, Buffer.from(JSON.stringify({ pad: 'x'.repeat(100) }))],
    ['PUT', `/api/v1/spaces/${spaceId}/chunks/${id}`, { 'content-type': 'application/json' }, new Uint8Array(100).fill(7)],
    ['PUT', `/api/v1/spaces/${spaceId}/chunks/${id}/`, { 'content-type': 'application/json; charset=utf-8' }, Buffer.from('{}'.padEnd(100))],
    ['PUT', `/api/v1/spaces/${spaceId}/chunks/${id}`, { 'content-type': 'application/octet-stream', 'content-encoding': 'gzip' }, zlib.gzipSync(new Uint8Array(100))],
    ['POST', `/api/v1/spaces/${spaceId}/chunks/upload`, { 'content-type': 'application/json' }, Buffer.from('{}')],
    ['POST', `/api/v1/spaces/${spaceId}/chunks/upload`, { 'content-type': 'application/octet-stream', 'content-encoding': 'br' }, zlib.brotliCompressSync(new Uint8Array(200))],
  ];
  for (const [method, url, headers, bytes] of cases) isError(t, await send(method, url, { ...auth, ...headers }, bytes), 415, 'unsupported_media_type');
  const missing = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/chunks/missing`, { token: a.token, json: { ids: [id] } });
  t.deepEqual(missing.body.missing, [id], 'nothing was stored');
});

test('405 and 501 answer the JSON error shape and keep the Allow header', async (t) => {
  const notAllowed = await send('DELETE', '/api/v1/spaces', { authorization: `Bearer ${a.token}` });
  isError(t, notAllowed, 405, 'method_not_allowed');
  t.deepEqual(notAllowed.headers.allow?.split(', ').sort(), ['GET', 'HEAD', 'POST']);
  t.regex(String(notAllowed.headers['content-type']), /^application\/json/);
  const put = await send('PUT', '/healthz', {});
  isError(t, put, 405, 'method_not_allowed');
  t.truthy(put.headers.allow?.includes('GET'));
  const unknown = await send('PROPFIND', '/api/v1/spaces', {});
  isError(t, unknown, 501, 'not_implemented');
  t.regex(String(unknown.headers['content-type']), /^application\/json/);
});

test('chunk id lists: 10,000 ids are answered, 10,001 refused with 400 validation_failed', async (t) => {
  const ids = chunkIds(10_000);
  const missing = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/chunks/missing`, { token: a.token, json: { ids } });
  t.is(missing.status, 200, JSON.stringify(missing.body).slice(0, 300));
  t.is(missing.body.missing.length, 10_000);
  // Pretty-printed JSON of 10,000 ids (about 700 KB) is within the limit of these two endpoints too.
  const download = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/chunks/download`, { token: a.token, raw: JSON.stringify({ ids }, null, 2) });
  isError(t, download, 404, 'not_found');
  t.is(download.body.missing.length, 10_000, 'the unknown ids are listed');
  for (const path of ['missing', 'download']) {
    const over = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/chunks/${path}`, { token: a.token, json: { ids: chunkIds(10_001) } });
    isError(t, over, 400, 'validation_failed');
    t.regex(over.body.error.message, /^ids: at most 10000 ids/);
  }
  // The larger limit is for these two endpoints only.
  isError(t, await call(srv.url, 'POST', '/api/v1/auth/prelogin', { raw: JSON.stringify({ email: 'a@b.be', pad: 'x'.repeat(700_000) }) }), 413, 'payload_too_large');
});

test('names with control characters, bidi overrides or only invisible text are refused naming the field', async (t) => {
  const bad = ['Dossiers\u0000', 'Doss\tiers', 'Dossiers\n', 'Factuur\u202Efdp.exe', 'a\u2066b\u2069', '\u200B', '\u200B\uFEFF\u2060', ' \u00A0 ', '\u001B[31mrood'];
  for (const name of bad) {
    const { res } = await newSpace(srv.url, a, name);
    isError(t, res, 400, 'validation_failed');
    t.regex(res.body.error.message, /^name: /, JSON.stringify(name));
  }
  for (const name of ['Café crème', 'Zoë’s dossiers 2025', '📁 Projecten 🇧🇪', 'Sociale dienst — OCMW']) {
    const { res } = await newSpace(srv.url, a, name);
    t.is(res.status, 201, `${name}: ${JSON.stringify(res.body)}`);
    t.is(res.body.name, name);
  }
  const listed = (await call(srv.url, 'GET', '/api/v1/spaces', { token: a.token })).body.spaces.map((s: { name: string }) => s.name);
  t.false(listed.some((n: string) => bad.includes(n)), 'no refused name was stored');
  // Device names (login; signup and recovery share the schema).
  const refused = await login(srv.url, a.email, a.password, 'laptop\u202E');
  isError(t, refused, 400, 'validation_failed');
  t.regex(refused.body.error.message, /^deviceName: /);
  t.is((await login(srv.url, a.email, a.password, 'Laptop van Zoë 💻')).status, 200);
  // Organisation names (kluis-admin).
  const err = await admin(srv.dataDir, ['org', 'create', '--name', 'OCMW\u202E Gent', '--enterprise-number', enterpriseNumber(), '--admin-email', 'x@example.be']).catch((e: { stdout?: string; stderr?: string }) => e);
  t.regex(`${err.stdout ?? ''}${err.stderr ?? ''}`, /name: must not contain bidirectional/);
});

test('e-mail addresses follow the sign-up rule everywhere: directory look-ups and kluis-admin invites refuse what could never sign up', async (t) => {
  for (const email of ['änne@gent.be', 'not an address', 'a@b']) {
    const res = await call(srv.url, 'GET', `/api/v1/directory?email=${encodeURIComponent(email)}`, { token: a.token });
    isError(t, res, 400, 'validation_failed');
    t.regex(res.body.error.message, /^email: /);
  }
  // The sign-up normalisation applies: spaces and capitals find the colleague.
  const found = await call(srv.url, 'GET', `/api/v1/directory?email=${encodeURIComponent(`  ${a.email.toUpperCase()} `)}`, { token: a.token });
  t.is(found.status, 200, JSON.stringify(found.body));
  t.is(found.body.email, a.email);
  const err = await admin(srv.dataDir, ['org', 'create', '--name', 'OCMW Aalst', '--enterprise-number', enterpriseNumber(), '--admin-email', 'änne@aalst.be']).catch((e: { stdout?: string; stderr?: string }) => e);
  t.regex(`${err.stdout ?? ''}${err.stderr ?? ''}`, /email: not an e-mail address/);
});
