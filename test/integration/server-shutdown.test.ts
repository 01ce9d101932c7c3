// Graceful shutdown (docs/architecture.md §8 "graceful shutdown finishes in-flight uploads"; docs/operations.md: on SIGTERM the
// server stops accepting connections, ends event streams, lets in-flight requests finish, writes a last signed audit
// checkpoint, closes the database and exits 0).
//
// A slow client streams a 2 MiB single-chunk PUT and a framed batch of 400 chunks on keep-alive connections (like
// the desktop client); SIGTERM arrives when half of each body is sent. Then: a new connection is refused while the
// uploads still run, both uploads are answered with success once their bodies are complete, the server exits 0
// soon after (it does not sit out the 20 s hard limit on connections that are idle by then), and after a restart on
// the same data directory every uploaded chunk reads back byte for byte and the audit trail verifies.
// Also: idle event-stream (SSE) clients do not hold a SIGTERM up.
import test from 'ava';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { admin, call, newOrg, newSpace } from '../helpers/api.js';
import { newFile } from '../helpers/files.js';
import { encryptAll, pseudoRandom } from '../helpers/chunks.js';
import { downloadAll, sleep, slowRequest } from '../helpers/crash-store.js';

const servers: RunningServer[] = [];
const dirs: string[] = [];
test.before(async () => {
  await k.initCrypto();
});
test.afterEach.always((t) => {
  if (!t.passed) for (const s of servers) t.log(`server log:\n${s.output().slice(-4000)}`);
});
test.after.always(async () => {
  for (const s of servers) await s.stop('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function start(dataDir: string): Promise<RunningServer> {
  const srv = await startServer({ KLUIS_DATA_DIR: dataDir, KLUIS_LOG_LEVEL: 'info' });
  servers.push(srv);
  return srv;
}

function exitOf(srv: RunningServer): Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }> {
  return new Promise((resolve) => {
    if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) resolve({ code: srv.proc.exitCode, signal: srv.proc.signalCode, at: performance.now() });
    else srv.proc.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() }));
  });
}

/**
 * Tries a NEW connection (no keep-alive reuse): 'refused', 'reset' (accepted by the kernel just before the listener
 * closed, then dropped), or the status of /healthz.
 */
function probe(url: string): Promise<'refused' | 'reset' | number> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}/healthz`, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNREFUSED' ? resolve('refused') : err.code === 'ECONNRESET' ? resolve('reset') : reject(err)));
    req.setTimeout(5000, () => req.destroy(new Error('probe timed out')));
  });
}

test('SIGTERM mid-upload: new connections are refused, the in-flight uploads complete, the server exits 0 promptly, the chunks are there after a restart', async (t) => {
  t.timeout(3 * 60_000);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'kluis-shutdown-'));
  dirs.push(dataDir);
  const srv = await start(dataDir);
  const { admin: a } = await newOrg(srv.url, dataDir);
  const { spaceId } = await newSpace(srv.url, a);
  const f = newFile();
  const [big] = encryptAll(f.sub, [pseudoRandom(11, 2 * 1024 * 1024)]);
  const small = encryptAll(f.sub, Array.from({ length: 400 }, (_, i) => pseudoRandom(100 + i, 2000 + 13 * i)));
  const batchBody = k.encodeFrames(small);
  // Keep-alive connections, as the desktop client has them.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const headers = { authorization: `Bearer ${a.token}`, 'content-type': 'application/octet-stream', 'x-kluis-client': 'kluis-test/0.1.0' };

  const put = slowRequest(`${srv.url}/api/v1/spaces/${spaceId}/chunks/${big!.id}`, { method: 'PUT', headers, body: big!.ciphertext, pieceBytes: 64 * 1024, pauseMs: 40, agent });
  const batch = slowRequest(`${srv.url}/api/v1/spaces/${spaceId}/chunks/upload`, { method: 'POST', headers, body: batchBody, pieceBytes: 32 * 1024, pauseMs: 40, agent });
  await Promise.all([put.reached(big!.ciphertext.length / 2), batch.reached(batchBody.length / 2)]);
  put.pause();
  batch.pause();
  t.is(srv.proc.exitCode, null);
  const exited = exitOf(srv);
  srv.proc.kill('SIGTERM');

  // Shutdown started: the listener goes away while both bodies are still half sent.
  let refused = false;
  for (let i = 0; i < 100 && !refused; i++) {
    refused = (await probe(srv.url)) === 'refused';
    if (!refused) await sleep(20);
  }
  t.true(refused, 'a new connection during shutdown is refused');
  t.is(srv.proc.exitCode, null, 'still running while uploads are in flight');
  t.true(put.sent() < big!.ciphertext.length && batch.sent() < batchBody.length, 'both bodies were unfinished when shutdown began');

  put.resume();
  batch.resume();
  const [putRes, batchRes] = await Promise.all([
    put.response.catch((err: Error) => Promise.reject(new Error(`the in-flight PUT failed: ${err.message}`))),
    batch.response.catch((err: Error) => Promise.reject(new Error(`the in-flight batch upload failed: ${err.message}`))),
  ]);
  const answeredAt = performance.now();
  t.is(putRes.status, 201, putRes.body);
  t.deepEqual(JSON.parse(putRes.body), { stored: true });
  t.is(batchRes.status, 201, batchRes.body);
  t.deepEqual(JSON.parse(batchRes.body), { stored: 400, duplicate: 0, bytes: small.reduce((n, c) => n + c.ciphertext.length, 0) });

  const exit = await exited;
  const lingered = exit.at - answeredAt;
  t.log(`exit ${exit.code} ${Math.round(lingered)} ms after the last answer`);
  t.is(exit.code, 0, 'graceful exit code');
  t.true(lingered < 5000, `exits soon after the last in-flight request (${Math.round(lingered)} ms), not after the 20 s connection limit`);
  agent.destroy();

  // Restart on the same data: every chunk is there, byte for byte; the shutdown wrote its checkpoint.
  const again = await start(dataDir);
  const got = await downloadAll(again.url, a.token, spaceId, [big!.id, ...small.map((c) => c.id)]);
  t.true(k.bytesEqual(got.get(big!.id)!, big!.ciphertext), 'the large chunk of the interrupted PUT');
  t.is(small.filter((c) => !k.bytesEqual(got.get(c.id) ?? new Uint8Array(), c.ciphertext)).length, 0, 'every chunk of the interrupted batch');
  const uploads = await call(again.url, 'GET', `/api/v1/orgs/${a.orgId}/audit?action=chunks.upload`, { token: a.token });
  t.deepEqual(uploads.body.entries.map((e: { outcome: string }) => e.outcome), ['success', 'success'], 'both uploads audited as successes');
  t.is(await again.stop(), 0);
  const verify = await admin(dataDir, ['audit', 'verify']);
  t.true(verify.ok, JSON.stringify(verify));
  t.true(verify.checkpoints >= 2, 'each shutdown signed a checkpoint');
});

test('SIGTERM with idle event-stream clients: the streams end and the server exits 0 promptly', async (t) => {
  t.timeout(60_000);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'kluis-shutdown-'));
  dirs.push(dataDir);
  const srv = await start(dataDir);
  const { admin: a } = await newOrg(srv.url, dataDir);
  await newSpace(srv.url, a);
  const streams = await Promise.all([0, 1, 2].map(async () => {
    const res = await fetch(`${srv.url}/api/v1/events`, { headers: { authorization: `Bearer ${a.token}` } });
    t.is(res.status, 200);
    const reader = res.body!.getReader();
    t.true(new TextDecoder().decode((await reader.read()).value).includes('event: hello'));
    return reader;
  }));
  // An idle keep-alive connection too (a client between two requests).
  t.is((await fetch(`${srv.url}/healthz`)).status, 200);

  const exited = exitOf(srv);
  const t0 = performance.now();
  srv.proc.kill('SIGTERM');
  const ends = await Promise.all(streams.map(async (reader) => {
    for (;;) {
      const { done } = await reader.read();
      if (done) return performance.now() - t0;
    }
  }));
  const exit = await exited;
  const took = exit.at - t0;
  t.log(`streams ended after ${ends.map((ms) => Math.round(ms)).join(', ')} ms; exit ${exit.code} after ${Math.round(took)} ms`);
  t.is(exit.code, 0);
  t.true(ends.every((ms) => ms < 3000), 'every event stream ended cleanly and soon');
  t.true(took < 5000, `exited promptly (${Math.round(took)} ms)`);
});
