// The sync client's HTTP transport (desktop/src/api/client.ts) against a real HTTP server on a free port: a redirect
// is refused with an error that says so (and its target is never asked), bodies reach the server whole, and fetch
// sends the request it is given, not a clone whose body is a tee of it (issue 22: a copy of every JSON body); the
// server-sent events stream still ends when its signal aborts after a garbage collection (nodejs/node#55428).
import test from 'ava';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { ApiClient, ApiRequestError, NetworkError } from '../../desktop/dist/api/client.js';

interface Seen {
  method: string;
  url: string;
  bytes: number;
  auth: string | undefined;
}

async function withServer(t: { teardown(f: () => void): void }, handle: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      seen.push({ method: req.method!, url: req.url!, bytes: body.length, auth: req.headers.authorization });
      handle(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const client = new ApiClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: 'secret-token' });
  return { client, seen };
}

test('a redirect is refused with an error naming it, and its target is never requested', async (t) => {
  const { client, seen } = await withServer(t, (req, res) => {
    if (req.url === '/api/v1/spaces') {
      res.writeHead(302, { location: '/elsewhere' });
      res.end();
    } else res.end('{}');
  });
  const err = await t.throwsAsync(client.json('GET', '/api/v1/spaces'));
  t.true(err instanceof NetworkError);
  t.regex(err!.message, /answered with a redirect/);
  t.deepEqual(seen.map((s) => s.url), ['/api/v1/spaces']);
});

test('JSON and framed bodies reach the server whole; an error answer becomes ApiRequestError with its code', async (t) => {
  const { client, seen } = await withServer(t, (req, res, body) => {
    if (req.url!.endsWith('/commits')) {
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'conflict', message: 'parent is not the head' }, conflicts: [] }));
    } else {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ stored: body.length, duplicate: 0 }));
    }
  });
  const big = { versions: Array.from({ length: 2000 }, (_, i) => ({ i, pad: 'x'.repeat(500) })) };
  const err = await t.throwsAsync(client.json('POST', '/api/v1/spaces/s/commits', big));
  t.true(err instanceof ApiRequestError);
  t.is((err as ApiRequestError).status, 409);
  t.is((err as ApiRequestError).code, 'conflict');
  t.is(seen[0]!.bytes, Buffer.byteLength(JSON.stringify(big)));
  t.is(seen[0]!.auth, 'Bearer secret-token');
  const framed = new Uint8Array(3 * 1024 * 1024).fill(7);
  t.deepEqual(await client.uploadFramed('s', framed), { stored: framed.length, duplicate: 0 });
  t.is(seen[1]!.bytes, framed.length);
});

test('fetch sends the request it is given: no request body is teed into a clone', async (t) => {
  const { client } = await withServer(t, (_req, res) => res.end('{}'));
  const tee = ReadableStream.prototype.tee;
  let tees = 0;
  ReadableStream.prototype.tee = function (this: ReadableStream) {
    tees++;
    return tee.call(this);
  };
  t.teardown(() => {
    ReadableStream.prototype.tee = tee;
  });
  await client.json('POST', '/api/v1/spaces/s/chunks/missing', { ids: ['a'.repeat(64)] });
  await client.uploadFramed('s', new Uint8Array(1024));
  t.is(tees, 0);
});

test('the events stream ends when its signal aborts, also after a garbage collection', async (t) => {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('event: hello\ndata: {}\n\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const client = new ApiClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const ac = new AbortController();
  const seen: string[] = [];
  const loop = (async () => {
    for await (const e of client.events(ac.signal)) seen.push(e.event);
  })();
  while (!seen.length) await new Promise((resolve) => setTimeout(resolve, 10));
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  ac.abort();
  const outcome = await Promise.race([loop.then(() => 'ended', (err: Error) => err.name), new Promise((resolve) => setTimeout(() => resolve('still reading after 3 s'), 3000))]);
  t.is(outcome, 'AbortError');
  t.deepEqual(seen, ['hello']);
});
