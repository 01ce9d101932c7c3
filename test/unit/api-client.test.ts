// The sync client's HTTP transport (desktop/src/api/client.ts, http-transport.ts) against a real HTTP server on a free
// port: a redirect is refused with an error that says so (and its target is never asked), bodies reach the server
// whole, Node's fetch is never loaded (issue 22: undici and its WebAssembly parser cost a short `kluis` process 0.24 s
// of CPU), the server-sent events stream ends when its signal aborts, also after a garbage collection (the abort once
// got lost in fetch: nodejs/node#55428), and a server that stays silent fails the request.
import test from 'ava';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';
import { ApiClient, ApiRequestError, NetworkError } from '../../desktop/dist/api/client.js';
import { send } from '../../desktop/dist/api/http-transport.js';
import { isTransient } from '../../desktop/dist/sync/remote.js';
import { repoRoot } from '../helpers/server.js';

const run = promisify(execFile);

interface Seen {
  method: string;
  url: string;
  bytes: number;
  auth: string | undefined;
}

async function withServer(t: { teardown(f: () => void): void }, handle: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void, keepAliveMs?: number) {
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
  if (keepAliveMs !== undefined) server.keepAliveTimeout = keepAliveMs;
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
  // A DELETE with a body (remove-member): Node frames neither a length nor chunks for DELETE of its own, and the body
  // read as a next request was a bare HTTP 400 (found by sync-delta's key rotation).
  const removal = { userId: 'u-1', wraps: [{ pad: 'y'.repeat(3000) }] };
  t.deepEqual(await client.json('DELETE', '/api/v1/spaces/s/members', removal), { stored: Buffer.byteLength(JSON.stringify(removal)), duplicate: 0 });
  t.is(seen[2]!.bytes, Buffer.byteLength(JSON.stringify(removal)));
});

test('the client never loads Node\'s fetch (undici): JSON, framed and paced uploads, downloads and events', async (t) => {
  // A child process: this one (ava, tsx) may have loaded undici already. moduleLoadList names every internal module
  // a process has loaded, undici among them once fetch has been used.
  const script = `
    import http from 'node:http';
    import { ApiClient } from ${JSON.stringify(pathToFileURL(path.join(repoRoot, 'desktop/dist/api/client.js')).href)};
    const server = http.createServer((req, res) => {
      if (req.url === '/api/v1/events') { res.writeHead(200, { 'content-type': 'text/event-stream' }); res.write('event: hello\\ndata: {}\\n\\n'); return; }
      req.resume();
      req.on('end', () => res.end(req.url.endsWith('/download') ? '' : '{"stored":1,"duplicate":0,"missing":[]}'));
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const c = new ApiClient({ baseUrl: 'http://127.0.0.1:' + server.address().port });
    await c.json('POST', '/api/v1/spaces/s/chunks/missing', { ids: [] });
    await c.uploadFramed('s', new Uint8Array(200000));
    await c.uploadFramed('s', new Uint8Array(200000), async () => {});
    for await (const f of c.downloadChunks('s', [])) void f;
    const ac = new AbortController();
    for await (const e of c.events(ac.signal)) { void e; break; }
    server.closeAllConnections();
    server.close();
    console.log(JSON.stringify(process.moduleLoadList.filter((m) => m.includes('undici'))));
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { env: { PATH: process.env.PATH ?? '' } });
  t.deepEqual(JSON.parse(stdout), []);
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

test('a server that sends nothing fails the request with ETIMEDOUT; the client calls that a NetworkError', async (t) => {
  const server = http.createServer(() => undefined); // never answers
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/spaces`);
  const started = Date.now();
  const err = await t.throwsAsync(send(url, { method: 'GET', headers: {}, silenceMs: 300 }));
  t.is((err as NodeJS.ErrnoException).code, 'ETIMEDOUT');
  t.true(Date.now() - started >= 250);
  t.true(isTransient(new NetworkError(`cannot reach ${url.origin}: ${err!.message}`)));
  t.true(isTransient(err));
});

test('connections the server closed while idle are not reused: requests spaced past its keep-alive all succeed', async (t) => {
  const { client, seen } = await withServer(t, (_req, res) => res.end('{"ok":true}'), 50);
  for (let i = 0; i < 4; i++) {
    t.deepEqual(await client.json('GET', `/api/v1/ping/${i}`), { ok: true });
    await new Promise((resolve) => setTimeout(resolve, 120));
  }
  t.is(seen.length, 4);
});
