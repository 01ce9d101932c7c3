// Group commit seen over HTTP: concurrent reads each leave exactly one audit entry, concurrent commits of which
// some conflict share transactions without the conflicts' writes surviving, failed requests' entries are
// written too, and `kluis-admin audit verify` finds the chain intact afterwards.
import test from 'ava';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { admin, call, newColleague, newOrg, newSpace } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';

let srv: RunningServer;
test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
});
test.after.always(async () => {
  await srv?.stop();
});

test('concurrent reads and commits, some conflicting: one entry per request, only the winners stored, chain intact', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const b = await newColleague(srv.url, a);
  const { spaceId, pair } = await newSpace(srv.url, a);
  const seed = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, json: { versions: Array.from({ length: 20 }, () => version(a, spaceId, pair, 1, newFile(), { parent: null }).entry) } });
  t.is(seed.status, 201);
  const shared = newFile();
  const first = version(a, spaceId, pair, 1, shared, { parent: null });
  t.is((await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, json: { versions: [first.entry] } })).status, 201);

  const READS = 80;
  const OWN = 30; // commits of new files: all succeed
  const RACE = 10; // commits on the same parent of one file: exactly one wins
  const stranger = b; // not a member of the space: 404, audited as denied
  const requests: Promise<{ kind: string; status: number }>[] = [];
  for (let i = 0; i < READS; i++) {
    requests.push(call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=${i % 20}&limit=5`, { token: a.token }).then((r) => ({ kind: 'read', status: r.status })));
  }
  for (let i = 0; i < OWN; i++) {
    const v = version(a, spaceId, pair, 1, newFile(), { parent: null });
    requests.push(call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, json: { versions: [v.entry] } }).then((r) => ({ kind: 'own', status: r.status })));
  }
  for (let i = 0; i < RACE; i++) {
    const v = version(a, spaceId, pair, 1, shared, { parent: first.versionId });
    requests.push(call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, json: { versions: [v.entry] } }).then((r) => ({ kind: 'race', status: r.status })));
  }
  for (let i = 0; i < 10; i++) {
    requests.push(call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes`, { token: stranger.token }).then((r) => ({ kind: 'stranger', status: r.status })));
  }
  const done = await Promise.all(requests);
  const count = (kind: string, status: number) => done.filter((d) => d.kind === kind && d.status === status).length;
  t.is(count('read', 200), READS);
  t.is(count('own', 201), OWN);
  t.is(count('race', 201), 1);
  t.is(count('race', 409), RACE - 1);
  t.is(count('stranger', 404), 10);

  // Stored: the seed, the first version, the own commits and one racer; nothing of the conflicting ones.
  const changes = await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes?limit=5000`, { token: a.token });
  t.is(changes.body.changes.length, 20 + 1 + OWN + 1);
  t.is(changes.body.head, 20 + 1 + OWN + 1);
  t.deepEqual(changes.body.changes.map((c: { seq: number }) => c.seq), Array.from({ length: 52 }, (_, i) => i + 1));

  const audit = async (query: string) => (await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/audit?${query}&limit=10000`, { token: a.token })).body.entries as { action: string; outcome: string; details: Record<string, unknown> }[];
  t.is((await audit(`action=changes.read&actor=${a.userId}&outcome=success`)).length, READS + 1);
  const commits = await audit('action=commit.create');
  t.is(commits.filter((e) => e.outcome === 'success').length, 2 + OWN + 1);
  t.is(commits.filter((e) => e.outcome === 'failed').length, RACE - 1);
  t.is((await audit(`action=changes.read&actor=${stranger.userId}&outcome=denied`)).length, 10);

  const verify = await admin(srv.dataDir, ['audit', 'verify']);
  t.true(verify.ok, JSON.stringify(verify.firstBroken));
});
