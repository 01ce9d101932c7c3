// Chunk transfer over HTTP against both blob stores (embedded fs, and a real S3 on 127.0.0.1): missing, framed
// batch upload and download, single PUT/GET, bad frames, and commits naming the uploaded chunks.
import test from 'ava';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { startLocalS3, type LocalS3 } from '../helpers/s3.js';
import { call, newOrg, newSpace, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';
import { encryptAll, pseudoRandom } from '../helpers/chunks.js';

let s3: LocalS3;
const servers: Record<string, RunningServer> = {};

test.before(async () => {
  await k.initCrypto();
  s3 = await startLocalS3();
  servers.fs = await startServer();
  servers.minio = await startServer({ KLUIS_STORAGE: 'minio', KLUIS_S3_ENDPOINT: s3.endpoint, KLUIS_S3_ACCESS_KEY: s3.accessKey, KLUIS_S3_SECRET_KEY: s3.secretKey });
});
test.afterEach.always((t) => {
  // When a step fails, show what the server logged (an S3 hiccup and a bug look alike from outside).
  if (!t.passed) for (const [name, s] of Object.entries(servers)) t.log(`${name} server log:\n${s.output().slice(-4000)}`);
});
test.after.always(async () => {
  for (const s of Object.values(servers)) await s.stop();
  await s3?.stop();
});

async function upload(srv: RunningServer, u: User, spaceId: string, body: Uint8Array) {
  const res = await fetch(`${srv.url}/api/v1/spaces/${spaceId}/chunks/upload`, { method: 'POST', headers: { authorization: `Bearer ${u.token}`, 'content-type': 'application/octet-stream' }, body });
  return { status: res.status, body: (await res.json()) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

for (const store of ['fs', 'minio'] as const) {
  test(`${store}: upload a batch, ask what is missing, download it back byte for byte, commit it`, async (t) => {
    const srv = servers[store]!;
    const { admin: a } = await newOrg(srv.url, srv.dataDir);
    const { spaceId, pair } = await newSpace(srv.url, a);
    const f = newFile();
    const chunks = encryptAll(f.sub, Array.from({ length: 300 }, (_, i) => pseudoRandom(i + 1, 1000 + i * 37)));
    const ids = chunks.map((c) => c.id);
    const before = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/chunks/missing`, { token: a.token, json: { ids } });
    t.deepEqual(before.body.missing, ids);
    const up = await upload(srv, a, spaceId, k.encodeFrames(chunks));
    t.is(up.status, 201);
    t.is(up.body.stored, 300);
    const again = await upload(srv, a, spaceId, k.encodeFrames(chunks.slice(0, 10)));
    t.is(again.body.duplicate, 10, 'a chunk is stored once');
    const after = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/chunks/missing`, { token: a.token, json: { ids } });
    t.deepEqual(after.body.missing, []);

    const res = await fetch(`${srv.url}/api/v1/spaces/${spaceId}/chunks/download`, { method: 'POST', headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ ids: ids.slice(50, 250) }) });
    t.is(res.status, 200);
    const frames = k.decodeFrames(new Uint8Array(await res.arrayBuffer()));
    t.is(frames.length, 200);
    const byId = new Map(chunks.map((c) => [c.id, c]));
    for (const fr of frames) t.true(k.bytesEqual(k.decryptChunk(f.sub, fr.id, fr.ciphertext), byId.get(fr.id)!.plaintext));

    // A large chunk goes up on its own.
    const [big] = encryptAll(f.sub, [pseudoRandom(99, 2 * 1024 * 1024)]);
    const put = await fetch(`${srv.url}/api/v1/spaces/${spaceId}/chunks/${big!.id}`, { method: 'PUT', headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/octet-stream' }, body: big!.ciphertext });
    t.is(put.status, 201);
    const get = await fetch(`${srv.url}/api/v1/spaces/${spaceId}/chunks/${big!.id}`, { headers: { authorization: `Bearer ${a.token}` } });
    t.true(k.bytesEqual(k.decryptChunk(f.sub, big!.id, new Uint8Array(await get.arrayBuffer())), big!.plaintext));

    const content = [...chunks.map((c) => [c.id, c.plaintext.length] as [string, number]), [big!.id, big!.plaintext.length] as [string, number]];
    const whole = k.concatBytes(...chunks.map((c) => c.plaintext), big!.plaintext);
    const v = version(a, spaceId, pair, 1, f, { parent: null, chunks: content, hash: k.contentHash(whole) });
    t.is((await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, json: { versions: [v.entry] } })).status, 201);
  });

  test(`${store}: truncated, lying, oversize and malformed frames are refused and store nothing`, async (t) => {
    const srv = servers[store]!;
    const { admin: a } = await newOrg(srv.url, srv.dataDir);
    const { spaceId } = await newSpace(srv.url, a);
    const f = newFile();
    const chunks = encryptAll(f.sub, Array.from({ length: 20 }, (_, i) => pseudoRandom(1000 + i, 4096)));
    const body = k.encodeFrames(chunks);
    const ids = chunks.map((c) => c.id);
    const cases: [string, Uint8Array, number][] = [
      ['cut inside the last ciphertext', body.subarray(0, body.length - 10), 400],
      ['cut inside a header', body.subarray(0, 4137 + 20), 400],
      ['the last frame claims more bytes than the body has', (() => { const b = body.slice(); new DataView(b.buffer).setUint32(19 * (36 + 4137) + 32, 4137 + 500); return b; })(), 400],
      ['a length over 2 MiB + 41', (() => { const b = body.slice(); new DataView(b.buffer).setUint32(32, 3 * 1024 * 1024); return b; })(), 413],
      ['a frame shorter than an envelope', (() => { const b = body.slice(); new DataView(b.buffer).setUint32(32, 10); return b; })(), 400],
      ['an id of zeros', (() => { const b = body.slice(); b.fill(0, 0, 32); return b; })(), 400],
    ];
    for (const [what, bad, status] of cases) {
      const r = await upload(srv, a, spaceId, bad);
      t.is(r.status, status, what);
      t.is(typeof r.body.error.code, 'string', what);
    }
    const wrongType = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/chunks/upload`, { token: a.token, raw: body, contentType: 'application/json' });
    t.is(wrongType.status, 415);
    t.is(wrongType.body.error.code, 'unsupported_media_type');
    const missing = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/chunks/missing`, { token: a.token, json: { ids } });
    t.deepEqual(missing.body.missing, ids, 'no refused batch stored anything');
    const unknown = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/chunks/download`, { token: a.token, json: { ids: [ids[0]] } });
    t.is(unknown.status, 404);
    t.deepEqual(unknown.body.missing, [ids[0]]);
    t.is((await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/chunks/missing`, { token: a.token, json: { ids: ['nothex'] } })).status, 400);
    const putNoLength = await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/chunks/xyz`, { token: a.token });
    t.is(putNoLength.status, 400);
  });
}
