// Incidents (issue 20 §1; docs/api.md "Incidents", docs/admin.md "Incidents"): each rule over the audit trail opens
// its incident on its case and stays quiet on normal use; a mass download by one account opens a high incident and a
// real SMTP server started here receives the mail for the organisation's security advisors and admins; a suspected
// leak shows its 72-hour deadline; acts are audited; the role matrix and bad input. One server (sqlite, or PostgreSQL
// in pg-incidents-api.test.ts), with the watcher every 200 ms.
import test from 'ava';
import type { Knex } from 'knex';
import * as k from '@kluis/shared';
import { openServerDb, startServer, testEngine, type RunningServer } from '../helpers/server.js';
import { admin, call, login, newColleague, newOrg, newSpace, type Res, type User } from '../helpers/api.js';
import { randomBytes } from 'node:crypto';
import { encryptAll, pseudoRandom } from '../helpers/chunks.js';
import { newFile } from '../helpers/files.js';
import { quickLink } from '../helpers/links.js';
import { startSmtpReceiver, type SmtpReceiver } from '../helpers/smtp.js';

let srv: RunningServer;
let smtp: SmtpReceiver;
let db: Knex;
let orgId: string;
const who = {} as Record<'main' | 'backup' | 'auditor' | 'domain' | 'member' | 'member2' | 'foreign', User>;

test.before(async () => {
  smtp = await startSmtpReceiver();
  srv = await startServer({ KLUIS_SMTP_URL: smtp.url, KLUIS_SMTP_FROM: 'kluis@ocmw.example.be', KLUIS_INCIDENT_INTERVAL_MS: '200', KLUIS_INCIDENT_VERIFY_MS: '0', KLUIS_TRUSTED_PROXIES: '127.0.0.1' });
  db = await openServerDb(srv.dataDir);
  const o = await newOrg(srv.url, srv.dataDir, 'OCMW Incidentstad');
  orgId = o.orgId;
  who.main = o.admin;
  who.backup = await newColleague(srv.url, who.main, 'backup_admin');
  who.auditor = await newColleague(srv.url, who.main, 'auditor');
  who.domain = await newColleague(srv.url, who.main, 'domain_admin');
  who.member = await newColleague(srv.url, who.main);
  who.member2 = await newColleague(srv.url, who.main);
  who.foreign = (await newOrg(srv.url, srv.dataDir, 'Andere Gemeente')).admin;
});

test.after.always(async () => {
  await db?.destroy();
  await srv?.stop();
  await smtp?.close();
});

const org = (rest: string) => `/api/v1/orgs/${orgId}${rest}`;
const as = (u: User, method: string, url: string, json?: unknown) => call(srv.url, method, url, { token: u.token, ...(json !== undefined ? { json } : {}) });
const settings = async (change: Partial<k.IncidentSettings>) => {
  const r = await as(who.main, 'PUT', org('/incident-settings'), change);
  if (r.status !== 200) throw new Error(`settings: ${JSON.stringify(r.body)}`);
};
/** Waits until the watcher has evaluated every entry written so far. */
async function caughtUp(): Promise<void> {
  const head = Number(((await db('audit_log').max({ s: 'seq' }).first()) as { s: number | string }).s);
  for (const until = Date.now() + 30_000; Date.now() < until;) {
    const cursor = Number(((await db('incident_cursor').where({ id: 1 }).first('seq')) as { seq: number | string }).seq);
    if (cursor >= head) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the incident watcher did not catch up within 30 s');
}
const list = async (u: User = who.auditor, query = '?status=all'): Promise<k.Incident[]> => {
  const r = await as(u, 'GET', org(`/incidents${query}`));
  if (r.status !== 200) throw new Error(`list: ${r.status} ${JSON.stringify(r.body)}`);
  return k.IncidentList.parse(r.body).incidents;
};
const find = async (rule: k.IncidentRule, subject: string) => (await list()).filter((i) => i.rule === rule && i.subject === subject);
async function waitIncident(rule: k.IncidentRule, subject: string): Promise<k.Incident> {
  for (const until = Date.now() + 30_000; Date.now() < until;) {
    const [i] = await find(rule, subject);
    if (i) return i;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no ${rule} incident for ${subject} within 30 s: ${JSON.stringify(await list())}`);
}

/** `u` puts one chunk in a new space of theirs and reads it back `times` times. */
async function downloads(u: User, times: number): Promise<void> {
  const { spaceId } = await newSpace(srv.url, u, `Map ${Math.random().toString(36).slice(2, 6)}`);
  const [c] = encryptAll(newFile().sub, [pseudoRandom(times, 2048)]);
  const put = await fetch(`${srv.url}/api/v1/spaces/${spaceId}/chunks/${c!.id}`, { method: 'PUT', headers: { authorization: `Bearer ${u.token}`, 'content-type': 'application/octet-stream' }, body: c!.ciphertext });
  if (put.status !== 201 && put.status !== 200) throw new Error(`put: ${put.status}`);
  for (let i = 0; i < times; i++) {
    const get = await fetch(`${srv.url}/api/v1/spaces/${spaceId}/chunks/${c!.id}`, { headers: { authorization: `Bearer ${u.token}` } });
    await get.arrayBuffer();
    if (get.status !== 200) throw new Error(`get: ${get.status}`);
  }
}

test.serial('a mass download by one account opens a high incident, mailed to the security advisors and admins; normal downloads stay quiet', async (t) => {
  await settings({ downloadChunks: 20, downloadWindowMinutes: 10 });
  await downloads(who.member2, 8); // normal use: below the threshold
  await downloads(who.member, 25);
  const i = await waitIncident('mass_download', who.member.userId);
  t.is(i.severity, 'high');
  t.is(i.status, 'open');
  t.true(Number(i.details.chunks) > 20);
  t.true(i.entries > 20);
  await caughtUp();
  t.deepEqual(await find('mass_download', who.member2.userId), [], 'normal downloads open nothing');

  const mail = await smtp.waitFor((m) => m.raw.includes(i.incidentId));
  t.is(mail.subject, '[Kluis] High incident in OCMW Incidentstad: one account downloaded unusually much');
  t.deepEqual([...mail.to].sort(), [who.main.email, who.backup.email, who.auditor.email].sort(), 'security advisors and main and backup admins, nobody else');
  t.is(mail.from, 'kluis@ocmw.example.be');
  t.true(mail.raw.includes(`/admin/#incident/${i.incidentId}`), 'a link to the console');
  t.false(mail.raw.includes(who.member.email), 'no personal data in the mail');
  t.false(mail.raw.includes(who.member.userId));

  const detail = k.IncidentDetail.parse((await as(who.auditor, 'GET', org(`/incidents/${i.incidentId}`))).body);
  t.true(detail.timeline.length > 20);
  t.true(detail.timeline.every((e) => e.action === 'chunks.download' && e.actorUserId === who.member.userId));
  const notify = await db('audit_log').where({ action: 'incident.notify', target_id: i.incidentId, outcome: 'success' }).first();
  t.truthy(notify, 'the mail is in the audit trail');
  t.truthy(await db('audit_log').where({ action: 'incident.open', target_id: i.incidentId, org_id: orgId }).first());

  // More downloads feed the open incident instead of opening another.
  await downloads(who.member, 3);
  await caughtUp();
  const again = await find('mass_download', who.member.userId);
  t.is(again.length, 1);
  t.true(again[0]!.entries > i.entries);
});

test.serial('marked a suspected data leak, an incident shows its 72-hour deadline and is mailed again', async (t) => {
  const [i] = await find('mass_download', who.member.userId);
  const before = Date.now();
  const r = await as(who.auditor, 'POST', org(`/incidents/${i!.incidentId}/leak`), {});
  t.is(r.status, 200, JSON.stringify(r.body));
  const marked = k.Incident.parse(r.body.incident);
  t.true(marked.leakAt! >= before && marked.leakAt! <= Date.now());
  t.is(marked.deadlineAt, marked.leakAt! + 72 * 3_600_000);
  const listed = (await list(who.main, '')).find((x) => x.incidentId === i!.incidentId)!;
  t.is(listed.deadlineAt, marked.deadlineAt);
  const mail = await smtp.waitFor((m) => m.subject.startsWith('[Kluis] Suspected data leak') && m.raw.includes(i!.incidentId));
  t.true(mail.subject.includes(new Date(marked.deadlineAt!).toISOString().slice(0, 16)), mail.subject);
  t.is((await as(who.auditor, 'POST', org(`/incidents/${i!.incidentId}/leak`), {})).status, 409, 'marked once');
  const shown = await admin(srv.dataDir, ['incident', 'show', i!.incidentId, '--org', orgId]);
  t.is(shown.incident.deadlineAt, marked.deadlineAt);
});

test.serial('failed logins on one account open a high incident; a mistyped password stays quiet', async (t) => {
  for (let n = 0; n < 2; n++) t.is((await login(srv.url, who.member2.email, 'wrong password')).status, 401);
  for (let n = 0; n < 10; n++) t.not((await login(srv.url, who.member.email, `guess ${n}`)).status, 200);
  const i = await waitIncident('failed_logins', who.member.userId);
  t.is(i.severity, 'high');
  t.true(Number(i.details.failures) >= 10);
  await caughtUp();
  t.deepEqual(await find('failed_logins', who.member2.userId), []);
});

test.serial('a witness\'s alarm opens a very high incident; a second alarm joins its timeline', async (t) => {
  const alarm = { kind: 'fork', reason: 'the head of size 40 does not extend the held head of size 42', heldSize: 42, heldRoot: 'ab'.repeat(32), seenSize: 40, seenRoot: 'cd'.repeat(32) };
  t.is((await as(who.auditor, 'POST', org('/audit/witness-alerts'), alarm)).status, 201);
  const i = await waitIncident('witness_alert', 'audit-witness');
  t.is(i.severity, 'very_high');
  t.deepEqual([i.details.kind, i.details.heldSize, i.details.seenSize], ['fork', 42, 40]);
  t.is((await as(who.auditor, 'POST', org('/audit/witness-alerts'), { ...alarm, kind: 'rollback' })).status, 201);
  await caughtUp();
  const all = await find('witness_alert', 'audit-witness');
  t.is(all.length, 1);
  t.is(all[0]!.entries, 2);
});

test.serial('guessing a link\'s password opens a high incident; one wrong try stays quiet', async (t) => {
  const space = await newSpace(srv.url, who.member2, 'Gedeeld');
  const quiet = await quickLink(srv.url, who.member2, space, { purpose: 'rustig' });
  const guessed = await quickLink(srv.url, who.member2, space, { purpose: 'geraden' });
  const wrong = () => randomBytes(32).toString('base64url');
  t.is((await call(srv.url, 'POST', `/api/v1/public/links/${quiet}/access`, { json: { auth: wrong() } })).status, 401);
  for (let n = 0; n < 5; n++) t.is((await call(srv.url, 'POST', `/api/v1/public/links/${guessed}/access`, { json: { auth: wrong() } })).status, 401);
  const i = await waitIncident('link_password', guessed);
  t.is(i.severity, 'high');
  t.is(i.details.failures, 5);
  await caughtUp();
  t.deepEqual(await find('link_password', quiet), []);
});

test.serial('repeated refusals of one account open a low incident; a few stay quiet', async (t) => {
  await settings({ denials: 8 });
  for (let n = 0; n < 2; n++) t.is((await as(who.member2, 'GET', org('/audit'))).status, 403);
  for (let n = 0; n < 8; n++) t.is((await as(who.member, 'GET', org('/audit'))).status, 403);
  const i = await waitIncident('repeated_denials', who.member.userId);
  t.is(i.severity, 'low');
  t.is(i.details.denials, 8);
  await caughtUp();
  t.deepEqual(await find('repeated_denials', who.member2.userId), []);
});

test.serial('a device seen from a new network opens a low incident; a new address in a known network stays quiet', async (t) => {
  const from = (ip: string) => fetch(`${srv.url}/api/v1/spaces`, { headers: { authorization: `Bearer ${who.member2.token}`, 'x-forwarded-for': ip } });
  t.is((await from('127.0.0.9')).status, 200); // the /24 the device signed up from
  await caughtUp();
  t.deepEqual(await find('new_network', who.member2.deviceId), []);
  t.is((await from('198.51.100.7')).status, 200);
  const i = await waitIncident('new_network', who.member2.deviceId);
  t.is(i.severity, 'low');
  t.is(i.details.network, '198.51.100.0/24');
  t.is(i.details.userId, who.member2.userId);
});

test.serial('an admin acting outside office hours (the organisation\'s time zone) opens a low incident; inside them stays quiet', async (t) => {
  const hour = Number(new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Brussels', hour: '2-digit', hourCycle: 'h23' }).format(new Date()));
  const hh = (h: number) => `${String((h + 24) % 24).padStart(2, '0')}:00`;
  await settings({ timeZone: 'Europe/Brussels', officeDays: [1, 2, 3, 4, 5, 6, 7], officeStart: hh(hour - 2), officeEnd: hh(hour + 2) });
  t.is((await as(who.backup, 'GET', org('/people'))).status, 200);
  await caughtUp();
  t.deepEqual(await find('after_hours', who.backup.userId), [], 'inside office hours');
  await settings({ officeStart: hh(hour + 3), officeEnd: hh(hour + 5) });
  t.is((await as(who.backup, 'GET', org('/people'))).status, 200);
  const i = await waitIncident('after_hours', who.backup.userId);
  t.is(i.severity, 'low');
  t.is(i.details.timeZone, 'Europe/Brussels');
  t.is(i.details.role, 'backup_admin');
});

test.serial('acts on an incident change it and are audited; kluis-admin lists, shows, acknowledges and closes', async (t) => {
  const [i] = await find('repeated_denials', who.member.userId);
  const id = i!.incidentId;
  const ack = await as(who.auditor, 'POST', org(`/incidents/${id}/ack`), {});
  t.is(ack.status, 200);
  t.is(ack.body.incident.status, 'acknowledged');
  t.is(ack.body.incident.ownerUserId, who.auditor.userId, 'who acknowledges owns it');
  t.is((await as(who.auditor, 'POST', org(`/incidents/${id}/ack`), {})).status, 409);
  const esc = await as(who.main, 'POST', org(`/incidents/${id}/escalate`), {});
  t.is(esc.body.incident.status, 'escalated');
  t.is(esc.body.incident.severity, 'high');
  t.is((await as(who.main, 'POST', org(`/incidents/${id}/assign`), { userId: who.backup.userId })).body.incident.ownerEmail, who.backup.email);
  t.is((await as(who.backup, 'POST', org(`/incidents/${id}/notes`), { text: 'Gebeld met de dienst: een script liep fout.' })).status, 200);
  const detail = k.IncidentDetail.parse((await as(who.auditor, 'GET', org(`/incidents/${id}`))).body);
  t.is(detail.notes[0]!.text, 'Gebeld met de dienst: een script liep fout.');
  t.is(detail.notes[0]!.authorEmail, who.backup.email);
  for (const action of ['incident.ack', 'incident.escalate', 'incident.assign', 'incident.note']) {
    t.truthy(await db('audit_log').where({ action, target_id: id, outcome: 'success' }).first(), action);
  }
  const noteEntry = await db('audit_log').where({ action: 'incident.note', target_id: id }).first();
  t.false(String(noteEntry.details).includes('script'), 'the note text is not copied into the trail');

  const listed = await admin(srv.dataDir, ['incident', 'list', '--org', orgId]);
  t.true(listed.incidents.some((x: k.Incident) => x.incidentId === id));
  const shown = await admin(srv.dataDir, ['incident', 'show', id, '--org', orgId]);
  t.is(shown.incident.status, 'escalated');
  t.true(shown.timeline.length >= 8);
  const [other] = await find('new_network', who.member2.deviceId);
  t.is((await admin(srv.dataDir, ['incident', 'ack', other!.incidentId, '--org', orgId])).incident.status, 'acknowledged');
  const closed = await admin(srv.dataDir, ['incident', 'close', id, '--org', orgId, '--note', 'opgelost']);
  t.is(closed.incident.status, 'closed');
  t.truthy(await db('audit_log').where({ action: 'incident.close', target_id: id, client: 'kluis-admin/0.1.0' }).whereNull('actor_user_id').first());
  t.false((await list(who.auditor, '')).some((x) => x.incidentId === id), 'closed ones leave the default list');
  t.is((await as(who.auditor, 'POST', org(`/incidents/${id}/leak`), {})).status, 409, 'a closed incident is not marked');
  const set = await admin(srv.dataDir, ['incident', 'settings', '--org', orgId, '--set', '{"failedLogins":12}']);
  t.is(set.settings.failedLogins, 12);
  t.is((await as(who.auditor, 'GET', org('/incident-settings'))).body.settings.failedLogins, 12);
});

/** A fresh incident written behind the server's back, for acts that change it. */
async function seeded(): Promise<string> {
  const id = k.newId();
  const now = Date.now();
  await db('incidents').insert({ id, org_id: orgId, rule: 'repeated_denials', subject: `seed-${id}`, severity: 'low', status: 'open', details: '{}', owner_user_id: null, opened_at: now, updated_at: now, notified_at: now });
  return id;
}

test.serial('role matrix: security advisors and main and backup admins act on incidents; nobody else; another organisation finds nothing', async (t) => {
  type Actor = keyof typeof who;
  const actors: Actor[] = ['main', 'backup', 'auditor', 'domain', 'member', 'foreign'];
  const readers: Actor[] = ['main', 'backup', 'auditor'];
  const acts: { action: string; allowed: Actor[]; run: (u: User) => Promise<Res> }[] = [
    { action: 'incident.list', allowed: readers, run: (u) => as(u, 'GET', org('/incidents')) },
    { action: 'incident.read', allowed: readers, run: async (u) => as(u, 'GET', org(`/incidents/${await seeded()}`)) },
    { action: 'incident.ack', allowed: readers, run: async (u) => as(u, 'POST', org(`/incidents/${await seeded()}/ack`), {}) },
    { action: 'incident.escalate', allowed: readers, run: async (u) => as(u, 'POST', org(`/incidents/${await seeded()}/escalate`), { severity: 'very_high' }) },
    { action: 'incident.assign', allowed: readers, run: async (u) => as(u, 'POST', org(`/incidents/${await seeded()}/assign`), { userId: who.auditor.userId }) },
    { action: 'incident.note', allowed: readers, run: async (u) => as(u, 'POST', org(`/incidents/${await seeded()}/notes`), { text: 'bekeken' }) },
    { action: 'incident.leak', allowed: readers, run: async (u) => as(u, 'POST', org(`/incidents/${await seeded()}/leak`), {}) },
    { action: 'incident.close', allowed: readers, run: async (u) => as(u, 'POST', org(`/incidents/${await seeded()}/close`), {}) },
    { action: 'incident.settings.read', allowed: readers, run: (u) => as(u, 'GET', org('/incident-settings')) },
    { action: 'incident.settings.change', allowed: ['main', 'backup'], run: (u) => as(u, 'PUT', org('/incident-settings'), { failedLogins: 12 }) },
  ];
  for (const act of acts) {
    for (const a of actors) {
      const before = Number(((await db('audit_log').max({ s: 'seq' }).first()) as { s: number | string }).s);
      const r = await act.run(who[a]);
      const expected = act.allowed.includes(a) ? 200 : a === 'foreign' ? 404 : 403;
      t.is(r.status, expected, `${act.action} by ${a}: ${JSON.stringify(r.body)}`);
      const entry = await db('audit_log').where('seq', '>', before).where({ action: act.action, actor_user_id: who[a].userId }).first();
      t.truthy(entry, `${act.action} by ${a} is audited`);
      t.is(entry?.outcome, expected === 200 ? 'success' : 'denied', `${act.action} by ${a}: outcome`);
    }
  }
});

test.serial('bad input answers 400, 404 or 409 with an error code, never a 500', async (t) => {
  const id = await seeded();
  const cases: [string, string, unknown, number][] = [
    ['GET', org('/incidents?status=maybe'), undefined, 400],
    ['GET', org('/incidents?limit=0'), undefined, 400],
    ['GET', org('/incidents?other=1'), undefined, 400],
    ['GET', org('/incidents/not-an-id'), undefined, 404],
    ['GET', org(`/incidents/${k.newId()}`), undefined, 404],
    ['GET', org(`/incidents/${id}?x=1`), undefined, 400],
    ['POST', org(`/incidents/${k.newId()}/ack`), {}, 404],
    ['POST', org(`/incidents/${id}/ack`), { now: true }, 400],
    ['POST', org(`/incidents/${id}/notes`), { text: '   ' }, 400],
    ['POST', org(`/incidents/${id}/notes`), { text: 'x'.repeat(4001) }, 400],
    ['POST', org(`/incidents/${id}/notes`), {}, 400],
    ['POST', org(`/incidents/${id}/escalate`), { severity: 'apocalyptic' }, 400],
    ['POST', org(`/incidents/${id}/assign`), { userId: who.member.userId }, 400],
    ['POST', org(`/incidents/${id}/assign`), { userId: who.foreign.userId }, 404],
    ['POST', org(`/incidents/${id}/assign`), { userId: 'nobody' }, 400],
    ['POST', org(`/incidents/${id}/close`), { note: 42 }, 400],
    ['PUT', org('/incident-settings'), { timeZone: 'Europe/Gent' }, 400],
    ['PUT', org('/incident-settings'), { officeStart: '25:00' }, 400],
    ['PUT', org('/incident-settings'), { downloadChunks: 0 }, 400],
    ['PUT', org('/incident-settings'), { downloadBytes: -1 }, 400],
    ['PUT', org('/incident-settings'), { officeDays: [0] }, 400],
    ['PUT', org('/incident-settings'), { unknown: 1 }, 400],
    ['PUT', org('/incident-settings'), [1, 2], 400],
  ];
  for (const [method, url, json, status] of cases) {
    const r = await as(who.main, method, url, json);
    t.is(r.status, status, `${method} ${url} ${JSON.stringify(json)}: ${JSON.stringify(r.body)}`);
    t.is(typeof r.body?.error?.code, 'string');
  }
  const esc = await as(who.main, 'POST', org(`/incidents/${id}/escalate`), { severity: 'very_high' });
  t.is(esc.status, 200);
  t.is((await as(who.main, 'POST', org(`/incidents/${id}/escalate`), { severity: 'low' })).status, 400, 'escalating never lowers');
  const bad = await call(srv.url, 'POST', org(`/incidents/${id}/notes`), { token: who.main.token, raw: '{"text":' });
  t.is(bad.status, 400);
  const cli = await admin(srv.dataDir, ['incident', 'list', '--org', orgId, '--status', 'maybe']).catch((err: { stdout: string; code: number }) => ({ out: JSON.parse(err.stdout), code: err.code }));
  t.is(cli.code, 2);
  t.is(cli.out.error.code, 'validation_failed');
});

test.serial('a chain that fails to verify opens a very high incident in every organisation; an intact chain stays quiet', async (t) => {
  const s2 = await startServer({ KLUIS_INCIDENT_INTERVAL_MS: '200', KLUIS_INCIDENT_VERIFY_MS: '500' });
  const db2 = await openServerDb(s2.dataDir);
  try {
    const a = await newOrg(s2.url, s2.dataDir, 'Gemeente Een');
    const b = await newOrg(s2.url, s2.dataDir, 'Gemeente Twee');
    const listOf = async (u: User) => ((await call(s2.url, 'GET', `/api/v1/orgs/${u.orgId}/incidents?status=all`, { token: u.token })).body as k.IncidentList).incidents;
    // Several verifications pass over the intact chain.
    await new Promise((r) => setTimeout(r, 2000));
    t.deepEqual((await listOf(a.admin)).filter((i) => i.rule === 'chain_broken'), []);
    // Someone with the database rewrites an old entry.
    if (testEngine() === 'postgres') await db2.raw('ALTER TABLE audit_log DISABLE TRIGGER USER');
    else {
      const triggers = (await db2('sqlite_master').select('name').where({ type: 'trigger', tbl_name: 'audit_log' })) as { name: string }[];
      for (const { name } of triggers) await db2.raw(`DROP TRIGGER "${name}"`);
    }
    await db2('audit_log').where({ seq: 2 }).update({ ip: '10.6.6.6' });
    for (const u of [a.admin, b.admin]) {
      let found: k.Incident | undefined;
      for (const until = Date.now() + 30_000; !found && Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
        found = (await listOf(u)).find((i) => i.rule === 'chain_broken');
      }
      t.truthy(found, 'a chain incident in each organisation');
      t.is(found?.severity, 'very_high');
      t.is(found?.details.firstBrokenSeq, 2);
    }
  } finally {
    await db2.destroy();
    await s2.stop();
  }
});

test.serial('a bad KLUIS_SMTP_URL stops the server at start; an unreachable relay leaves the incident open and the failure in the trail', async (t) => {
  const bad = await startServer({ KLUIS_SMTP_URL: 'http://mail.example.be' }).then(async (s) => (await s.stop(), ''), (err: Error) => err.message);
  t.regex(bad, /configuration error: KLUIS_SMTP_URL: smtp:\/\/ or smtps:\/\/ only/);
  // A port nothing listens on: the relay refuses the connection.
  const closed = await startSmtpReceiver();
  const deadUrl = closed.url;
  await closed.close();
  const s3 = await startServer({ KLUIS_SMTP_URL: deadUrl, KLUIS_INCIDENT_INTERVAL_MS: '200', KLUIS_INCIDENT_VERIFY_MS: '0' });
  const db3 = await openServerDb(s3.dataDir);
  try {
    const o = await newOrg(s3.url, s3.dataDir, 'Gemeente Zonder Post');
    const m = await newColleague(s3.url, o.admin);
    t.is((await call(s3.url, 'PUT', `/api/v1/orgs/${o.orgId}/incident-settings`, { token: o.admin.token, json: { denials: 3 } })).status, 200);
    for (let n = 0; n < 3; n++) await call(s3.url, 'GET', `/api/v1/orgs/${o.orgId}/audit`, { token: m.token });
    // This incident's own attempt: outside office hours the admin's PUT above opens an after_hours incident too,
    // whose failed mail may come first (CI ran at night and read that one).
    let failedNotify: { details: string } | undefined;
    let row: { id: string; status: string; notified_at: number | null } | undefined;
    for (const until = Date.now() + 30_000; !failedNotify && Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
      row ??= await db3('incidents').where({ org_id: o.orgId, rule: 'repeated_denials' }).first();
      if (row) failedNotify = await db3('audit_log').where({ action: 'incident.notify', outcome: 'failed', org_id: o.orgId, target_id: row.id }).first();
    }
    t.truthy(failedNotify, 'the failed attempt is audited');
    t.regex(failedNotify!.details, /"code":"ECONNECTION"|"code":"ESOCKET"/);
    row = await db3('incidents').where({ id: row!.id }).first();
    t.is(row!.status, 'open');
    t.is(row!.notified_at, null, 'not marked sent: tried again later');
  } finally {
    await db3.destroy();
    await s3.stop();
  }
});
