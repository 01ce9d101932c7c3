// Every access is audited (issue 16 §2): the nine reads that wrote nothing, denials whose path holds a NUL or an id
// over 128 characters, audit searches with impossible times (§4), and a flood of requests without a session, which
// is counted per window instead of written row by row (server/src/audit/anonymous.ts).
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import * as k from '@kluis/shared';
import { openServerDb, startServer, type RunningServer } from '../helpers/server.js';
import { admin, call, newColleague, newOrg, newSpace, type User } from '../helpers/api.js';
import { AnonymousAuditGate } from '../../server/dist/audit/anonymous.js';
import type { AuditEntryInput } from '../../server/dist/audit/types.js';
import { type AuditDbRow as Row } from '../helpers/audit-db.js';

let srv: RunningServer;
let a: User;
let colleague: User;
let spaceId: string;

function openDb(dataDir: string): Promise<Knex> {
  return openServerDb(dataDir);
}

/** Runs `fn` and returns the audit rows appended meanwhile. */
async function appended(db: Knex, fn: () => Promise<void>): Promise<Row[]> {
  const before = Number((await db('audit_log').max({ n: 'seq' }).first())?.n ?? 0);
  await fn();
  return (await db('audit_log').where('seq', '>', before).orderBy('seq').select('*')) as Row[];
}

test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
  a = (await newOrg(srv.url, srv.dataDir)).admin;
  colleague = await newColleague(srv.url, a);
  spaceId = (await newSpace(srv.url, a)).spaceId;
});
test.after.always(async () => {
  await srv?.stop();
});

test.serial('each of the nine reads that wrote nothing writes its entry: who, what, when, how', async (t) => {
  const db = await openDb(srv.dataDir);
  t.teardown(() => db.destroy());
  const reads: { action: string; target: [string, string] | null; run: () => Promise<number> }[] = [
    { action: 'device.list', target: ['user', a.userId], run: async () => (await call(srv.url, 'GET', '/api/v1/devices', { token: a.token })).status },
    { action: 'org.read', target: ['org', a.orgId], run: async () => (await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}`, { token: a.token })).status },
    { action: 'org.users.list', target: ['org', a.orgId], run: async () => (await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/users`, { token: a.token })).status },
    { action: 'directory.read', target: ['user', colleague.userId], run: async () => (await call(srv.url, 'GET', `/api/v1/directory?email=${encodeURIComponent(colleague.email)}`, { token: a.token })).status },
    { action: 'space.list', target: ['user', a.userId], run: async () => (await call(srv.url, 'GET', '/api/v1/spaces', { token: a.token })).status },
    { action: 'trash.read', target: ['space', spaceId], run: async () => (await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/trash`, { token: a.token })).status },
    { action: 'chunks.missing', target: ['space', spaceId], run: async () => (await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/chunks/missing`, { token: a.token, json: { ids: ['ab'.repeat(32)] } })).status },
    {
      action: 'events.subscribe', target: ['device', a.deviceId], run: async () => {
        const ac = new AbortController();
        const res = await fetch(`${srv.url}/api/v1/events`, { headers: { authorization: `Bearer ${a.token}`, 'x-kluis-client': 'kluis-test/0.1.0' }, signal: ac.signal });
        const reader = res.body!.getReader();
        const first = new TextDecoder().decode((await reader.read()).value);
        ac.abort();
        await reader.cancel().catch(() => undefined);
        return first.includes('event: hello') ? res.status : -1;
      },
    },
  ];
  for (const r of reads) {
    const rows = await appended(db, async () => {
      t.is(await r.run(), 200, r.action);
    });
    const mine = rows.filter((e) => e.action === r.action);
    t.is(mine.length, 1, `${r.action}: one entry (${JSON.stringify(rows.map((e) => e.action))})`);
    const e = mine[0];
    if (!e) continue;
    t.like(e, { outcome: 'success', org_id: a.orgId, actor_user_id: a.userId, actor_device_id: a.deviceId, client: 'kluis-test/0.1.0' }, r.action);
    t.truthy(e.ip, `${r.action}: ip`);
    t.true(Math.abs(Number(e.ts) - Date.now()) < 60_000, `${r.action}: when`);
    t.deepEqual([e.target_type, e.target_id], r.target, `${r.action}: target`);
  }
  // Prelogin has no session: the first of the window from this address is written in full, with no organisation and
  // no target whether the address is known or not.
  const rows = await appended(db, async () => {
    t.is((await call(srv.url, 'POST', '/api/v1/auth/prelogin', { json: { email: a.email } })).status, 200);
  });
  t.like(rows.find((e) => e.action === 'auth.prelogin'), { outcome: 'success', org_id: null, actor_user_id: null, target_id: null, client: 'kluis-test/0.1.0' });
});

test.serial('a denial whose path holds a NUL or an id over 128 characters is audited, the id cleaned or shortened and marked', async (t) => {
  const db = await openDb(srv.dataDir);
  t.teardown(() => db.destroy());
  const cases: { url: string; action: string; type: string; id: (s: string) => boolean; details: Record<string, unknown> }[] = [
    { url: '/api/v1/spaces/%00abc/trash', action: 'trash.read', type: 'space', id: (s) => s === '\uFFFDabc', details: { targetIdCleaned: true } },
    { url: `/api/v1/spaces/${'x'.repeat(200)}/trash`, action: 'trash.read', type: 'space', id: (s) => s === `${'x'.repeat(127)}\u2026`, details: { targetIdLength: 200 } },
    { url: `/api/v1/spaces/${'x'.repeat(5000)}`, action: 'keys.space.read', type: 'space', id: (s) => s.length === 128 && s.endsWith('\u2026'), details: { targetIdLength: 5000 } },
    { url: `/api/v1/directory?userId=${'y'.repeat(300)}`, action: 'directory.read', type: 'user', id: (s) => s.length === 128, details: { targetIdLength: 300 } },
    { url: `/api/v1/spaces/ab%00${'z'.repeat(150)}/chunks/missing`, action: 'chunks.missing', type: 'space', id: (s) => s.startsWith('ab\uFFFDzz') && s.length === 128, details: { targetIdCleaned: true, targetIdLength: 153 } },
  ];
  for (const c of cases) {
    const rows = await appended(db, async () => {
      const res = await call(srv.url, c.url.includes('missing') ? 'POST' : 'GET', c.url, { token: a.token, json: c.url.includes('missing') ? { ids: [] } : undefined });
      t.is(res.status, 404, c.url.slice(0, 40));
      t.is(res.body.error.code, 'not_found');
    });
    const e = rows.find((r) => r.action === c.action);
    t.truthy(e, `${c.url.slice(0, 40)}: audited (${JSON.stringify(rows.map((r) => r.action))})`);
    if (!e) continue;
    t.like(e, { outcome: 'denied', actor_user_id: a.userId, target_type: c.type });
    t.true(c.id(e.target_id ?? ''), `target ${JSON.stringify(e.target_id)}`);
    t.like(JSON.parse(e.details ?? '{}'), { status: 404, code: 'not_found', ...c.details });
  }
  // A path no route takes is audited too, under request.refused with the path as target.
  const rows = await appended(db, async () => {
    t.is((await call(srv.url, 'GET', `/api/v1/no-such-thing/${'q'.repeat(300)}`, { token: a.token })).status, 404);
  });
  const refused = rows.find((r) => r.action === 'request.refused');
  t.like(refused, { outcome: 'denied', target_type: 'path' });
  t.is(refused?.target_id?.length, 128);
});

test.serial('audit since/until of 2^53 or more answer 400 validation_failed, and the trail says the search or export failed', async (t) => {
  const db = await openDb(srv.dataDir);
  t.teardown(() => db.destroy());
  for (const url of ['/audit', '/audit/export']) {
    for (const q of ['since=9007199254740992', 'until=9007199254740992', `since=${'9'.repeat(400)}`, 'until=1e400']) {
      const rows = await appended(db, async () => {
        const res = await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}${url}?${q}`, { token: a.token });
        t.is(res.status, 400, `${url}?${q}`);
        t.is(res.body?.error?.code, 'validation_failed');
        t.is(typeof res.body?.error?.message, 'string');
      });
      const action = url === '/audit' ? 'audit.search' : 'audit.export';
      const mine = rows.filter((r) => r.action === action);
      t.deepEqual(mine.map((r) => r.outcome), ['failed'], `${url}?${q}: one failed entry, no success`);
      t.like(JSON.parse(mine[0]?.details ?? '{}'), { status: 400, code: 'validation_failed' });
    }
  }
  // The largest safe time is a time: answered.
  t.is((await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/audit?until=9007199254740991`, { token: a.token })).status, 200);
  const exp = await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/audit/export?since=9007199254740991&format=json`, { token: a.token });
  t.is(exp.status, 200);
  t.is(exp.body.count, 0);
});

// ------------------------------------------------------------------------------------------ floods

/** Sends `n` requests made by `make(i)`, `parallel` at a time; resolves with their statuses. */
async function flood(n: number, parallel: number, make: (i: number) => Promise<number>): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < n) statuses.push(await make(next++));
  }));
  return statuses;
}

/** The rows of an anonymous action, and the occurrences they stand for (1 per full row, details.count per summary). */
function tally(rows: Row[]): { rows: number; summaries: number; occurrences: number } {
  let occurrences = 0;
  let summaries = 0;
  for (const r of rows) {
    const d = r.details === null ? {} : (JSON.parse(r.details) as { aggregated?: boolean; count?: number });
    if (d.aggregated) {
      summaries++;
      occurrences += d.count ?? 0;
    } else {
      occurrences++;
    }
  }
  return { rows: rows.length, summaries, occurrences };
}

test('a flood of 500 requests with bad tokens (and 300 prelogins for random addresses) writes a few rows whose counts add up', async (t: ExecutionContext) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'kluis-flood-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const server = await startServer({ KLUIS_DATA_DIR: dataDir });
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await server.stop();
  });
  const bad = await flood(500, 25, async () => (await call(server.url, 'GET', '/api/v1/me', { token: randomBytes(32).toString('base64url') })).status);
  t.deepEqual([...new Set(bad)], [401]);
  const pre = await flood(300, 25, async () => (await call(server.url, 'POST', '/api/v1/auth/prelogin', { json: { email: `nobody-${Math.random().toString(36).slice(2)}@example.be` } })).status);
  t.deepEqual([...new Set(pre)], [200]);
  // Shutdown writes the counts of the window still open.
  t.is(await server.stop(), 0);
  stopped = true;

  const db = await openDb(dataDir);
  t.teardown(() => db.destroy());
  const denied = (await db('audit_log').where({ action: 'keys.bundle.read' }).whereNull('actor_user_id').select('*')) as Row[];
  const d = tally(denied);
  t.is(d.occurrences, 500, 'every refused request is accounted for');
  t.true(d.rows <= 4, `${d.rows} rows for 500 requests (at most a full row and a summary per window, and the flood may straddle two)`);
  t.true(d.summaries >= 1);
  for (const r of denied) {
    t.like(r, { outcome: 'denied', org_id: null });
    t.truthy(r.ip, 'the address is kept');
  }
  const summary = JSON.parse(denied.find((r) => r.details?.includes('"aggregated":true'))!.details!);
  t.like(summary, { status: 401, code: 'unauthenticated', windowMs: 60_000 });
  t.true(summary.firstAt <= summary.lastAt);

  const prelogins = tally((await db('audit_log').where({ action: 'auth.prelogin' }).select('*')) as Row[]);
  t.is(prelogins.occurrences, 300);
  t.true(prelogins.rows <= 4, `${prelogins.rows} rows for 300 prelogins`);
  // The trail is still a valid chain, summaries included.
  const verified = await admin(dataDir, ['audit', 'verify', '--no-state']);
  t.true(verified.ok, JSON.stringify(verified.firstBroken));
});

test('the aggregation is bounded in keys and rows whatever the number of addresses, and still adds up', async (t) => {
  let now = 1_800_000_000_000; // the start of a window
  const full: AuditEntryInput[] = [];
  const summaries: AuditEntryInput[] = [];
  const gate = new AnonymousAuditGate(async (e) => { full.push(e); }, async (es) => { summaries.push(...es); }, { now: () => now, maxKeys: 100, windowMs: 60_000 });
  // 5,000 addresses, 3 requests each, in one window; some attributed to organisations (failed logins for known
  // addresses): those are written in full in the background, up to maxAttributed.
  for (let i = 0; i < 15_000; i++) {
    const ip = `10.0.${Math.floor((i % 5000) / 256)}.${(i % 5000) % 256}`;
    await gate.record({ orgId: i % 10 === 0 ? `org${i % 30}` : null, action: 'auth.login', outcome: 'failed', ip, details: { status: 401, code: 'unauthenticated' } });
    now += 1;
  }
  await gate.stop();
  const aggregated = (e: AuditEntryInput) => (e.details as { aggregated?: boolean }).aggregated === true;
  const counted = summaries.filter(aggregated).reduce((n, s) => n + Number((s.details as { count: number }).count), 0);
  t.false(full.some(aggregated));
  t.is(full.length + summaries.filter((s) => !aggregated(s)).length + counted, 15_000, 'rows written in full plus the counts of the summaries');
  t.is(summaries.filter((s) => !aggregated(s)).length, 1000, 'attributed occurrences written in full up to maxAttributed');
  const firstRows = full.length;
  t.true(firstRows <= 101, `${firstRows} rows written at once: one per key, keys bounded`);
  t.true(summaries.length <= 1000 + 101 * 17, `${summaries.length} summary or background rows`);
  t.true(summaries.some((s) => (s.details as { overflow?: boolean }).overflow === true && s.ip === null), 'addresses beyond the bound are merged, and say so');
});
