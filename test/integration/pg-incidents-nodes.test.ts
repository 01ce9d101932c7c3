// Incidents with two API nodes on one PostgreSQL database (docs/admin.md "Incidents", "How it watches"): both nodes
// run the watcher, one at a time evaluates (advisory lock), the cursor in the database hands each entry to exactly one
// evaluation, so refusals spread over both nodes open ONE incident whose timeline holds every one of them, and the
// SMTP server started here receives ONE mail for it.
import test from 'ava';
import * as k from '@kluis/shared';
import { startSecondNode, startServer, type RunningServer } from '../helpers/server.js';
import { call, newColleague, newOrg } from '../helpers/api.js';
import { startSmtpReceiver, type SmtpReceiver } from '../helpers/smtp.js';
import { usePostgres } from '../helpers/postgres-suite.js';

let nodeA: RunningServer;
let nodeB: RunningServer;
let smtp: SmtpReceiver;

test.before(async () => {
  smtp = await startSmtpReceiver();
  const env = { KLUIS_SMTP_URL: smtp.url, KLUIS_INCIDENT_INTERVAL_MS: '100', KLUIS_INCIDENT_VERIFY_MS: '0' };
  nodeA = await startServer(env);
  nodeB = await startSecondNode(nodeA, env);
});
test.after.always(async () => {
  await nodeB?.stop();
  await nodeA?.stop();
  await smtp?.close();
});
usePostgres(); // after the hook above: the nodes stop before the cluster does

test('refusals spread over two nodes open one incident with every entry, and one mail', async (t) => {
  const o = await newOrg(nodeA.url, nodeA.dataDir, 'OCMW Twee Knopen');
  const auditor = await newColleague(nodeA.url, o.admin, 'auditor');
  const member = await newColleague(nodeA.url, o.admin);
  const org = `/api/v1/orgs/${o.orgId}`;
  t.is((await call(nodeB.url, 'PUT', `${org}/incident-settings`, { token: o.admin.token, json: { denials: 10 } })).status, 200);
  // 30 refusals, alternating nodes, in parallel pairs: both watchers are busy while they arrive.
  for (let n = 0; n < 15; n++) {
    const [a, b] = await Promise.all([nodeA, nodeB].map((node) => call(node.url, 'GET', `${org}/audit`, { token: member.token })));
    t.is(a!.status, 403);
    t.is(b!.status, 403);
  }
  let found: k.Incident[] = [];
  for (const until = Date.now() + 30_000; Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
    const list = k.IncidentList.parse((await call(nodeA.url, 'GET', `${org}/incidents`, { token: auditor.token })).body).incidents;
    found = list.filter((i) => i.rule === 'repeated_denials' && i.subject === member.userId);
    if (found.length > 0 && found[0]!.entries >= 30) break;
  }
  t.is(found.length, 1, 'one incident, not one per node');
  t.is(found[0]!.entries, 30, 'every refusal in its timeline, none twice');
  await smtp.waitFor((m) => m.raw.includes(found[0]!.incidentId));
  await new Promise((r) => setTimeout(r, 1500)); // time for a duplicate to arrive, if one were sent
  t.is(smtp.mails.filter((m) => m.raw.includes(found[0]!.incidentId)).length, 1, 'one mail');
});
