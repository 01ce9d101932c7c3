// Commits racing for the same parent (issue 21 §2): of two commits that name the same head of a file, exactly one is
// stored (201) and the other is refused with 409 naming the winner as the head; commits of different files racing
// in one space all get distinct, consecutive seqs. On sqlite both go through one server (its group committer puts
// them in one transaction, one after the other). On PostgreSQL (pg-racing-commits.test.ts) they go through two
// server processes on one database, as two API nodes would, so the two transactions really race in the database.
import test from 'ava';
import { startSecondNode, startServer, testEngine, type RunningServer } from '../helpers/server.js';
import { admin, call, login, newOrg, newSpace, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';

let nodeA: RunningServer;
let nodeB: RunningServer;

test.before(async () => {
  nodeA = await startServer();
  nodeB = testEngine() === 'postgres' ? await startSecondNode(nodeA) : nodeA;
});

test.after.always(async () => {
  if (nodeB !== nodeA) await nodeB?.stop();
  await nodeA?.stop();
});

const commit = (node: RunningServer, token: string, spaceId: string, versions: unknown[]) =>
  call(node.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token, json: { versions } });

test.serial('two commits for the same parent at once: exactly one 201, the other 409 with the winner as the head', async (t) => {
  const { admin: a } = await newOrg(nodeA.url, nodeA.dataDir);
  // The same user on a second device, talking to the other node.
  const second = await login(nodeB.url, a.email, a.password, 'second laptop');
  t.is(second.status, 200);
  const b: User = { ...a, token: second.body.token, deviceId: second.body.deviceId };
  const { spaceId, pair } = await newSpace(nodeA.url, a);
  const f = newFile();
  const first = version(a, spaceId, pair, 1, f, { parent: null });
  t.is((await commit(nodeA, a.token, spaceId, [first.entry])).status, 201);

  let head = first.versionId;
  const rounds = 15;
  for (let round = 0; round < rounds; round++) {
    const fromA = version(a, spaceId, pair, 1, f, { parent: head, path: `Map/a-${round}.txt` });
    const fromB = version(b, spaceId, pair, 1, f, { parent: head, path: `Map/b-${round}.txt` });
    const [ra, rb] = await Promise.all([commit(nodeA, a.token, spaceId, [fromA.entry]), commit(nodeB, b.token, spaceId, [fromB.entry])]);
    const statuses = [ra.status, rb.status].sort();
    t.deepEqual(statuses, [201, 409], `round ${round}: ${JSON.stringify([ra.body, rb.body])}`);
    const [winner, loser, lost] = ra.status === 201 ? [fromA, rb, fromB] : [fromB, ra, fromA];
    t.deepEqual(loser.body.conflicts, [{ fileId: f.fileId, versionId: lost.versionId, reason: 'parent_not_head', head: winner.versionId }], `round ${round}`);
    head = winner.versionId;
  }

  // The history is one line: every stored version's parent is the version before it, seqs 1..rounds+1.
  const history = await call(nodeB.url, 'GET', `/api/v1/spaces/${spaceId}/files/${f.fileId}/versions`, { token: b.token });
  t.is(history.status, 200);
  const versions = [...history.body.versions].reverse() as { seq: number; versionId: string; parent: string | null }[];
  t.deepEqual(versions.map((v) => v.seq), Array.from({ length: rounds + 1 }, (_, i) => i + 1));
  for (let i = 1; i < versions.length; i++) t.is(versions[i]!.parent, versions[i - 1]!.versionId);
  t.is(versions.at(-1)!.versionId, head);
});

test.serial('commits of different files racing in one space: all stored, with distinct consecutive seqs; the audit chain stays intact', async (t) => {
  const { admin: a } = await newOrg(nodeA.url, nodeA.dataDir);
  const second = await login(nodeB.url, a.email, a.password, 'second laptop');
  const b: User = { ...a, token: second.body.token, deviceId: second.body.deviceId };
  const { spaceId, pair } = await newSpace(nodeA.url, a);
  const n = 20;
  const results = await Promise.all(Array.from({ length: n }, (_, i) => {
    const [who, node] = i % 2 === 0 ? [a, nodeA] : [b, nodeB];
    return commit(node, who.token, spaceId, [version(who, spaceId, pair, 1, newFile(), { parent: null }).entry]);
  }));
  t.deepEqual(results.map((r) => r.status), Array(n).fill(201));
  t.deepEqual(results.map((r) => r.body.seq as number).sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i + 1));
  const changes = await call(nodeA.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=0`, { token: a.token });
  t.is(changes.body.head, n);
  t.is(changes.body.changes.length, n);

  const verified = await admin(nodeA.dataDir, ['audit', 'verify', '--no-state']);
  t.true(verified.ok, JSON.stringify(verified));
});
