// GET /metrics (docs/operations.md "Health and monitoring", docs/api.md): Prometheus text with
// kluis_http_requests_total{method,route,status}, kluis_http_request_duration_seconds{method,route},
// kluis_sse_clients and Node process metrics. It needs no session (operators keep it on an internal network), so
// it must carry nothing personal: route TEMPLATES as labels, never concrete paths with ids, and no tokens or
// e-mail addresses anywhere.
import test from 'ava';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { call, login, newColleague, newOrg, newSpace } from '../helpers/api.js';
import { encryptAll, pseudoRandom } from '../helpers/chunks.js';
import { newFile } from '../helpers/files.js';

let srv: RunningServer;
test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
});
test.afterEach.always((t) => {
  if (!t.passed && srv) t.log(`server log:\n${srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await srv?.stop();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (samples only; # HELP / # TYPE lines are returned apart). */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

async function scrape(): Promise<{ text: string; samples: Sample[]; types: Map<string, string>; contentType: string | null; status: number }> {
  const res = await fetch(`${srv.url}/metrics`); // no session: an internal scraper has none
  const text = await res.text();
  return { text, ...parseMetrics(text), contentType: res.headers.get('content-type'), status: res.status };
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const s = samples.find((x) => x.name === name && Object.entries(labels).every(([key, v]) => x.labels[key] === v));
  return s?.value;
}

test('/metrics: request counters and latency histograms by route template, no ids, tokens or e-mail addresses', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const colleague = await newColleague(srv.url, a);
  const relogin = await login(srv.url, colleague.email, colleague.password);
  t.is(relogin.status, 200);
  const { spaceId } = await newSpace(srv.url, a);
  const { spaceId: otherSpace } = await newSpace(srv.url, a, 'Tweede');
  // Reads of two different spaces: one route, two concrete paths.
  for (const id of [spaceId, otherSpace, spaceId]) t.is((await call(srv.url, 'GET', `/api/v1/spaces/${id}`, { token: a.token })).status, 200);
  // A chunk up and down by its id.
  const f = newFile();
  const [c] = encryptAll(f.sub, [pseudoRandom(7, 700 * 1024)]);
  const put = await fetch(`${srv.url}/api/v1/spaces/${spaceId}/chunks/${c!.id}`, { method: 'PUT', headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/octet-stream' }, body: c!.ciphertext });
  t.is(put.status, 201);
  const get = await fetch(`${srv.url}/api/v1/spaces/${spaceId}/chunks/${c!.id}`, { headers: { authorization: `Bearer ${a.token}` } });
  t.is(get.status, 200);
  await get.arrayBuffer();
  // Refusals: a bad token (401), an unknown space (404), an unknown endpoint with an id in its path.
  const badToken = `kt_${'A'.repeat(43)}`;
  t.is((await call(srv.url, 'GET', '/api/v1/spaces', { token: badToken })).status, 401);
  const unknownSpace = k.newId();
  t.is((await call(srv.url, 'GET', `/api/v1/spaces/${unknownSpace}`, { token: a.token })).status, 404);
  const strayPath = `/api/v1/nothing/${k.newId()}`;
  t.is((await call(srv.url, 'GET', strayPath)).status, 404);

  const m = await scrape();
  t.is(m.status, 200);
  t.regex(m.contentType ?? '', /^text\/plain; version=0\.0\.4/, 'the Prometheus text exposition format');
  t.is(m.types.get('kluis_http_requests_total'), 'counter');
  t.is(m.types.get('kluis_http_request_duration_seconds'), 'histogram');
  t.is(m.types.get('kluis_sse_clients'), 'gauge');
  t.truthy(m.samples.find((s) => s.name === 'kluis_process_cpu_user_seconds_total'), 'Node process metrics, prefixed');

  // Counters per (method, route template, status).
  t.is(value(m.samples, 'kluis_http_requests_total', { method: 'GET', route: '/api/v1/spaces/:spaceId', status: '200' }), 3);
  t.is(value(m.samples, 'kluis_http_requests_total', { method: 'GET', route: '/api/v1/spaces/:spaceId', status: '404' }), 1);
  t.is(value(m.samples, 'kluis_http_requests_total', { method: 'PUT', route: '/api/v1/spaces/:spaceId/chunks/:chunkId', status: '201' }), 1);
  t.is(value(m.samples, 'kluis_http_requests_total', { method: 'GET', route: '/api/v1/spaces/:spaceId/chunks/:chunkId', status: '200' }), 1);
  t.is(value(m.samples, 'kluis_http_requests_total', { method: 'GET', route: '/api/v1/spaces', status: '401' }), 1);
  t.true((value(m.samples, 'kluis_http_requests_total', { method: 'POST', route: '/api/v1/auth/signup', status: '201' }) ?? 0) >= 2);
  t.true((value(m.samples, 'kluis_http_requests_total', { method: 'POST', route: '/api/v1/auth/login', status: '200' }) ?? 0) >= 1);
  t.true((value(m.samples, 'kluis_http_requests_total', { method: 'GET', route: 'unmatched', status: '404' }) ?? 0) >= 1, 'an unknown path is counted without its path');
  // Latency histogram per (method, route template): buckets, sum and count agree with the counter.
  t.is(value(m.samples, 'kluis_http_request_duration_seconds_count', { method: 'GET', route: '/api/v1/spaces/:spaceId' }), 4);
  t.is(value(m.samples, 'kluis_http_request_duration_seconds_bucket', { method: 'GET', route: '/api/v1/spaces/:spaceId', le: '+Inf' }), 4);
  t.true((value(m.samples, 'kluis_http_request_duration_seconds_sum', { method: 'PUT', route: '/api/v1/spaces/:spaceId/chunks/:chunkId' }) ?? 0) > 0);

  // Route labels are templates: every one is a registered route pattern or "unmatched".
  const routes = new Set(m.samples.filter((s) => s.name.startsWith('kluis_http_')).map((s) => s.labels.route));
  for (const r of routes) t.true(r === 'unmatched' || /^\/[a-z0-9/:_-]*$/i.test(r!) && !/[A-Za-z0-9_-]{16,}/.test(r!.replace(/:[A-Za-z]+/g, '')), `route label ${r} is a template`);
  // Nothing personal or secret anywhere in the text.
  const secrets: [string, string][] = [
    ['space id', spaceId], ['space id', otherSpace], ['unknown space id', unknownSpace], ['chunk id', c!.id], ['stray path', strayPath],
    ['org id', a.orgId], ['user id', a.userId], ['user id', colleague.userId], ['device id', a.deviceId],
    ['token', a.token], ['token', colleague.token], ['token', relogin.body.token], ['refused token', badToken],
    ['e-mail', a.email], ['e-mail', colleague.email], ['e-mail domain', '@example.be'],
  ];
  for (const [what, s] of secrets) t.false(m.text.includes(s), `no ${what} in /metrics`);
  t.false(/Bearer|authorization/i.test(m.text));
});

test('/metrics: kluis_sse_clients counts the open event streams', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  await newSpace(srv.url, a);
  const gauge = async () => value((await scrape()).samples, 'kluis_sse_clients', {});
  const before = await gauge();
  t.is(typeof before, 'number');

  const streams = await Promise.all([0, 1].map(async () => {
    const ac = new AbortController();
    const res = await fetch(`${srv.url}/api/v1/events`, { headers: { authorization: `Bearer ${a.token}` }, signal: ac.signal });
    t.is(res.status, 200);
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    t.true(first.includes('event: hello'));
    return { ac, reader };
  }));
  t.is(await gauge(), before! + 2, 'two connected event streams');
  for (const s of streams) {
    s.ac.abort();
    await s.reader.closed.catch(() => {});
  }
  // The server notices the disconnects asynchronously.
  let now = await gauge();
  for (let i = 0; i < 50 && now !== before; i++) {
    await new Promise((r) => setTimeout(r, 100));
    now = await gauge();
  }
  t.is(now, before, 'back down once the clients went away');
  t.is(value((await scrape()).samples, 'kluis_http_requests_total', { method: 'GET', route: '/api/v1/events', status: '200' }), 2);
});
