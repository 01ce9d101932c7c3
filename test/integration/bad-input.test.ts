// Bad input gets a 4xx with {error:{code,message}}, never a 5xx, and changes nothing.
import test, { type ExecutionContext } from 'ava';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { call, newOrg, newSpace, type User } from '../helpers/api.js';
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
